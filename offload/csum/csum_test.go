package csum

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
)

// sumRef is RFC 1071 §4.1 transcribed: big-endian 16-bit words into a
// 32-bit accumulator, folded at the end. It shares nothing with Sum's
// 64-bit little-endian loop.
func sumRef(b []byte, initial uint16) uint16 {
	acc := uint32(initial)
	for len(b) > 1 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

func TestSumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096+64)
	for i := range 20000 {
		n := r.IntN(200)
		if i%10 == 0 {
			n = r.IntN(4096)
		}
		off := r.IntN(64) // unaligned starts
		b := buf[off : off+n]
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if i%7 == 0 { // runs of 0xff stress the carries
			for j := range b {
				b[j] = 0xff
			}
		}
		init := uint16(r.Uint32())
		if got, want := Sum(b, init), sumRef(b, init); got != want {
			t.Fatalf("Sum(len %d, init %#04x) = %#04x, want %#04x", n, init, got, want)
		}
	}
}

func TestSumVectors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want uint16
	}{
		{name: "empty", b: nil, want: 0},
		{name: "one byte is the high byte", b: []byte{0x12}, want: 0x1200},
		// RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
		{name: "RFC 1071 example", b: []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, want: 0xddf2},
		{name: "end-around carry", b: []byte{0xff, 0xff, 0x00, 0x01}, want: 0x0001},
		// The IPv4 header of RFC 1071-era textbooks (Wikipedia's example):
		// 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
		{name: "IPv4 header with its checksum sums to 0xffff", b: []byte{
			0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, want: 0xffff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sum(tc.b, 0); got != tc.want {
				t.Errorf("Sum = %#04x, want %#04x", got, tc.want)
			}
		})
	}
}

func TestPseudo(t *testing.T) {
	tests := []struct {
		name     string
		src, dst string
		proto    uint8
		l4len    int
	}{
		{name: "IPv4 TCP", src: "192.0.2.1", dst: "198.51.100.2", proto: 6, l4len: 1480},
		{name: "IPv4 UDP", src: "203.0.113.9", dst: "192.0.2.77", proto: 17, l4len: 8},
		{name: "IPv6 TCP", src: "2001:db8::1", dst: "2001:db8:1::2", proto: 6, l4len: 1440},
		{name: "IPv6 jumbo length", src: "2001:db8::1", dst: "2001:db8::2", proto: 17, l4len: 70000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, d := netip.MustParseAddr(tc.src).AsSlice(), netip.MustParseAddr(tc.dst).AsSlice()
			// Build the pseudo-header bytes as the RFCs draw them.
			var ph []byte
			ph = append(ph, s...)
			ph = append(ph, d...)
			if len(s) == 4 {
				ph = append(ph, 0, tc.proto)
				ph = binary.BigEndian.AppendUint16(ph, uint16(tc.l4len))
			} else {
				ph = binary.BigEndian.AppendUint32(ph, uint32(tc.l4len))
				ph = append(ph, 0, 0, 0, tc.proto)
			}
			if got, want := Pseudo(s, d, tc.proto, tc.l4len), sumRef(ph, 0); got != want {
				t.Errorf("Pseudo = %#04x, want %#04x", got, want)
			}
		})
	}
}

func TestComplete(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		// A TCP-like segment after 34 bytes of Ethernet+IPv4: checksum at 16.
		const start, off = 34, 16
		n := start + 20 + r.IntN(1500)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		src, dst := b[26:30], b[30:34]
		ps := Pseudo(src, dst, 6, n-start)
		binary.BigEndian.PutUint16(b[start+off:], ps) // what the guest's stack leaves
		if !Complete(b, start, off) {
			t.Fatal("Complete refused an in-range field")
		}
		// Verify as a receiver does: everything including the field sums to 0xffff.
		if got := sumRef(b[start:], ps); got != 0xffff {
			t.Fatalf("case %d: segment does not verify: sum %#04x", i, got)
		}
		if binary.BigEndian.Uint16(b[start+off:]) == 0 {
			t.Fatalf("case %d: stored 0, want 0xffff for a zero result", i)
		}
	}
	for _, tc := range []struct {
		name             string
		n, start, offset int
	}{
		{name: "field past end", n: 40, start: 30, offset: 9},
		{name: "start past end", n: 40, start: 41, offset: 0},
		{name: "negative", n: 40, start: -1, offset: 2},
		{name: "huge offset", n: 40, start: 2, offset: 1 << 62},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if Complete(make([]byte, tc.n), tc.start, tc.offset) {
				t.Error("Complete accepted an out-of-range field")
			}
		})
	}
}

func TestCompleteZeroResult(t *testing.T) {
	// Data whose sum is 0xffff: the checksum is 0, stored as 0xffff.
	b := []byte{0xff, 0xff, 0, 0}
	if !Complete(b, 0, 2) {
		t.Fatal("refused")
	}
	if got := binary.BigEndian.Uint16(b[2:]); got != 0xffff {
		t.Errorf("field = %#04x, want 0xffff", got)
	}
}

func TestUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 20000 {
		n := 4 + 2*r.IntN(40)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		init := uint16(r.Uint32())
		check := Checksum(b, init)
		if i%2 == 0 { // 16-bit field at an even or odd offset
			at := r.IntN(n - 1)
			old := binary.BigEndian.Uint16(b[at:])
			nw := uint16(r.Uint32())
			if i%5 == 0 {
				nw = old
			}
			binary.BigEndian.PutUint16(b[at:], nw)
			o, w := old, nw
			if at%2 == 1 {
				o, w = bits.ReverseBytes16(o), bits.ReverseBytes16(w)
			}
			got := Update(check, o, w)
			if sumRef(b, Add(init, got)) != 0xffff {
				t.Fatalf("Update at %d: %#04x does not verify (full: %#04x)", at, got, Checksum(b, init))
			}
		} else {
			at := 2 * r.IntN(n/2-1)
			old := binary.BigEndian.Uint32(b[at:])
			nw := r.Uint32()
			binary.BigEndian.PutUint32(b[at:], nw)
			got := Update32(check, old, nw)
			if sumRef(b, Add(init, got)) != 0xffff {
				t.Fatalf("Update32 at %d: %#04x does not verify", at, got)
			}
		}
	}
}

// TestUpdateRFC1624 is the RFC 1624 §4 example: HC = 0xdd2f, m = 0x5555 →
// m' = 0x3285 gives HC' = 0x0000 (eqn. 3), where eqn. 2 would give 0xffff.
func TestUpdateRFC1624(t *testing.T) {
	if got := Update(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Errorf("Update = %#04x, want 0x0000", got)
	}
}

func TestAllocs(t *testing.T) {
	b := make([]byte, 1500)
	if n := testing.AllocsPerRun(100, func() {
		_ = Sum(b, 0)
		_ = Complete(b, 34, 16)
		_ = Pseudo(b[0:4], b[4:8], 6, 1480)
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

func BenchmarkSum(b *testing.B) {
	for _, size := range []int{64, 1500, 9000, 65536} {
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = byte(i)
		}
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				_ = Sum(buf, 0)
			}
		})
	}
}
