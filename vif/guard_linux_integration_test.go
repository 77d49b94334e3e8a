//go:build linux

package vif

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/testutil"
)

// TestIntegrationGuard: a VIF that is a bridge port forwards the guest's
// frames to the bridge's other ports beside the packet socket's copy;
// with the guard, the socket still reads every frame and the bridge
// forwards none. Removing the guard restores the bridge and removes the
// clsact qdisc it added; an ingress qdisc found there is used and kept;
// a foreign filter at the guard's priority makes the install fail.
func TestIntegrationGuard(t *testing.T) {
	testutil.NeedRoot(t)
	hv, vm, wire := newNetns(t, "hv"), newNetns(t, "vm"), newNetns(t, "wire")
	vethPair(t, hv, "vif0", vm, "eth0")
	run(t, "ip", "-n", hv, "link", "add", "lan0", "type", "veth", "peer", "name", "wire0", "netns", wire)
	run(t, "ip", "-n", hv, "link", "add", "br0", "type", "bridge", "stp_state", "0")
	for _, l := range []string{"vif0", "lan0"} {
		run(t, "ip", "-n", hv, "link", "set", l, "master", "br0")
	}
	for _, l := range []string{"br0", "lan0"} {
		run(t, "ip", "-n", hv, "link", "set", l, "up")
	}
	run(t, "ip", "-n", wire, "link", "set", "wire0", "up")

	host, guest, onWire := openPort(t, "vif0", hv), openPort(t, "eth0", vm), openPort(t, "wire0", wire)
	lan := openPort(t, "lan0", hv)
	peer := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x99}

	// round sends 10 frames from the guest to peer (a MAC the bridge has
	// not learned: flooded), checks that vifsec's socket reads them all,
	// then, when want is 0, sends a sentinel from the bridge's other port
	// straight onto the wire and returns how many guest frames the wire saw
	// before it; when want is more, it waits for that many (the bridge's
	// path may lag behind a direct write on a busy machine, so a sentinel
	// would race it).
	seq := uint32(0)
	round := func(want int) int {
		t.Helper()
		out := make([][]byte, 10)
		for i := range out {
			out[i] = testFrame(peer, macVM, seq, 100)
			seq++
		}
		writeAll(t, guest, out)
		got, _ := readFrames(t, host, 2048, len(out), keepTest)
		sameFrames(t, "guest→vifsec", got, out)
		if want > 0 {
			fs, _ := readFrames(t, onWire, 2048, want, keepTest)
			return len(fs)
		}
		sentinel := testFrame(peer, macHV, 0xfeed0000+seq, 100)
		writeAll(t, lan, [][]byte{sentinel})
		leaked := 0
		for {
			fs, _ := readFrames(t, onWire, 2048, 1, keepTest)
			for _, f := range fs {
				if bytes.Equal(f.data, sentinel) {
					return leaked
				}
				leaked++
			}
		}
	}
	// inbound sends 10 frames from the wire to the guest through the
	// bridge, then a sentinel as vifsec writes (its socket on the VIF,
	// past the qdiscs), and returns how many wire frames the guest got
	// before the sentinel; when want is more than 0 it waits for that many
	// instead.
	inbound := func(want int) int {
		t.Helper()
		in := make([][]byte, 10)
		for i := range in {
			in[i] = testFrame(macVM, peer, seq, 100)
			seq++
		}
		writeAll(t, onWire, in)
		if want > 0 {
			fs, _ := readFrames(t, guest, 2048, want, keepTest)
			return len(fs)
		}
		sentinel := testFrame(macVM, macHV, 0xfeed0000+seq, 100)
		writeAll(t, host, [][]byte{sentinel})
		got := 0
		for {
			fs, _ := readFrames(t, guest, 2048, 1, keepTest)
			for _, f := range fs {
				if bytes.Equal(f.data, sentinel) {
					return got
				}
				got++
			}
		}
	}
	if n := round(10); n != 10 {
		t.Fatalf("without the guard the wire saw %d of the guest's 10 frames, want all: the checks below prove nothing", n)
	}
	if n := inbound(10); n != 10 {
		t.Fatalf("without the guard the guest got %d of the wire's 10 frames, want all: the checks below prove nothing", n)
	}

	index, err := InstallGuard("vif0", hv)
	if err != nil {
		t.Fatal(err)
	}
	if n := round(0); n != 0 {
		t.Fatalf("with the guard the wire saw %d of the guest's frames, want 0", n)
	}
	if n := inbound(0); n != 0 {
		t.Fatalf("with the guard the guest got %d of the wire's frames through the bridge, want 0 (and vifsec's, past the qdiscs)", n)
	}
	// Installing again (a restarted vifsec) replaces it.
	if _, err := InstallGuard("vif0", hv); err != nil {
		t.Fatalf("install again: %v", err)
	}
	if _, err := CheckGuard("vif0", hv); err != nil {
		t.Fatal(err)
	}
	if n := round(0); n != 0 {
		t.Fatalf("after a second install the wire saw %d of the guest's frames, want 0", n)
	}

	if err := RemoveGuard("vif0", hv, index); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckGuard("vif0", hv); err == nil {
		t.Fatal("CheckGuard passes after RemoveGuard")
	}
	if q := run(t, "tc", "-n", hv, "qdisc", "show", "dev", "vif0"); strings.Contains(q, "clsact") {
		t.Fatalf("clsact left after RemoveGuard:\n%s", q)
	}
	if n := round(10); n != 10 {
		t.Fatalf("after RemoveGuard the wire saw %d of the guest's 10 frames, want all", n)
	}
	if err := RemoveGuard("vif0", hv, index); err != nil {
		t.Fatalf("removing twice: %v", err)
	}

	// An ingress qdisc (libvirt's inbound bandwidth) takes the guard and stays.
	run(t, "tc", "-n", hv, "qdisc", "add", "dev", "vif0", "ingress")
	if index, err = InstallGuard("vif0", hv); err != nil {
		t.Fatalf("install on an ingress qdisc: %v", err)
	}
	if n := round(0); n != 0 {
		t.Fatalf("with the guard on an ingress qdisc the wire saw %d of the guest's frames, want 0", n)
	}
	// No clsact beside it: the egress filter is on a root htb of the guard's own.
	if n := inbound(0); n != 0 {
		t.Fatalf("with the guard beside an ingress qdisc the guest got %d of the wire's frames, want 0", n)
	}
	if q := run(t, "tc", "-n", hv, "qdisc", "show", "dev", "vif0"); !strings.Contains(q, "htb 5653: root") {
		t.Fatalf("no root htb 5653: for the egress filter beside an ingress qdisc:\n%s", q)
	}
	if err := RemoveGuard("vif0", hv, index); err != nil {
		t.Fatal(err)
	}
	if q := run(t, "tc", "-n", hv, "qdisc", "show", "dev", "vif0"); !strings.Contains(q, "ingress") || strings.Contains(q, "5653:") {
		t.Fatalf("RemoveGuard removed the ingress qdisc it did not add, or left its root htb:\n%s", q)
	}
	if n := inbound(10); n != 10 {
		t.Fatalf("after RemoveGuard the guest got %d of the wire's 10 frames, want all", n)
	}

	// libvirt's inbound <bandwidth> beside it: a root htb 1: with a class.
	// The egress filter goes first on that htb, which stays.
	run(t, "tc", "-n", hv, "qdisc", "add", "dev", "vif0", "root", "handle", "1:", "htb", "default", "1")
	run(t, "tc", "-n", hv, "class", "add", "dev", "vif0", "parent", "1:", "classid", "1:1", "htb", "rate", "100mbit")
	if index, err = InstallGuard("vif0", hv); err != nil {
		t.Fatalf("install beside ingress and a root htb: %v", err)
	}
	if n := inbound(0); n != 0 {
		t.Fatalf("with the guard on libvirt's root htb the guest got %d of the wire's frames, want 0", n)
	}
	if err := RemoveGuard("vif0", hv, index); err != nil {
		t.Fatal(err)
	}
	if q := run(t, "tc", "-n", hv, "qdisc", "show", "dev", "vif0"); !strings.Contains(q, "htb 1: root") || !strings.Contains(q, "ingress") {
		t.Fatalf("RemoveGuard removed libvirt's qdiscs:\n%s", q)
	}
	// A filter already first on that htb: the install fails, naming it.
	run(t, "tc", "-n", hv, "filter", "add", "dev", "vif0", "parent", "1:", "pref", "1", "protocol", "all", "u32", "match", "u32", "0", "0", "classid", "1:1")
	if _, err := InstallGuard("vif0", hv); err == nil || !strings.Contains(err.Error(), "parent 1: pref 1 holds a u32 filter") {
		t.Fatalf("install beside a u32 filter at pref 1 of the root htb: %v, want an error naming it", err)
	}
	// The failed install left its ingress filter (the guest stays cut
	// off); RemoveGuard takes it off.
	if err := RemoveGuard("vif0", hv, index); err != nil {
		t.Fatal(err)
	}
	run(t, "tc", "-n", hv, "qdisc", "del", "dev", "vif0", "root")

	// A foreign filter at the guard's priority: the install fails.
	run(t, "tc", "-n", hv, "filter", "add", "dev", "vif0", "ingress", "pref", "1", "protocol", "all", "u32", "match", "u32", "0", "0", "classid", "1:1")
	if _, err := InstallGuard("vif0", hv); err == nil || !strings.Contains(err.Error(), "pref 1") {
		t.Fatalf("install beside a u32 filter at pref 1: %v, want an error naming pref 1", err)
	}

	// Gone interfaces and namespaces are not errors for RemoveGuard.
	if err := RemoveGuard("nosuch0", hv, 1); err != nil {
		t.Errorf("RemoveGuard of a missing interface: %v", err)
	}
	if err := RemoveGuard("vif0", "vifsec-no-such-netns", 1); err != nil {
		t.Errorf("RemoveGuard in a missing namespace: %v", err)
	}
	if _, err := InstallGuard("nosuch0", hv); err == nil {
		t.Error("InstallGuard on a missing interface succeeded")
	}
}
