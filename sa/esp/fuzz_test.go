package esp_test

import (
	"bytes"
	"encoding/binary"
	"github.com/vifsec/vifsec/drop"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/satest"
)

// fuzzSuites are the transforms the fuzz targets use: both AEAD families,
// both CBC ciphers and null encryption, with each ICV length.
var fuzzSuites = []satest.Suite{
	{Enc: sa.EncAES128GCM, Integ: sa.IntegNone},
	{Enc: sa.EncChaCha20Poly1305, Integ: sa.IntegNone},
	{Enc: sa.EncAES256CBC, Integ: sa.IntegHMACSHA256},
	{Enc: sa.Enc3DESCBC, Integ: sa.IntegHMACSHA1},
	{Enc: sa.EncNull, Integ: sa.IntegHMACSHA512},
	{Enc: sa.EncAES256GCM, Integ: sa.IntegNone},
	{Enc: sa.EncAES128CBC, Integ: sa.IntegHMACSHA384},
}

// fuzzSel decodes a selector byte, valid for every value:
//
//	bits 0-2  suite (modulo len(fuzzSuites))
//	bit  3    tunnel mode
//	bit  4    IPv6 SA endpoints
//	bit  5    ESN
//	bit  6    tunnel mode: IPv6 inner packet
//	bit  7    ESP in UDP (RFC 3948)
type fuzzSel byte

func (s fuzzSel) suite() satest.Suite { return fuzzSuites[int(s&7)%len(fuzzSuites)] }
func (s fuzzSel) tunnel() bool        { return s&8 != 0 }
func (s fuzzSel) v6() bool            { return s&16 != 0 }
func (s fuzzSel) esn() bool           { return s&32 != 0 }
func (s fuzzSel) udp() bool           { return s&128 != 0 }

// innerV6 is the family of the packets the SA carries.
func (s fuzzSel) innerV6() bool {
	if s.tunnel() {
		return s&64 != 0
	}
	return s.v6()
}

// pair returns the sending and receiving halves of the SA s selects, with
// the same deterministic keys.
func (s fuzzSel) pair() (out, in *sa.SA) {
	src, dst := satest.V4A, satest.V4B
	switch {
	case s.tunnel() && s.v6():
		src, dst = satest.V6GwA, satest.V6GwB
	case s.tunnel():
		src, dst = satest.V4GwA, satest.V4GwB
	case s.v6():
		src, dst = satest.V6A, satest.V6B
	}
	mode := sa.ModeTransport
	if s.tunnel() {
		mode = sa.ModeTunnel
	}
	c := satest.Config("fuzz", s.suite(), mode, src, dst, 0x1000)
	c.ESN = s.esn()
	if s.udp() {
		c.Encap = &sa.UDPEncap{SrcPort: esp.NATTPort, DstPort: esp.NATTPort}
	}
	co, ci := c, c
	co.Dir, ci.Dir = sa.DirOut, sa.DirIn
	return satest.MustNew(co), satest.MustNew(ci)
}

