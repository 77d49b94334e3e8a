package header

import (
	"encoding/binary"
	"testing"
)

// v6 builds an IPv6 packet (2001:db8::1 → 2001:db8::2) whose payload is
// the extension headers exts (each given whole, its first byte
// overwritten with the next header) followed by an upper-layer header of
// protocol upper and body.
func v6(upper uint8, body []byte, exts ...[]byte) []byte {
	b := make([]byte, IPv6Len)
	b[0] = 0x60
	b[7] = 64
	b[8], b[9], b[23] = 0x20, 0x01, 1
	b[24], b[25], b[39] = 0x20, 0x01, 2
	field := 6
	for _, e := range exts {
		b[field] = e[len(e)-1] // the type rides in the last byte of the test's description
		field = len(b)
		b = append(b, e[:len(e)-1]...)
	}
	b[field] = upper
	b = append(b, body...)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)-IPv6Len))
	return b
}

// ext is an extension header of type t and n*8 bytes.
func ext(t uint8, n int) []byte {
	e := make([]byte, n*8+1)
	e[1] = byte(n - 1)
	e[n*8] = t
	return e
}

// frag is a fragment header with offset (bytes) and M.
func frag(off int, more bool) []byte {
	e := make([]byte, 9)
	fo := uint16(off)
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(e[2:4], fo)
	binary.BigEndian.PutUint32(e[4:8], 0xdeadbeef)
	e[8] = ProtoFragment
	return e
}

func chain(n int) [][]byte {
	var c [][]byte
	for range n {
		c = append(c, ext(ProtoDstOpts, 1))
	}
	return c
}

func TestWalkIPv6(t *testing.T) {
	tcp := make([]byte, 20)
	rt := ext(ProtoRouting, 1)
	rt[3] = 1 // segments left
	tests := []struct {
		name  string
		pkt   []byte
		proto uint8
		l4    int
		err   ChainErr
		frag  Fragment
		field int
		routd bool
	}{
		{name: "no extension headers", pkt: v6(ProtoTCP, tcp), proto: ProtoTCP, l4: 40, field: 6},
		{name: "hop-by-hop, routing, dstopts", pkt: v6(ProtoUDP, tcp, ext(ProtoHopByHop, 1), ext(ProtoRouting, 2), ext(ProtoDstOpts, 1)),
			proto: ProtoUDP, l4: 40 + 8 + 16 + 8, field: 64},
		{name: "routing with segments left", pkt: v6(ProtoTCP, tcp, rt), proto: ProtoTCP, l4: 48, field: 40, routd: true},
		{name: "hop-by-hop not first", pkt: v6(ProtoTCP, tcp, ext(ProtoDstOpts, 1), ext(ProtoHopByHop, 1)),
			proto: ProtoHopByHop, l4: 48, field: 40, err: ChainMisplaced},
		{name: "chain at the limit", pkt: v6(ProtoTCP, tcp, chain(MaxExtHeaders)...), proto: ProtoTCP, l4: 40 + 8*MaxExtHeaders, field: 40 + 8*(MaxExtHeaders-1)},
		{name: "chain above the limit", pkt: v6(ProtoTCP, tcp, chain(MaxExtHeaders+1)...),
			proto: ProtoDstOpts, l4: 40 + 8*MaxExtHeaders, field: 40 + 8*(MaxExtHeaders-1), err: ChainTooLong},
		{name: "first fragment walks on", pkt: v6(ProtoTCP, tcp, frag(0, true), ext(ProtoDstOpts, 1)),
			proto: ProtoTCP, l4: 56, field: 48, frag: Fragment{At: 40, More: true, ID: 0xdeadbeef}},
		{name: "atomic fragment", pkt: v6(ProtoTCP, tcp, frag(0, false)),
			proto: ProtoTCP, l4: 48, field: 40, frag: Fragment{At: 40, ID: 0xdeadbeef}},
		{name: "non-first fragment stops", pkt: v6(ProtoDstOpts, tcp, ext(ProtoHopByHop, 1), frag(1448, false)),
			proto: ProtoDstOpts, l4: 56, field: 48, frag: Fragment{At: 48, Offset: 1448, ID: 0xdeadbeef}},
		{name: "two fragment headers", pkt: v6(ProtoTCP, tcp, frag(0, true), frag(0, true)),
			proto: ProtoFragment, l4: 48, field: 40, err: ChainMisplaced, frag: Fragment{At: 40, More: true, ID: 0xdeadbeef}},
		{name: "AH is upper layer", pkt: v6(ProtoAH, tcp, ext(ProtoHopByHop, 1)), proto: ProtoAH, l4: 48, field: 40},
		{name: "ESP is upper layer", pkt: v6(ProtoESP, tcp), proto: ProtoESP, l4: 40, field: 6},
		{name: "unknown next header", pkt: v6(253, nil, ext(ProtoDstOpts, 1)), proto: 253, l4: 48, field: 40},
		{name: "no next header", pkt: v6(ProtoNoNext, nil), proto: ProtoNoNext, l4: 40, field: 6},
		{name: "extension header cut", pkt: v6(ProtoTCP, nil, ext(ProtoDstOpts, 2))[:40+12],
			proto: ProtoDstOpts, l4: 40, field: 6, err: ChainTruncated},
		{name: "extension header too short for its fixed part", pkt: v6(ProtoTCP, nil, ext(ProtoDstOpts, 1))[:40+7],
			proto: ProtoDstOpts, l4: 40, field: 6, err: ChainTruncated},
		{name: "fixed header cut", pkt: v6(ProtoTCP, nil)[:39], err: ChainTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := WalkIPv6(tt.pkt)
			c.Insert, c.InsertField = 0, 0 // TestWalkIPv6Insert
			want := Chain{Proto: tt.proto, L4: tt.l4, NextField: tt.field, Frag: tt.frag, Routed: tt.routd, Err: tt.err}
			if c != want {
				t.Errorf("WalkIPv6 = %+v, want %+v", c, want)
			}
		})
	}
}

