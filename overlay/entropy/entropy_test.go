package entropy

import (
	"github.com/vifsec/vifsec/header"

	"encoding/binary"
	"testing"
)

// TestSipHashVectors checks sipHash24 against the SipHash paper's
// appendix vectors (key 00…0f, message 00…n-1) and OpenSSL's SIPHASH MAC
// (`openssl mac -macopt hexkey:000102030405060708090a0b0c0d0e0f
// -macopt size:8 SIPHASH`), output read little-endian.
func TestSipHashVectors(t *testing.T) {
	k0, k1 := uint64(0x0706050403020100), uint64(0x0f0e0d0c0b0a0908)
	for _, tc := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x74f839c593dc67fd},
		{15, 0xa129ca6149be45e5},
		{37, 0x027990f029623981}, // OpenSSL
	} {
		msg := make([]byte, tc.n)
		for i := range msg {
			msg[i] = byte(i)
		}
		if got := sipHash24(k0, k1, msg); got != tc.want {
			t.Errorf("SipHash-2-4(%d bytes) = %#016x, want %#016x", tc.n, got, tc.want)
		}
	}
}

var testKey = [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

func ether(etype uint16, l3 []byte) []byte {
	f := make([]byte, 14, 14+len(l3))
	copy(f, []byte{0x02, 0, 0x5e, 0x10, 1, 2, 0x02, 0, 0x5e, 0x10, 1, 1})
	binary.BigEndian.PutUint16(f[12:14], etype)
	return append(f, l3...)
}

// ip4 is an IPv4 packet 192.0.2.1 → 192.0.2.2 with proto and the given
// L4 bytes.
func ip4(proto byte, l4 []byte) []byte {
	h := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2}
	binary.BigEndian.PutUint16(h[2:4], uint16(20+len(l4)))
	return append(h, l4...)
}

// ip6 is an IPv6 packet 2001:db8:1::1 → 2001:db8:1::2.
func ip6(next byte, l4 []byte) []byte {
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, next, 64
	binary.BigEndian.PutUint16(h[4:6], uint16(len(l4)))
	copy(h[8:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: 1})
	copy(h[24:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: 2})
	return append(h, l4...)
}

func ports(sp, dp uint16, rest ...byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, sp)
	b = binary.BigEndian.AppendUint16(b, dp)
	return append(b, rest...)
}

func esp(spi, seq uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, spi)
	b = binary.BigEndian.AppendUint32(b, seq)
	return append(b, make([]byte, 32)...)
}

