//go:build linux

package vxlan

// Interop with the Linux kernel's vxlan device, a VTEP nobody here wrote.
//
// Topology, per test, in namespaces of its own:
//
//	local ns                      remote ns                 tenant ns (one per VNI)
//	 ul0 (AF_PACKET, this test) ── veth ── ul1 198.51.100.2   vxNN 192.0.2.2/24
//	 no addresses: the VTEP        2001:db8:ff::2           2001:db8:1::2/64
//	 198.51.100.1 / 2001:db8:ff::1 is this code in userspace   (created in the remote ns,
//	                                                            moved: its UDP socket stays there)
//
// The local namespace's kernel has no address and IPv6 off, so it neither
// answers VXLAN with ICMP port-unreachable nor competes with the test's
// VTEP; the remote namespace knows the local VTEP's MAC from static
// neighbour entries. The test plays the tenant VM 192.0.2.1 /
// 2001:db8:1::1: it sends echo requests with Encap, answers the kernel's
// ARP and neighbour solicitations (which arrive VXLAN-encapsulated, and
// which it reads with Decap), and Decaps the echo replies.
//
// ul1 has checksum offload off both ways, as a wire would have it: on
// receive so the remote kernel really verifies the UDP checksums Encap
// writes (veth would otherwise mark frames from AF_PACKET as already
// verified), on transmit so the kernel's frames carry complete checksums
// (with offload on, a veth peer's AF_PACKET socket sees CHECKSUM_PARTIAL
// frames whose UDP checksum field holds only the pseudo-header sum, which
// Decap rightly refuses: TP_STATUS_CSUMNOTREADY in PACKET_AUXDATA says
// so, and vif.Meta does not carry it yet).

import (
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"

	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/overlay/entropy"
	"github.com/vifsec/vifsec/vif"
)

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// settled waits until dev in ns has no tentative global IPv6 address. An
// address added with nodad while its link is down stays tentative after
// the link comes up until the kernel's DAD work runs, which on a loaded
// machine can be later than the test's first packet; the kernel drops
// what is sent to a tentative address.
func settled(t *testing.T, ns, dev string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns, "-6", "addr", "show", "dev", dev, "scope", "global", "tentative").CombinedOutput()
		if err != nil {
			t.Fatalf("ip -n %s -6 addr show dev %s scope global tentative: %v\n%s", ns, dev, err, out)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s still has tentative global addresses:\n%s", dev, ns, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var nsSeq atomic.Int32

func netns(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("vifsec-vxl-%s-%d-%d", role, os.Getpid(), nsSeq.Add(1))
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", name, err, out)
		}
	})
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func macString(m [6]byte) string { return net.HardwareAddr(m[:]).String() }

// lab is one test's topology and its end of the underlay.
type lab struct {
	t      *testing.T
	remote string
	port   *vif.PacketPort
	frames chan []byte
	wmu    sync.Mutex
	local  *Local
	hasher *entropy.Hasher
	v6     bool // underlay family
}

func newLab(t *testing.T, v6 bool) *lab {
	testutil.NeedRoot(t)
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("ethtool missing (make deps installs it)")
	}
	local, remote := netns(t, "local"), netns(t, "remote")
	sh(t, "ip", "netns", "exec", local, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	sh(t, "ip", "-n", local, "link", "add", "ul0", "address", macString(macUplink), "type", "veth",
		"peer", "name", "ul1", "address", macString(macRemote), "netns", remote)
	sh(t, "ip", "-n", local, "link", "set", "ul0", "up")
	sh(t, "ip", "netns", "exec", remote, "ethtool", "-K", "ul1", "rx", "off", "tx", "off")
	sh(t, "ip", "-n", remote, "addr", "add", "198.51.100.2/24", "dev", "ul1")
	sh(t, "ip", "-n", remote, "addr", "add", "2001:db8:ff::2/64", "dev", "ul1", "nodad")
	sh(t, "ip", "-n", remote, "link", "set", "ul1", "up")
	settled(t, remote, "ul1")
	sh(t, "ip", "-n", remote, "neigh", "add", "198.51.100.1", "lladdr", macString(macUplink), "dev", "ul1", "nud", "permanent")
	sh(t, "ip", "-n", remote, "neigh", "add", "2001:db8:ff::1", "lladdr", macString(macUplink), "dev", "ul1", "nud", "permanent")
	p, err := vif.OpenPacket("ul0", local)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, remote: remote, port: p, frames: make(chan []byte, 256),
		local: &Local{Addr4: vtep4Local, Addr6: vtep6Local}, hasher: entropy.NewHasher(entropy.RandomKey()), v6: v6}
	done := make(chan struct{})
	go l.read(done)
	t.Cleanup(func() {
		p.Close()
		<-done
	})
	return l
}

