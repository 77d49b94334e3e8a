package tenant

import (
	"github.com/vifsec/vifsec/header"

	"encoding/binary"
	"net/netip"
	"testing"
)

// Packet builders. Addresses are documentation addresses (RFC 3849,
// RFC 5737); lengths and next-header chains are filled in correctly so a
// test breaks only what it means to break.

func tcpHdr(sport, dport uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4 // data offset
	return b
}

func udpHdr(sport, dport uint16, payload int) []byte {
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	return b
}

func icmpHdr(typ, code uint8) []byte { return []byte{typ, code, 0, 0, 0, 0, 0, 0} }

// ext6 is an IPv6 extension header; its next-header byte is set by ipv6.
type ext6 struct {
	proto uint8
	body  []byte
}

// optsHdr returns a hop-by-hop or destination options header with n*8
// bytes in all, padded with PadN.
func optsHdr(proto uint8, n int) ext6 {
	b := make([]byte, n*8)
	b[1] = uint8(n - 1)
	b[2], b[3] = 1, uint8(n*8-4) // PadN
	return ext6{proto, b}
}

func routingHdr() ext6 {
	b := make([]byte, 24) // type 0-style, one address slot
	b[1] = 2
	return ext6{header.ProtoRouting, b}
}

func fragHdr(offset uint16, more bool) ext6 {
	b := make([]byte, 8)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0x12345678)
	return ext6{header.ProtoFragment, b}
}