// TestFlows checks what is and is not part of a flow: pairs of frames
// that must map to the same port, and pairs that must not (with a fixed
// key these are deterministic; a collision of two 64-bit hashes would be
// a 2^-64 accident).
func TestFlows(t *testing.T) {
	h := NewHasher(testKey)
	v4 := func(proto byte, l4 []byte) []byte { return ether(header.EtherTypeIPv4, ip4(proto, l4)) }
	v6 := func(next byte, l4 []byte) []byte { return ether(header.EtherTypeIPv6, ip6(next, l4)) }
	frag4 := func(f []byte, off uint16) []byte {
		f[14+6], f[14+7] = byte(off>>8), byte(off)
		return f
	}
	tagged := func(f []byte) []byte {
		g := append([]byte(nil), f[:12]...)
		g = append(g, 0x81, 0x00, 0x00, 0x64)
		return append(g, f[12:]...)
	}
	natt := func(sp uint16, spi, seq uint32) []byte {
		return v4(header.ProtoUDP, append(ports(sp, 4500, 0, 48, 0, 0), esp(spi, seq)...))
	}
	for _, tc := range []struct {
		name string
		a, b []byte
		same bool
	}{
		{"tcp same 5-tuple, other payload", v4(header.ProtoTCP, ports(40000, 443, 1, 2, 3)), v4(header.ProtoTCP, ports(40000, 443, 9, 9, 9)), true},
		{"tcp other source port", v4(header.ProtoTCP, ports(40000, 443)), v4(header.ProtoTCP, ports(40001, 443)), false},
		{"tcp vs udp same ports", v4(header.ProtoTCP, ports(40000, 443)), v4(header.ProtoUDP, ports(40000, 443)), false},
		{"tcp6 other destination port", v6(header.ProtoTCP, ports(40000, 443)), v6(header.ProtoTCP, ports(40000, 444)), false},
		{"sctp ports count", v4(header.ProtoSCTP, ports(1, 2)), v4(header.ProtoSCTP, ports(1, 3)), false},
		{"esp same SPI, other sequence number", v4(header.ProtoESP, esp(0x1000, 1)), v4(header.ProtoESP, esp(0x1000, 2)), true},
		{"esp sequential SPIs", v4(header.ProtoESP, esp(0x1000, 1)), v4(header.ProtoESP, esp(0x1001, 1)), false},
		{"esp SPI top bit", v4(header.ProtoESP, esp(0x1000, 1)), v4(header.ProtoESP, esp(0x80001000, 1)), false},
		{"esp6 sequential SPIs", v6(header.ProtoESP, esp(0x1000, 1)), v6(header.ProtoESP, esp(0x1001, 1)), false},
		{"ah SPI", v4(header.ProtoAH, append([]byte{4, 4, 0, 0}, esp(7, 1)...)), v4(header.ProtoAH, append([]byte{4, 4, 0, 0}, esp(8, 1)...)), false},
		{"esp-in-udp: the SPI, not the NAT's port", natt(4500, 0x1000, 1), natt(61000, 0x1000, 2), true},
		{"esp-in-udp: SPIs differ", natt(4500, 0x1000, 1), natt(4500, 0x1001, 1), false},
		{"ike on 4500 (zero marker): ports", v4(header.ProtoUDP, ports(4500, 4500, 0, 48, 0, 0, 0, 0, 0, 0, 1)), v4(header.ProtoUDP, ports(4501, 4500, 0, 48, 0, 0, 0, 0, 0, 0, 1)), false},
		{"ipv4 fragments of one datagram", frag4(v4(header.ProtoUDP, ports(1, 2)), 0x2000), frag4(v4(header.ProtoUDP, ports(9, 9)), 0x00b9), true},
		{"ipv4 first fragment vs other flow's", frag4(v4(header.ProtoUDP, ports(1, 2)), 0x2000), frag4(v4(header.ProtoTCP, ports(1, 2)), 0x2000), false},
		{"ipv6 fragments of one datagram", v6(header.ProtoFragment, append([]byte{header.ProtoUDP, 0, 0, 1, 0, 0, 0, 7}, ports(1, 2)...)), v6(header.ProtoFragment, []byte{header.ProtoUDP, 0, 0x05, 0x00, 0, 0, 0, 7}), true},
		{"ipv6 destination options skipped", v6(header.ProtoDstOpts, append([]byte{header.ProtoTCP, 0, 1, 4, 0, 0, 0, 0}, ports(1, 2)...)), v6(header.ProtoTCP, ports(1, 2)), true},
		{"ipv6 hop-by-hop skipped, ports differ", v6(header.ProtoHopByHop, append([]byte{header.ProtoTCP, 0, 1, 4, 0, 0, 0, 0}, ports(1, 2)...)), v6(header.ProtoTCP, ports(1, 3)), false},
		{"one 802.1Q tag looked through", tagged(v4(header.ProtoTCP, ports(1, 2))), v4(header.ProtoTCP, ports(1, 2)), true},
		{"icmp: addresses and protocol", v4(1, []byte{8, 0, 0, 0, 0, 1, 0, 1}), v4(1, []byte{8, 0, 0, 0, 0, 2, 0, 2}), true},
		{"short tcp header: addresses and protocol", v4(header.ProtoTCP, []byte{1, 2}), v4(header.ProtoTCP, []byte{3, 4}), true},
		{"arp: MACs and EtherType", ether(0x0806, []byte{0, 1, 8, 0, 6, 4, 0, 1}), ether(0x0806, []byte{0, 1, 8, 0, 6, 4, 0, 2}), true},
		{"arp vs ipv4 of same MACs", ether(0x0806, nil), ether(header.EtherTypeIPv4, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ha, hb := h.Hash(tc.a, 42), h.Hash(tc.b, 42)
			if (ha == hb) != tc.same {
				t.Errorf("Hash equal = %v, want %v (%#x, %#x)", ha == hb, tc.same, ha, hb)
			}
		})
	}
	// The VNI is part of every flow.
	f := v4(header.ProtoESP, esp(1, 1))
	if h.Hash(f, 42) == h.Hash(f, 43) {
		t.Error("VNI not part of the flow")
	}
	// And the key is: another host's hasher puts flows elsewhere.
	other := NewHasher([16]byte{15: 1})
	if h.Hash(f, 42) == other.Hash(f, 42) {
		t.Error("key not part of the hash")
	}
}

