//go:build linux

package vif

import (
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
)

// linkCycle takes dev in ns down and up again, and waits until both ends
// of its veth carry frames again (operstate UP).
func linkCycle(t *testing.T, ns, dev, peerNS, peer string) {
	t.Helper()
	run(t, "ip", "-n", ns, "link", "set", dev, "down")
	run(t, "ip", "-n", ns, "link", "set", dev, "up")
	waitUp(t, ns, dev)
	waitUp(t, peerNS, peer)
}

func waitUp(t *testing.T, ns, dev string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if strings.Contains(run(t, "ip", "-n", ns, "-o", "link", "show", dev), "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s not UP: %s", dev, ns, run(t, "ip", "-n", ns, "-o", "link", "show", dev))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIntegrationLinkFlapNoStaleError: an interface that went down and up
// leaves ENETDOWN pending on the packet sockets bound to it (the kernel's
// packet_notifier sets it at NETDEV_DOWN, and a bind to a device that is
// down sets it too). That error is history once the link is up: the
// first write after it sends every frame (none dropped as the stale
// ENETDOWN used to drop the first), and a port opened while the device
// was down reads without failing once it is up. Deterministic: nothing
// reads the sockets while the link cycles, so the error is still pending
// when the test writes. A write while the device is down drops its
// frames, counted, without an error.
func TestIntegrationLinkFlapNoStaleError(t *testing.T) {
	testutil.NeedRoot(t, "ip")
	hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
	vethPair(t, hv, "vif0", vm, "eth0")
	host, guest := openPort(t, "vif0", hv), openPort(t, "eth0", vm)

	t.Run("write after down and up", func(t *testing.T) {
		linkCycle(t, hv, "vif0", vm, "eth0")
		out := frames(macVM, macHV, 3, 128)
		n, err := host.WriteBatch(out)
		if err != nil || n != len(out) || host.TxDropped.Load() != 0 {
			t.Fatalf("first WriteBatch after the link came back: sent %d of %d, %v, %d dropped", n, len(out), err, host.TxDropped.Load())
		}
		got, _ := readFrames(t, guest, 2048, len(out), keepTest)
		sameFrames(t, "host→guest after the flap", got, out)
	})

	t.Run("write while down", func(t *testing.T) {
		run(t, "ip", "-n", hv, "link", "set", "vif0", "down")
		before := host.TxDropped.Load()
		out := frames(macVM, macHV, 3, 128)
		if n, err := host.WriteBatch(out); err != nil || n != len(out) || host.TxDropped.Load()-before != uint64(len(out)) {
			t.Errorf("WriteBatch with the link down: %d of %d taken, %v, %d dropped; want all taken and dropped", n, len(out), err, host.TxDropped.Load()-before)
		}
		run(t, "ip", "-n", hv, "link", "set", "vif0", "up")
		waitUp(t, hv, "vif0")
		waitUp(t, vm, "eth0")
	})

	t.Run("port opened while down", func(t *testing.T) {
		run(t, "ip", "-n", hv, "link", "set", "vif0", "down")
		late := openPort(t, "vif0", hv)
		run(t, "ip", "-n", hv, "link", "set", "vif0", "up")
		waitUp(t, hv, "vif0")
		waitUp(t, vm, "eth0")
		in := frames(macHV, macVM, 2, 128)
		writeAll(t, guest, in)
		got, _ := readFrames(t, late, 2048, len(in), keepTest)
		sameFrames(t, "guest→port opened while down", got, in)
		out := frames(macVM, macHV, 2, 128)
		if n, err := late.WriteBatch(out); err != nil || n != len(out) || late.TxDropped.Load() != 0 {
			t.Fatalf("WriteBatch of the port opened while down: sent %d of %d, %v, %d dropped", n, len(out), err, late.TxDropped.Load())
		}
		got, _ = readFrames(t, guest, 2048, len(out), keepTest)
		sameFrames(t, "port opened while down→guest", got, out)
	})
}
