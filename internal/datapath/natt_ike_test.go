package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/overlay/vxlan"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// Tests of RFC 3948 ESP in UDP through the pipeline and of IKE on a VM's
// behalf (punt to the IKE handler, SendIKE).

var peerMAC = header.MAC{0x02, 0, 0, 0, 0xee, 0x01} // the peer (or its router) on the wire

// refSum is RFC 1071's ones' complement sum, written plainly: the
// reference checksums are checked against.
func refSum(bs ...[]byte) uint16 {
	var sum uint32
	for _, b := range bs {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			sum += w
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// refUDPSum is the sum of the UDP datagram u with the pseudo-header of
// addresses src and dst: 0xffff when its checksum verifies.
func refUDPSum(src, dst netip.Addr, u []byte) uint16 {
	var ph []byte
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		ph = append(append(ph, a[:]...), b[:]...)
		ph = append(ph, 0, 17, byte(len(u)>>8), byte(len(u)))
	} else {
		a, b := src.As16(), dst.As16()
		ph = append(append(ph, a[:]...), b[:]...)
		ph = append(ph, 0, 0, byte(len(u)>>8), byte(len(u)), 0, 0, 0, 17)
	}
	return refSum(ph, u)
}

// udpFrame builds an untagged Ethernet frame carrying UDP from s:sport to
// d:dport with payload, all checksums valid.
func udpFrame(dst, src header.MAC, s, d netip.Addr, sport, dport uint16, payload []byte) []byte {
	hl := 20
	if s.Is6() {
		hl = 40
	}
	f := make([]byte, ethLen+hl+8+len(payload))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	ip := f[ethLen:]
	if s.Is4() {
		binary.BigEndian.PutUint16(f[12:], etherIPv4)
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		a, b := s.As4(), d.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		binary.BigEndian.PutUint16(ip[10:], ^refSum(ip[:20]))
	} else {
		binary.BigEndian.PutUint16(f[12:], etherIPv6)
		ip[0], ip[6], ip[7] = 0x60, 17, 64
		binary.BigEndian.PutUint16(ip[4:], uint16(len(ip)-40))
		a, b := s.As16(), d.As16()
		copy(ip[8:], a[:])
		copy(ip[24:], b[:])
	}
	u := ip[hl:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	c := ^refUDPSum(s, d, u)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return f
}

// expectNoDelivery fails if the VM whose counters are st is delivered a
// frame within a short while. (Reading its port instead would leave a
// receiver behind that steals the next frame.)
func expectNoDelivery(t *testing.T, st *VMStats) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	if n := st.PacketsIn.Load(); n != 0 {
		t.Fatalf("%d frames delivered to the guest", n)
	}
}

// natFamily gives the VM addresses (a on gateway A, b on B) and, for
// tunnel mode, the tunnel endpoints of one family.
func natFamily(v6 bool) (a, b, gwA, gwB netip.Addr) {
	if v6 {
		return satest.V6A, satest.V6B, satest.V6GwA, satest.V6GwB
	}
	return satest.V4A, satest.V4B, satest.V4GwA, satest.V4GwB
}

// natSAs returns the out and in SA of the acme VM on one gateway, with
// RFC 3948 encapsulation when encap (ports 4500 both ways) and keys that
// depend only on the SPI, so A's out SA and B's in SA match.
func natSAs(t testing.TB, mac header.MAC, mode sa.Mode, encap bool, outSPI, inSPI uint32, local, remote netip.Addr) (out, in *sa.SA) {
	mk := func(dir sa.Direction, spi uint32, src, dst netip.Addr) *sa.SA {
		c := sa.Config{Name: fmt.Sprintf("acme-%v-%x", dir, spi), Scope: sa.Scope{VLAN: 100, MAC: mac}, SPI: spi, Dir: dir, Src: src, Dst: dst,
			Mode: mode, Enc: sa.EncAES128GCM, EncKey: satest.Key(20, byte(spi>>8)), Integ: sa.IntegNone}
		if encap {
			c.Encap = &sa.UDPEncap{SrcPort: esp.NATTPort, DstPort: esp.NATTPort}
		}
		s, err := sa.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return mk(sa.DirOut, outSPI, local, remote), mk(sa.DirIn, inSPI, remote, local)
}

// anyPolicies protects everything between the two VM addresses.
func anyPolicies(local, remote netip.Addr, mode sa.Mode) []tenant.Policy {
	p := func(name string, dir sa.Direction, src, dst netip.Addr, saName string) tenant.Policy {
		return tenant.Policy{Name: name, VM: "acme", Src: netip.PrefixFrom(src, src.BitLen()), Dst: netip.PrefixFrom(dst, dst.BitLen()),
			SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoAny, Direction: dir, Action: tenant.ActionIPsec,
			Mode: mode, SAName: saName}
	}
	return []tenant.Policy{p("out", sa.DirOut, local, remote, "acme-out"), p("in", sa.DirIn, remote, local, "acme-in")}
}

// natGateways is build for one acme VM (VLAN 100) per gateway whose SAs
// may use ESP in UDP; the VMs have IKE on their behalf and their
// addresses set.
func natGateways(t *testing.T, mode sa.Mode, v6, encap bool) (a, b *side) {
	va, vb, ga, gb := natFamily(v6)
	mk := func(mac header.MAC, local, remote, gwLocal, gwRemote netip.Addr, outSPI, inSPI uint32) *side {
		s := &side{db: sa.NewDB(0), guests: map[string]*viftest.Port{}}
		s.e = New(s.db, nil)
		guest, host := viftest.Pair("acme-guest", "acme-vif", 256)
		s.guests["acme"] = guest
		src, dst := local, remote
		if mode == sa.ModeTunnel {
			src, dst = gwLocal, gwRemote
		}
		out, in := natSAs(t, mac, mode, encap, outSPI, inSPI, src, dst)
		if err := s.db.Apply([]*sa.SA{out, in}, nil); err != nil {
			t.Fatal(err)
		}
		s.e.Update([]VM{{Name: "acme", Port: host, MAC: mac, VLAN: 100, IPs: []netip.Addr{local}, DefaultAction: tenant.ActionNone,
			Policies: anyPolicies(local, remote, mode), SAs: []*sa.SA{out, in}, IKE: true}})
		return s
	}
	a = mk(macA1, va, vb, ga, gb, 0x1000, 0x2000)
	b = mk(macB1, vb, va, gb, ga, 0x2000, 0x1000)
	upA, upB := viftest.Pair("uplinkA", "uplinkB", 256)
	upA.Record, upB.Record = true, true
	a.uplink, b.uplink = upA, upB
	a.e.SetUplink(upA, 0)
	b.e.SetUplink(upB, 0)
	t.Cleanup(func() { a.e.Close(); b.e.Close() })
	return a, b
}

// TestESPInUDPBothWays: both families, both modes, both directions: what
// a guest sends leaves as ESP in UDP to port 4500 (802.1Q-tagged, the
// SA's SPI after the UDP header, the UDP checksum 0 over IPv4 and valid
// over IPv6) and reaches the peer's guest as it was sent; in transport
// mode over IPv4 with its UDP checksum zeroed (RFC 3948 §3.1.2).
func TestESPInUDPBothWays(t *testing.T) {
	for _, mode := range []sa.Mode{sa.ModeTransport, sa.ModeTunnel} {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/v6=%v", mode, v6), func(t *testing.T) {
				a, b := natGateways(t, mode, v6, true)
				va, vb, _, _ := natFamily(v6)
				for _, dir := range []struct {
					from, to       *side
					src, dst       netip.Addr
					srcMAC, dstMAC header.MAC
					spi            uint32
				}{{a, b, va, vb, macA1, macB1, 0x1000}, {b, a, vb, va, macB1, macA1, 0x2000}} {
					f := frame(dir.dstMAC, dir.srcMAC, dir.src, dir.dst, 300)
					dir.from.guests["acme"].WriteBatch([][]byte{f})
					got := recv(t, dir.to.guests["acme"])
					want := append([]byte(nil), f...)
					if mode == sa.ModeTransport && !v6 {
						want[ethLen+20+6], want[ethLen+20+7] = 0, 0
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("delivered\n got %x\nwant %x", got, want)
					}
					w := dir.from.uplink.Written()
					fr := w[len(w)-1].Data
					if binary.BigEndian.Uint16(fr[12:]) != etherVLAN || binary.BigEndian.Uint16(fr[14:])&0xfff != 100 {
						t.Fatalf("not tagged VLAN 100: %x", fr[:18])
					}
					ip := fr[18:]
					hl, proto := 20, ip[9]
					if v6 {
						hl, proto = 40, ip[6]
					}
					u := ip[hl:]
					if proto != 17 || binary.BigEndian.Uint16(u[0:]) != 4500 || binary.BigEndian.Uint16(u[2:]) != 4500 ||
						int(binary.BigEndian.Uint16(u[4:])) != len(u) || binary.BigEndian.Uint32(u[8:]) != dir.spi {
						t.Fatalf("not ESP in UDP 4500 -> 4500 with SPI %#x: %x", dir.spi, ip[:hl+16])
					}
					src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
					if v6 {
						src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
					}
					if ck := binary.BigEndian.Uint16(u[6:]); v6 && refUDPSum(src, dst, u) != 0xffff || !v6 && ck != 0 {
						t.Fatalf("outer UDP checksum %#x wrong (v6 %v)", ck, v6)
					}
				}
				for _, s := range []*side{a, b} {
					for d := drop.Reason(1); d < drop.NumCounted; d++ {
						if n := s.e.Stats("acme").Drops[d].Load(); n != 0 {
							t.Errorf("%d drops %v", n, d)
						}
					}
				}
			})
		}
	}
}

