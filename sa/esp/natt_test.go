package esp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

// natSuites: an AEAD, a CBC cipher with HMAC, and null encryption.
var natSuites = []satest.Suite{
	{Enc: sa.EncAES128GCM, Integ: sa.IntegNone},
	{Enc: sa.EncAES128CBC, Integ: sa.IntegHMACSHA256},
	{Enc: sa.EncNull, Integ: sa.IntegHMACSHA1},
}

// natPair is newPair with RFC 3948 UDP encapsulation: the sender's port
// is one a NAT mapped, the receiver's 4500.
func natPair(t testing.TB, suite satest.Suite, mode sa.Mode, v6 bool) pair {
	p := newPair(t, suite, mode, v6, false)
	co, ci := p.out.ConfigWithKeys(), p.in.ConfigWithKeys()
	co.Encap = &sa.UDPEncap{SrcPort: 31337, DstPort: NATTPort}
	ci.Encap = &sa.UDPEncap{SrcPort: 31337, DstPort: NATTPort}
	return pair{satest.MustNew(co), satest.MustNew(ci)}
}

// refSum is RFC 1071's ones' complement sum, written plainly: the
// reference the checksums here are checked against.
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

// refPseudo is the TCP/UDP pseudo-header of the IP packet pkt whose upper
// layer is l4 bytes of protocol proto.
func refPseudo(pkt []byte, proto byte, l4 int) []byte {
	var b []byte
	if pkt[0]>>4 == 6 {
		b = append(b, pkt[8:40]...)
		b = append(b, byte(l4>>24), byte(l4>>16), byte(l4>>8), byte(l4), 0, 0, 0, proto)
	} else {
		b = append(b, pkt[12:20]...)
		b = append(b, 0, proto, byte(l4>>8), byte(l4))
	}
	return b
}

// l4Valid reports whether the upper-layer checksum of pkt (header of
// hdrLen bytes) verifies over pkt's own addresses.
func l4Valid(pkt []byte, hdrLen int, proto byte) bool {
	l4 := pkt[hdrLen:]
	return refSum(refPseudo(pkt, proto, len(l4)), l4) == 0xffff
}

// setLen4 sets an IPv4 header's total length and recomputes its checksum.
func setLen4(h []byte, total int) {
	binary.BigEndian.PutUint16(h[2:4], uint16(total))
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], ^refSum(h))
}

func ipHdrLen(pkt []byte) int {
	if pkt[0]>>4 == 6 {
		return 40
	}
	return int(pkt[0]&15) * 4
}

// TestUDPEncapRoundTrip checks every field of the ESP-in-UDP packets Encap
// makes, that Classify finds them, and that Decap restores the packet.
func TestUDPEncapRoundTrip(t *testing.T) {
	for _, suite := range natSuites {
		for _, mode := range []sa.Mode{sa.ModeTransport, sa.ModeTunnel} {
			for _, v6 := range []bool{true, false} {
				t.Run(fmt.Sprintf("%v/%v/v6=%v", suite, mode, v6), func(t *testing.T) {
					p := natPair(t, suite, mode, v6)
					var sc sa.Scratch
					for _, size := range []int{0, 1, 17, 100, 1400} {
						s, d := inner(v6)
						buf := make([]byte, Headroom+1500+Tailroom)
						n := satest.UDP(buf, Headroom, s, d, 1000, 2000, size)
						want := append([]byte(nil), buf[Headroom:Headroom+n]...)
						st, en, dr := Encap(p.out, &sc, buf, Headroom, n)
						if dr != drop.None {
							t.Fatalf("size %d: Encap: %v", size, dr)
						}
						if st < Headroom-MaxPrefix {
							t.Fatalf("Encap wrote %d bytes in front, MaxPrefix is %d", Headroom-st, MaxPrefix)
						}
						wire := append([]byte(nil), buf[st:en]...)
						if limit := len(want) + p.out.Overhead() + map[bool]int{false: 0, true: map[bool]int{false: 20, true: 40}[v6]}[mode == sa.ModeTunnel]; len(wire) > limit {
							t.Fatalf("size %d: %d bytes on the wire, Overhead allows %d", size, len(wire), limit)
						}
						checkUDPEncap(t, wire, p.out.SPI(), 31337, NATTPort)
						got, dr := decapCopy(p.in, &sc, wire)
						if dr != drop.None {
							t.Fatalf("size %d: Decap: %v", size, dr)
						}
						if mode == sa.ModeTransport && !v6 {
							// RFC 3948 §3.1.2: the IPv4 UDP checksum is zeroed.
							want[20+6], want[20+7] = 0, 0
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("size %d: round trip\n got %x\nwant %x", size, got, want)
						}
					}
				})
			}
		}
	}
}

