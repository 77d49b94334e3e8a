package header_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"testing"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/gso"
	"github.com/vifsec/vifsec/offload/mss"
	"github.com/vifsec/vifsec/overlay/entropy"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/tenant"
)

// The differential test: the layers that read one packet — the SPD
// classifier (tenant.ParseFlow), ESP's classifier of packets from the
// wire (esp.Classify), the MSS clamp (mss.Clamp), GSO (gso.Segment) and
// the overlay's flow hash (entropy.Hasher.Hash) — must agree on the
// packet's upper-layer protocol and where its header starts, or all
// refuse it. Each is called through its own entry point and observed by
// what it does:
//
//   - ParseFlow: ok, Proto, L4, the fragment flags;
//   - Classify: the kind, and the UDP or ESP offset it reports;
//   - Clamp: whether, and which bytes, it rewrote (a SYN with an MSS
//     option is clamped exactly where ParseFlow found TCP);
//   - Segment: with NEEDS_CSUM, GSO requires csum_start to be the L4
//     header it found, so it is tried with every offset: only ParseFlow's
//     may pass;
//   - Hash: equals the hash of the same flow rebuilt without extension
//     headers (the fixed IPv6 header naming ParseFlow's protocol, then the
//     bytes from ParseFlow's L4 on); fragments and refused packets hash
//     without any L4 bytes.

var hasher = entropy.NewHasher([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})

var (
	gsoOut = func() [][]byte {
		b := make([][]byte, 64)
		for i := range b {
			b[i] = make([]byte, 4096)
		}
		return b
	}()
	gsoSizes = make([]int, 64)
)

const mssMax = 536

func ether(pkt []byte) []byte {
	f := make([]byte, header.EthernetLen, header.EthernetLen+len(pkt))
	copy(f, []byte{0x02, 0, 0x5e, 0, 0x53, 2, 0x02, 0, 0x5e, 0, 0x53, 1})
	binary.BigEndian.PutUint16(f[12:], header.EtherTypeIPv6)
	return append(f, pkt...)
}

// flat is pkt's fixed header naming proto, followed by rest (no
// extension headers), with the payload length to match.
func flat(pkt []byte, proto byte, rest []byte) []byte {
	b := append(append([]byte(nil), pkt[:header.IPv6Len]...), rest...)
	b[6] = proto
	binary.BigEndian.PutUint16(b[4:6], uint16(len(rest)))
	return b
}