func ipv6(src, dst string, hop uint8, exts []ext6, proto uint8, l4 []byte) []byte {
	b := make([]byte, 40)
	b[0] = 6 << 4
	b[7] = hop
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	nh := &b[6]
	for _, e := range exts {
		*nh = e.proto
		off := len(b)
		b = append(b, e.body...)
		nh = &b[off]
	}
	*nh = proto
	b = append(b, l4...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

// ipv4 builds an IPv4 packet with options (a multiple of 4 bytes) and the
// given fragment offset (in 8-byte units) and MF flag.
func ipv4(src, dst string, ttl uint8, options []byte, fragOff uint16, mf bool, proto uint8, l4 []byte) []byte {
	hl := 20 + len(options)
	b := make([]byte, hl, hl+len(l4))
	b[0] = 4<<4 | uint8(hl/4)
	frag := fragOff
	if mf {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8], b[9] = ttl, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], options)
	b = append(b, l4...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

var (
	v6a, v6b = "2001:db8:1::5", "2002:db8:1::7"
	v4a, v4b = "192.0.2.10", "198.51.100.20"
	nops     = []byte{1, 1, 1, 0} // NOP NOP NOP EOL
)

func mkFlow(src, dst string, proto uint8, sport, dport uint16, typ, hop uint8, hasL4, frag bool) Flow {
	return Flow{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: proto,
		SrcPort: sport, DstPort: dport, ICMPType: typ, HopLimit: hop, HasL4: hasL4, Fragment: frag}
}

func nonFirst(f Flow) Flow {
	f.NonFirst = true
	return f
}

func TestParseFlow(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want Flow
	}{
		{
			name: "ipv6 tcp (seed selectors)",
			pkt:  ipv6(v6a, v6b, 64, nil, header.ProtoTCP, tcpHdr(23, 25)),
			want: mkFlow(v6a, v6b, header.ProtoTCP, 23, 25, 0, 64, true, false),
		},
		{
			name: "ipv6 udp",
			pkt:  ipv6(v6a, v6b, 64, nil, header.ProtoUDP, udpHdr(500, 4500, 3)),
			want: mkFlow(v6a, v6b, header.ProtoUDP, 500, 4500, 0, 64, true, false),
		},
		{
			name: "ipv6 hop-by-hop + fragment (first) + tcp",
			pkt:  ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoHopByHop, 1), fragHdr(0, true)}, header.ProtoTCP, tcpHdr(1024, 443)),
			want: mkFlow(v6a, v6b, header.ProtoTCP, 1024, 443, 0, 64, true, true),
		},
		{
			name: "ipv6 hop-by-hop + fragment (non-first): no ports",
			pkt:  ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoHopByHop, 2), fragHdr(185, false)}, header.ProtoTCP, make([]byte, 16)),
			want: nonFirst(mkFlow(v6a, v6b, header.ProtoTCP, 0, 0, 0, 64, false, true)),
		},
		{
			name: "ipv6 every extension header",
			pkt: ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoHopByHop, 1), optsHdr(header.ProtoDstOpts, 3), routingHdr(),
				fragHdr(0, false), optsHdr(header.ProtoDstOpts, 1)}, header.ProtoUDP, udpHdr(53, 5353, 0)),
			want: mkFlow(v6a, v6b, header.ProtoUDP, 53, 5353, 0, 64, true, true),
		},
		{
			name: "ipv6 icmpv6 neighbour solicitation",
			pkt:  ipv6("fe80::1", "ff02::1:ff00:7", 255, nil, header.ProtoICMPv6, icmpHdr(135, 0)),
			want: mkFlow("fe80::1", "ff02::1:ff00:7", header.ProtoICMPv6, 0, 0, 135, 255, true, false),
		},
		{
			name: "ipv6 esp is an upper layer without ports",
			pkt:  ipv6(v6a, v6b, 64, nil, 50, make([]byte, 32)),
			want: mkFlow(v6a, v6b, 50, 0, 0, 0, 64, false, false),
		},
		{
			name: "ipv6 no next header",
			pkt:  ipv6(v6a, v6b, 64, nil, 59, nil),
			want: mkFlow(v6a, v6b, 59, 0, 0, 0, 64, false, false),
		},
		{
			name: "ipv6 payload length 0 (GSO / jumbo) uses the buffer",
			pkt: func() []byte {
				b := ipv6(v6a, v6b, 64, nil, header.ProtoTCP, tcpHdr(23, 25))
				b[4], b[5] = 0, 0
				return b
			}(),
			want: mkFlow(v6a, v6b, header.ProtoTCP, 23, 25, 0, 64, true, false),
		},
		{
			name: "ipv6 trailing padding ignored",
			pkt:  append(ipv6(v6a, v6b, 64, nil, header.ProtoUDP, udpHdr(1, 2, 0)), 0xde, 0xad),
			want: mkFlow(v6a, v6b, header.ProtoUDP, 1, 2, 0, 64, true, false),
		},
		{
			name: "ipv4 tcp",
			pkt:  ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoTCP, tcpHdr(40000, 80)),
			want: mkFlow(v4a, v4b, header.ProtoTCP, 40000, 80, 0, 64, true, false),
		},
		{
			name: "ipv4 with options",
			pkt:  ipv4(v4a, v4b, 32, append(nops, nops...), 0, false, header.ProtoUDP, udpHdr(68, 67, 10)),
			want: mkFlow(v4a, v4b, header.ProtoUDP, 68, 67, 0, 32, true, false),
		},
		{
			name: "ipv4 icmp echo",
			pkt:  ipv4(v4a, "203.0.113.1", 64, nil, 0, false, header.ProtoICMP, icmpHdr(8, 0)),
			want: mkFlow(v4a, "203.0.113.1", header.ProtoICMP, 0, 0, 8, 64, true, false),
		},
		{
			name: "ipv4 first fragment",
			pkt:  ipv4(v4a, v4b, 64, nil, 0, true, header.ProtoTCP, tcpHdr(1, 2)),
			want: mkFlow(v4a, v4b, header.ProtoTCP, 1, 2, 0, 64, true, true),
		},
		{
			name: "ipv4 non-first fragment: no ports",
			pkt:  ipv4(v4a, v4b, 64, nil, 3, false, header.ProtoTCP, make([]byte, 4)),
			want: nonFirst(mkFlow(v4a, v4b, header.ProtoTCP, 0, 0, 0, 64, false, true)),
		},
		{
			name: "ipv4 ethernet padding ignored",
			pkt:  append(ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoUDP, udpHdr(9, 10, 0)), make([]byte, 18)...),
			want: mkFlow(v4a, v4b, header.ProtoUDP, 9, 10, 0, 64, true, false),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flow
			if !ParseFlow(tt.pkt, &f) {
				t.Fatalf("ParseFlow(% x) = false", tt.pkt)
			}
			// L4 is checked against the bytes, then left out of the
			// comparison: the port (or type) read must be the one there.
			switch {
			case f.NonFirst && f.L4 != 0:
				t.Errorf("non-first fragment with L4 %d", f.L4)
			case f.HasL4 && (f.Proto == header.ProtoTCP || f.Proto == header.ProtoUDP) &&
				binary.BigEndian.Uint16(tt.pkt[f.L4:]) != f.SrcPort:
				t.Errorf("L4 %d does not hold source port %d", f.L4, f.SrcPort)
			case f.HasL4 && (f.Proto == header.ProtoICMP || f.Proto == header.ProtoICMPv6) && f.ICMPType != tt.pkt[f.L4]:
				t.Errorf("L4 %d does not hold ICMP type %d", f.L4, f.ICMPType)
			}
			f.L4 = 0
			if f != tt.want {
				t.Fatalf("ParseFlow:\n got %+v\nwant %+v", f, tt.want)
			}
		})
	}
}