func TestSourcePortRange(t *testing.T) {
	h := NewHasher(RandomKey())
	lo, hi := uint16(PortMax), uint16(0)
	for spi := range uint32(200000) {
		f := ether(header.EtherTypeIPv4, ip4(header.ProtoESP, esp(spi, 1)))
		p := h.SourcePort(f, 1)
		lo, hi = min(lo, p), max(hi, p)
	}
	if lo < PortMin || lo > PortMin+10 || hi < PortMax-10 {
		t.Errorf("ports span [%d, %d], want all of [%d, %d]", lo, hi, PortMin, PortMax)
	}
}

// TestNoPanic feeds every prefix of some frames (and garbage) to
// SourcePort: a short or lying frame must never be read out of range.
func TestNoPanic(t *testing.T) {
	h := NewHasher(testKey)
	for _, f := range [][]byte{
		ether(header.EtherTypeIPv4, ip4(header.ProtoUDP, append(ports(4500, 4500, 0, 48, 0, 0), esp(1, 1)...))),
		ether(header.EtherTypeIPv6, ip6(header.ProtoHopByHop, append([]byte{header.ProtoRouting, 0, 1, 4, 0, 0, 0, 0, header.ProtoFragment, 0, 0, 0, 0, 0, 0, 0, header.ProtoESP, 0, 0, 0, 1, 2, 3, 4}, esp(1, 1)...))),
		ether(header.EtherTypeIPv6, ip6(header.ProtoHopByHop, []byte{header.ProtoHopByHop, 200, 0, 0, 0, 0, 0, 0})),
		ether(header.EtherTypeIPv4, ip4(header.ProtoAH, []byte{1, 2, 3, 4, 5, 6, 7, 8})),
		ether(header.EtherTypeIPv4, []byte{0x4f, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}),
	} {
		for i := range len(f) + 1 {
			_ = h.SourcePort(f[:i], 7)
		}
	}
}

func TestAllocs(t *testing.T) {
	h := NewHasher(testKey)
	f := ether(header.EtherTypeIPv6, ip6(header.ProtoTCP, ports(1, 2)))
	if n := testing.AllocsPerRun(100, func() { _ = h.SourcePort(f, 1) }); n != 0 {
		t.Errorf("SourcePort: %v allocs, want 0", n)
	}
}

func FuzzSourcePort(f *testing.F) {
	f.Add(ether(header.EtherTypeIPv4, ip4(header.ProtoTCP, ports(1, 2))), uint32(1))
	f.Add(ether(header.EtherTypeIPv6, ip6(header.ProtoDstOpts, []byte{header.ProtoESP, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})), uint32(42))
	h := NewHasher(testKey)
	f.Fuzz(func(t *testing.T, frame []byte, vni uint32) {
		p := h.SourcePort(frame, vni)
		if p < PortMin {
			t.Fatalf("port %d", p)
		}
		if p != h.SourcePort(frame, vni) {
			t.Fatal("not deterministic")
		}
	})
}

func BenchmarkSourcePort(b *testing.B) {
	h := NewHasher(testKey)
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"tcp4", ether(header.EtherTypeIPv4, ip4(header.ProtoTCP, ports(1, 2)))},
		{"esp4", ether(header.EtherTypeIPv4, ip4(header.ProtoESP, esp(1, 1)))},
		{"tcp6", ether(header.EtherTypeIPv6, ip6(header.ProtoTCP, ports(1, 2)))},
		{"esp6", ether(header.EtherTypeIPv6, ip6(header.ProtoESP, esp(1, 1)))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = h.SourcePort(bc.frame, 42)
			}
		})
	}
}