// fuzzPacket builds a UDP packet with the given traffic class and payload.
// opts chooses the header shape: for IPv4, (opts & 15) % 11 words of NOP
// options; for IPv6, extension headers in RFC 8200 order, each present if
// its bit is set: 1 hop-by-hop, 2 destination options, 4 routing (type 253,
// segments left 0), 8 atomic fragment, 16 destination options.
func fuzzPacket(v6 bool, opts, tc byte, payload []byte) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], 1000)
	binary.BigEndian.PutUint16(udp[2:], 2000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	if !v6 {
		words := int(opts&15) % 11
		h := make([]byte, 20+4*words)
		h[0], h[1] = 0x45+byte(words), tc
		binary.BigEndian.PutUint16(h[4:], 0x4242)
		h[8], h[9] = 64, 17
		a, b := satest.V4A.As4(), satest.V4B.As4()
		copy(h[12:], a[:])
		copy(h[16:], b[:])
		for i := 20; i < len(h); i++ {
			h[i] = 1 // NOP
		}
		katSetLen4(h, len(h)+len(udp))
		return append(h, udp...)
	}
	type ext struct {
		bit, proto byte
	}
	var chain []ext
	for _, e := range []ext{{1, 0}, {2, 60}, {4, 43}, {8, 44}, {16, 60}} {
		if opts&e.bit != 0 {
			chain = append(chain, e)
		}
	}
	h := make([]byte, 40, 40+8*len(chain))
	binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(tc)<<20|0x12345)
	h[7] = 64
	a, b := satest.V6A.As16(), satest.V6B.As16()
	copy(h[8:], a[:])
	copy(h[24:], b[:])
	field := 6 // the Next Header byte to fill in
	for _, e := range chain {
		h[field] = e.proto
		field = len(h)
		x := make([]byte, 8)
		switch e.proto {
		case 0, 60: // one PadN option filling the header
			x[2], x[3] = 1, 4
		case 43: // routing type 253 (RFC 4727 experiment), nothing left to visit
			x[2], x[3] = 253, 0
		case 44: // fragment offset 0, M=0: an atomic fragment (RFC 6946)
			binary.BigEndian.PutUint32(x[4:], 0xfeedf00d)
		}
		h = append(h, x...)
	}
	h[field] = 17
	binary.BigEndian.PutUint16(h[4:], uint16(len(h)-40+len(udp)))
	return append(h, udp...)
}

// fuzzEncap encapsulates pkt with out and returns the ESP packet.
func fuzzEncap(t testing.TB, out *sa.SA, pkt []byte) []byte {
	buf := make([]byte, esp.Headroom+len(pkt)+esp.Tailroom)
	copy(buf[esp.Headroom:], pkt)
	var sc sa.Scratch
	st, en, d := esp.Encap(out, &sc, buf, esp.Headroom, len(pkt))
	if d != drop.None {
		t.Fatalf("Encap: %v", d)
	}
	return buf[st:en]
}

