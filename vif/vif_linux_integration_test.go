//go:build linux

package vif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"

	"github.com/vifsec/vifsec/internal/testutil"
)

// Each test builds its own network namespaces, "hv" (the hypervisor,
// where vifsec attaches) and "vm" (the guest's side), so nothing is
// created in the namespace the tests run in, and deleting the namespaces
// removes everything. IPv6 is off in them so the kernel sends no
// neighbour discovery or MLD frames of its own: what a port reads is
// what the test sent.

// etherTest is the IEEE 802 local experimental EtherType: frames of it
// mean nothing to any stack on the way.
const etherTest = 0x88b5

var (
	macHV = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	macVM = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}
)

var nsSeq atomic.Int32

// newNetns creates a named network namespace, with IPv6 off and lo up,
// that t's cleanup deletes, also when t fails.
func newNetns(t testing.TB, role string) string {
	t.Helper()
	name := fmt.Sprintf("vifsec-%s-%d-%d", role, os.Getpid(), nsSeq.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", name, err, out)
		}
	})
	_, _, err := inNetns(name, func() (int, int, error) {
		for _, k := range []string{"default", "all"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0); err != nil {
				return 0, 0, err
			}
		}
		return 0, 0, nil
	})
	if err != nil {
		t.Fatalf("netns %s: disable IPv6: %v", name, err)
	}
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// vethPair makes hvName in hvNS (MAC macHV) and vmName in vmNS (macVM),
// both up.
func vethPair(t testing.TB, hvNS, hvName, vmNS, vmName string) {
	t.Helper()
	run(t, "ip", "-n", hvNS, "link", "add", hvName, "address", macHV.String(), "type", "veth",
		"peer", "name", vmName, "address", macVM.String(), "netns", vmNS)
	run(t, "ip", "-n", hvNS, "link", "set", hvName, "up")
	run(t, "ip", "-n", vmNS, "link", "set", vmName, "up")
}

func openPort(t testing.TB, name, ns string) *PacketPort {
	t.Helper()
	p, err := OpenPacket(name, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// testFrame is an Ethernet frame of etherTest whose payload starts with
// "vifsec", then seq, then filler up to size bytes in all.
func testFrame(dst, src net.HardwareAddr, seq uint32, size int) []byte {
	f := make([]byte, max(size, 24))
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], etherTest)
	copy(f[14:20], "vifsec")
	binary.BigEndian.PutUint32(f[20:24], seq)
	for i := 24; i < len(f); i++ {
		f[i] = byte(i)
	}
	return f
}

// isTest says whether f is a testFrame, and its seq.
func isTest(f []byte) (uint32, bool) {
	if len(f) < 24 || binary.BigEndian.Uint16(f[12:14]) != etherTest || string(f[14:20]) != "vifsec" {
		return 0, false
	}
	return binary.BigEndian.Uint32(f[20:24]), true
}

// tagged inserts an 802.1Q-style tag (tpid, pcp, vid) after the MACs.
func tagged(f []byte, tpid uint16, pcp uint8, vid uint16) []byte {
	out := make([]byte, 0, len(f)+4)
	out = append(out, f[:12]...)
	out = binary.BigEndian.AppendUint16(out, tpid)
	out = binary.BigEndian.AppendUint16(out, uint16(pcp)<<13|vid)
	return append(out, f[12:]...)
}

type rxFrame struct {
	data []byte
	meta Meta
}

const headroom = 64

// readFrames reads from p until it has want frames that keep accepts
// (nil: every frame), or fails the test after timeout. It returns the
// kept frames and the size of the first batch read.
func readFrames(t testing.TB, p Port, bufSize, want int, keep func([]byte) bool) (got []rxFrame, first int) {
	t.Helper()
	bufs := make([][]byte, MaxBatch)
	for i := range bufs {
		bufs[i] = make([]byte, headroom+bufSize)
	}
	sizes, meta := make([]int, MaxBatch), make([]Meta, MaxBatch)
	var timedOut atomic.Bool
	timer := time.AfterFunc(5*time.Second, func() { timedOut.Store(true); p.Close() })
	defer timer.Stop()
	for len(got) < want {
		n, err := p.ReadBatch(bufs, sizes, meta, headroom)
		if err != nil {
			if timedOut.Load() {
				t.Fatalf("%s: timed out with %d of %d frames", p.Name(), len(got), want)
			}
			t.Fatalf("%s: ReadBatch: %v", p.Name(), err)
		}
		if first == 0 {
			first = n
		}
		for i := 0; i < n; i++ {
			f := bufs[i][headroom : headroom+sizes[i]]
			if keep == nil || keep(f) {
				got = append(got, rxFrame{bytes.Clone(f), meta[i]})
			}
		}
	}
	return got, first
}