// TestESPInUDPDrops: an SA with Encap refuses plain ESP and one without
// refuses ESP in UDP (encap-mismatch, on the VM and the SA); a
// NAT-keepalive is consumed (nat-keepalive); none reaches the guest.
func TestESPInUDPDrops(t *testing.T) {
	_, b := natGateways(t, sa.ModeTransport, false, true) // B's SAs: ESP in UDP
	_, plainB := natGateways(t, sa.ModeTransport, false, false)
	// What A would send, with and without Encap (same keys).
	outUDP, _ := natSAs(t, macA1, sa.ModeTransport, true, 0x1000, 0x2000, satest.V4A, satest.V4B)
	outPlain, _ := natSAs(t, macA1, sa.ModeTransport, false, 0x1000, 0x2000, satest.V4A, satest.V4B)
	seal := func(s *sa.SA) []byte {
		f := frame(macB1, peerMAC, satest.V4A, satest.V4B, 100)
		buf := make([]byte, readOff+len(f)+esp.Tailroom)
		copy(buf[readOff:], f)
		var sc sa.Scratch
		st, en, d := esp.Encap(s, &sc, buf, readOff+ethLen, len(f)-ethLen)
		if d != drop.None {
			t.Fatal(d)
		}
		copy(buf[st-ethLen:], f[:ethLen])
		return buf[st-ethLen : en]
	}
	tagged := vif.Meta{VLAN: 100, Tagged: true}
	b.uplink.Inject(seal(outPlain), tagged)
	plainB.uplink.Inject(seal(outUDP), tagged)
	b.uplink.Inject(udpFrame(macB1, peerMAC, satest.V4A, satest.V4B, 4500, 4500, []byte{0xff}), tagged)
	st, plainSt := b.e.Stats("acme"), plainB.e.Stats("acme")
	testutil.WaitUntil(t, "drops", 2*time.Second, func() bool {
		return st.Drops[drop.EncapMismatch].Load() == 1 && plainSt.Drops[drop.EncapMismatch].Load() == 1 &&
			st.Drops[drop.NATKeepalive].Load() == 1
	})
	if in := b.db.Lookup(sa.Key{Scope: sa.Scope{VLAN: 100, MAC: macB1}, SPI: 0x1000}); in.Stats.Drops[drop.EncapMismatch].Load() != 1 {
		t.Error("encap-mismatch not counted on the SA")
	}
	expectNoDelivery(t, st)
	expectNoDelivery(t, plainSt)
}

// TestUDP4500IsTheGuests: UDP to port 4500 is ESP in UDP only when its
// first word is the SPI of an inbound SA of the VM; otherwise it is the
// guest's own UDP (its own NAT-T IPsec, or any application on 4500) under
// the inbound SPD — unless the gateway runs the VM's IKE, which makes the
// VM's port 4500 the gateway's (no-sa). NAT-keepalives are consumed only for a VM whose IKE the
// gateway runs.
func TestUDP4500IsTheGuests(t *testing.T) {
	tagged := vif.Meta{VLAN: 100, Tagged: true}
	stranger := netip.MustParseAddr("198.51.100.9") // no SP covers it
	espLike := func(spi uint32) []byte {
		b := make([]byte, 60)
		binary.BigEndian.PutUint32(b, spi)
		binary.BigEndian.PutUint32(b[4:], 1)
		return b
	}
	for _, ike := range []bool{true, false} {
		x := newIKEEngine(t, ike) // inbound SA 0x1000 (Encap), outbound 0x2000
		st := x.e.Stats("acme")
		for _, tc := range []struct {
			name    string
			from    netip.Addr
			payload []byte
			drop    drop.Reason // DropNone: delivered as it is
		}{
			// Port 4500 of a VM whose IKE the gateway runs is the
			// gateway's: an unknown SPI there is no-sa, not the guest's.
			{"no SA with that SPI", stranger, espLike(0x7777), map[bool]drop.Reason{true: drop.NoSA, false: drop.None}[ike]},
			{"the SPI of the VM's outbound SA", stranger, espLike(0x2000), map[bool]drop.Reason{true: drop.NoSA, false: drop.None}[ike]},
			{"no SA, from a peer whose traffic must be ESP", x.remote4, espLike(0x7777), map[bool]drop.Reason{true: drop.NoSA, false: drop.PolicyMismatch}[ike]},
			{"keepalive", stranger, []byte{0xff}, map[bool]drop.Reason{true: drop.NATKeepalive, false: drop.None}[ike]},
		} {
			f := udpFrame(macB1, peerMAC, tc.from, x.v4, 4500, 4500, tc.payload)
			before := st.Drops[tc.drop].Load()
			x.up.Inject(f, tagged)
			if tc.drop == drop.None {
				if got := recv(t, x.guest); !bytes.Equal(got, f) {
					t.Fatalf("IKE %v, %s: guest got %x, want %x", ike, tc.name, got, f)
				}
				continue
			}
			testutil.WaitUntil(t, tc.name+": "+tc.drop.String(), 2*time.Second, func() bool { return st.Drops[tc.drop].Load() == before+1 })
		}
		if n := st.Drops[drop.NoSA].Load(); !ike && n != 0 {
			t.Fatalf("IKE %v: %d no-sa drops", ike, n)
		}
		x.noneHandled(t)
	}
	// The SPI of an inbound SA: ESP, authenticated or dropped as such
	// (TestESPInUDPDrops: encap-mismatch for one without Encap).
	x := newIKEEngine(t, false)
	x.up.Inject(udpFrame(macB1, peerMAC, stranger, x.v4, 4500, 4500, espLike(0x1000)), tagged)
	testutil.WaitUntil(t, "auth-failed", 2*time.Second, func() bool { return x.e.Stats("acme").Drops[drop.AuthFailed].Load() == 1 })
	if n := x.e.Stats("acme").PacketsIn.Load(); n != 0 {
		t.Fatalf("%d frames delivered", n)
	}

	// With a protected VXLAN underlay, such UDP to a flat VM is not taken
	// for the underlay's ESP either (it is not addressed to the VTEP).
	y := newIKEEngine(t, false)
	y.e.SetOverlay(&Overlay{Local: netip.MustParseAddr("203.0.113.1"), UplinkMAC: header.MAC{2, 0, 0, 0, 0, 0xa}, ProtectUnderlay: true})
	f := udpFrame(macB1, peerMAC, stranger, y.v4, 4500, 4500, espLike(0x7777))
	y.up.Inject(f, tagged)
	if got := recv(t, y.guest); !bytes.Equal(got, f) {
		t.Fatalf("flat VM beside a protected underlay got %x, want %x", got, f)
	}
	if n := y.e.OverlayStats.UnderlayNoSA.Load(); n != 0 {
		t.Fatalf("UnderlayNoSA %d", n)
	}
}