// agree checks one IPv6 packet (from its fixed header to the end of pkt).
func agree(t *testing.T, pkt []byte) {
	t.Helper()
	var f tenant.Flow
	ok := tenant.ParseFlow(pkt, &f)
	if len(pkt) >= header.IPv6Len && binary.BigEndian.Uint16(pkt[4:6]) == 0 {
		// Payload length 0: ParseFlow alone takes it as "all of the
		// buffer" (a GSO super-frame's); the others refuse it.
		return
	}
	whole := ok && !f.Fragment // a whole datagram with its upper layer
	ip, whole6 := pkt, false
	if len(pkt) >= header.IPv6Len {
		if end := header.IPv6Len + int(binary.BigEndian.Uint16(pkt[4:6])); end <= len(pkt) {
			ip, whole6 = pkt[:end], true // link-layer padding after the packet is not part of it
		}
	}
	what := fmt.Sprintf("ParseFlow ok=%v %+v", ok, f)

	// ESP's classifier.
	c := esp.Classify(pkt)
	switch c.Kind {
	case esp.KindOther:
		if ok && !f.NonFirst && f.Proto == header.ProtoESP && !f.Fragment && len(ip)-f.L4 >= 8 {
			t.Errorf("Classify: other, but %s is ESP", what)
		}
		if ok && f.HasL4 && f.Proto == header.ProtoUDP && f.DstPort == esp.IKEPort && !f.Fragment &&
			int(binary.BigEndian.Uint16(ip[f.L4+4:])) == len(ip)-f.L4 {
			t.Errorf("Classify: other, but %s is IKE", what)
		}
	case esp.KindESP:
		if !ok || f.Proto != header.ProtoESP || f.NonFirst || c.ESP != f.L4 {
			t.Errorf("Classify: ESP at %d, but %s", c.ESP, what)
		}
	case esp.KindFragment:
		if !ok || f.Proto != header.ProtoESP || !f.Fragment {
			t.Errorf("Classify: ESP fragment, but %s", what)
		}
	default: // UDP: IKE, ESP in UDP, keepalive
		if !ok || f.Proto != header.ProtoUDP || !f.HasL4 || c.UDP != f.L4 {
			t.Errorf("Classify: %v with UDP at %d, but %s", c.Kind, c.UDP, what)
		}
	}

	// The MSS clamp.
	clamped := append([]byte(nil), pkt...)
	changed := mss.Clamp(clamped, mssMax)
	if changed {
		if !whole || f.Proto != header.ProtoTCP {
			t.Errorf("Clamp rewrote a packet that is not whole TCP: %s", what)
		}
		for i := range pkt {
			if pkt[i] != clamped[i] && (i < f.L4 || i >= f.L4+int(pkt[f.L4+12]>>4)*4) {
				t.Errorf("Clamp rewrote byte %d, outside the TCP header ParseFlow found at %d", i, f.L4)
				break
			}
		}
	} else if whole && f.Proto == header.ProtoTCP {
		tcp := pkt[f.L4:]
		if tcp[13]&header.TCPFlagSYN != 0 && tcp[12]>>4 >= 6 && tcp[20] == 2 && tcp[21] == 4 &&
			binary.BigEndian.Uint16(tcp[22:]) > mssMax {
			t.Errorf("Clamp left the MSS option of the SYN ParseFlow found at %d", f.L4)
		}
	}

	// GSO: only ParseFlow's L4 may be csum_start.
	frame := ether(pkt)
	for l4 := header.IPv6Len; l4+header.TCPMinLen <= len(pkt); l4++ {
		h := offload.VnetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv6, GSOSize: 1000,
			CsumStart: uint16(header.EthernetLen + l4), CsumOffset: 16}
		_, d := gso.Segment(frame, h, 1500, gsoOut, 0, gsoSizes)
		switch {
		case d == drop.None && (!whole || f.Proto != header.ProtoTCP || l4 != f.L4):
			t.Errorf("Segment took TCP at %d, but %s", l4, what)
		case d == drop.BadVnetHdr && whole && f.Proto == header.ProtoTCP && l4 == f.L4:
			t.Errorf("Segment: bad-vnet-hdr for TCP at %d, where ParseFlow found it", l4)
		}
	}

	// The flow hash. (A frame too short for an IPv6 header is hashed as
	// a non-IP frame.)
	if len(pkt) < header.IPv6Len {
		return
	}
	got := hasher.Hash(frame, 7)
	var want uint64
	switch {
	case ok && f.Fragment && (f.NonFirst || !atomic(ip)):
		want = hasher.Hash(ether(flat(ip, f.Proto, nil)), 7)
	case ok:
		want = hasher.Hash(ether(flat(ip, f.Proto, ip[f.L4:])), 7)
	default:
		// Refused: the protocol hashed is the fixed header's, with no L4
		// bytes, when the length or the chain is refused; when only the
		// upper-layer header is short for ParseFlow, the upper layer's
		// with whatever of it is there.
		want = hasher.Hash(ether(flat(ip, ip[6], nil)), 7)
		if w := header.WalkIPv6(ip); whole6 && w.Err == header.ChainOK {
			if w.Frag.IsFragment() {
				want = hasher.Hash(ether(flat(ip, w.Proto, nil)), 7)
			} else {
				want = hasher.Hash(ether(flat(ip, w.Proto, ip[w.L4:])), 7)
			}
		}
	}
	if got != want {
		t.Errorf("entropy hash differs from the flow ParseFlow found: %s", what)
	}
}

// atomic reports an atomic fragment: a fragment header with offset 0 and
// M clear, which ParseFlow counts as Fragment and the flow hash does not.
func atomic(pkt []byte) bool {
	w := header.WalkIPv6(pkt)
	return w.Frag.Present() && !w.Frag.IsFragment()
}

// agreeCuts runs agree on pkt and on every truncation of it, both with
// the payload length left as it was (the packet is cut short) and set to
// what remains (a consistent, shorter packet).
func agreeCuts(t *testing.T, pkt []byte) {
	t.Helper()
	agree(t, pkt)
	for n := 0; n < len(pkt) && !t.Failed(); n++ {
		agree(t, pkt[:n:n])
		if n >= header.IPv6Len {
			c := append([]byte(nil), pkt[:n]...)
			binary.BigEndian.PutUint16(c[4:6], uint16(n-header.IPv6Len))
			agree(t, c)
		}
	}
}

func tcpSYN(mssOpt uint16) []byte {
	b := make([]byte, 24+8)
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 443)
	b[12] = 6 << 4
	b[13] = header.TCPFlagSYN
	b[20], b[21] = 2, 4
	binary.BigEndian.PutUint16(b[22:], mssOpt)
	return b
}

func tcpData() []byte {
	b := make([]byte, 20+64)
	binary.BigEndian.PutUint16(b[0:], 40001)
	binary.BigEndian.PutUint16(b[2:], 22)
	b[12] = 5 << 4
	b[13] = header.TCPFlagACK | header.TCPFlagPSH
	return b
}

func udp(dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], dport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func espBody() []byte { return []byte{0, 0, 0x10, 1, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9} }