// checkUDPEncap checks the outer headers of an ESP-in-UDP packet field by
// field with the reference checksum.
func checkUDPEncap(t *testing.T, wire []byte, spi uint32, sport, dport uint16) {
	t.Helper()
	v6 := wire[0]>>4 == 6
	hl := ipHdrLen(wire)
	if v6 {
		if wire[6] != 17 || int(binary.BigEndian.Uint16(wire[4:6]))+40 != len(wire) {
			t.Fatalf("IPv6 next header %d, payload length %d for %d bytes", wire[6], binary.BigEndian.Uint16(wire[4:6]), len(wire))
		}
	} else {
		if wire[9] != 17 || int(binary.BigEndian.Uint16(wire[2:4])) != len(wire) || refSum(wire[:hl]) != 0xffff {
			t.Fatalf("IPv4 protocol %d, total length %d for %d bytes, header sum %#x", wire[9], binary.BigEndian.Uint16(wire[2:4]), len(wire), refSum(wire[:hl]))
		}
	}
	u := wire[hl:]
	if binary.BigEndian.Uint16(u[0:2]) != sport || binary.BigEndian.Uint16(u[2:4]) != dport || int(binary.BigEndian.Uint16(u[4:6])) != len(u) {
		t.Fatalf("UDP header %x: want ports %d -> %d, length %d", u[:8], sport, dport, len(u))
	}
	ck := binary.BigEndian.Uint16(u[6:8])
	switch {
	case !v6 && ck != 0:
		t.Fatalf("IPv4 UDP checksum %#x, want 0 (RFC 3948 §2.1)", ck)
	case v6 && (ck == 0 || !l4Valid(wire, hl, 17)):
		t.Fatalf("IPv6 UDP checksum %#x does not verify", ck)
	}
	if binary.BigEndian.Uint32(u[8:12]) != spi {
		t.Fatalf("SPI %#x after the UDP header, want %#x", binary.BigEndian.Uint32(u[8:12]), spi)
	}
	c := Classify(wire)
	if c.Kind != KindESPInUDP || c.SPI != spi || c.UDP != hl || c.ESP != hl+8 || c.End != len(wire) || c.V6 != v6 {
		t.Fatalf("Classify = %+v", c)
	}
}

// decapCopy decapsulates a copy of wire and returns the clear packet.
func decapCopy(s *sa.SA, sc *sa.Scratch, wire []byte) ([]byte, drop.Reason) {
	buf := make([]byte, len(wire)+32)
	copy(buf[16:], wire)
	st, en, d := Decap(s, sc, buf, 16, len(wire))
	if d != drop.None {
		return nil, d
	}
	return append([]byte(nil), buf[st:en]...), drop.None
}

