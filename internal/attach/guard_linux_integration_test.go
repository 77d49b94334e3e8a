//go:build linux

package attach

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"golang.org/x/sys/unix"
)

// The guest leak lab: a hypervisor namespace (hv) with the VM's interface
// (the VIF, of the kind under test), the uplink up0 and a second port
// lan0 towards the same wire namespace, where the kernel would forward
// the guest's frames: lan0 shares a bridge with the VIF, or the host
// routes the guest's packets out of it. The guest sends 10 UDP datagrams
// that an outbound policy protects; on the wire's side of up0 and lan0
// the test counts the guest's clear frames and vifsec's ESP. The other
// way, the wire sends the guest 10 clear datagrams through lan0 (which
// the kernel would forward to it) and 10 ESP packets to up0, which an
// inbound policy requires; the guest counts what reaches it.
var (
	leakGuestMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	leakPeerMAC  = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x02}
	leakGuestIP  = netip.MustParseAddr("192.0.2.1")
	leakPeerIP   = netip.MustParseAddr("192.0.2.2")
)

const (
	leakMarker = "vifsec-guest-probe"
	leakSPI    = 0x1234
	leakProbes = 10
	// What the wire sends the guest: clear, past vifsec (through lan0),
	// and in ESP on the inbound SA (to up0).
	leakClearMarker = "vifsec-wire-clear"
	leakESPMarker   = "vifsec-wire-esp"
	leakInSPI       = 0x4321
	leakKey         = "0123456789abcdefsalt"
)

var leakSeq atomic.Int32

func leakNetns(t *testing.T, role string) string {
	t.Helper()
	ns := fmt.Sprintf("vlk%s%d-%d", role, os.Getpid()%100000, leakSeq.Add(1))
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// No IPv6: the kernel's own ND and MLD frames stay off the wire.
	sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// probe is the guest's i-th UDP datagram to the peer, in a frame to dst.
func probe(dst net.HardwareAddr, i int) []byte {
	return udpFrame(dst, leakGuestMAC, leakGuestIP, leakPeerIP, fmt.Sprintf("%s-%02d", leakMarker, i))
}

// toGuest is the peer's i-th UDP datagram to the guest carrying marker,
// in a frame to dst.
func toGuest(dst net.HardwareAddr, marker string, i int) []byte {
	return udpFrame(dst, leakPeerMAC, leakPeerIP, leakGuestIP, fmt.Sprintf("%s-%02d", marker, i))
}

// udpFrame is an IPv4 UDP datagram from srcIP to dstIP with payload, in
// an Ethernet frame from src to dst.
func udpFrame(dst, src net.HardwareAddr, srcIP, dstIP netip.Addr, payload string) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:], dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	s, d := srcIP.As4(), dstIP.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], 4000)
	binary.BigEndian.PutUint16(udp[2:], 4001)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(f[42:], payload)
	return f
}

// isESP says whether f is IPv4 ESP with the test's SPI.
func isESP(f []byte) bool {
	return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 50 &&
		binary.BigEndian.Uint32(f[34:]) == leakSPI
}

// wireTap counts, on one interface of the wire namespace, the guest's
// clear frames, vifsec's ESP and sentinels.
type wireTap struct {
	p               *vif.PacketPort
	clear, esp      atomic.Int64
	sentinels       atomic.Int64
	done            chan struct{}
	sentinelPayload []byte
}

func newWireTap(t *testing.T, dev, ns string, sentinel []byte) *wireTap {
	t.Helper()
	p, err := vif.OpenPacket(dev, ns)
	if err != nil {
		t.Fatal(err)
	}
	w := &wireTap{p: p, done: make(chan struct{}), sentinelPayload: sentinel}
	go func() {
		defer close(w.done)
		bufs := make([][]byte, vif.MaxBatch)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes, meta := make([]int, vif.MaxBatch), make([]vif.Meta, vif.MaxBatch)
		for {
			n, err := p.ReadBatch(bufs, sizes, meta, 0)
			if err != nil {
				return
			}
			for i := 0; i < n; i++ {
				f := bufs[i][:sizes[i]]
				switch {
				case bytes.Equal(f, sentinel):
					w.sentinels.Add(1)
				case bytes.Contains(f, []byte(leakMarker)):
					w.clear.Add(1)
				case isESP(f):
					w.esp.Add(1)
				}
			}
		}
	}()
	t.Cleanup(func() { p.Close(); <-w.done })
	return w
}