func agreeCases() []struct {
	name string
	pkt  []byte
} {
	v6, ext, frag, chain := header.TestV6, header.TestExt, header.TestFrag, header.TestChain
	hbh, rt, dst := ext(header.ProtoHopByHop, 1), ext(header.ProtoRouting, 2), ext(header.ProtoDstOpts, 1)
	rtLeft := ext(header.ProtoRouting, 1)
	rtLeft[3] = 1
	natt := udp(esp.NATTPort, espBody())
	ike := udp(esp.IKEPort, make([]byte, 28))
	return []struct {
		name string
		pkt  []byte
	}{
		{"tcp syn", v6(header.ProtoTCP, tcpSYN(1460))},
		{"tcp syn behind hop-by-hop, routing, dstopts", v6(header.ProtoTCP, tcpSYN(1460), hbh, rt, dst)},
		{"tcp data behind hop-by-hop", v6(header.ProtoTCP, tcpData(), hbh)},
		{"tcp data behind a spent routing header", v6(header.ProtoTCP, tcpData(), rt)},
		{"tcp data behind a routing header with segments left", v6(header.ProtoTCP, tcpData(), rtLeft)},
		{"tcp syn at the chain limit", v6(header.ProtoTCP, tcpSYN(1460), chain(header.MaxExtHeaders)...)},
		{"tcp syn above the chain limit", v6(header.ProtoTCP, tcpSYN(1460), chain(header.MaxExtHeaders+1)...)},
		{"tcp data at the chain limit", v6(header.ProtoTCP, tcpData(), chain(header.MaxExtHeaders)...)},
		{"tcp data above the chain limit", v6(header.ProtoTCP, tcpData(), chain(header.MaxExtHeaders+1)...)},
		{"hop-by-hop not first", v6(header.ProtoTCP, tcpSYN(1460), dst, hbh)},
		{"tcp syn first fragment", v6(header.ProtoTCP, tcpSYN(1460), frag(0, true))},
		{"tcp syn atomic fragment", v6(header.ProtoTCP, tcpSYN(1460), frag(0, false))},
		{"tcp non-first fragment", v6(header.ProtoTCP, tcpSYN(1460), hbh, frag(1448, false))},
		{"non-first fragment naming dstopts", v6(header.ProtoDstOpts, tcpSYN(1460), frag(8, true))},
		{"two fragment headers", v6(header.ProtoTCP, tcpData(), frag(0, true), frag(0, true))},
		{"esp", v6(header.ProtoESP, espBody())},
		{"esp behind dstopts", v6(header.ProtoESP, espBody(), hbh, dst)},
		{"esp first fragment", v6(header.ProtoESP, espBody(), frag(0, true))},
		{"esp non-first fragment", v6(header.ProtoESP, espBody(), frag(16, false))},
		{"esp above the chain limit", v6(header.ProtoESP, espBody(), chain(header.MaxExtHeaders+1)...)},
		{"esp in udp", v6(header.ProtoUDP, natt)},
		{"esp in udp behind routing", v6(header.ProtoUDP, natt, rt)},
		{"ike behind hop-by-hop", v6(header.ProtoUDP, ike, hbh)},
		{"ike above the chain limit", v6(header.ProtoUDP, ike, chain(header.MaxExtHeaders+1)...)},
		{"ah", v6(header.ProtoAH, append([]byte{header.ProtoTCP, 4, 0, 0, 0, 0, 0x20, 0}, make([]byte, 16)...), hbh)},
		{"unknown next header", v6(253, make([]byte, 16), dst)},
		{"no next header", v6(header.ProtoNoNext, nil, hbh)},
		{"icmpv6 echo behind dstopts", v6(header.ProtoICMPv6, []byte{128, 0, 0, 0, 0, 1, 0, 1}, dst)},
	}
}

func TestLayersAgree(t *testing.T) {
	for _, tc := range agreeCases() {
		t.Run(tc.name, func(t *testing.T) { agreeCuts(t, tc.pkt) })
	}
}

// TestLayersAgreeSeesTheChain makes sure the test observes what it
// claims: ParseFlow finds TCP behind a chain at the limit and the clamp
// rewrites it, and one header more makes both refuse.
func TestLayersAgreeSeesTheChain(t *testing.T) {
	at := header.TestV6(header.ProtoTCP, tcpSYN(1460), header.TestChain(header.MaxExtHeaders)...)
	above := header.TestV6(header.ProtoTCP, tcpSYN(1460), header.TestChain(header.MaxExtHeaders+1)...)
	var f tenant.Flow
	if !tenant.ParseFlow(at, &f) || f.Proto != header.ProtoTCP || f.L4 != header.IPv6Len+8*header.MaxExtHeaders {
		t.Fatalf("at the limit: ParseFlow %+v", f)
	}
	if !mss.Clamp(bytes.Clone(at), mssMax) {
		t.Fatal("at the limit: Clamp left the SYN")
	}
	if tenant.ParseFlow(above, &f) || mss.Clamp(bytes.Clone(above), mssMax) {
		t.Fatalf("above the limit: ParseFlow or Clamp took the packet")
	}
}

// FuzzLayersAgree: agree on arbitrary IPv6 packets. The seeds are the
// table's packets and their truncations run by TestLayersAgree.
func FuzzLayersAgree(f *testing.F) {
	for _, tc := range agreeCases() {
		f.Add(tc.pkt)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > 2048 {
			return
		}
		if len(pkt) > 0 {
			pkt[0] = 0x60 | pkt[0]&0x0f // IPv6, as the frame's EtherType says
		}
		agree(t, pkt)
	})
}