// TestEncapMismatch: an SA with Encap takes only ESP in UDP, one without
// only plain ESP (RFC 3948 is negotiated per SA).
func TestEncapMismatch(t *testing.T) {
	suite := natSuites[0]
	for _, v6 := range []bool{true, false} {
		plain := newPair(t, suite, sa.ModeTransport, v6, false)
		nat := natPair(t, suite, sa.ModeTransport, v6)
		var sc sa.Scratch
		for _, tc := range []struct {
			name    string
			out, in *sa.SA
		}{{"plain ESP to an Encap SA", plain.out, nat.in}, {"ESP in UDP to a plain SA", nat.out, plain.in}} {
			s, d := inner(v6)
			buf := make([]byte, Headroom+200+Tailroom)
			n := satest.UDP(buf, Headroom, s, d, 1, 2, 40)
			st, en, _ := Encap(tc.out, &sc, buf, Headroom, n)
			if _, dr := decapCopy(tc.in, &sc, buf[st:en]); dr != drop.EncapMismatch {
				t.Errorf("v6=%v %s: %v, want %v", v6, tc.name, dr, drop.EncapMismatch)
			}
		}
	}
}

// TestUDPEncapDecapDrops: what makes a UDP datagram not ESP in UDP.
func TestUDPEncapDecapDrops(t *testing.T) {
	p := natPair(t, natSuites[0], sa.ModeTransport, false)
	var sc sa.Scratch
	buf := make([]byte, Headroom+200+Tailroom)
	n := satest.UDP(buf, Headroom, satest.V4A, satest.V4B, 1, 2, 40)
	st, en, _ := Encap(p.out, &sc, buf, Headroom, n)
	wire := append([]byte(nil), buf[st:en]...)
	for _, tc := range []struct {
		name string
		edit func(w []byte) []byte
		want drop.Reason
	}{
		{"other port", func(w []byte) []byte { w[20+3] = 0x95; return w }, drop.Malformed},
		{"UDP length short", func(w []byte) []byte { w[20+5]--; return w }, drop.Malformed},
		{"non-ESP marker", func(w []byte) []byte { copy(w[28:32], []byte{0, 0, 0, 0}); return w }, drop.Malformed},
		{"UDP header only", func(w []byte) []byte {
			w = w[:28]
			binary.BigEndian.PutUint16(w[2:4], 28)
			binary.BigEndian.PutUint16(w[20+4:], 8)
			return w
		}, drop.Malformed},
		{"ICV", func(w []byte) []byte { w[len(w)-1] ^= 1; return w }, drop.AuthFailed},
		// The UDP checksum is not verified: the ICV covers what matters.
		// (Last: the only case that moves the replay window.)
		{"UDP checksum", func(w []byte) []byte { w[20+6] = 0x12; return w }, drop.None},
	} {
		w := tc.edit(append([]byte(nil), wire...))
		if _, d := decapCopy(p.in, &sc, w); d != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, d, tc.want)
		}
	}
}

