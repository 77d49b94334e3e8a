//go:build linux

package vif

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
)

// TestIntegrationResolveNeighbor: the kernel resolves a neighbour on
// request (NTF_USE) and ResolveNeighbor then returns the peer's MAC.
func TestIntegrationResolveNeighbor(t *testing.T) {
	testutil.NeedRoot(t)
	a, b := fmt.Sprintf("vna%d", os.Getpid()%100000), fmt.Sprintf("vnb%d", os.Getpid()%100000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	for _, ns := range []string{a, b} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run("ip", "link", "add", "up0", "netns", a, "type", "veth", "peer", "name", "up0", "netns", b)
	run("ip", "-n", a, "addr", "add", "203.0.113.1/24", "dev", "up0")
	run("ip", "-n", b, "addr", "add", "203.0.113.2/24", "dev", "up0")
	run("ip", "-n", a, "link", "set", "up0", "up")
	run("ip", "-n", b, "link", "set", "up0", "up")
	peer, err := Describe("up0", b)
	if err != nil {
		t.Fatal(err)
	}
	remote := netip.MustParseAddr("203.0.113.2")
	deadline := time.Now().Add(5 * time.Second)
	for {
		mac, ok, err := ResolveNeighbor("up0", a, remote)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if net.HardwareAddr(mac[:]).String() != peer.MAC.String() {
				t.Fatalf("resolved %x, peer has %s", mac, peer.MAC)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("neighbour never resolved")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := ListenUDP(a, netip.MustParseAddrPort("203.0.113.1:4789"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