// read copies every frame ul0 receives into l.frames until the port
// closes.
func (l *lab) read(done chan struct{}) {
	defer close(done)
	bufs, sizes, meta := [][]byte{make([]byte, 2048)}, []int{0}, []vif.Meta{{}}
	for {
		n, err := l.port.ReadBatch(bufs, sizes, meta, Headroom)
		if err != nil {
			if !errors.Is(err, vif.ErrClosed) {
				l.t.Errorf("ReadBatch: %v", err)
			}
			return
		}
		for i := range n {
			select {
			case l.frames <- bytes.Clone(bufs[i][Headroom : Headroom+sizes[i]]):
			default: // the test is not reading: drop
			}
		}
	}
}

// tenant makes a kernel vxlan device for vni in the remote namespace,
// moves it to a tenant namespace of its own with the peer's inner
// addresses and MAC, and sets that namespace's default TTL/hop limit to
// ttl (which tells the tenants' replies apart). extra are more `ip link
// add … type vxlan` options.
func (l *lab) tenant(vni uint32, ttl int, extra ...string) string {
	t := l.t
	ns := netns(t, fmt.Sprintf("t%d", vni))
	dev := fmt.Sprintf("vx%d", vni)
	args := []string{"ip", "-n", l.remote, "link", "add", dev, "address", macString(macPeer), "type", "vxlan",
		"id", fmt.Sprint(vni), "dstport", "4789", "nolearning"}
	if l.v6 {
		args = append(args, "local", "2001:db8:ff::2", "remote", "2001:db8:ff::1")
	} else {
		args = append(args, "local", "198.51.100.2", "remote", "198.51.100.1")
	}
	sh(t, append(args, extra...)...)
	sh(t, "ip", "-n", l.remote, "link", "set", dev, "netns", ns)
	sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", fmt.Sprintf("net.ipv4.ip_default_ttl=%d", ttl),
		fmt.Sprintf("net.ipv6.conf.default.hop_limit=%d", ttl), fmt.Sprintf("net.ipv6.conf.%s.hop_limit=%d", dev, ttl))
	sh(t, "ip", "-n", ns, "addr", "add", "192.0.2.2/24", "dev", dev)
	sh(t, "ip", "-n", ns, "addr", "add", "2001:db8:1::2/64", "dev", dev, "nodad")
	sh(t, "ip", "-n", ns, "link", "set", dev, "up")
	settled(t, ns, dev)
	return ns
}

func (l *lab) outer(vni uint32) *Outer {
	if l.v6 {
		return outer6(vni)
	}
	return outer4(vni)
}

// send encapsulates inner for vni and writes it to the underlay; mangle,
// if not nil, changes the outer frame first.
func (l *lab) send(vni uint32, inner []byte, mangle func(outer []byte)) {
	l.t.Helper()
	buf := place(inner, 0)
	start, d := Encap(l.outer(vni), l.hasher.SourcePort(inner, vni), buf, Headroom, len(inner))
	if d != drop.None {
		l.t.Fatalf("Encap: %v", d)
	}
	if mangle != nil {
		mangle(buf[start:])
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if n, err := l.port.WriteBatch([][]byte{buf[start:]}); n != 1 || err != nil {
		l.t.Fatalf("WriteBatch: %d, %v", n, err)
	}
}

// reply is one decapsulated frame the kernel sent.
type reply struct {
	r     Result
	inner []byte
	outer []byte
}

// await returns the first decapsulated frame match accepts, answering
// the kernel's ARP requests and neighbour solicitations for the VM on
// the way; false after timeout.
func (l *lab) await(timeout time.Duration, match func(reply) bool) (reply, bool) {
	l.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case <-deadline:
			return reply{}, false
		case f := <-l.frames:
			r, d := Decap(l.local, f, 0, len(f))
			if d == drop.NotVXLAN {
				continue
			}
			if d != drop.None {
				l.t.Errorf("Decap of a kernel frame: %v (% x)", d, f)
				continue
			}
			rp := reply{r: r, inner: f[r.Start:r.End], outer: f}
			if resp := neighbourReply(rp.inner); resp != nil {
				l.send(r.VNI, resp, nil)
				continue
			}
			if match(rp) {
				return rp, true
			}
		}
	}
}