// TestClassify: every kind, over both families.
func TestClassify(t *testing.T) {
	udp := func(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
		buf := make([]byte, 100+len(payload))
		n := satest.UDP(buf, 0, src, dst, sport, dport, len(payload))
		hl := 20
		if src.Is6() {
			hl = 40
		}
		copy(buf[hl+8:], payload)
		return buf[:n]
	}
	esp := func(v6 bool) []byte {
		s, d := inner(v6)
		p := udp(s, d, 1, 2, make([]byte, 16))
		if v6 {
			p[6] = 50
		} else {
			p[9] = 50
			setLen4(p[:20], len(p))
		}
		binary.BigEndian.PutUint32(p[ipHdrLen(p):], 0x1234)
		return p
	}
	ike := append([]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}, make([]byte, 20)...)
	marker := append([]byte{0, 0, 0, 0}, ike...)
	espUDP := append([]byte{0, 0, 0x10, 0}, make([]byte, 20)...)
	for _, v6 := range []bool{true, false} {
		s, d := inner(v6)
		hl := 20
		if v6 {
			hl = 40
		}
		frag := esp(v6)
		if v6 {
			// ESP behind a fragment header with M set.
			f := make([]byte, 0, len(frag)+8)
			f = append(f, frag[:40]...)
			f[6] = 44
			f = append(f, 50, 0, 0, 1, 0, 0, 0, 7)
			f = append(f, frag[40:]...)
			binary.BigEndian.PutUint16(f[4:6], uint16(len(f)-40))
			frag = f
		} else {
			frag[6] = 0x20 // MF
		}
		badLen := udp(s, d, 4500, 4500, espUDP)
		badLen[hl+5]++
		for _, tc := range []struct {
			name string
			pkt  []byte
			want Class
		}{
			{"plain ESP", esp(v6), Class{Kind: KindESP, ESP: hl, SPI: 0x1234}},
			{"ESP fragment", frag, Class{Kind: KindFragment}},
			{"ESP in UDP", udp(s, d, 31337, 4500, espUDP), Class{Kind: KindESPInUDP, UDP: hl, ESP: hl + 8, SPI: 0x1000}},
			{"IKE on 500", udp(s, d, 500, 500, ike), Class{Kind: KindIKE, UDP: hl, IKE: hl + 8}},
			{"IKE on 4500", udp(s, d, 4500, 4500, marker), Class{Kind: KindIKE, UDP: hl, IKE: hl + 12}},
			{"marker alone", udp(s, d, 4500, 4500, make([]byte, 4)), Class{Kind: KindIKE, UDP: hl, IKE: hl + 12}},
			{"keepalive", udp(s, d, 4500, 4500, []byte{0xff}), Class{Kind: KindKeepalive, UDP: hl}},
			{"from 4500 to another port", udp(s, d, 4500, 4501, espUDP), Class{Kind: KindOther, UDP: hl}},
			{"too short for ESP", udp(s, d, 4500, 4500, []byte{1, 2, 3, 4, 5}), Class{Kind: KindOther, UDP: hl}},
			{"one byte, not 0xff", udp(s, d, 4500, 4500, []byte{0xfe}), Class{Kind: KindOther, UDP: hl}},
			{"UDP length wrong", badLen, Class{Kind: KindOther}},
			{"other UDP", udp(s, d, 53, 53, ike), Class{Kind: KindOther, UDP: hl}},
		} {
			tc.want.V6, tc.want.End = v6, len(tc.pkt)
			if got := Classify(tc.pkt); got != tc.want {
				t.Errorf("v6=%v %s: %+v, want %+v", v6, tc.name, got, tc.want)
			}
			if got := Classify(tc.pkt[:len(tc.pkt)-1]); got.Kind != KindOther {
				t.Errorf("v6=%v %s cut by one byte: %v, want other", v6, tc.name, got.Kind)
			}
		}
	}
	if got := Classify(nil); got.Kind != KindOther {
		t.Errorf("empty: %v", got.Kind)
	}
}

// TestNATChecksumRepair: transport-mode ESP in UDP through a NAT that
// rewrote the sender's address. The guest must receive TCP, UDP and
// ICMPv6 checksums that verify over the addresses it sees (RFC 3948
// §3.1.2), IPv4 UDP with none.
func TestNATChecksumRepair(t *testing.T) {
	nat4 := netip.MustParseAddr("203.0.113.77")
	nat6 := netip.MustParseAddr("2001:db8:77::1")
	for _, v6 := range []bool{true, false} {
		for _, proto := range []byte{6, 17, 58} {
			if proto == 58 && !v6 {
				continue
			}
			t.Run(fmt.Sprintf("v6=%v/proto=%d", v6, proto), func(t *testing.T) {
				p := natPair(t, natSuites[1], sa.ModeTransport, v6)
				src, dst := inner(v6)
				pkt := l4Packet(src, dst, proto, []byte("payload with an odd length"))
				buf := make([]byte, Headroom+len(pkt)+Tailroom)
				copy(buf[Headroom:], pkt)
				var sc sa.Scratch
				st, en, d := Encap(p.out, &sc, buf, Headroom, len(pkt))
				if d != drop.None {
					t.Fatal(d)
				}
				wire := append([]byte(nil), buf[st:en]...)
				// The NAT rewrites the source address (and fixes what
				// it knows: the IPv4 header checksum).
				if v6 {
					a := nat6.As16()
					copy(wire[8:24], a[:])
				} else {
					a := nat4.As4()
					copy(wire[12:16], a[:])
					wire[10], wire[11] = 0, 0
					binary.BigEndian.PutUint16(wire[10:], ^refSum(wire[:20]))
				}
				got, d := decapCopy(p.in, &sc, wire)
				if d != drop.None {
					t.Fatal(d)
				}
				hl := ipHdrLen(got)
				l4 := got[hl:]
				field := map[byte]int{6: 16, 17: 6, 58: 2}[proto]
				a, b := append([]byte(nil), l4...), append([]byte(nil), pkt[hl:]...)
				a[field], a[field+1], b[field], b[field+1] = 0, 0, 0, 0
				if !bytes.Equal(a, b) {
					t.Fatalf("upper layer changed beyond its checksum:\n got %x\nwant %x", l4, pkt[hl:])
				}
				if proto == 17 && !v6 {
					if l4[6] != 0 || l4[7] != 0 {
						t.Fatalf("IPv4 UDP checksum %x, want zero", l4[6:8])
					}
					return
				}
				if !l4Valid(got, hl, proto) {
					t.Fatalf("checksum does not verify over the NAT's address: %x", got)
				}
				if proto == 17 && l4[6] == 0 && l4[7] == 0 {
					t.Fatal("IPv6 UDP checksum zero")
				}
			})
		}
	}
}