// leakVM is the guest's binding: its UDP with the peer is ESP both ways
// (anything else is discarded).
func leakVM(t *testing.T, db *sa.DB) datapath.VM {
	t.Helper()
	vm := datapath.VM{Name: "vm1", MAC: header.MAC(leakGuestMAC), IPs: []netip.Addr{leakGuestIP},
		DefaultAction: tenant.ActionDiscard}
	for _, d := range []struct {
		name     string
		dir      sa.Direction
		spi      uint32
		src, dst netip.Addr
	}{{"probe-out", sa.DirOut, leakSPI, leakGuestIP, leakPeerIP}, {"probe-in", sa.DirIn, leakInSPI, leakPeerIP, leakGuestIP}} {
		s := leakSA(t, d.name, d.dir, d.spi, d.src, d.dst)
		if err := db.Add(s); err != nil {
			t.Fatal(err)
		}
		vm.SAs = append(vm.SAs, s)
		vm.Policies = append(vm.Policies, tenant.Policy{Name: d.name, VM: "vm1",
			Src: netip.PrefixFrom(d.src, 32), Dst: netip.PrefixFrom(d.dst, 32),
			SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoAny,
			Direction: d.dir, Action: tenant.ActionIPsec, Mode: sa.ModeTransport, SAName: d.name})
	}
	return vm
}

func leakSA(t *testing.T, name string, dir sa.Direction, spi uint32, src, dst netip.Addr) *sa.SA {
	t.Helper()
	s, err := sa.New(sa.Config{Name: name, Scope: sa.Scope{MAC: header.MAC(leakGuestMAC)}, SPI: spi, Dir: dir,
		Src: src, Dst: dst, Mode: sa.ModeTransport,
		Enc: sa.EncAES128GCM, EncKey: []byte(leakKey), Integ: sa.IntegNone})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// peerESP returns the frame f (IPv4, untagged) with its IP packet sealed
// by s, as the peer sends it.
func peerESP(t *testing.T, s *sa.SA, f []byte) []byte {
	t.Helper()
	buf := make([]byte, esp.Headroom+len(f)+esp.Tailroom)
	copy(buf[esp.Headroom-14:], f)
	var sc sa.Scratch
	st, en, d := esp.Encap(s, &sc, buf, esp.Headroom, len(f)-14)
	if d != drop.None {
		t.Fatalf("the peer's ESP: %v", d)
	}
	copy(buf[st-14:], f[:14]) // MACs and EtherType IPv4
	return append([]byte(nil), buf[st-14:en]...)
}

// guestRx counts, in the guest, the wire's clear datagrams and the ones
// vifsec delivered from ESP.
type guestRx struct{ clear, esp atomic.Int64 }

func newGuestRx(t *testing.T, read func([]byte) (int, error), closeFn func()) *guestRx {
	t.Helper()
	g, done := &guestRx{}, make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 2048)
		for {
			n, err := read(b)
			if err != nil {
				return
			}
			switch f := b[:n]; {
			case bytes.Contains(f, []byte(leakClearMarker)):
				g.clear.Add(1)
			case bytes.Contains(f, []byte(leakESPMarker)):
				g.esp.Add(1)
			}
		}
	}()
	t.Cleanup(func() { closeFn(); <-done })
	return g
}