// TestNoSAYetDiscards: a guest's traffic that an ipsec SP covers but whose
// SA is not installed yet (IKE has not finished) is discarded and counted
// as no-sa, never sent in clear (ONTAP's semantics); while SendIKE
// resolves the peer's address, such a frame toward it teaches SendIKE the
// next hop the guest uses, and the waiting IKE datagram leaves.
func TestNoSAYetDiscards(t *testing.T) {
	db := sa.NewDB(0)
	e := New(db, nil)
	guest, host := viftest.Pair("guest", "vif", 16)
	up, peer := viftest.Pair("up", "peer", 16)
	up.Record = true
	pol := anyPolicies(satest.V4A, satest.V4B, sa.ModeTransport)
	pol[0].Dst = netip.MustParsePrefix("192.0.2.0/24")
	other := netip.MustParseAddr("192.0.2.77")
	e.Update([]VM{{Name: "acme", Port: host, MAC: macA1, VLAN: 100, IPs: []netip.Addr{satest.V4A}, DefaultAction: tenant.ActionNone,
		Policies: pol, SAs: []*sa.SA{nil, nil}, IKE: true}})
	e.SetUplink(up, 0)
	t.Cleanup(e.Close)
	ike := IKEPacket{Scope: sa.Scope{VLAN: 100, MAC: macA1}, Local: netip.AddrPortFrom(satest.V4A, 500),
		Remote: netip.AddrPortFrom(satest.V4B, 500), Data: []byte("hello")}
	// The next hop is unknown: SendIKE asks (an ARP request; nobody
	// answers here) and the datagram waits.
	if err := e.SendIKE(ike); err != nil {
		t.Fatalf("first SendIKE: %v", err)
	}
	if fr := recv(t, peer); binary.BigEndian.Uint16(fr[16:]) != etherARP {
		t.Fatalf("not an ARP request: %x", fr)
	}
	// A frame to an address SendIKE is not resolving teaches nothing; one
	// to the peer does, and sends the waiting datagram.
	guest.WriteBatch([][]byte{frame(peerMAC, macA1, satest.V4A, other, 64), frame(peerMAC, macA1, satest.V4A, satest.V4B, 64)})
	testutil.WaitUntil(t, "no-sa drops", 2*time.Second, func() bool { return e.Stats("acme").Drops[drop.NoSA].Load() == 2 })
	if p := parseIKEFrame(t, recv(t, peer)); p.dst != peerMAC || string(p.data) != "hello" {
		t.Fatalf("waiting datagram sent as %+v, want to the guest's next hop %v", p, peerMAC)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(up.Written()); n != 2 {
		t.Fatalf("%d frames on the wire, want the ARP request and the IKE datagram", n)
	}
	if _, ok := e.ikeNeigh.lookup(ikeNeighKey{ike.Scope, other}, time.Now()); ok {
		t.Fatal("learned a next hop nobody asked for")
	}
	// The IKE engine's next message goes at once.
	if err := e.SendIKE(ike); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, peer); !bytes.Equal(got[0:6], peerMAC[:]) {
		t.Fatalf("SendIKE to %x, want the guest's next hop %v", got[0:6], peerMAC)
	}
}

// ikeEngine is one gateway with one acme VM (VLAN 100, 192.0.2.2 and
// 2001:db8:1::122) whose IKE it runs, ESP-in-UDP SAs, and an IKE handler
// that queues what it gets.
type ikeEngine struct {
	e          *Engine
	guest      *viftest.Port
	up, peer   *viftest.Port // the engine's uplink end and the wire's other end
	got        chan IKEPacket
	clock      *fakeClock // the engine's clock: moves only when told
	in4, out4  *sa.SA
	scope      sa.Scope
	v4, v6     netip.Addr
	remote4    netip.Addr
	remote6    netip.Addr
	foreignDst netip.Addr // an address on the VM's MAC that is not the VM's
}

func newIKEEngine(t *testing.T, ike bool) *ikeEngine {
	x := &ikeEngine{got: make(chan IKEPacket, 16), scope: sa.Scope{VLAN: 100, MAC: macB1},
		v4: satest.V4B, v6: satest.V6B, remote4: satest.V4A, remote6: satest.V6A, foreignDst: netip.MustParseAddr("192.0.2.99")}
	db := sa.NewDB(0)
	x.e = New(db, nil)
	x.clock = &fakeClock{t: time.Now()}
	x.e.now = x.clock.now
	var host *viftest.Port
	x.guest, host = viftest.Pair("guest", "vif", 64)
	x.up, x.peer = viftest.Pair("up", "peer", 64)
	x.up.Record = true
	out, in := natSAs(t, macB1, sa.ModeTransport, true, 0x2000, 0x1000, x.v4, x.remote4)
	x.in4, x.out4 = in, out
	if err := db.Apply([]*sa.SA{out, in}, nil); err != nil {
		t.Fatal(err)
	}
	x.e.SetIKEHandler(func(p IKEPacket) { x.got <- p })
	x.e.Update([]VM{{Name: "acme", Port: host, MAC: macB1, VLAN: 100, IPs: []netip.Addr{x.v4, x.v6}, DefaultAction: tenant.ActionNone,
		Policies: anyPolicies(x.v4, x.remote4, sa.ModeTransport), SAs: []*sa.SA{out, in}, IKE: ike}})
	x.e.SetUplink(x.up, 0)
	t.Cleanup(x.e.Close)
	return x
}