func keepTest(f []byte) bool { _, ok := isTest(f); return ok }

func writeAll(t testing.TB, p Port, frames [][]byte) {
	t.Helper()
	n, err := p.WriteBatch(frames)
	if err != nil || n != len(frames) {
		t.Fatalf("%s: WriteBatch: sent %d of %d: %v", p.Name(), n, len(frames), err)
	}
}

func frames(dst, src net.HardwareAddr, count, size int) [][]byte {
	out := make([][]byte, count)
	for i := range out {
		out[i] = testFrame(dst, src, uint32(i), size)
	}
	return out
}

func sameFrames(t testing.TB, what string, got []rxFrame, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d frames, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].data, want[i]) {
			t.Fatalf("%s: frame %d:\n got %x\nwant %x", what, i, got[i].data, want[i])
		}
		if got[i].meta != (Meta{}) {
			t.Fatalf("%s: frame %d: meta %+v, want none", what, i, got[i].meta)
		}
	}
}

// TestIntegrationVeth: frames vifsec writes on the host end of a veth
// arrive whole and in order at the guest end, and 200 frames the guest
// sends are read back in full batches.
func TestIntegrationVeth(t *testing.T) {
	testutil.NeedRoot(t)
	hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
	vethPair(t, hv, "vif0", vm, "eth0")
	host, guest := openPort(t, "vif0", hv), openPort(t, "eth0", vm)

	out := frames(macVM, macHV, 200, 128)
	writeAll(t, host, out)
	got, _ := readFrames(t, guest, 2048, len(out), keepTest)
	sameFrames(t, "host→guest", got, out)

	in := frames(macHV, macVM, 200, 1514)
	writeAll(t, guest, in)
	got, first := readFrames(t, host, 2048, len(in), keepTest)
	sameFrames(t, "guest→host", got, in)
	if first != MaxBatch {
		t.Errorf("first ReadBatch with 200 frames queued returned %d, want a full batch of %d", first, MaxBatch)
	}
	if n := host.Truncated.Load(); n != 0 {
		t.Errorf("Truncated = %d, want 0", n)
	}
}