// TestIntegrationGuestFramesNeverLeak attaches to a VIF of each kind and
// topology a hypervisor gives a VM, and checks the invariant: the wire
// never carries a guest frame vifsec did not emit.
//
//   - veth or tap, a bridge port (libvirt type='bridge' or 'network'; a
//     switchdev representor in a bridge is the same case), and veth or
//     tap alone on a host that routes (libvirt type='ethernet'): vifsec's
//     guard drops the frames after vifsec's socket read them; the wire
//     carries 10 ESP and 0 clear frames. The other way, the guard drops
//     what the kernel forwards to the guest and lets vifsec's writes
//     through: of 10 clear datagrams from the wire (through the bridge,
//     or routed by the host) the guest gets 0 (all 10 before vifsec
//     attaches), and one datagram for each of the peer's 10 ESP packets.
//   - macvlan and macvtap, in bridge, vepa, private and passthru mode
//     (libvirt type='direct'): refused, nothing installed.
func TestIntegrationGuestFramesNeverLeak(t *testing.T) {
	testutil.NeedRoot(t)
	for _, kind := range []string{"veth", "tap"} {
		for _, topo := range []string{"bridge", "routed"} {
			t.Run(kind+"-"+topo, func(t *testing.T) { leakAccepted(t, kind, topo) })
		}
	}
	for _, kind := range []string{"macvlan", "macvtap"} {
		for _, mode := range []string{"bridge", "vepa", "private", "passthru"} {
			t.Run(kind+"-"+mode, func(t *testing.T) { leakRefused(t, kind, mode) })
		}
	}
}