func (x *ikeEngine) handled(t *testing.T) IKEPacket {
	t.Helper()
	select {
	case p := <-x.got:
		return p
	case <-time.After(2 * time.Second):
		t.Fatal("the IKE handler got nothing")
	}
	return IKEPacket{}
}

func (x *ikeEngine) noneHandled(t *testing.T) {
	t.Helper()
	select {
	case p := <-x.got:
		t.Fatalf("the IKE handler got %+v", p)
	default:
	}
}

// TestIKEPunt: IKE to the VM's address (UDP 500, or 4500 behind the
// non-ESP marker) goes to the handler, without the marker and never to
// the guest; to another address on the VM's MAC, or to a VM whose IKE the
// gateway does not run, it is the guest's; ESP in UDP on 4500 is ESP.
func TestIKEPunt(t *testing.T) {
	msg := append([]byte{1, 2, 3, 4, 5, 6, 7, 8}, bytes.Repeat([]byte{0xa5}, 40)...) // an SPIi that is not 0
	marker := append([]byte{0, 0, 0, 0}, msg...)
	tagged := vif.Meta{VLAN: 100, Tagged: true}
	x := newIKEEngine(t, true)
	for _, tc := range []struct {
		name          string
		local, remote netip.AddrPort
		payload       []byte
	}{
		{"v4 port 500", netip.AddrPortFrom(x.v4, 500), netip.AddrPortFrom(x.remote4, 500), msg},
		{"v4 port 4500", netip.AddrPortFrom(x.v4, 4500), netip.AddrPortFrom(x.remote4, 4500), marker},
		{"v6 port 500", netip.AddrPortFrom(x.v6, 500), netip.AddrPortFrom(x.remote6, 500), msg},
		{"v6 port 4500 from a NAT's port", netip.AddrPortFrom(x.v6, 4500), netip.AddrPortFrom(x.remote6, 31337), marker},
	} {
		x.up.Inject(udpFrame(macB1, peerMAC, tc.remote.Addr(), tc.local.Addr(), tc.remote.Port(), tc.local.Port(), tc.payload), tagged)
		p := x.handled(t)
		if p.VM != "acme" || p.Scope != x.scope || p.Local != tc.local || p.Remote != tc.remote || !bytes.Equal(p.Data, msg) {
			t.Fatalf("%s: handler got %+v, want local %v remote %v and the message without marker", tc.name, p, tc.local, tc.remote)
		}
	}
	expectNoDelivery(t, x.e.Stats("acme"))
	if n := x.e.Stats("acme").IKEIn.Load(); n != 4 {
		t.Fatalf("IKEIn %d, want 4", n)
	}

	// Not the VM's address: ordinary traffic, delivered to the guest.
	f := udpFrame(macB1, peerMAC, x.remote4, x.foreignDst, 500, 500, msg)
	x.up.Inject(f, tagged)
	if got := recv(t, x.guest); !bytes.Equal(got, f) {
		t.Fatalf("guest got %x, want %x", got, f)
	}
	x.noneHandled(t)

	// ESP in UDP on 4500 is decapsulated for the guest.
	clear := udpFrame(macB1, peerMAC, x.remote4, x.v4, 1000, 2000, []byte("clear after decap"))
	peerOut, _ := natSAs(t, macA1, sa.ModeTransport, true, 0x1000, 0x2000, x.remote4, x.v4)
	buf := make([]byte, readOff+len(clear)+esp.Tailroom)
	copy(buf[readOff:], clear)
	var sc sa.Scratch
	st, en, d := esp.Encap(peerOut, &sc, buf, readOff+ethLen, len(clear)-ethLen)
	if d != drop.None {
		t.Fatal(d)
	}
	copy(buf[st-ethLen:], clear[:ethLen])
	x.up.Inject(buf[st-ethLen:en], tagged)
	want := append([]byte(nil), clear...)
	want[ethLen+26], want[ethLen+27] = 0, 0 // IPv4 UDP checksum zeroed (RFC 3948 §3.1.2)
	if got := recv(t, x.guest); !bytes.Equal(got, want) {
		t.Fatalf("guest got %x, want %x", got, want)
	}
	x.noneHandled(t)

	// A VM whose IKE the gateway does not run gets IKE itself (over IPv6
	// here: its SPs protect all IPv4 traffic with the peer, IKE included,
	// so IPv4 IKE in clear would be a policy mismatch).
	y := newIKEEngine(t, false)
	f = udpFrame(macB1, peerMAC, y.remote6, y.v6, 500, 500, msg)
	y.up.Inject(f, tagged)
	if got := recv(t, y.guest); !bytes.Equal(got, f) {
		t.Fatalf("guest without IKE on its behalf got %x, want %x", got, f)
	}
	y.noneHandled(t)
}

// parsedIKE is an IKE frame taken apart field by field.
type parsedIKE struct {
	dst, src      header.MAC
	vlan          uint16
	local, remote netip.AddrPort
	ipID          uint16
	data          []byte
}

// parseIKEFrame checks every field of a frame SendIKE wrote and returns
// them: Ethernet with an 802.1Q tag, IPv4 (version, IHL 5, length,
// no DF or fragment, TTL 64, protocol 17, header checksum) or IPv6
// (version, payload length, next header 17, hop limit 64), UDP (length,
// checksum over the pseudo-header by the reference sum, never 0), and the
// non-ESP marker when a port is 4500.
func parseIKEFrame(t *testing.T, fr []byte) parsedIKE {
	t.Helper()
	var p parsedIKE
	copy(p.dst[:], fr[0:6])
	copy(p.src[:], fr[6:12])
	if binary.BigEndian.Uint16(fr[12:]) != etherVLAN {
		t.Fatalf("no 802.1Q tag: %x", fr[:18])
	}
	tci := binary.BigEndian.Uint16(fr[14:])
	p.vlan = tci & 0xfff
	if tci>>12 != 0 {
		t.Fatalf("PCP/DEI set: %#x", tci)
	}
	et := binary.BigEndian.Uint16(fr[16:])
	ip := fr[18:]
	var src, dst netip.Addr
	var u []byte
	switch et {
	case etherIPv4:
		if ip[0] != 0x45 || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) || binary.BigEndian.Uint16(ip[6:])&0xffff != 0 ||
			ip[8] != 64 || ip[9] != 17 || refSum(ip[:20]) != 0xffff {
			t.Fatalf("IPv4 header wrong (len %d): %x", len(ip), ip[:20])
		}
		p.ipID = binary.BigEndian.Uint16(ip[4:])
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		u = ip[20:]
	case etherIPv6:
		if binary.BigEndian.Uint32(ip[0:]) != 6<<28 || int(binary.BigEndian.Uint16(ip[4:]))+40 != len(ip) || ip[6] != 17 || ip[7] != 64 {
			t.Fatalf("IPv6 header wrong (len %d): %x", len(ip), ip[:40])
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		u = ip[40:]
	default:
		t.Fatalf("EtherType %#x", et)
	}
	if int(binary.BigEndian.Uint16(u[4:])) != len(u) || binary.BigEndian.Uint16(u[6:]) == 0 || refUDPSum(src, dst, u) != 0xffff {
		t.Fatalf("UDP header wrong or checksum bad: %x (%d bytes)", u[:8], len(u))
	}
	p.local = netip.AddrPortFrom(src, binary.BigEndian.Uint16(u[0:]))
	p.remote = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(u[2:]))
	p.data = u[8:]
	if p.local.Port() == 4500 || p.remote.Port() == 4500 {
		if len(p.data) < 4 || binary.BigEndian.Uint32(p.data) != 0 {
			t.Fatalf("no non-ESP marker: %x", p.data)
		}
		p.data = p.data[4:]
	}
	return p
}