// TestIntegrationIgnoreOutgoing: frames a port writes never come back in
// its own ReadBatch, and neither do frames others send on its interface
// through the qdisc, which a plain AF_PACKET socket there does see (so
// the check would catch a loop).
func TestIntegrationIgnoreOutgoing(t *testing.T) {
	testutil.NeedRoot(t)
	hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
	vethPair(t, hv, "vif0", vm, "eth0")
	host, guest := openPort(t, "vif0", hv), openPort(t, "eth0", vm)
	observer, sender := openPlain(t, "vif0", hv), openPlain(t, "vif0", hv)

	// 1. The port's own frames (sendmmsg, PACKET_QDISC_BYPASS).
	out := frames(macVM, macHV, 50, 100)
	writeAll(t, host, out)
	got, _ := readFrames(t, guest, 2048, len(out), keepTest)
	sameFrames(t, "host→guest", got, out)
	sentinel := testFrame(macHV, macVM, 0xfeed, 100)
	writeAll(t, guest, [][]byte{sentinel})
	expectFirst(t, host, sentinel)
	// A bypassing sender's frames reach no packet tap at all: the
	// observer's first test frame is the sentinel too.
	if n := observer.outgoingBefore(t, sentinel); n != 0 {
		t.Errorf("plain socket saw %d of the port's frames as outgoing, want 0 (PACKET_QDISC_BYPASS skips taps)", n)
	}

	// 2. Someone else's frames on the same interface, through the qdisc.
	for _, f := range out {
		if err := sender.send(f); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = readFrames(t, guest, 2048, len(out), keepTest)
	sameFrames(t, "plain sender→guest", got, out)
	sentinel = testFrame(macHV, macVM, 0xbeef, 100)
	writeAll(t, guest, [][]byte{sentinel})
	expectFirst(t, host, sentinel)
	if n := observer.outgoingBefore(t, sentinel); n != len(out) {
		t.Fatalf("plain socket saw %d of %d frames sent through the qdisc, want all: the check above proves nothing", n, len(out))
	}
}

// expectFirst fails unless the first test frame p reads is want.
func expectFirst(t testing.TB, p Port, want []byte) {
	t.Helper()
	got, _ := readFrames(t, p, 2048, 1, keepTest)
	if !bytes.Equal(got[0].data, want) {
		seq, _ := isTest(got[0].data)
		t.Fatalf("%s read frame seq %#x, an outgoing one, before the sentinel", p.Name(), seq)
	}
}

// plainSocket is an AF_PACKET socket with PACKET_AUXDATA and no other
// option: no PACKET_IGNORE_OUTGOING, no PACKET_QDISC_BYPASS.
type plainSocket struct{ fd int }

func openPlain(t testing.TB, name, ns string) *plainSocket {
	t.Helper()
	fd, _, err := inNetns(ns, func() (int, int, error) {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return -1, 0, err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, 0, err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			unix.Close(fd)
			return -1, 0, err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return -1, 0, err
		}
		return fd, 0, nil
	})
	if err != nil {
		t.Fatalf("plain AF_PACKET socket on %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &plainSocket{fd}
}

func (s *plainSocket) send(f []byte) error {
	_, err := unix.Write(s.fd, f)
	return err
}

// recv reads one frame: its length, packet type (PACKET_HOST,
// PACKET_OUTGOING, …) and the VLAN tag from auxdata.
func (s *plainSocket) recv(buf []byte, timeout time.Duration) (int, uint8, Meta, error) {
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, 0, Meta{}, err
	}
	oob := make([]byte, 256)
	n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, 0)
	if err != nil {
		return 0, 0, Meta{}, err
	}
	sll, _ := from.(*unix.SockaddrLinklayer)
	if sll == nil {
		return 0, 0, Meta{}, fmt.Errorf("recvmsg: address %T", from)
	}
	var m Meta
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return 0, 0, Meta{}, err
	}
	for _, c := range cmsgs {
		if c.Header.Level == unix.SOL_PACKET && c.Header.Type == unix.PACKET_AUXDATA && len(c.Data) >= 18 &&
			binary.NativeEndian.Uint32(c.Data[0:4])&unix.TP_STATUS_VLAN_VALID != 0 {
			m = Meta{VLAN: binary.NativeEndian.Uint16(c.Data[16:18]) & 0xfff, Tagged: true}
		}
	}
	return n, sll.Pkttype, m, nil
}

// outgoingBefore reads until the frame until arrives and counts the
// outgoing test frames before it.
func (s *plainSocket) outgoingBefore(t testing.TB, until []byte) int {
	t.Helper()
	buf, count := make([]byte, 2048), 0
	for {
		n, typ, _, err := s.recv(buf, 5*time.Second)
		if err != nil {
			t.Fatalf("plain socket: waiting for the sentinel: %v", err)
		}
		if bytes.Equal(buf[:n], until) {
			return count
		}
		if _, ok := isTest(buf[:n]); ok && typ == unix.PACKET_OUTGOING {
			count++
		}
	}
}