// echoReply matches an ICMP/ICMPv6 echo reply with id.
func echoReply(v6 bool, id uint16) func(reply) bool {
	return func(rp reply) bool {
		f := rp.inner
		if v6 {
			return len(f) >= 14+40+8 && binary.BigEndian.Uint16(f[12:14]) == header.EtherTypeIPv6 && f[14+6] == 58 &&
				f[54] == 129 && binary.BigEndian.Uint16(f[58:60]) == id
		}
		if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != header.EtherTypeIPv4 || f[14+9] != 1 {
			return false
		}
		icmp := f[14+int(f[14]&0x0f)*4:]
		return len(icmp) >= 8 && icmp[0] == 0 && binary.BigEndian.Uint16(icmp[4:6]) == id
	}
}

// neighbourReply answers an ARP request or a neighbour solicitation for
// the VM's address (192.0.2.1, 2001:db8:1::1), or returns nil.
func neighbourReply(f []byte) []byte {
	if len(f) < 14 {
		return nil
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0806:
		a := f[14:]
		if len(a) < 28 || binary.BigEndian.Uint16(a[6:8]) != 1 || [4]byte(a[24:28]) != inner4VM.As4() {
			return nil
		}
		r := make([]byte, 28)
		copy(r, a[:6]) // htype, ptype, hlen, plen
		r[7] = 2       // reply
		copy(r[8:14], macVM[:])
		vm := inner4VM.As4()
		copy(r[14:18], vm[:])
		copy(r[18:28], a[8:18]) // the requester's MAC and address
		return ether([6]byte(a[8:14]), macVM, 0x0806, r)
	case header.EtherTypeIPv6:
		ip := f[14:]
		if len(ip) < 40+24 || ip[6] != 58 || ip[40] != 135 || [16]byte(ip[48:64]) != inner6VM.As16() {
			return nil
		}
		src := netip.AddrFrom16([16]byte(ip[8:24]))
		na := make([]byte, 32)
		na[0] = 136
		binary.BigEndian.PutUint32(na[4:8], 0x60000000) // solicited, override
		vm := inner6VM.As16()
		copy(na[8:24], vm[:])
		na[24], na[25] = 2, 1 // target link-layer address option
		copy(na[26:32], macVM[:])
		s := csum.Pseudo(vm[:], ip[8:24], 58, len(na))
		binary.BigEndian.PutUint16(na[2:4], csum.Checksum(na, s))
		p := ipv6(inner6VM, src, 58, 0, na)
		p[7] = 255 // RFC 4861 §7.1.2
		return ether([6]byte(f[6:12]), macVM, header.EtherTypeIPv6, p)
	}
	return nil
}

// ping sends an echo request for vni and returns the decapsulated reply.
func (l *lab) ping(vni uint32, innerV6 bool, id uint16) reply {
	l.t.Helper()
	l.send(vni, pingFrame(innerV6, 0, id, 1, []byte("vifsec vxlan interop")), nil)
	rp, ok := l.await(5*time.Second, echoReply(innerV6, id))
	if !ok {
		l.t.Fatalf("no echo reply from the kernel VTEP (VNI %d, inner IPv6 %v)", vni, innerV6)
	}
	return rp
}