// FuzzDecap feeds arbitrary bytes to Classify and Decap, as the uplink
// does with what arrives from the wire: plain ESP and ESP in UDP (the
// seeds with selector bit 7). Decap must never panic, never touch bytes
// outside the packet it is given, and accept only what Classify finds as
// ESP of the SA's kind (plain or in UDP), returning a range inside the
// packet that holds one IP packet whose header says its own length.
func FuzzDecap(f *testing.F) {
	for sel := 0; sel < 256; sel++ {
		s := fuzzSel(sel)
		if int(s&7) >= len(fuzzSuites) || (!s.tunnel() && s&64 != 0) {
			continue // the same SA as a smaller selector
		}
		out, _ := s.pair()
		for i, size := range []int{0, 33} {
			wire := fuzzEncap(f, out, fuzzPacket(s.innerV6(), byte(sel*7+i), byte(sel), make([]byte, size)))
			f.Add(byte(sel), wire)
			if size == 0 {
				continue
			}
			for _, n := range []int{len(wire) - 1, len(wire) / 2, 48, 40, 28, 20, 8, 1, 0} {
				if n >= 0 && n < len(wire) {
					f.Add(byte(sel), append([]byte(nil), wire[:n]...))
				}
			}
			padded := append(append([]byte(nil), wire...), 0, 0, 0, 0) // link-layer padding
			f.Add(byte(sel), padded)
			flipped := append([]byte(nil), wire...)
			flipped[len(flipped)-1] ^= 0x80 // ICV
			f.Add(byte(sel), flipped)
		}
	}
	// What else arrives on the NAT-T and IKE ports: IKE on 500, IKE
	// behind the non-ESP marker on 4500, a NAT-keepalive.
	for _, v6 := range []bool{false, true} {
		src, dst := satest.V4A, satest.V4B
		if v6 {
			src, dst = satest.V6A, satest.V6B
		}
		for _, c := range []struct {
			port    uint16
			payload []byte
		}{{500, []byte("IKE message, 28 bytes or so")}, {4500, []byte("\x00\x00\x00\x00IKE after the marker")}, {4500, []byte{0xff}}} {
			buf := make([]byte, 100)
			n := satest.UDP(buf, 0, src, dst, c.port, c.port, len(c.payload))
			copy(buf[n-len(c.payload):], c.payload)
			f.Add(byte(128), buf[:n])
		}
	}
	f.Fuzz(func(t *testing.T, sel byte, wire []byte) {
		_, in := fuzzSel(sel).pair()
		const pre, post = 7, 16 // guard bytes around the packet
		buf := make([]byte, pre+len(wire)+post)
		for i := range buf {
			buf[i] = 0xa5
		}
		copy(buf[pre:], wire)
		c := esp.Classify(buf[pre : pre+len(wire)])
		off, spi := c.ESP, c.SPI
		located := c.Kind == esp.KindESP || c.Kind == esp.KindESPInUDP
		if located && (off < 0 || off+8 > len(wire) || spi != binary.BigEndian.Uint32(wire[off:])) {
			t.Fatalf("Classify = %+v for a %d-byte packet", c, len(wire))
		}
		if c.Kind == esp.KindESPInUDP && (c.UDP+8 != off || binary.BigEndian.Uint16(wire[c.UDP+2:]) != esp.NATTPort) {
			t.Fatalf("Classify = %+v: ESP in UDP not after a UDP header to port 4500", c)
		}
		if c.End > len(wire) || c.Kind == esp.KindInvalid {
			t.Fatalf("Classify = %+v for a %d-byte packet", c, len(wire))
		}
		switch c.Kind {
		case esp.KindIKE:
			// The message lies after the UDP header (and the zero marker
			// on 4500), within the packet; the handler gets wire[IKE:End].
			port := binary.BigEndian.Uint16(wire[c.UDP+2:])
			want := c.UDP + 8
			if port == esp.NATTPort {
				want += esp.NonESPMarkerLen
				if binary.BigEndian.Uint32(wire[c.UDP+8:]) != 0 {
					t.Fatalf("Classify = %+v: IKE on 4500 without the marker", c)
				}
			}
			if c.IKE != want || c.IKE > c.End || port != esp.NATTPort && port != esp.IKEPort {
				t.Fatalf("Classify = %+v: IKE at %d, want %d (port %d)", c, c.IKE, want, port)
			}
		case esp.KindKeepalive:
			if c.End-c.UDP != 9 || wire[c.UDP+8] != 0xff {
				t.Fatalf("Classify = %+v: not a one-byte 0xff keepalive", c)
			}
		}
		if l, sp, ok := esp.Locate(buf[pre : pre+len(wire)]); ok != (c.Kind == esp.KindESP) || ok && (l != off || sp != spi) {
			t.Fatalf("Locate = %d, %#x, %v; Classify = %+v", l, sp, ok, c)
		}
		var sc sa.Scratch
		st, en, d := esp.Decap(in, &sc, buf, pre, len(wire))
		for i := 0; i < pre; i++ {
			if buf[i] != 0xa5 {
				t.Fatalf("Decap wrote byte %d before the packet (drop %v)", i-pre, d)
			}
		}
		for i := pre + len(wire); i < len(buf); i++ {
			if buf[i] != 0xa5 {
				t.Fatalf("Decap wrote byte %d after the packet (drop %v)", i-pre-len(wire), d)
			}
		}
		if d != drop.None {
			return
		}
		if st < pre || st > en || en > pre+len(wire) {
			t.Fatalf("Decap returned [%d:%d] for a packet at [%d:%d]", st, en, pre, pre+len(wire))
		}
		if !located || spi != in.SPI() || (c.Kind == esp.KindESPInUDP) != fuzzSel(sel).udp() {
			t.Fatalf("Decap accepted a packet Classify does not find as its SA's ESP (%+v)", c)
		}
		p := buf[st:en]
		if len(p) < 20 {
			t.Fatalf("Decap returned %d bytes: %x", len(p), p)
		}
		switch p[0] >> 4 {
		case 4:
			if got := int(binary.BigEndian.Uint16(p[2:4])); got != len(p) || int(p[0]&15)*4 > len(p) {
				t.Fatalf("IPv4 total length %d, IHL %d, packet %d bytes", got, p[0]&15, len(p))
			}
			if !fuzzSel(sel).tunnel() && katSum(p[:int(p[0]&15)*4]) != 0xffff {
				t.Fatalf("IPv4 header checksum wrong after transport decap: %x", p[:int(p[0]&15)*4])
			}
		case 6:
			if len(p) < 40 || 40+int(binary.BigEndian.Uint16(p[4:6])) != len(p) {
				t.Fatalf("IPv6 payload length %d, packet %d bytes", binary.BigEndian.Uint16(p[4:6]), len(p))
			}
		default:
			t.Fatalf("Decap returned a non-IP packet: %x", p)
		}
	})
}