// TestIntegrationVLAN sends 802.1Q-tagged frames from the guest in every
// way the kernel may carry the tag: in the frame bytes, or in skb
// metadata (as a VLAN device or VLAN-filtering bridge puts it; here a tc
// program) with the guest veth's tx-vlan-offload on and off, and with
// the host veth's rx-vlan-offload off. The port must report the tag
// exactly once: in Meta with the frame untagged when the kernel stripped
// it, or in the frame bytes with Meta empty when it did not.
func TestIntegrationVLAN(t *testing.T) {
	testutil.NeedRoot(t)
	if _, err := exec.LookPath("ethtool"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ethtool is missing (make deps installs it)")
		}
		t.Skip("needs ethtool to switch tx-vlan-offload")
	}
	const vid, pcp = 100, 5
	tests := []struct {
		name   string
		txvlan string // the guest end's tx-vlan-offload
		rxvlan string // the host end's rx-vlan-offload
		skbTag bool   // the tag is pushed into skb metadata on the guest's egress, else written in the frame
		qinq   bool   // an 802.1ad tag with vid+1 outside the 802.1Q tag
	}{
		{name: "in-frame", txvlan: "on", rxvlan: "on"},
		{name: "in-frame/txvlan-off", txvlan: "off", rxvlan: "on"},
		{name: "in-frame/rxvlan-off", txvlan: "on", rxvlan: "off"},
		{name: "in-frame/qinq", txvlan: "on", rxvlan: "on", qinq: true},
		{name: "skb-meta/txvlan-on", txvlan: "on", rxvlan: "on", skbTag: true},
		{name: "skb-meta/txvlan-off", txvlan: "off", rxvlan: "on", skbTag: true},
		{name: "skb-meta/rxvlan-off", txvlan: "on", rxvlan: "off", skbTag: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
			vethPair(t, hv, "vif0", vm, "eth0")
			run(t, "ip", "netns", "exec", vm, "ethtool", "-K", "eth0", "txvlan", tc.txvlan)
			run(t, "ip", "netns", "exec", hv, "ethtool", "-K", "vif0", "rxvlan", tc.rxvlan)
			host := openPort(t, "vif0", hv)

			plain := testFrame(macHV, macVM, 1, 100)
			sent := tagged(plain, unix.ETH_P_8021Q, pcp, vid)
			if tc.qinq {
				sent = tagged(sent, unix.ETH_P_8021AD, 0, vid+1)
			}
			if tc.skbTag {
				vlanPushOnEgress(t, vm, "eth0", pcp<<13|vid)
				observer, sender := openPlain(t, "eth0", vm), openPlain(t, "eth0", vm)
				if err := sender.send(plain); err != nil {
					t.Fatal(err)
				}
				// How the tag left the guest's veth: in metadata with
				// txvlan on, pushed into the bytes with it off.
				buf := make([]byte, 2048)
				for {
					n, typ, m, err := observer.recv(buf, 5*time.Second)
					if err != nil {
						t.Fatalf("guest observer: %v", err)
					}
					if typ != unix.PACKET_OUTGOING || !bytes.Contains(buf[:n], []byte("vifsec")) {
						continue
					}
					inMeta := m.Tagged && m.VLAN == vid && bytes.Equal(buf[:n], plain)
					inBytes := !m.Tagged && bytes.Equal(buf[:n], sent)
					if tc.txvlan == "on" && !inMeta || tc.txvlan == "off" && !inBytes {
						t.Fatalf("guest transmit with txvlan %s: meta %+v frame %x", tc.txvlan, m, buf[:n])
					}
					t.Logf("guest transmit: tag in metadata %t, in frame bytes %t", inMeta, inBytes)
					break
				}
			} else {
				writeAll(t, openPort(t, "eth0", vm), [][]byte{sent})
			}

			got, _ := readFrames(t, host, 2048, 1, func(f []byte) bool {
				return bytes.Contains(f, []byte("vifsec"))
			})
			f := got[0]
			switch {
			case f.meta.Tagged:
				wantVID, want := uint16(vid), plain
				if tc.qinq {
					// Only the outer tag goes to metadata.
					wantVID, want = vid+1, tagged(plain, unix.ETH_P_8021Q, pcp, vid)
				}
				if f.meta.VLAN != wantVID || !bytes.Equal(f.data, want) {
					t.Fatalf("kernel stripped the tag: got meta %+v frame %x, want VLAN %d frame %x", f.meta, f.data, wantVID, want)
				}
				t.Logf("host receive: Meta %+v, frame %d bytes without that tag", f.meta, len(f.data))
			default:
				if !bytes.Equal(f.data, sent) {
					t.Fatalf("no tag in Meta: frame %x, want the tagged frame %x", f.data, sent)
				}
				t.Logf("host receive: tag left in the frame bytes, Meta empty")
			}
		})
	}
}

