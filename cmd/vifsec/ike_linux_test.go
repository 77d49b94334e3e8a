//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vifsec/vifsec/internal/testutil"
)

// openPTY returns a pseudo-terminal pair (the master, and the terminal a
// program reads as its stdin). Linux: /dev/ptmx, unlock, /dev/pts/N.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminals: %v", err)
		}
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestReadPSKFromTerminal types the key on a real terminal: it is asked
// for twice, with the prompt, and never echoed.
func TestReadPSKFromTerminal(t *testing.T) {
	const key = "typed-on-the-terminal"
	for _, tt := range []struct {
		name, second, err string
	}{
		{name: "confirmed", second: key},
		{name: "differs", second: key + "x", err: "differ"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			master, tty := openPTY(t)
			var echo bytes.Buffer
			var wg sync.WaitGroup
			wg.Go(func() { io.Copy(&echo, master) }) // what the terminal shows
			stderr := &testutil.LogBuffer{}
			c := &cli{stdin: tty, stderr: stderr}
			type res struct {
				psk string
				err error
			}
			done := make(chan res, 1)
			go func() { p, err := c.readPSK("t1", "pol1"); done <- res{p, err} }()
			// Type each line once its prompt is out and the terminal is in
			// no-echo mode.
			for _, step := range []struct{ prompt, line string }{{"Enter", key}, {"Confirm", tt.second}} {
				testutil.WaitUntil(t, "the prompt or for echo to be off", 5*time.Second, func() bool { return strings.Contains(stderr.String(), step.prompt) })
				testutil.WaitUntil(t, "the prompt or for echo to be off", 5*time.Second, func() bool {
					st, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
					return err == nil && st.Lflag&unix.ECHO == 0
				})
				master.Write([]byte(step.line + "\r"))
			}
			var r res
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("readPSK did not return")
			}
			tty.Close()
			master.Close()
			wg.Wait()
			if tt.err != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", r.err, tt.err)
				}
			} else if r.err != nil || r.psk != key {
				t.Fatalf("readPSK = %q, %v", r.psk, r.err)
			}
			if strings.Contains(echo.String(), "typed") || strings.Contains(stderr.String(), "typed") {
				t.Errorf("the key was echoed: terminal %q, stderr %q", echo.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), "Enter the preshared key for IPsec Policy pol1 on tenant t1") || !strings.Contains(stderr.String(), "Confirm") {
				t.Errorf("prompts: %q", stderr.String())
			}
		})
	}
}