func leakAccepted(t *testing.T, kind, topo string) {
	hv, wire := leakNetns(t, "h"), leakNetns(t, "w")
	sh(t, "ip", "-n", hv, "link", "add", "up0", "type", "veth", "peer", "name", "upw", "netns", wire)
	sh(t, "ip", "-n", hv, "link", "add", "lan0", "type", "veth", "peer", "name", "lanw", "netns", wire)
	// What the guest sends through: its own packet socket on the far end
	// of a veth, or the tap's file (as QEMU).
	var send func(f []byte) error
	var rx *guestRx
	switch kind {
	case "veth":
		g := leakNetns(t, "g")
		sh(t, "ip", "-n", hv, "link", "add", "vm0", "type", "veth", "peer", "name", "eth0", "address", leakGuestMAC.String(), "netns", g)
		sh(t, "ip", "-n", g, "link", "set", "eth0", "up")
		gp, err := vif.OpenPacket("eth0", g)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gp.Close() })
		send = func(f []byte) error { _, err := gp.WriteBatch([][]byte{f}); return err }
		sizes, meta := make([]int, 1), make([]vif.Meta, 1)
		rx = newGuestRx(t, func(b []byte) (int, error) {
			_, err := gp.ReadBatch([][]byte{b}, sizes, meta, 0)
			return sizes[0], err
		}, func() { gp.Close() })
	case "tap":
		tap, err := vif.CreateTap("vm0", hv)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tap.Close() })
		send = func(f []byte) error { _, err := tap.Write(f); return err }
		rx = newGuestRx(t, tap.Read, func() { tap.Close() })
	}
	for _, l := range []string{"vm0", "up0", "lan0"} {
		sh(t, "ip", "-n", hv, "link", "set", l, "up")
	}
	// dst is where the guest sends the peer's frames, toHost where the
	// wire sends the guest's (the guest's MAC on a bridge, the host's
	// on lan0 where it routes).
	dst, toHost := leakPeerMAC, leakGuestMAC
	switch topo {
	case "bridge":
		sh(t, "ip", "-n", hv, "link", "add", "br0", "type", "bridge", "stp_state", "0")
		sh(t, "ip", "-n", hv, "link", "set", "vm0", "master", "br0")
		sh(t, "ip", "-n", hv, "link", "set", "lan0", "master", "br0")
		sh(t, "ip", "-n", hv, "link", "set", "br0", "up")
	case "routed":
		// The guest's gateway is the host end: it routes the peer's
		// address out of lan0.
		sh(t, "ip", "netns", "exec", hv, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		sh(t, "ip", "-n", hv, "addr", "add", "192.0.2.254/24", "dev", "vm0")
		sh(t, "ip", "-n", hv, "route", "add", leakPeerIP.String()+"/32", "dev", "lan0")
		sh(t, "ip", "-n", hv, "neigh", "add", leakPeerIP.String(), "lladdr", leakPeerMAC.String(), "dev", "lan0", "nud", "permanent")
		sh(t, "ip", "-n", hv, "neigh", "add", leakGuestIP.String(), "lladdr", leakGuestMAC.String(), "dev", "vm0", "nud", "permanent")
		ifi, err := vif.Describe("vm0", hv)
		if err != nil {
			t.Fatal(err)
		}
		dst = ifi.MAC
		if ifi, err = vif.Describe("lan0", hv); err != nil {
			t.Fatal(err)
		}
		toHost = ifi.MAC
	}
	for _, l := range []string{"upw", "lanw"} {
		sh(t, "ip", "-n", wire, "link", "set", l, "up")
	}
	// The uplink's wire stays free of segmentation offloads: vifsec's
	// frames arrive as sent.
	sh(t, "ip", "netns", "exec", hv, "ethtool", "-K", "up0", "tx", "off", "tso", "off", "gso", "off")

	sentinel := append(append(append([]byte{}, leakPeerMAC...), 0x02, 0, 0x5e, 0, 0, 0x99, 0x88, 0xb5), "vifsec-sentinel.............................."...)
	onUp, onLan := newWireTap(t, "upw", wire, sentinel), newWireTap(t, "lanw", wire, sentinel)
	fromLan, err := vif.OpenPacket("lanw", wire)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fromLan.Close() })
	fromUp, err := vif.OpenPacket("upw", wire)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fromUp.Close() })
	// clearToGuest sends the guest leakProbes clear datagrams through
	// lan0, which the kernel forwards to the VIF.
	clearToGuest := func() {
		t.Helper()
		for i := range leakProbes {
			if _, err := fromLan.WriteBatch([][]byte{toGuest(toHost, leakClearMarker, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Without the guard the kernel delivers them all: the checks of the
	// guest's side below can fail.
	clearToGuest()
	testutil.WaitUntil(t, "the wire's clear datagrams in the guest, before vifsec attaches", 10*time.Second, func() bool { return rx.clear.Load() == leakProbes })
	rx.clear.Store(0)

	db := sa.NewDB(0)
	e := datapath.New(db, nil)
	a := New(e, func(dev, n string, o vif.PacketOptions) (vif.Port, int, error) {
		p, err := vif.OpenPacketWith(dev, n, vif.PacketOptions{VnetHdr: o.VnetHdr, Qdisc: o.Qdisc})
		return p, 0, err
	}, nil)
	t.Cleanup(e.Close)
	a.Set([]Want{{Dev: "vm0", Netns: hv, VM: leakVM(t, db)}}, &UplinkWant{Dev: "up0", Netns: hv})
	if st := a.Status()["vm1"]; st != "" {
		t.Fatalf("vm1 not attached: %s", st)
	}
	if _, err := vif.CheckGuard("vm0", hv); err != nil {
		t.Error(err)
	}

	for i := range leakProbes {
		if err := send(probe(dst, i)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitUntil(t, "vifsec's ESP on the uplink's wire", 10*time.Second, func() bool { return onUp.esp.Load() == leakProbes })
	// Frames the kernel forwarded went out before vifsec's ESP: a
	// sentinel sent on lan0 and up0 now arrives after them.
	for _, dev := range []string{"lan0", "up0"} {
		p, err := vif.OpenPacket(dev, hv)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.WriteBatch([][]byte{sentinel})
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitUntil(t, "the sentinels", 10*time.Second, func() bool { return onUp.sentinels.Load() == 1 && onLan.sentinels.Load() == 1 })
	if n := onLan.clear.Load() + onUp.clear.Load(); n != 0 {
		t.Errorf("the wire carried %d of the guest's %d frames in clear (lan0 %d, uplink %d), want 0",
			n, leakProbes, onLan.clear.Load(), onUp.clear.Load())
	}
	if n := onUp.esp.Load(); n != leakProbes {
		t.Errorf("the uplink carried %d ESP frames, want %d", n, leakProbes)
	}

	// The other way: clear datagrams the kernel would forward to the
	// guest, then the peer's ESP, which vifsec decrypts and writes to the
	// VIF. ESP to vifsec's socket, through vifsec and out to the guest,
	// is the slow path: the clear datagrams the kernel forwarded arrived
	// before it.
	clearToGuest()
	peer := leakSA(t, "peer-out", sa.DirOut, leakInSPI, leakPeerIP, leakGuestIP)
	for i := range leakProbes {
		if _, err := fromUp.WriteBatch([][]byte{peerESP(t, peer, toGuest(leakGuestMAC, leakESPMarker, i))}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitUntil(t, "the peer's ESP, decrypted, in the guest", 10*time.Second, func() bool { return rx.esp.Load() >= leakProbes })
	if n := rx.clear.Load(); n != 0 {
		t.Errorf("the guest got %d of the wire's %d clear datagrams, want 0", n, leakProbes)
	}
	if n := rx.esp.Load(); n != leakProbes {
		t.Errorf("the guest got %d datagrams from the peer's %d ESP packets, want one each", n, leakProbes)
	}

	// Detach: the guard comes off.
	a.Set(nil, nil)
	if _, err := vif.CheckGuard("vm0", hv); err == nil {
		t.Error("the guard stays on vm0 after the VM was detached")
	}
}

func leakRefused(t *testing.T, kind, mode string) {
	hv, wire := leakNetns(t, "h"), leakNetns(t, "w")
	sh(t, "ip", "-n", hv, "link", "add", "low0", "type", "veth", "peer", "name", "loww", "netns", wire)
	sh(t, "ip", "-n", hv, "link", "add", "link", "low0", "name", "vm0", "address", leakGuestMAC.String(), "type", kind, "mode", mode)
	for _, l := range []string{"low0", "vm0"} {
		sh(t, "ip", "-n", hv, "link", "set", l, "up")
	}
	e := datapath.New(sa.NewDB(0), nil)
	t.Cleanup(e.Close)
	opened := false
	a := New(e, func(dev, n string, o vif.PacketOptions) (vif.Port, int, error) {
		opened = true
		return nil, 0, fmt.Errorf("opened a %s", kind)
	}, nil)
	a.Set([]Want{{Dev: "vm0", Netns: hv, VM: datapath.VM{Name: "vm1", MAC: header.MAC(leakGuestMAC)}}}, nil)
	st := a.Status()["vm1"]
	if !strings.HasPrefix(st, "refused: ") || !strings.Contains(st, "a "+kind+" (mode "+mode+")") {
		t.Errorf("status %q, want a refusal naming the %s and its mode %s", st, kind, mode)
	}
	if opened {
		t.Error("the port was opened")
	}
	if _, err := vif.CheckGuard("vm0", hv); err == nil {
		t.Error("a guard was installed on a refused interface")
	}
	if q, _ := exec.Command("tc", "-n", hv, "qdisc", "show", "dev", "vm0").CombinedOutput(); bytes.Contains(q, []byte("clsact")) {
		t.Errorf("a clsact qdisc was added to a refused interface:\n%s", q)
	}

	// Why: the guest's frames are transmitted by the macvlan or macvtap
	// straight to its lower device. A socket on it, as vifsec's, reads
	// none of them, and the lower device's wire carries them all.
	sh(t, "ip", "-n", wire, "link", "set", "loww", "up")
	sentinel := append(append(append([]byte{}, leakPeerMAC...), 0x02, 0, 0x5e, 0, 0, 0x99, 0x88, 0xb5), "vifsec-sentinel.............................."...)
	onLower := newWireTap(t, "loww", wire, sentinel)
	vifsecs := newWireTap(t, "vm0", hv, sentinel)
	send := leakMacvlanGuest(t, kind, hv)
	for i := range leakProbes {
		if err := send(probe(leakPeerMAC, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := send(sentinel); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, "the sentinel on the lower device's wire", 10*time.Second, func() bool { return onLower.sentinels.Load() == 1 })
	if n, m := onLower.clear.Load(), vifsecs.clear.Load(); n != leakProbes || m != 0 {
		t.Errorf("the lower device's wire carried %d of the guest's %d frames and a socket on the %s read %d; want all and none, the reason it is refused",
			n, leakProbes, kind, m)
	}
}

// leakMacvlanGuest returns how the guest of macvlan or macvtap vm0 in hv
// sends: a packet socket on the macvlan (a container's stack transmits
// there), the macvtap's character device (QEMU's file, frames behind a
// virtio-net header).
func leakMacvlanGuest(t *testing.T, kind, hv string) func([]byte) error {
	t.Helper()
	if kind == "macvlan" {
		p, err := vif.OpenPacket("vm0", hv)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return func(f []byte) error { _, err := p.WriteBatch([][]byte{f}); return err }
	}
	// The character device is /dev/tapIFINDEX; no udev runs here, so the
	// test makes the node from the numbers sysfs shows in hv.
	info, err := vif.Describe("vm0", hv)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", hv, "cat", fmt.Sprintf("/sys/class/net/vm0/macvtap/tap%d/dev", info.Index)).Output()
	if err != nil {
		t.Fatalf("macvtap device numbers: %v", err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%d:%d", &major, &minor); err != nil {
		t.Fatalf("macvtap device numbers %q: %v", out, err)
	}
	node := t.TempDir() + "/tap"
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return func(frame []byte) error {
		_, err := f.Write(append(make([]byte, vif.VnetHdrLen), frame...))
		return err
	}
}

// TestIntegrationGuardLifecycle: the guard is restored when someone takes
// it off (its ingress filter, its egress filter on clsact, or on the root
// htb it adds beside an ingress qdisc), stays when the daemon stops, is taken over by the next one,
// follows a VM to its new device and comes off at detach; a VIF where it
// cannot go first is not attached.
func TestIntegrationGuardLifecycle(t *testing.T) {
	testutil.NeedRoot(t)
	ns := leakNetns(t, "l")
	for _, d := range []string{"vm0", "vm1", "vm2", "vm3"} {
		sh(t, "ip", "-n", ns, "link", "add", d, "type", "veth", "peer", "name", "g"+d)
		sh(t, "ip", "-n", ns, "link", "set", d, "up")
		sh(t, "ip", "-n", ns, "link", "set", "g"+d, "up")
	}
	guarded := func(dev string) bool { _, err := vif.CheckGuard(dev, ns); return err == nil }
	// hasDrop says whether tc lists vifsec's drop filter at hook (tc's
	// words: "egress", "parent 5653:") of dev: asked of tc, not of the
	// code under test.
	hasDrop := func(dev string, hook ...string) bool {
		t.Helper()
		out, err := exec.Command("tc", append([]string{"-n", ns, "filter", "show", "dev", dev}, hook...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tc filter show dev %s %v: %v %s", dev, hook, err, out)
		}
		return bytes.Contains(out, []byte("vifsec_guard"))
	}
	open := func(dev, n string, o vif.PacketOptions) (vif.Port, int, error) {
		p, err := vif.OpenPacketWith(dev, n, vif.PacketOptions{VnetHdr: o.VnetHdr, Qdisc: o.Qdisc})
		return p, 0, err
	}
	want := func(dev string) []Want {
		return []Want{{Dev: dev, Netns: ns, VM: datapath.VM{Name: "vm1", MAC: header.MAC(leakGuestMAC)}}}
	}

	e := datapath.New(sa.NewDB(0), nil)
	a := New(e, open, nil)
	a.Set(want("vm0"), nil)
	if st := a.Status()["vm1"]; st != "" || !guarded("vm0") {
		t.Fatalf("attach: status %q, guarded %v", st, guarded("vm0"))
	}
	sh(t, "tc", "-n", ns, "filter", "del", "dev", "vm0", "ingress")
	a.Set(want("vm0"), nil) // a reconcile
	if st := a.Status()["vm1"]; st != "" || !guarded("vm0") {
		t.Fatalf("after tc filter del: status %q, guarded %v; want the guard back", st, guarded("vm0"))
	}
	// The same for the egress filter (frames the kernel sends the guest).
	sh(t, "tc", "-n", ns, "filter", "del", "dev", "vm0", "egress", "pref", "1")
	if hasDrop("vm0", "egress") || !hasDrop("vm0", "ingress") {
		t.Fatalf("tc filter del dev vm0 egress pref 1: egress filter %v, ingress %v; want only the egress one gone", hasDrop("vm0", "egress"), hasDrop("vm0", "ingress"))
	}
	a.Set(want("vm0"), nil)
	if st := a.Status()["vm1"]; st != "" || !hasDrop("vm0", "egress") || !guarded("vm0") {
		t.Fatalf("after tc filter del of the egress filter: status %q, egress filter %v, guarded %v; want the guard back",
			st, hasDrop("vm0", "egress"), guarded("vm0"))
	}

	// The daemon stops: the guard stays; the next daemon takes it over.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	cancel()
	<-done
	if !guarded("vm0") {
		t.Fatal("the guard went away with the daemon: the guest would be exposed until it comes back")
	}
	e = datapath.New(sa.NewDB(0), nil)
	t.Cleanup(e.Close)
	a = New(e, open, nil)
	a.Set(want("vm0"), nil)
	if st := a.Status()["vm1"]; st != "" || !guarded("vm0") {
		t.Fatalf("next daemon: status %q, guarded %v", st, guarded("vm0"))
	}

	// A move to vm1, then detach.
	a.Set(want("vm1"), nil)
	if st := a.Status()["vm1"]; st != "" || !guarded("vm1") || guarded("vm0") {
		t.Fatalf("move: status %q, guarded vm1 %v, vm0 %v; want vm1 only", st, guarded("vm1"), guarded("vm0"))
	}
	a.Set(nil, nil)
	if guarded("vm1") {
		t.Fatal("guard left on vm1 after detach")
	}

	// An ingress qdisc (libvirt's outbound <bandwidth>) keeps clsact off:
	// the egress filter is on the guard's root htb 5653:, and a reconcile
	// puts it back there too.
	sh(t, "tc", "-n", ns, "qdisc", "add", "dev", "vm3", "ingress")
	a.Set(want("vm3"), nil)
	if st := a.Status()["vm1"]; st != "" || !guarded("vm3") || !hasDrop("vm3", "parent", "5653:") {
		t.Fatalf("attach beside an ingress qdisc: status %q, guarded %v, filter on root htb 5653: %v", st, guarded("vm3"), hasDrop("vm3", "parent", "5653:"))
	}
	sh(t, "tc", "-n", ns, "filter", "del", "dev", "vm3", "parent", "5653:", "pref", "1")
	if hasDrop("vm3", "parent", "5653:") {
		t.Fatal("tc filter del dev vm3 parent 5653: pref 1 left the egress filter")
	}
	a.Set(want("vm3"), nil)
	if st := a.Status()["vm1"]; st != "" || !hasDrop("vm3", "parent", "5653:") || !guarded("vm3") {
		t.Fatalf("after tc filter del of the root htb's filter: status %q, filter on 5653: %v, guarded %v; want the guard back",
			st, hasDrop("vm3", "parent", "5653:"), guarded("vm3"))
	}
	a.Set(nil, nil)
	if guarded("vm3") {
		t.Fatal("guard left on vm3 after detach")
	}

	// Something else first on vm2's ingress: not attached.
	sh(t, "tc", "-n", ns, "qdisc", "add", "dev", "vm2", "clsact")
	sh(t, "tc", "-n", ns, "filter", "add", "dev", "vm2", "ingress", "pref", "1", "protocol", "all", "u32", "match", "u32", "0", "0", "classid", "1:1")
	a.Set(want("vm2"), nil)
	if st := a.Status()["vm1"]; !strings.Contains(st, "pref 1 holds a u32 filter") {
		t.Fatalf("status %q, want the attach refused for the u32 filter at pref 1", st)
	}
}