// l4Packet builds an IP packet from src to dst carrying a TCP (20-byte
// header), UDP or ICMPv6 echo header and payload, with a valid checksum.
func l4Packet(src, dst netip.Addr, proto byte, payload []byte) []byte {
	var l4 []byte
	switch proto {
	case 6:
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 443)
		binary.BigEndian.PutUint32(l4[4:], 0x01020304)
		l4[12], l4[13] = 5<<4, 0x18
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case 17:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 53)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(payload)))
	case 58:
		l4 = []byte{128, 0, 0, 0, 0, 1, 0, 1}
	}
	l4 = append(l4, payload...)
	var pkt []byte
	if src.Is4() {
		pkt = make([]byte, 20)
		pkt[0], pkt[8], pkt[9] = 0x45, 64, proto
		a, b := src.As4(), dst.As4()
		copy(pkt[12:], a[:])
		copy(pkt[16:], b[:])
		setLen4(pkt, 20+len(l4))
	} else {
		pkt = make([]byte, 40)
		pkt[0], pkt[6], pkt[7] = 0x60, proto, 64
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(l4)))
		a, b := src.As16(), dst.As16()
		copy(pkt[8:], a[:])
		copy(pkt[24:], b[:])
	}
	pkt = append(pkt, l4...)
	field := map[byte]int{6: 16, 17: 6, 58: 2}[proto]
	hl := len(pkt) - len(l4)
	c := ^refSum(refPseudo(pkt, proto, len(l4)), pkt[hl:])
	if c == 0 && proto == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[hl+field:], c)
	return pkt
}

// TestUDPEncapAllocs: ESP in UDP, both families and modes, and Classify
// allocate nothing.
func TestUDPEncapAllocs(t *testing.T) {
	for _, mode := range []sa.Mode{sa.ModeTransport, sa.ModeTunnel} {
		for _, v6 := range []bool{true, false} {
			p := natPair(t, natSuites[0], mode, v6)
			var sc sa.Scratch
			buf := make([]byte, Headroom+1500+Tailroom)
			s, d := inner(v6)
			allocs := testing.AllocsPerRun(200, func() {
				n := satest.UDP(buf, Headroom, s, d, 1, 2, 1000)
				st, en, dr := Encap(p.out, &sc, buf, Headroom, n)
				if dr != drop.None {
					t.Fatal(dr)
				}
				if c := Classify(buf[st:en]); c.Kind != KindESPInUDP {
					t.Fatal(c.Kind)
				}
				if _, _, dr := Decap(p.in, &sc, buf, st, en-st); dr != drop.None {
					t.Fatal(dr)
				}
			})
			if allocs != 0 {
				t.Errorf("%v v6=%v: %v allocations per packet", mode, v6, allocs)
			}
		}
	}
}
