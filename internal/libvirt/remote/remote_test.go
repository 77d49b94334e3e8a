package remote

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/libvirt"
)

// The procedures themselves are tested against a real libvirtd
// (TestIntegrationLibvirt in cmd/vifsec-hook); these tests need none:
// they hold the client to its context and its errors when libvirt does
// not answer as it should.

// silentLibvirt accepts connections on a unix socket and reads what the
// client sends. answer, if set, is written once after the first call
// arrives; then the connection is closed if hangup, else held open.
type silentLibvirt struct {
	sock   string
	hangup bool
	answer []byte
}

func newSilentLibvirt(t *testing.T, hangup bool, answer []byte) *silentLibvirt {
	t.Helper()
	s := &silentLibvirt{sock: filepath.Join(t.TempDir(), "libvirt-sock-ro"), hangup: hangup, answer: answer}
	ln, err := net.Listen("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
				if s.answer != nil {
					c.Write(s.answer)
				}
				if s.hangup {
					return
				}
				io.Copy(io.Discard, c) // until the client closes
			}()
		}
	}()
	return s
}

// settle waits until the goroutines number at most n, for up to 5 s,
// and reports whether they do.
func settle(n int) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if runtime.NumGoroutine() <= n {
			return true
		}
	}
	return false
}

func TestListLiveHangingLibvirtHonoursDeadline(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer []byte
	}{
		{"no answer", nil},
		// A message length smaller than a header, then nothing.
		{"short message", []byte{0, 0, 0, 8, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSilentLibvirt(t, false, tc.answer)
			base := runtime.NumGoroutine()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			doms, used, err := ListLive(ctx, []string{s.sock}, libvirt.DefaultURI)
			took := time.Since(start)
			if err == nil || !errors.Is(err, context.DeadlineExceeded) || doms != nil || used != "" {
				t.Fatalf("ListLive = %v, %q, %v; want context.DeadlineExceeded", doms, used, err)
			}
			if took > 3*time.Second {
				t.Fatalf("ListLive returned %v after its deadline", took)
			}
			if !strings.Contains(err.Error(), s.sock) {
				t.Errorf("error does not name the socket: %v", err)
			}
			if !settle(base) {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

func TestListLiveCancel(t *testing.T) {
	s := newSilentLibvirt(t, false, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := ListLive(ctx, []string{s.sock}, libvirt.DefaultURI)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it wait for the reply; it must not matter
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ListLive after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ListLive still waits 5 s after its context was cancelled")
	}
}

func TestListLiveHangup(t *testing.T) {
	s := newSilentLibvirt(t, true, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := ListLive(ctx, []string{s.sock}, libvirt.DefaultURI)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("libvirt hung up: ListLive = %v, want an error before the deadline", err)
	}
}

func TestListLiveNoLibvirt(t *testing.T) {
	dir := t.TempDir()
	socks := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	doms, used, err := ListLive(context.Background(), socks, libvirt.DefaultURI)
	if err == nil || doms != nil || used != "" {
		t.Fatalf("ListLive = %v, %q, %v; want an error", doms, used, err)
	}
	for _, s := range socks {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not name %s: %v", s, err)
		}
	}
}