// FuzzEncapDecap: any valid UDP packet, with IPv4 options or IPv6
// extension headers, any traffic class and payload, survives Encap then
// Decap byte for byte, and Encap stays within the SA's stated overhead.
func FuzzEncapDecap(f *testing.F) {
	for sel := 0; sel < 256; sel += 3 {
		f.Add(byte(sel), byte(0), byte(0), []byte{})
		f.Add(byte(sel), byte(sel*5), byte(0xb8|sel&3), []byte("payload of a fuzzed packet"))
	}
	f.Add(byte(16), byte(31), byte(3), bytes.Repeat([]byte{0xff}, 1400)) // all IPv6 extension headers, CE
	f.Add(byte(0), byte(10), byte(1), bytes.Repeat([]byte{0}, 1))        // 40 bytes of IPv4 options
	f.Fuzz(func(t *testing.T, sel byte, opts byte, tc byte, payload []byte) {
		if len(payload) > 9000 {
			payload = payload[:9000]
		}
		s := fuzzSel(sel)
		out, in := s.pair()
		pkt := fuzzPacket(s.innerV6(), opts, tc, payload)
		wire := fuzzEncap(t, out, pkt)
		limit := len(pkt) + out.Overhead()
		if s.tunnel() {
			limit += 20
			if s.v6() {
				limit += 20
			}
		}
		if len(wire) > limit {
			t.Fatalf("Encap of %d bytes made %d, more than Overhead allows (%d)", len(pkt), len(wire), limit)
		}
		got := katDecap(t, in, wire)
		if s.udp() && !s.tunnel() && len(got) == len(pkt) {
			// RFC 3948 §3.1.2 repair of the inner UDP checksum (see
			// Decap): zeroed over IPv4; over IPv6 recomputed, so it must
			// verify. Everything else is the round trip's.
			u := len(pkt) - 8 - len(payload)
			if s.innerV6() && fuzzL4Sum(got, u) != 0xffff {
				t.Fatalf("IPv6 UDP checksum does not verify after decap: %x", got)
			}
			if !s.innerV6() && (got[u+6] != 0 || got[u+7] != 0) {
				t.Fatalf("IPv4 UDP checksum %x, want zero", got[u+6:u+8])
			}
			got[u+6], got[u+7] = pkt[u+6], pkt[u+7]
		}
		if !bytes.Equal(got, pkt) {
			t.Fatalf("round trip\n got %x\nwant %x", got, pkt)
		}
	})
}

// fuzzL4Sum is the ones' complement sum of the IPv6 packet pkt's UDP
// datagram at offset u with its pseudo-header (0xffff when it verifies).
func fuzzL4Sum(pkt []byte, u int) uint16 {
	l := len(pkt) - u
	b := append(append([]byte(nil), pkt[8:40]...), 0, 0, byte(l>>8), byte(l), 0, 0, 0, 17)
	b = append(b, pkt[u:]...)
	if len(b)%2 == 1 {
		b = append(b, 0) // RFC 1071: an odd last byte is padded (katSum reads whole words)
	}
	return katSum(b)
}