func TestParseFlowMalformed(t *testing.T) {
	tcp6 := ipv6(v6a, v6b, 64, nil, header.ProtoTCP, tcpHdr(23, 25))
	set := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	tests := []struct {
		name string
		pkt  []byte
	}{
		{name: "empty", pkt: nil},
		{name: "version 5", pkt: set(tcp6, 0, 5<<4)},
		{name: "ipv6 payload length beyond buffer", pkt: set(tcp6, 5, 61)},
		{name: "ipv6 truncated header", pkt: tcp6[:39]},
		{name: "ipv6 hop-by-hop not first", pkt: ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoDstOpts, 1), optsHdr(header.ProtoHopByHop, 1)}, header.ProtoTCP, tcpHdr(1, 2))},
		{name: "ipv6 extension length beyond packet", pkt: ipv6(v6a, v6b, 64, []ext6{{header.ProtoDstOpts, []byte{0, 9, 1, 4, 0, 0, 0, 0}}}, header.ProtoTCP, tcpHdr(1, 2))},
		{name: "ipv6 tcp data offset too small", pkt: set(tcp6, 40+12, 4<<4)},
		{name: "ipv6 tcp data offset beyond packet", pkt: set(tcp6, 40+12, 6<<4)},
		{name: "ipv6 first fragment without whole tcp header", pkt: ipv6(v6a, v6b, 64, []ext6{fragHdr(0, true)}, header.ProtoTCP, make([]byte, 8))},
		{name: "ipv6 icmpv6 too short", pkt: ipv6(v6a, v6b, 255, nil, header.ProtoICMPv6, []byte{135, 0, 0})},
		{name: "ipv4 IHL below 5", pkt: set(ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoUDP, udpHdr(1, 2, 0)), 0, 0x44)},
		{name: "ipv4 IHL beyond total length", pkt: set(ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoUDP, udpHdr(1, 2, 0)), 0, 0x4f)},
		{name: "ipv4 total length beyond buffer", pkt: set(ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoUDP, udpHdr(1, 2, 0)), 3, 29)},
		{name: "ipv4 total length below header", pkt: set(ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoUDP, udpHdr(1, 2, 0)), 3, 19)},
		{name: "ipv4 tiny first fragment (RFC 1858)", pkt: ipv4(v4a, v4b, 64, nil, 0, true, header.ProtoTCP, tcpHdr(1, 2)[:8])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flow
			if ParseFlow(tt.pkt, &f) {
				t.Fatalf("ParseFlow(% x) = true: %+v", tt.pkt, f)
			}
		})
	}
}