// TestWalkIPv6Insert: where ESP goes in transport mode (RFC 4303 §3.1.1).
func TestWalkIPv6Insert(t *testing.T) {
	tcp := make([]byte, 20)
	dstRt := ext(ProtoDstOpts, 1) // followed by a routing header: before ESP
	tests := []struct {
		name      string
		pkt       []byte
		at, field int
	}{
		{"no extension headers", v6(ProtoTCP, tcp), 40, 6},
		{"after hop-by-hop, before final dstopts", v6(ProtoTCP, tcp, ext(ProtoHopByHop, 1), ext(ProtoDstOpts, 1)), 48, 40},
		{"dstopts before routing stay in front", v6(ProtoTCP, tcp, ext(ProtoHopByHop, 1), dstRt, ext(ProtoRouting, 2), ext(ProtoDstOpts, 1)), 72, 56},
		{"after a fragment header", v6(ProtoTCP, tcp, frag(0, false)), 48, 40},
		{"final dstopts stays behind", v6(ProtoTCP, tcp, ext(ProtoDstOpts, 1)), 40, 6},
		{"routing after dstopts", v6(ProtoTCP, tcp, ext(ProtoDstOpts, 1), ext(ProtoRouting, 1)), 56, 48},
	}
	for _, tt := range tests {
		c := WalkIPv6(tt.pkt)
		if c.Err != ChainOK || c.Insert != tt.at || c.InsertField != tt.field {
			t.Errorf("%s: Insert %d, InsertField %d (err %v), want %d, %d", tt.name, c.Insert, c.InsertField, c.Err, tt.at, tt.field)
		}
	}
}

func TestWalkIPv6Allocs(t *testing.T) {
	pkt := v6(ProtoTCP, make([]byte, 20), ext(ProtoHopByHop, 1), ext(ProtoRouting, 2), frag(0, true), ext(ProtoDstOpts, 1))
	var c Chain
	if n := testing.AllocsPerRun(100, func() { c = WalkIPv6(pkt) }); n != 0 {
		t.Errorf("WalkIPv6 allocates %v times per packet", n)
	}
	if c.Err != ChainOK || c.Proto != ProtoTCP {
		t.Fatalf("walk = %+v", c)
	}
}

// FuzzWalkIPv6: no panic, and what the walk returns lies within the packet
// and agrees with the bytes: the upper layer's offset is inside (or at the
// end of) the packet and the Next Header byte it names holds Proto.
func FuzzWalkIPv6(f *testing.F) {
	f.Add(v6(ProtoTCP, make([]byte, 20), ext(ProtoHopByHop, 1), frag(0, true)))
	f.Add(v6(ProtoUDP, make([]byte, 8), chain(MaxExtHeaders)...))
	f.Add(v6(ProtoUDP, make([]byte, 8), chain(MaxExtHeaders+1)...))
	f.Add(v6(ProtoDstOpts, nil, frag(8, true)))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		c := WalkIPv6(pkt)
		if len(pkt) < IPv6Len {
			if c.Err != ChainTruncated {
				t.Fatalf("short packet: %+v", c)
			}
			return
		}
		if c.L4 > len(pkt) || c.L4 < IPv6Len || c.NextField >= c.L4 {
			t.Fatalf("offsets out of the packet (len %d): %+v", len(pkt), c)
		}
		if pkt[c.NextField] != c.Proto {
			t.Fatalf("next header byte at %d is %d, Proto %d", c.NextField, pkt[c.NextField], c.Proto)
		}
		if c.Err == ChainOK && !c.Frag.NonFirst() {
			// Past a non-first fragment's header come data, whatever
			// its next header says; elsewhere the walk ends at an upper
			// layer only.
			switch c.Proto {
			case ProtoHopByHop, ProtoRouting, ProtoDstOpts, ProtoFragment:
				t.Fatalf("walk ended on an extension header: %+v", c)
			}
		}
	})
}