// TestSendIKE: SendIKE's frames, both families, ports 500 and 4500 (and a
// NAT-mapped remote port), next hop learned from the peer's IKE.
func TestSendIKE(t *testing.T) {
	x := newIKEEngine(t, true)
	tagged := vif.Meta{VLAN: 100, Tagged: true}
	// Learn the peer's MAC from its IKE (v4 and v6).
	routerMAC := header.MAC{2, 0, 0, 0, 0x77, 1}
	x.up.Inject(udpFrame(macB1, routerMAC, x.remote4, x.v4, 500, 500, []byte{1, 2, 3, 4, 5, 6, 7, 8}), tagged)
	x.up.Inject(udpFrame(macB1, routerMAC, x.remote6, x.v6, 500, 500, []byte{1, 2, 3, 4, 5, 6, 7, 8}), tagged)
	x.handled(t)
	x.handled(t)
	msg := bytes.Repeat([]byte("IKE!"), 75) // 300 bytes
	for _, tc := range []struct {
		local, remote netip.AddrPort
	}{
		{netip.AddrPortFrom(x.v4, 500), netip.AddrPortFrom(x.remote4, 500)},
		{netip.AddrPortFrom(x.v4, 4500), netip.AddrPortFrom(x.remote4, 4500)},
		{netip.AddrPortFrom(x.v6, 500), netip.AddrPortFrom(x.remote6, 500)},
		{netip.AddrPortFrom(x.v6, 4500), netip.AddrPortFrom(x.remote6, 31337)},
		{netip.AddrPortFrom(x.v4, 4500), netip.AddrPortFrom(x.remote4, 31337)},
	} {
		if err := x.e.SendIKE(IKEPacket{VM: "acme", Scope: x.scope, Local: tc.local, Remote: tc.remote, Data: msg}); err != nil {
			t.Fatal(err)
		}
		p := parseIKEFrame(t, recv(t, x.peer))
		if p.dst != routerMAC || p.src != macB1 || p.vlan != 100 || p.local != tc.local || p.remote != tc.remote || !bytes.Equal(p.data, msg) {
			t.Fatalf("frame %+v, want from %v (%v) to %v (%v) on VLAN 100", p, tc.local, macB1, tc.remote, routerMAC)
		}
	}
	if n := x.e.Stats("acme").IKEOut.Load(); n != 5 {
		t.Fatalf("IKEOut %d, want 5", n)
	}
	// A NAT-keepalive: one 0xff byte to 4500, no marker.
	if err := x.e.SendNATKeepalive("acme", x.scope, netip.AddrPortFrom(x.v4, 4500), netip.AddrPortFrom(x.remote4, 4500)); err != nil {
		t.Fatal(err)
	}
	fr := recv(t, x.peer)
	if c := esp.Classify(fr[18:]); c.Kind != esp.KindKeepalive {
		t.Fatalf("keepalive frame classified %v: %x", c.Kind, fr)
	}
	if u := fr[18+20:]; refUDPSum(x.v4, x.remote4, u) != 0xffff || len(u) != 9 {
		t.Fatalf("keepalive UDP %x", u)
	}
	// Without a learned next hop, the uplink neighbour table is used.
	other := netip.MustParseAddr("198.51.100.7")
	x.e.SetNeighbors(map[netip.Addr]header.MAC{other: {2, 0, 0, 0, 0x88, 8}})
	if err := x.e.SendIKE(IKEPacket{Scope: x.scope, Local: netip.AddrPortFrom(x.v4, 500), Remote: netip.AddrPortFrom(other, 500), Data: msg}); err != nil {
		t.Fatal(err)
	}
	if p := parseIKEFrame(t, recv(t, x.peer)); p.dst != (header.MAC{2, 0, 0, 0, 0x88, 8}) {
		t.Fatalf("next hop %v, want the neighbour table's", p.dst)
	}
}

// TestSendIKEFragments: an IPv4 IKE message over the path MTU leaves in
// IP fragments (no DF on IKE) that reassemble to the datagram; IPv6 is
// refused (RFC 7383 is the IKE engine's way).
func TestSendIKEFragments(t *testing.T) {
	x := newIKEEngine(t, true)
	x.e.SetNeighbors(map[netip.Addr]header.MAC{x.remote4: peerMAC, x.remote6: peerMAC})
	msg := make([]byte, 3000)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	if err := x.e.SendIKE(IKEPacket{Scope: x.scope, Local: netip.AddrPortFrom(x.v4, 4500), Remote: netip.AddrPortFrom(x.remote4, 4500), Data: msg}); err != nil {
		t.Fatal(err)
	}
	var whole []byte
	var id uint16
	for i := 0; ; i++ {
		fr := recv(t, x.peer)
		if len(fr) > 18+DefaultMTU {
			t.Fatalf("fragment %d: %d bytes over the MTU", i, len(fr)-18)
		}
		ip := fr[18:]
		if refSum(ip[:20]) != 0xffff || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
			t.Fatalf("fragment %d: bad IPv4 header %x", i, ip[:20])
		}
		fl := binary.BigEndian.Uint16(ip[6:])
		if i == 0 {
			id = binary.BigEndian.Uint16(ip[4:])
		} else if binary.BigEndian.Uint16(ip[4:]) != id {
			t.Fatalf("fragment %d: ID changed", i)
		}
		if int(fl&0x1fff)*8 != len(whole) || fl&0x4000 != 0 {
			t.Fatalf("fragment %d: flags/offset %#x at %d bytes", i, fl, len(whole))
		}
		whole = append(whole, ip[20:]...)
		if fl&0x2000 == 0 {
			break
		}
	}
	if refUDPSum(x.v4, x.remote4, whole) != 0xffff || !bytes.Equal(whole[12:], msg) || binary.BigEndian.Uint32(whole[8:]) != 0 {
		t.Fatal("reassembled datagram wrong")
	}
	err := x.e.SendIKE(IKEPacket{Scope: x.scope, Local: netip.AddrPortFrom(x.v6, 500), Remote: netip.AddrPortFrom(x.remote6, 500), Data: msg})
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("IPv6 over the MTU: %v, want ErrTooBig", err)
	}
}