// TestParseFlowTruncated cuts every well-formed test packet at every
// length: the length fields then disagree with the buffer, so each cut is
// malformed (and must not panic).
func TestParseFlowTruncated(t *testing.T) {
	pkts := [][]byte{
		ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoHopByHop, 1), fragHdr(0, true), optsHdr(header.ProtoDstOpts, 2)}, header.ProtoTCP, tcpHdr(23, 25)),
		ipv6(v6a, v6b, 255, []ext6{routingHdr()}, header.ProtoICMPv6, icmpHdr(136, 0)),
		ipv4(v4a, v4b, 64, append(nops, nops...), 0, false, header.ProtoTCP, tcpHdr(23, 25)),
		ipv4(v4a, v4b, 64, nil, 0, false, header.ProtoICMP, icmpHdr(0, 0)),
	}
	for _, pkt := range pkts {
		var f Flow
		if !ParseFlow(pkt, &f) {
			t.Fatalf("whole packet % x does not parse", pkt)
		}
		for n := 0; n < len(pkt); n++ {
			if ParseFlow(pkt[:n], &f) {
				t.Errorf("ParseFlow(first %d of %d bytes) = true: %+v", n, len(pkt), f)
			}
		}
	}
}

func TestIsNeighborDiscovery(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{name: "router solicitation", pkt: ipv6("fe80::1", "ff02::2", 255, nil, header.ProtoICMPv6, icmpHdr(133, 0)), want: true},
		{name: "neighbour solicitation", pkt: ipv6("fe80::1", "ff02::1:ff00:7", 255, nil, header.ProtoICMPv6, icmpHdr(135, 0)), want: true},
		{name: "neighbour advertisement global", pkt: ipv6(v6a, v6b, 255, nil, header.ProtoICMPv6, icmpHdr(136, 0)), want: true},
		{name: "redirect", pkt: ipv6("fe80::1", v6a, 255, nil, header.ProtoICMPv6, icmpHdr(137, 0)), want: true},
		{name: "echo request", pkt: ipv6(v6a, v6b, 255, nil, header.ProtoICMPv6, icmpHdr(128, 0))},
		{name: "type 138 (router renumbering)", pkt: ipv6(v6a, v6b, 255, nil, header.ProtoICMPv6, icmpHdr(138, 0))},
		{name: "routed (hop limit 254)", pkt: ipv6(v6a, v6b, 254, nil, header.ProtoICMPv6, icmpHdr(135, 0))},
		{name: "fragmented (RFC 6980)", pkt: ipv6(v6a, v6b, 255, []ext6{fragHdr(0, false)}, header.ProtoICMPv6, icmpHdr(135, 0))},
		{name: "icmpv4 with the same type", pkt: ipv4(v4a, v4b, 255, nil, 0, false, header.ProtoICMP, icmpHdr(135, 0))},
		{name: "udp", pkt: ipv6(v6a, v6b, 255, nil, header.ProtoUDP, udpHdr(135, 135, 0))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flow
			if !ParseFlow(tt.pkt, &f) {
				t.Fatal("ParseFlow = false")
			}
			if got := IsNeighborDiscovery(&f); got != tt.want {
				t.Fatalf("IsNeighborDiscovery(%+v) = %v, want %v", f, got, tt.want)
			}
		})
	}
}

func TestParseFlowAllocs(t *testing.T) {
	pkts := [][]byte{
		ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoHopByHop, 1), fragHdr(0, true)}, header.ProtoTCP, tcpHdr(23, 25)),
		ipv4(v4a, v4b, 64, nops, 0, false, header.ProtoUDP, udpHdr(1, 2, 0)),
	}
	var f Flow
	for _, pkt := range pkts {
		if n := testing.AllocsPerRun(1000, func() {
			if !ParseFlow(pkt, &f) || IsNeighborDiscovery(&f) {
				panic("test packet does not parse")
			}
		}); n != 0 {
			t.Errorf("ParseFlow allocates %v times per packet, want 0", n)
		}
	}
}

func BenchmarkParseFlow(b *testing.B) {
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"ipv6-tcp", ipv6(v6a, v6b, 64, nil, header.ProtoTCP, tcpHdr(23, 25))},
		{"ipv6-hbh-frag-tcp", ipv6(v6a, v6b, 64, []ext6{optsHdr(header.ProtoHopByHop, 1), fragHdr(0, true)}, header.ProtoTCP, tcpHdr(23, 25))},
		{"ipv4-options-udp", ipv4(v4a, v4b, 64, nops, 0, false, header.ProtoUDP, udpHdr(1, 2, 0))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.pkt)))
			var f Flow
			for b.Loop() {
				if !ParseFlow(bc.pkt, &f) {
					b.Fatal("does not parse")
				}
			}
		})
	}
}