// TestIntegrationMacvlan attaches to macvlans: in bridge mode two
// macvlans on one parent talk to each other; in passthru mode on a
// veth, the macvlan talks to the veth's peer.
func TestIntegrationMacvlan(t *testing.T) {
	testutil.NeedRoot(t)
	t.Run("bridge", func(t *testing.T) {
		// No dummy driver in the test kernels: the parent is a veth.
		// Its peer must be up: a macvlan without carrier drops what
		// it is given to send.
		hv := newNetns(t, "hv")
		run(t, "ip", "-n", hv, "link", "add", "lower0", "type", "veth", "peer", "name", "lower1")
		run(t, "ip", "-n", hv, "link", "add", "link", "lower0", "name", "mv0", "address", macHV.String(), "type", "macvlan", "mode", "bridge")
		run(t, "ip", "-n", hv, "link", "add", "link", "lower0", "name", "mv1", "address", macVM.String(), "type", "macvlan", "mode", "bridge")
		for _, l := range []string{"lower0", "lower1", "mv0", "mv1"} {
			run(t, "ip", "-n", hv, "link", "set", l, "up")
		}
		macvlanRoundTrip(t, openPort(t, "mv0", hv), openPort(t, "mv1", hv))
	})
	t.Run("passthru", func(t *testing.T) {
		hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
		run(t, "ip", "-n", hv, "link", "add", "lower0", "type", "veth", "peer", "name", "eth0", "address", macVM.String(), "netns", vm)
		run(t, "ip", "-n", hv, "link", "add", "link", "lower0", "name", "mv0", "address", macHV.String(), "type", "macvlan", "mode", "passthru")
		for _, l := range []string{"lower0", "mv0"} {
			run(t, "ip", "-n", hv, "link", "set", l, "up")
		}
		run(t, "ip", "-n", vm, "link", "set", "eth0", "up")
		macvlanRoundTrip(t, openPort(t, "mv0", hv), openPort(t, "eth0", vm))
	})
}

func macvlanRoundTrip(t *testing.T, port, peer *PacketPort) {
	out := frames(macVM, macHV, 100, 200)
	writeAll(t, port, out)
	got, _ := readFrames(t, peer, 2048, len(out), keepTest)
	sameFrames(t, port.Name()+"→"+peer.Name(), got, out)
	in := frames(macHV, macVM, 100, 1000)
	writeAll(t, peer, in)
	got, _ = readFrames(t, port, 2048, len(in), keepTest)
	sameFrames(t, peer.Name()+"→"+port.Name(), got, in)
}