// checkReply checks what the kernel VTEP sent: from its underlay
// address, in vni, the inner reply from the peer's MAC with the TTL of
// the tenant namespace that answered.
func (l *lab) checkReply(rp reply, vni uint32, innerV6 bool, ttl int) {
	l.t.Helper()
	src := vtep4Remote
	if l.v6 {
		src = vtep6Remote
	}
	if rp.r.VNI != vni || rp.r.Src != src {
		l.t.Errorf("reply in VNI %d from %v, want VNI %d from %v", rp.r.VNI, rp.r.Src, vni, src)
	}
	if !bytes.Equal(rp.inner[6:12], macPeer[:]) || !bytes.Equal(rp.inner[0:6], macVM[:]) {
		l.t.Errorf("inner MACs % x", rp.inner[:12])
	}
	got := int(rp.inner[14+8]) // IPv4 TTL
	if innerV6 {
		got = int(rp.inner[14+7]) // hop limit
	}
	if got != ttl {
		l.t.Errorf("reply TTL %d, want %d: answered by the wrong tenant namespace", got, ttl)
	}
}

func TestIntegrationKernelVXLAN(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := "ipv4 underlay"
		if v6 {
			name = "ipv6 underlay"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t, v6)
			l.tenant(42, 61)
			for i, innerV6 := range []bool{false, true} {
				rp := l.ping(42, innerV6, uint16(0x4200+i))
				l.checkReply(rp, 42, innerV6, 61)
				u := rp.outer[14+20:]
				if v6 {
					u = rp.outer[14+40:]
				}
				t.Logf("inner IPv6 %v: echo reply in VNI %d from %v, outer UDP %d→%d checksum %#04x",
					innerV6, rp.r.VNI, rp.r.Src, rp.r.SrcPort, binary.BigEndian.Uint16(u[2:4]), binary.BigEndian.Uint16(u[6:8]))
				if v6 && binary.BigEndian.Uint16(u[6:8]) == 0 {
					t.Error("kernel sent IPv6 VXLAN with a zero UDP checksum (udp6zerocsumtx is off by default)")
				}
			}
			if !v6 {
				return
			}
			// The kernel verifies the IPv6 UDP checksum (ul1 has rx
			// offload off): a zero one (udp6zerocsumrx off) and a wrong
			// one go unanswered, the computed one (above) is answered.
			for _, tc := range []struct {
				name   string
				mangle func(f []byte)
			}{
				{"zero", func(f []byte) { f[60], f[61] = 0, 0 }},
				{"wrong", func(f []byte) { f[61] ^= 0x40 }},
			} {
				id := uint16(0x4600) + uint16(len(tc.name))
				l.send(42, pingFrame(false, 0, id, 1, []byte("x")), tc.mangle)
				if _, ok := l.await(time.Second, echoReply(false, id)); ok {
					t.Errorf("kernel answered a frame with a %s IPv6 UDP checksum", tc.name)
				}
			}
		})
	}
}

// TestIntegrationKernelVXLANTwoVNIs: two kernel vxlan devices, VNI 42 and
// 43, in two tenant namespaces with the same inner addresses and the same
// MAC. Each ping is answered by the tenant of its VNI (told apart by the
// reply's TTL) and comes back in that VNI. VNI 42 sends IPv4 VXLAN with
// a zero UDP checksum (noudpcsum, RFC 7348's SHOULD) and VNI 43 with one
// (udpcsum), so Decap meets both forms from the kernel.
func TestIntegrationKernelVXLANTwoVNIs(t *testing.T) {
	l := newLab(t, false)
	l.tenant(42, 42, "noudpcsum")
	l.tenant(43, 43, "udpcsum")
	for round := range 2 {
		for _, vni := range []uint32{42, 43, 42} {
			for i, innerV6 := range []bool{false, true} {
				rp := l.ping(vni, innerV6, uint16(vni)<<8|uint16(round<<4|i))
				l.checkReply(rp, vni, innerV6, int(vni))
				c := binary.BigEndian.Uint16(rp.outer[14+20+6 : 14+20+8])
				if (vni == 43) != (c != 0) {
					t.Errorf("VNI %d: outer UDP checksum %#04x (want zero only on 42: noudpcsum)", vni, c)
				}
			}
		}
	}
}