// TestSendIKEErrors: what SendIKE refuses, and that a peer whose MAC is
// unknown is offered on NeighborMisses.
func TestSendIKEErrors(t *testing.T) {
	x := newIKEEngine(t, true)
	ok := IKEPacket{Scope: x.scope, Local: netip.AddrPortFrom(x.v4, 500), Remote: netip.AddrPortFrom(x.remote4, 500), Data: []byte("x")}
	for _, tc := range []struct {
		name string
		e    *Engine
		edit func(p *IKEPacket)
		want error
	}{
		{"unknown scope", x.e, func(p *IKEPacket) { p.Scope.VLAN = 7 }, ErrNoVM},
		{"name does not match", x.e, func(p *IKEPacket) { p.VM = "globex" }, ErrNoVM},
		{"not the VM's address", x.e, func(p *IKEPacket) { p.Local = netip.AddrPortFrom(x.foreignDst, 500) }, ErrBadAddress},
		{"families differ", x.e, func(p *IKEPacket) { p.Remote = netip.AddrPortFrom(x.remote6, 500) }, ErrBadAddress},
		{"port 0", x.e, func(p *IKEPacket) { p.Remote = netip.AddrPortFrom(x.remote4, 0) }, ErrBadAddress},
		{"IPv6 over the MTU", x.e, func(p *IKEPacket) {
			p.Local, p.Remote, p.Data = netip.AddrPortFrom(x.v6, 500), netip.AddrPortFrom(x.remote6, 500), make([]byte, 1500)
		}, ErrTooBig},
	} {
		p := ok
		tc.edit(&p)
		if err := tc.e.SendIKE(p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if len(x.up.Written()) != 0 {
		t.Error("something was sent")
	}
	// A next hop not known yet is no error: the datagram waits while the
	// address resolves, and the address is offered on NeighborMisses.
	if err := x.e.SendIKE(ok); err != nil {
		t.Errorf("next hop unknown: %v", err)
	}
	select {
	case a := <-x.e.NeighborMisses():
		if a != x.remote4 {
			t.Errorf("miss for %v, want %v", a, x.remote4)
		}
	default:
		t.Error("no neighbour miss reported")
	}
	x.e.SetNeighbors(map[netip.Addr]header.MAC{x.remote4: peerMAC})
	x.e.SetUplink(nil, 0)
	if err := x.e.SendIKE(ok); !errors.Is(err, ErrNoUplink) {
		t.Errorf("no uplink: %v", err)
	}
}

// TestNATAndIKEAllocs: the uplink path allocates nothing for frames that
// are not IKE for the VM — ordinary UDP, UDP to port 500 of an address
// that is not the VM's, ESP in UDP (decapsulated), NAT-keepalives, UDP to
// 4500 whose first word is no SA's SPI (no-sa: the gateway runs the VM's
// IKE, so its port 4500 is the gateway's) — on a
// VM whose IKE the gateway runs, with a handler installed; nor does the
// guest side encapsulating ESP in UDP.
func TestNATAndIKEAllocs(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	outA, _ := natSAs(t, macA1, sa.ModeTransport, true, 0x1000, 0x2000, satest.V4A, satest.V4B)
	outB, inB := natSAs(t, macB1, sa.ModeTransport, true, 0x2000, 0x1000, satest.V4B, satest.V4A)
	_ = e.db.Apply([]*sa.SA{outB, inB}, nil)
	vifB := viftest.NewSink("vifB")
	pol := anyPolicies(satest.V4B, satest.V4A, sa.ModeTransport)
	pol[1].DstPort = tenant.PortNumber(2000) // what arrives in ESP; the clear frame uses other ports
	vm := &vmState{name: "acme", port: &txPort{Port: vifB}, mac: macB1, vlan: 100, ips: []netip.Addr{satest.V4B}, def: tenant.ActionNone,
		spd: tenant.Compile(pol), policies: pol, sas: []*sa.SA{outB, inB}, stats: new(VMStats), ike: true, icmp: pmtu.NewRateLimiter(1, 1)}
	snap := newSnapshot()
	snap.byKey[vmKey{100, macB1}] = vm
	snap.byPort[vifB] = vm
	e.snap.Store(snap)
	up := viftest.NewSink("up")
	e.setConfig(func(c *config) { c.uplink = &txPort{Port: up} })
	handled := 0
	e.SetIKEHandler(func(IKEPacket) { handled++ })
	w := newTestWorker(e, &txPort{Port: viftest.NewSink("upw")}, true)

	plain := udpFrame(macB1, peerMAC, satest.V4A, satest.V4B, 3000, 4000, make([]byte, 200))
	foreign := udpFrame(macB1, peerMAC, satest.V4A, netip.MustParseAddr("192.0.2.99"), 500, 500, make([]byte, 60))
	keepalive := udpFrame(macB1, peerMAC, satest.V4A, satest.V4B, 4500, 4500, []byte{0xff})
	guest4500 := udpFrame(macB1, peerMAC, satest.V4A, satest.V4B, 4500, 4500, bytes.Repeat([]byte{0x77}, 40)) // no such SPI: no-sa
	inner := udpFrame(macB1, peerMAC, satest.V4A, satest.V4B, 1000, 2000, make([]byte, 1000))
	var sc sa.Scratch
	const n = 5
	allocs := testing.AllocsPerRun(50, func() {
		for i, f := range [][]byte{plain, foreign, keepalive, guest4500} {
			w.sizes[i] = copy(w.bufs[i][readOff:], f)
			w.meta[i] = vif.Meta{VLAN: 100, Tagged: true}
		}
		b := w.bufs[n-1]
		copy(b[readOff:], inner)
		st, en, d := esp.Encap(outA, &sc, b, readOff+ethLen, len(inner)-ethLen)
		if d != drop.None {
			t.Fatal(d)
		}
		copy(b[st-ethLen:st], inner[:ethLen])
		w.sizes[n-1] = copy(b[readOff:], b[st-ethLen:en])
		w.meta[n-1] = vif.Meta{VLAN: 100, Tagged: true}
		before := vifB.Frames
		w.batch(n)
		if vifB.Frames-before != 3 {
			t.Fatalf("guest got %d frames, want 3", vifB.Frames-before)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
	if handled != 0 || vm.stats.Drops[drop.NATKeepalive].Load() == 0 {
		t.Fatalf("handled %d, keepalives %d", handled, vm.stats.Drops[drop.NATKeepalive].Load())
	}

	// The guest side: ESP in UDP out.
	vifA := viftest.NewSink("vifA")
	polA := anyPolicies(satest.V4A, satest.V4B, sa.ModeTransport)
	vmA := &vmState{name: "acme", port: &txPort{Port: vifA}, mac: macA1, vlan: 100, def: tenant.ActionNone,
		spd: tenant.Compile(polA), policies: polA, sas: []*sa.SA{outA, nil}, stats: new(VMStats), ike: true}
	snapA := newSnapshot()
	snapA.byPort[vifA] = vmA
	ea := New(sa.NewDB(0), nil)
	ea.snap.Store(snapA)
	upA := viftest.NewSink("upA")
	ea.setConfig(func(c *config) { c.uplink = &txPort{Port: upA} })
	wa := newTestWorker(ea, vmA.port, false)
	f := frame(macB1, macA1, satest.V4A, satest.V4B, 1000)
	allocs = testing.AllocsPerRun(50, func() {
		for i := 0; i < 8; i++ {
			wa.sizes[i] = copy(wa.bufs[i][readOff:], f)
		}
		before := upA.Frames
		wa.batch(8)
		if upA.Frames-before != 8 {
			t.Fatalf("uplink got %d frames", upA.Frames-before)
		}
	})
	if allocs != 0 {
		t.Fatalf("ESP in UDP out: %v allocations per batch", allocs)
	}
	if c := esp.Classify(upA.Last[18:upA.LastN]); c.Kind != esp.KindESPInUDP {
		t.Fatalf("uplink frame is %v, want ESP in UDP", c.Kind)
	}
}

// TestHeadroomWorstCase sends the frame that needs the most headroom: a
// VM's tunnel-mode IPv6 ESP in UDP with a 16-byte IV, inside VXLAN over
// IPv6, inside the underlay's tunnel-mode IPv6 ESP in UDP with a 16-byte
// IV, toward an uplink that takes virtio-net headers.
func TestHeadroomWorstCase(t *testing.T) {
	db := sa.NewDB(0)
	e := New(db, nil)
	vtepA, vtepB := netip.MustParseAddr("2001:db8:ff::a"), netip.MustParseAddr("2001:db8:ff::b")
	cbc := func(name string, spi uint32, src, dst netip.Addr, scope sa.Scope) *sa.SA {
		s, err := sa.New(sa.Config{Name: name, Scope: scope, SPI: spi, Dir: sa.DirOut, Src: src, Dst: dst, Mode: sa.ModeTunnel,
			Enc: sa.EncAES256CBC, EncKey: satest.Key(32, byte(spi)), Integ: sa.IntegHMACSHA512, IntegKey: satest.Key(64, 1),
			Encap: &sa.UDPEncap{SrcPort: 4500, DstPort: 4500}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	out := cbc("acme-out", 0x1000, satest.V6GwA, satest.V6GwB, sa.Scope{VLAN: 100, MAC: macA1})
	under := cbc("u", 0x5000, vtepA, vtepB, sa.Scope{})
	if n := esp.MaxPrefix; under.IVLen() != 16 || n != 72 {
		t.Fatalf("IV %d, MaxPrefix %d: the worst case changed", under.IVLen(), n)
	}
	vifA := viftest.NewSink("vifA")
	pol := anyPolicies(satest.V6A, satest.V6B, sa.ModeTunnel)
	vm := &vmState{name: "acme", port: &txPort{Port: vifA}, mac: macA1, vlan: 100, vni: 1000, def: tenant.ActionNone,
		spd: tenant.Compile(pol), policies: pol, sas: []*sa.SA{out, nil}, stats: new(VMStats), icmp: pmtu.NewRateLimiter(1, 1)}
	snap := newSnapshot()
	snap.byPort[vifA] = vm
	e.snap.Store(snap)
	up := viftest.NewSink("up")
	e.setConfig(func(c *config) { c.uplink = &txPort{Port: up, vnet: true} })
	e.SetOverlay(&Overlay{Local: vtepA, UplinkMAC: header.MAC{2, 0, 0, 0, 0, 0xa}, FDB: map[FDBKey]netip.Addr{{1000, macB1}: vtepB},
		ProtectUnderlay: true, Underlay: []UnderlaySA{{VNI: 1000, SA: under}}})
	e.SetNeighbors(map[netip.Addr]header.MAC{vtepB: {2, 0, 0, 0, 0, 0xb}})
	w := newTestWorker(e, vm.port, false)
	f := frame(macB1, macA1, satest.V6A, satest.V6B, 100)
	w.sizes[0] = copy(w.bufs[0][readOff:], f)
	w.batch(1)
	if up.Frames != 1 {
		t.Fatalf("uplink got %d frames; VM drops: no-room %d", up.Frames, vm.stats.Drops[drop.NoRoom].Load())
	}
	// The frame: virtio-net header, Ethernet, IPv6, UDP 4500, ESP of the
	// underlay SA.
	fr := up.Last[:up.LastN]
	ip := fr[vif.VnetHdrLen+ethLen:]
	if ip[6] != 17 || binary.BigEndian.Uint16(ip[42:]) != 4500 || binary.BigEndian.Uint32(ip[48:]) != 0x5000 {
		t.Fatalf("not the underlay's ESP in UDP: %x", ip[:56])
	}
}

// TestInboundRekeyOverlap: while IKE rekeys a VM's policy, the newer
// child's inbound SP comes first and the older child's SA still carries
// traffic for a round trip; ESP on either SA is accepted. A first match
// that is not ipsec still refuses it, and so does an SP naming the SA
// whose selectors do not match the packet.
func TestInboundRekeyOverlap(t *testing.T) {
	db := sa.NewDB(0)
	e := New(db, nil)
	_, oldIn := natSAs(t, macB1, sa.ModeTransport, false, 0x2000, 0x1000, satest.V4B, satest.V4A)
	_, newIn := natSAs(t, macB1, sa.ModeTransport, false, 0x2001, 0x1001, satest.V4B, satest.V4A)
	_ = db.Apply([]*sa.SA{oldIn, newIn}, nil)
	peerOld, _ := natSAs(t, macA1, sa.ModeTransport, false, 0x1000, 0x2000, satest.V4A, satest.V4B)
	peerNew, _ := natSAs(t, macA1, sa.ModeTransport, false, 0x1001, 0x2001, satest.V4A, satest.V4B)
	in := func(name string, s string, port tenant.Port, act tenant.Action) tenant.Policy {
		return tenant.Policy{Name: name, VM: "acme", Src: netip.PrefixFrom(satest.V4A, 32), Dst: netip.PrefixFrom(satest.V4B, 32),
			SrcPort: tenant.PortAny, DstPort: port, ULProto: tenant.ProtoAny, Direction: sa.DirIn, Action: act, Mode: sa.ModeTransport, SAName: s}
	}
	sink := viftest.NewSink("vif")
	w := newTestWorker(e, &txPort{Port: viftest.NewSink("up")}, true)
	var sc sa.Scratch
	setup := func(pol []tenant.Policy, sas []*sa.SA) *vmState {
		vm := &vmState{name: "acme", port: &txPort{Port: sink}, mac: macB1, vlan: 100, def: tenant.ActionNone,
			spd: tenant.Compile(pol), policies: pol, sas: sas, stats: new(VMStats), inBySA: compileInBySA(pol, sas)}
		snap := newSnapshot()
		snap.byKey[vmKey{100, macB1}] = vm
		e.snap.Store(snap)
		return vm
	}
	f := frame(macB1, peerMAC, satest.V4A, satest.V4B, 64) // UDP 1000 -> 2000
	send := func(vm *vmState, peer *sa.SA) drop.Reason {
		in, drops := vm.stats.PacketsIn.Load(), [drop.NumCounted]uint64{}
		for d := range drops {
			drops[d] = vm.stats.Drops[d].Load()
		}
		b := w.bufs[0]
		copy(b[readOff:], f)
		st, en, d := esp.Encap(peer, &sc, b, readOff+ethLen, len(f)-ethLen)
		if d != drop.None {
			t.Fatal(d)
		}
		copy(b[st-ethLen:st], f[:ethLen])
		w.sizes[0] = copy(b[readOff:], b[st-ethLen:en])
		w.meta[0] = vif.Meta{VLAN: 100, Tagged: true}
		w.batch(1)
		if vm.stats.PacketsIn.Load() == in+1 {
			return drop.None
		}
		for d := range drops {
			if vm.stats.Drops[d].Load() != drops[d] {
				return drop.Reason(d)
			}
		}
		t.Fatal("neither delivered nor dropped")
		return 0
	}
	deliver := func(pol []tenant.Policy, sas []*sa.SA, peer *sa.SA) drop.Reason { return send(setup(pol, sas), peer) }
	overlap := []tenant.Policy{in("new", "n", tenant.PortAny, tenant.ActionIPsec), in("old", "o", tenant.PortAny, tenant.ActionIPsec)}
	for _, tc := range []struct {
		name string
		pol  []tenant.Policy
		sas  []*sa.SA
		peer *sa.SA
		want drop.Reason
	}{
		{"new child, first SP", overlap, []*sa.SA{newIn, oldIn}, peerNew, drop.None},
		{"old child, second SP", overlap, []*sa.SA{newIn, oldIn}, peerOld, drop.None},
		{"waiting SP first (no SA), old child", overlap, []*sa.SA{nil, oldIn}, peerOld, drop.None},
		{"discard first", []tenant.Policy{in("d", "", tenant.PortAny, tenant.ActionDiscard), overlap[1]}, []*sa.SA{nil, oldIn}, peerOld, drop.PolicyMismatch},
		{"old child's SP does not match the port", []tenant.Policy{overlap[0], in("old", "o", tenant.PortNumber(9), tenant.ActionIPsec)},
			[]*sa.SA{newIn, oldIn}, peerOld, drop.PolicyMismatch},
	} {
		if got := deliver(tc.pol, tc.sas, tc.peer); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	vm := setup(overlap, []*sa.SA{newIn, oldIn})
	allocs := testing.AllocsPerRun(20, func() {
		if d := send(vm, peerOld); d != drop.None {
			t.Fatal(d)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet on the older child's SA", allocs)
	}
}

// TestIKEOverVXLAN: for a VM of an overlay tenant, IKE arriving inside
// VXLAN is punted like flat IKE, and SendIKE's frame leaves inside VXLAN
// (the tenant's VNI) toward the remote VTEP the FDB names for the peer's
// MAC.
func TestIKEOverVXLAN(t *testing.T) {
	x := newIKEEngine(t, true)
	vtepA, vtepB := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	upMACA, upMACB := header.MAC{2, 0, 0, 0, 0, 0xa}, header.MAC{2, 0, 0, 0, 0, 0xb}
	x.e.SetOverlay(&Overlay{Local: vtepA, UplinkMAC: upMACA, FDB: map[FDBKey]netip.Addr{{1000, peerMAC}: vtepB}})
	x.e.SetNeighbors(map[netip.Addr]header.MAC{vtepB: upMACB})
	// Re-publish the VM with a VNI.
	snap := x.e.snap.Load()
	next := newSnapshot()
	for k, v := range snap.byKey {
		v2 := *v
		v2.vni = 1000
		next.byKey[k], next.byVNIMAC[FDBKey{1000, v2.mac}] = &v2, &v2
		next.byVNI[1000] = append(next.byVNI[1000], &v2)
		for p := range snap.byPort {
			next.byPort[p] = &v2
		}
	}
	x.e.snap.Store(next)

	// In: the peer's IKE inside VXLAN from its VTEP.
	inner := udpFrame(macB1, peerMAC, x.remote4, x.v4, 500, 500, []byte{9, 9, 9, 9, 1, 1, 1, 1})
	buf := make([]byte, 200+len(inner))
	copy(buf[100:], inner)
	o := vxlan.Outer{SrcMAC: upMACB, DstMAC: upMACA, Src: vtepB, Dst: vtepA, VNI: 1000}
	st, d := vxlan.Encap(&o, 50000, buf, 100, len(inner))
	if d != drop.None {
		t.Fatal(d)
	}
	x.up.Inject(buf[st:100+len(inner)], vif.Meta{})
	if p := x.handled(t); p.Remote != netip.AddrPortFrom(x.remote4, 500) || p.Local != netip.AddrPortFrom(x.v4, 500) {
		t.Fatalf("handler got %+v", p)
	}

	// Out: the answer inside VXLAN to vtepB, next hop learned from the
	// punted frame's inner source MAC.
	if err := x.e.SendIKE(IKEPacket{Scope: x.scope, Local: netip.AddrPortFrom(x.v4, 500), Remote: netip.AddrPortFrom(x.remote4, 500), Data: []byte("answer")}); err != nil {
		t.Fatal(err)
	}
	fr := recv(t, x.peer)
	r, vd := vxlan.Decap(&vxlan.Local{Addr4: vtepB}, fr, 0, len(fr))
	if vd != drop.None || r.VNI != 1000 || !bytes.Equal(fr[0:6], upMACB[:]) {
		t.Fatalf("not VXLAN VNI 1000 to VTEP %v: %v %x", vtepB, vd, fr[:50])
	}
	in := fr[r.Start:r.End]
	// parseIKEFrame wants a tag: put one in, VLAN 0.
	tagged := append(append(append([]byte(nil), in[:12]...), 0x81, 0, 0, 0), in[12:]...)
	p := parseIKEFrame(t, tagged)
	if p.dst != peerMAC || p.src != macB1 || p.local != netip.AddrPortFrom(x.v4, 500) || string(p.data) != "answer" {
		t.Fatalf("inner frame %+v", p)
	}
}

// TestNoSAYetAllocs: discarding a guest's frames while IKE has not
// installed the SA allocates nothing, also while SendIKE waits for a next
// hop (the frames are then looked at for it).
func TestNoSAYetAllocs(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	vifA := viftest.NewSink("vifA")
	pol := anyPolicies(satest.V4A, satest.V4B, sa.ModeTransport)
	vm := &vmState{name: "acme", port: &txPort{Port: vifA}, mac: macA1, vlan: 100, def: tenant.ActionNone,
		spd: tenant.Compile(pol), policies: pol, sas: []*sa.SA{nil, nil}, stats: new(VMStats), ike: true}
	snap := newSnapshot()
	snap.byPort[vifA] = vm
	e.snap.Store(snap)
	up := viftest.NewSink("up")
	e.setConfig(func(c *config) { c.uplink = &txPort{Port: up} })
	w := newTestWorker(e, vm.port, false)
	f := frame(peerMAC, macA1, satest.V4A, satest.V4B, 200)
	run := func() {
		for i := 0; i < 8; i++ {
			w.sizes[i] = copy(w.bufs[i][readOff:], f)
		}
		w.batch(8)
	}
	now := time.Now()
	e.now = func() time.Time { return now }
	for _, waiting := range []bool{false, true} {
		if waiting {
			_, _ = e.ikeNeigh.miss(ikeNeighKey{sa.Scope{VLAN: 100, MAC: macA1}, netip.MustParseAddr("192.0.2.200")}, nil, now)
		}
		if allocs := testing.AllocsPerRun(50, run); allocs != 0 {
			t.Fatalf("waiting %v: %v allocations per batch", waiting, allocs)
		}
	}
	if up.Frames != 0 || vm.stats.Drops[drop.NoSA].Load() != 2*51*8 {
		t.Fatalf("%d frames sent, %d no-sa drops", up.Frames, vm.stats.Drops[drop.NoSA].Load())
	}
}