// TestIntegrationTap: a tap from CreateTap carries frames between its
// file (the VM's side) and an OpenPacket port on it, lets a hypervisor
// attach by name once released, and is gone after Close.
func TestIntegrationTap(t *testing.T) {
	testutil.NeedRoot(t)
	hv := newNetns(t, "hv")
	tap, err := CreateTap("vnet0", hv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	port := openPort(t, tap.Name(), hv)

	// VM → port.
	in := frames(macHV, macVM, 20, 600)
	for _, f := range in {
		if _, err := tap.Write(f); err != nil {
			t.Fatalf("tap write: %v", err)
		}
	}
	got, _ := readFrames(t, port, 2048, len(in), keepTest)
	sameFrames(t, "tap file→port", got, in)

	// port → VM.
	out := frames(macVM, macHV, 20, 1514)
	writeAll(t, port, out)
	tap.File().SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for i := 0; i < len(out); {
		n, err := tap.Read(buf)
		if err != nil {
			t.Fatalf("tap read after %d of %d frames: %v", i, len(out), err)
		}
		if _, ok := isTest(buf[:n]); !ok {
			continue
		}
		if !bytes.Equal(buf[:n], out[i]) {
			t.Fatalf("port→tap file frame %d:\n got %x\nwant %x", i, buf[:n], out[i])
		}
		i++
	}

	// QEMU's `-netdev tap,ifname=vnet0`: busy while vifsec holds the
	// file, attaches once it is released, and the device stays.
	qemu := func() (*water.Interface, error) {
		var ifce *water.Interface
		_, _, err := inNetns(hv, func() (int, int, error) {
			var err error
			ifce, err = water.New(water.Config{DeviceType: water.TAP, PlatformSpecificParams: water.PlatformSpecificParams{Name: "vnet0"}})
			return 0, 0, err
		})
		return ifce, err
	}
	if q, err := qemu(); !errors.Is(err, syscall.EBUSY) {
		if q != nil {
			q.Close()
		}
		t.Fatalf("hypervisor attach while vifsec holds the tap: err %v, want EBUSY", err)
	}
	if err := tap.ReleaseQueue(); err != nil {
		t.Fatal(err)
	}
	q, err := qemu()
	if err != nil {
		t.Fatalf("hypervisor attach after ReleaseQueue: %v", err)
	}
	defer q.Close()
	f := testFrame(macHV, macVM, 7, 300)
	if _, err := q.Write(f); err != nil {
		t.Fatal(err)
	}
	got, _ = readFrames(t, port, 2048, 1, keepTest)
	sameFrames(t, "hypervisor's file→port", got, [][]byte{f})

	if err := tap.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Describe("vnet0", hv); err == nil {
		t.Fatal("vnet0 still exists after Close")
	}
}

// TestIntegrationDescribe checks type, MAC, MTU, state and details of
// the interfaces vifsec attaches to.
func TestIntegrationDescribe(t *testing.T) {
	testutil.NeedRoot(t)
	hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
	vethPair(t, hv, "vif0", vm, "eth0")
	run(t, "ip", "-n", hv, "link", "set", "vif0", "mtu", "1400")
	// The macvlans' parent: a veth (the test kernels have no dummy).
	run(t, "ip", "-n", hv, "link", "add", "lower0", "mtu", "9000", "type", "veth", "peer", "name", "lower1", "mtu", "9000")
	run(t, "ip", "-n", hv, "link", "set", "lower0", "up")
	run(t, "ip", "-n", hv, "link", "set", "lower1", "up")
	macMV := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x03}
	run(t, "ip", "-n", hv, "link", "add", "link", "lower0", "name", "mv0", "address", macMV.String(), "mtu", "1500", "type", "macvlan", "mode", "bridge")
	run(t, "ip", "-n", hv, "link", "set", "mv0", "up")
	run(t, "ip", "-n", hv, "link", "add", "link", "lower0", "name", "mvt0", "type", "macvtap", "mode", "vepa")
	// A macvlan whose parent stayed in hv while it moved to vm.
	run(t, "ip", "-n", hv, "link", "add", "link", "lower0", "name", "mv1", "type", "macvlan", "mode", "private")
	run(t, "ip", "-n", hv, "link", "set", "mv1", "netns", vm)
	tap, err := CreateTap("vnet0", hv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	// A tap as libvirt leaves it before QEMU attaches: vnet_hdr, no file.
	run(t, "ip", "-n", hv, "tuntap", "add", "dev", "vnet1", "mode", "tap", "vnet_hdr")
	run(t, "ip", "-n", hv, "link", "set", "vnet1", "up")
	run(t, "ip", "-n", hv, "tuntap", "add", "dev", "tun0", "mode", "tun")
	run(t, "ip", "-n", hv, "link", "add", "br0", "type", "bridge")
	lowerIndex := ifindex(t, hv, "lower0")

	tests := []struct {
		name, dev, ns string
		want          Info
	}{
		{name: "veth", dev: "vif0", ns: hv, want: Info{Type: TypeVeth, MAC: macHV, MTU: 1400, AdminUp: true, OperUp: true}},
		{name: "veth-guest", dev: "eth0", ns: vm, want: Info{Type: TypeVeth, MAC: macVM, MTU: 1500, AdminUp: true, OperUp: true}},
		{name: "macvlan", dev: "mv0", ns: hv, want: Info{Type: TypeMacvlan, MAC: macMV, MTU: 1500, AdminUp: true, OperUp: true,
			Macvlan: &MacvlanInfo{Mode: "bridge", Parent: "lower0", ParentIndex: lowerIndex}}},
		{name: "macvtap", dev: "mvt0", ns: hv, want: Info{Type: TypeMacvtap, MTU: 9000,
			Macvlan: &MacvlanInfo{Mode: "vepa", Parent: "lower0", ParentIndex: lowerIndex}}},
		{name: "macvlan-parent-elsewhere", dev: "mv1", ns: vm, want: Info{Type: TypeMacvlan, MTU: 9000,
			Macvlan: &MacvlanInfo{Mode: "private", ParentIndex: lowerIndex}}},
		{name: "tap-created", dev: "vnet0", ns: hv, want: Info{Type: TypeTap, MTU: 1500, AdminUp: true, OperUp: true,
			Tap: &TapInfo{Persistent: true}}},
		{name: "tap-vnet-hdr-no-carrier", dev: "vnet1", ns: hv, want: Info{Type: TypeTap, MTU: 1500, AdminUp: true,
			Tap: &TapInfo{VnetHdr: true, Persistent: true}}},
		{name: "tun", dev: "tun0", ns: hv, want: Info{Type: TypeTun, MTU: 1500, Tap: &TapInfo{Persistent: true}}},
		{name: "other-kind", dev: "br0", ns: hv, want: Info{Type: "bridge", MTU: 1500}},
		{name: "loopback", dev: "lo", ns: hv, want: Info{Type: TypeLoopback, MTU: 65536, AdminUp: true, OperUp: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Describe(tc.dev, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(got)
			want := tc.want
			want.Name, want.Netns, want.Index = tc.dev, tc.ns, ifindex(t, tc.ns, tc.dev)
			if want.MAC == nil && want.Type != TypeTun && want.Type != TypeLoopback {
				want.MAC = got.MAC // random: checked to be a unicast Ethernet address
				if len(got.MAC) != 6 || got.MAC[0]&1 != 0 {
					t.Errorf("MAC %v, want a unicast Ethernet address", got.MAC)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Describe(%s, %s):\n got %s %+v %+v\nwant %s %+v %+v", tc.dev, tc.ns, got, got.Macvlan, got.Tap, want, want.Macvlan, want.Tap)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := Describe("nope0", hv)
		if err == nil || !strings.Contains(err.Error(), "--dev nope0") || !strings.Contains(err.Error(), "no such interface") {
			t.Fatalf("Describe(nope0) = %v, want an error naming --dev nope0 and saying it does not exist", err)
		}
	})
}

func ifindex(t testing.TB, ns, name string) int {
	t.Helper()
	i, _, err := inNetns(ns, func() (int, int, error) {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return 0, 0, err
		}
		return ifi.Index, 0, nil
	})
	if err != nil {
		t.Fatalf("%s in %s: %v", name, ns, err)
	}
	return i
}

// TestIntegrationTruncated: a frame longer than the read buffer's room
// is reported with size 0 and counted, between whole frames around it.
func TestIntegrationTruncated(t *testing.T) {
	testutil.NeedRoot(t)
	hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
	vethPair(t, hv, "vif0", vm, "eth0")
	host, guest := openPort(t, "vif0", hv), openPort(t, "eth0", vm)
	const room = 512
	small0, big, small1 := testFrame(macHV, macVM, 0, 100), testFrame(macHV, macVM, 1, room+1), testFrame(macHV, macVM, 2, room)
	writeAll(t, guest, [][]byte{small0, big, small1})
	got, _ := readFrames(t, host, room, 3, nil)
	if !bytes.Equal(got[0].data, small0) || len(got[1].data) != 0 || !bytes.Equal(got[2].data, small1) {
		t.Fatalf("read sizes %d, %d, %d, want 100, 0 (dropped), %d with their contents", len(got[0].data), len(got[1].data), len(got[2].data), room)
	}
	if n := host.Truncated.Load(); n != 1 {
		t.Fatalf("Truncated = %d, want 1", n)
	}
}

// TestIntegrationOpenMissing: errors for operators name the flag and the
// interface or namespace.
func TestIntegrationOpenMissing(t *testing.T) {
	testutil.NeedRoot(t)
	hv := newNetns(t, "hv")
	tests := []struct{ name, dev, ns, want string }{
		{name: "daemon-netns", dev: "vifsec-nope0", want: "--dev vifsec-nope0"},
		{name: "named-netns", dev: "nope0", ns: hv, want: "--dev nope0"},
		{name: "missing-netns", dev: "eth0", ns: "vifsec-no-such-netns", want: "--netns vifsec-no-such-netns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := OpenPacket(tc.dev, tc.ns)
			if err == nil {
				p.Close()
				t.Fatalf("OpenPacket(%q, %q) succeeded", tc.dev, tc.ns)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenPacket(%q, %q) = %v, want it to name %q", tc.dev, tc.ns, err, tc.want)
			}
		})
	}
}

// TestIntegrationOpenOnlyItsInterface opens ports on vif0 again and
// again while another interface in the namespace is flooded: a port must
// never return a frame of another interface. (A socket created with
// protocol ETH_P_ALL receives every interface's frames until bind names
// one; OpenPacket must create it with protocol 0.)
func TestIntegrationOpenOnlyItsInterface(t *testing.T) {
	testutil.NeedRoot(t)
	hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
	vethPair(t, hv, "vif0", vm, "eth0")
	run(t, "ip", "-n", hv, "link", "add", "other0", "type", "veth", "peer", "name", "other1")
	run(t, "ip", "-n", hv, "link", "set", "other0", "up")
	run(t, "ip", "-n", hv, "link", "set", "other1", "up")
	flood, guest := openPort(t, "other1", hv), openPort(t, "eth0", vm)

	other := append(testFrame(macHV, macVM, 0, 60), "OTHER"...)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch := make([][]byte, MaxBatch)
		for i := range batch {
			batch[i] = other
		}
		for !stop.Load() {
			if _, err := flood.WriteBatch(batch); err != nil {
				return
			}
		}
	}()
	defer func() { stop.Store(true); <-done }()

	leaked, opens := 0, 100
	for i := 0; i < opens; i++ {
		p, err := OpenPacket("vif0", hv)
		if err != nil {
			t.Fatal(err)
		}
		sentinel := testFrame(macHV, macVM, uint32(i), 100)
		writeAll(t, guest, [][]byte{sentinel})
		readFrames(t, p, 2048, 1, func(f []byte) bool {
			if bytes.Equal(f, other) {
				leaked++
			}
			return bytes.Equal(f, sentinel)
		})
		p.Close()
	}
	if leaked > 0 {
		t.Fatalf("ports on vif0 read %d frames of other0 over %d opens", leaked, opens)
	}
}

// TestIntegrationWaitRead: WaitRead on an idle port waits, returns once a
// frame is queued and leaves it for ReadBatch — also on a port with
// virtio-net headers, whose socket refuses reads shorter than the
// header — and returns ErrClosed when the port is closed under it.
func TestIntegrationWaitRead(t *testing.T) {
	testutil.NeedRoot(t)
	hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
	vethPair(t, hv, "vif0", vm, "eth0")
	guest := openPort(t, "eth0", vm)
	for _, vnet := range []bool{false, true} {
		host, err := OpenPacketWith("vif0", hv, PacketOptions{VnetHdr: vnet})
		if err != nil {
			t.Fatal(err)
		}
		bufs, sizes, meta := [][]byte{make([]byte, 2048)}, make([]int, 1), make([]Meta, 1)
		woke := make(chan error, 1)
		// Wait for 100 ms of quiet: when WaitRead returns before the
		// test frame is sent, a frame (the new link's IPv6 chatter) must
		// be there to read.
		for quiet := false; !quiet; {
			go func() { woke <- host.WaitRead() }()
			select {
			case err := <-woke:
				read := make(chan error, 1)
				go func() { _, err := host.ReadBatch(bufs, sizes, meta, 0); read <- err }()
				select {
				case err2 := <-read:
					if err != nil || err2 != nil {
						t.Fatalf("vnet %v: WaitRead %v, ReadBatch %v", vnet, err, err2)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("vnet %v: WaitRead returned %v with nothing to read", vnet, err)
				}
			case <-time.After(100 * time.Millisecond):
				quiet = true
			}
		}
		f := testFrame(macHV, macVM, 7, 300)
		writeAll(t, guest, [][]byte{f})
		select {
		case err := <-woke:
			if err != nil {
				t.Fatalf("vnet %v: WaitRead: %v", vnet, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("vnet %v: WaitRead still waiting with a frame queued", vnet)
		}
		hdr := 0
		if vnet {
			hdr = VnetHdrLen
		}
		for {
			n, err := host.ReadBatch(bufs, sizes, meta, 0)
			if err != nil || n != 1 {
				t.Fatalf("vnet %v: ReadBatch after WaitRead: %d frames, %v", vnet, n, err)
			}
			if _, ok := isTest(bufs[0][hdr:sizes[0]]); ok {
				break // IPv6 chatter of the new link may come first
			}
		}
		if got := bufs[0][hdr:sizes[0]]; !bytes.Equal(got, f) {
			t.Fatalf("vnet %v: read %x, want %x", vnet, got, f)
		}
		go func() { woke <- host.WaitRead() }()
		time.Sleep(20 * time.Millisecond)
		host.Close()
		select {
		case err := <-woke:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("vnet %v: WaitRead after Close: %v, want ErrClosed", vnet, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("vnet %v: WaitRead not woken by Close", vnet)
		}
	}
}
