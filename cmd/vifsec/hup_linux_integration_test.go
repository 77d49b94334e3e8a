//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
)

// waitLog waits until p's log holds want n times, failing if p exits.
func (p *daemonProc) waitLog(want string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.log.String(), want) < n {
		select {
		case <-p.done:
			p.t.Fatalf("vifsecd exited %d waiting for %q:\n%s", p.exit, want, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q in vifsecd's log after 10s:\n%s", want, p.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ipNetns runs ip(8), failing t on error.
func ipNetns(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}

// TestIntegrationSIGHUP: SIGHUP no longer kills vifsecd (it exited 129
// and left its socket): the daemon logs a re-read of its state and a
// re-check of the uplink and VM interfaces, keeps everything, keeps
// answering on its socket, and SIGTERM still stops it cleanly. Along the
// way, the uplink's state: `uplink set` of an interface that does not
// exist is refused naming --dev; an uplink whose device goes away is kept
// and shown down (uplink show, vifsec_uplink_up 0), restored as such after
// a restart, and up again once the device is back and SIGHUP re-checks.
func TestIntegrationSIGHUP(t *testing.T) {
	testutil.NeedRoot(t)
	ns := fmt.Sprintf("vifsec-hup%d", os.Getpid()%100000)
	ipNetns(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipNetns(t, "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	ipNetns(t, "-n", ns, "link", "set", "up0", "up")

	e := newEnv(t)
	p := e.start()
	e.base()
	if r := e.cli("uplink", "set", "--dev", "eht1"); r.code != exitRejected || !strings.Contains(r.stderr, "--dev eht1") {
		t.Errorf("uplink set --dev eht1: exit %d, stderr %q; want 1 naming --dev", r.code, r.stderr)
	}
	if out := e.ok("uplink", "show").stdout; !strings.Contains(out, "No uplink set") {
		t.Errorf("after the refused uplink set:\n%s", out)
	}
	e.ok("uplink", "set", "--dev", "up0", "--netns", ns)
	waitShow := func(p *daemonProc, state, metric string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out := e.ok("uplink", "show").stdout
			m := p.scrape()
			if strings.Contains(out, "State: "+state) && strings.Contains(m, `vifsec_uplink_up{dev="up0"} `+metric) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("uplink show and metrics: want state %s, vifsec_uplink_up %s; got\n%s", state, metric, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitShow(p, "up", "1")
	before := e.snapshot()

	for i := 1; i <= 2; i++ {
		if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.waitLog(`msg="SIGHUP: re-checked the uplink and VM interfaces" uplink="up0: up"`, i)
		p.waitLog(`msg="SIGHUP: state re-read"`, i)
		if after := e.snapshot(); after != before {
			t.Fatalf("SIGHUP %d changed the state:\n%s\nwant\n%s", i, after, before)
		}
	}
	if strings.Contains(p.log.String(), "changed=true") {
		t.Errorf("SIGHUP re-read changed the state:\n%s", p.log.String())
	}

	// The device goes away: the uplink is kept, shown down.
	ipNetns(t, "-n", ns, "link", "del", "up0")
	waitShow(p, "down", "0")

	// A restart with the device still missing restores the uplink,
	// pending, down.
	if code := p.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d:\n%s", code, p.log.String())
	}
	if _, err := os.Stat(e.sock); !os.IsNotExist(err) {
		t.Errorf("socket left after SIGTERM: %v", err)
	}
	p = e.start()
	waitShow(p, "down", "0")
	if after := e.snapshot(); after != before {
		t.Fatalf("restart changed the state:\n%s\nwant\n%s", after, before)
	}
	// The device is back; SIGHUP re-checks at once.
	ipNetns(t, "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	ipNetns(t, "-n", ns, "link", "set", "up0", "up")
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(`msg="SIGHUP: re-checked the uplink and VM interfaces" uplink="up0: up"`, 1)
	waitShow(p, "up", "1")
	if code := p.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d:\n%s", code, p.log.String())
	}
}
