package header

import "encoding/binary"

// MaxExtHeaders is the most IPv6 extension headers (hop-by-hop, routing,
// destination options, fragment) the walker steps over before the upper
// layer. RFC 8200 §4.1's order has at most four of them before AH or ESP
// (destination options twice, the second after AH or ESP, so never
// walked); a longer chain is not traffic any guest or peer of vifsec
// sends, and every layer refuses it the same way (ChainTooLong).
const MaxExtHeaders = 8

// ChainErr is why WalkIPv6 could not reach the upper layer. ChainOK (the
// zero value) means it did.
type ChainErr uint8

const (
	ChainOK ChainErr = iota
	// ChainTruncated: an extension header is cut short by the end of the
	// packet (or the fixed header itself is).
	ChainTruncated
	// ChainTooLong: more than MaxExtHeaders extension headers.
	ChainTooLong
	// ChainMisplaced: a hop-by-hop header other than right after the IPv6
	// header (RFC 8200 §4.3), or a second fragment header.
	ChainMisplaced
)

func (e ChainErr) String() string {
	switch e {
	case ChainOK:
		return "ok"
	case ChainTruncated:
		return "truncated"
	case ChainTooLong:
		return "too-long"
	case ChainMisplaced:
		return "misplaced"
	}
	return "ChainErr(?)"
}

// Fragment is the IPv6 fragment header a walk met (RFC 8200 §4.5):
//
//	| Next Header   |   Reserved    |      Fragment Offset    |Res|M|
//	|                         Identification                        |
type Fragment struct {
	At     int    // offset of the fragment header in the packet; 0: none
	Offset int    // fragment offset in bytes
	More   bool   // the M flag
	ID     uint32 // identification
}

// Present reports that the packet has a fragment header.
func (f Fragment) Present() bool { return f.At != 0 }

// IsFragment reports a fragment header that makes the packet part of a
// datagram (offset or M set), not an atomic fragment (RFC 6946).
func (f Fragment) IsFragment() bool { return f.At != 0 && (f.Offset != 0 || f.More) }

// NonFirst reports a fragment with a non-zero offset: it carries no
// upper-layer header.
func (f Fragment) NonFirst() bool { return f.Offset != 0 }

// Chain is what WalkIPv6 found in an IPv6 packet's extension headers.
type Chain struct {
	// Proto is the upper-layer protocol: the Next Header value after the
	// last extension header walked. Anything but hop-by-hop, routing,
	// destination options and fragment is upper layer (AH and ESP too).
	// For a non-first fragment it is the fragment header's Next Header.
	Proto uint8
	// L4 is the offset in the packet of the upper-layer header (for a
	// non-first fragment, of the fragment's data).
	L4 int
	// NextField is the offset of the Next Header byte that names Proto (6
	// when no extension header precedes it).
	NextField int
	// Frag is the fragment header, if any. The walk stops after a
	// non-first fragment's header; it goes on past a first or atomic one.
	Frag Fragment
	// Routed reports a routing header with segments left: the packet's
	// destination address is not its final one.
	Routed bool
	// Insert is where a header that protects the rest of the packet goes
	// (ESP in transport mode, RFC 4303 §3.1.1): after the hop-by-hop,
	// routing and fragment headers and the destination options that
	// precede a routing header; before destination options for the final
	// destination. InsertField is the offset of the Next Header byte that
	// names what is at Insert now.
	Insert, InsertField int
	// Err is ChainOK, or why the walk stopped short (then Proto, L4 and
	// NextField are those of the header it could not step over).
	Err ChainErr
}

// WalkIPv6 walks the extension headers of pkt, an IPv6 packet whose fixed
// header starts at pkt[0] and whose end is len(pkt) (cut it to the
// payload length first: ParseIPv6). It is the only walker of IPv6
// extension headers in vifsec. It allocates nothing and reads nothing
// beyond what it has checked is there.
//
//	hop-by-hop, routing, destination options:
//	| Next Header   | Hdr Ext Len   | ...  (Hdr Ext Len+1)*8 bytes in all
//	fragment (8 bytes):
//	| Next Header   |   Reserved    |      Fragment Offset    |Res|M|
func WalkIPv6(pkt []byte) Chain {
	var c Chain
	c.Walk(pkt)
	return c
}

// Walk is WalkIPv6 into c, for a hot path: it writes c's fields in place
// instead of returning a copy of them (a copy of fields just written one
// by one costs more than the walk).
func (c *Chain) Walk(pkt []byte) {
	*c = Chain{}
	if len(pkt) < IPv6Len {
		c.Err = ChainTruncated
		return
	}
	next, field, off := pkt[6], 6, IPv6Len
	c.Insert, c.InsertField = IPv6Len, 6
	final := false // destination options for the final destination seen
	for n := 0; ; n++ {
		l := 8
		switch next {
		case ProtoHopByHop:
			if off != IPv6Len {
				c.Err = ChainMisplaced
			}
			l = 0
		case ProtoRouting, ProtoDstOpts:
			l = 0
		case ProtoFragment:
			if c.Frag.At != 0 {
				c.Err = ChainMisplaced
			}
		default:
			c.Proto, c.L4, c.NextField = next, off, field
			return
		}
		switch {
		case c.Err != ChainOK:
		case n == MaxExtHeaders:
			c.Err = ChainTooLong
		case len(pkt)-off < 8:
			c.Err = ChainTruncated
		case l == 0:
			if l = (int(pkt[off+1]) + 1) * 8; len(pkt)-off < l {
				c.Err = ChainTruncated
			}
		}
		if c.Err != ChainOK {
			c.Proto, c.L4, c.NextField = next, off, field
			return
		}
		switch {
		case next == ProtoFragment:
			f := IPv6Fragment(pkt[off:])
			c.Frag.At, c.Frag.Offset, c.Frag.More, c.Frag.ID = off, f.Offset(), f.More(), f.ID()
		case next == ProtoRouting && pkt[off+3] != 0:
			c.Routed = true
		}
		if !final {
			if next == ProtoDstOpts && pkt[off] != ProtoRouting {
				final = true
			} else if next != ProtoDstOpts {
				c.Insert, c.InsertField = off+l, off
			}
		}
		field, next, off = off, pkt[off], off+l
		if c.Frag.At == field && c.Frag.Offset != 0 {
			// A non-first fragment: what follows is data.
			c.Proto, c.L4, c.NextField = next, off, field
			return
		}
	}
}

// IPv6Fragment is a view of an IPv6 fragment header (RFC 8200 §4.5). Its
// accessors assume len ≥ IPv6FragmentLen: make one only at a fragment
// header the walker checked is there.
type IPv6Fragment []byte

func (f IPv6Fragment) NextHeader() byte { return f[0] }

// Offset is the fragment offset in bytes.
func (f IPv6Fragment) Offset() int { return int(binary.BigEndian.Uint16(f[2:4]) &^ 7) }
func (f IPv6Fragment) More() bool  { return f[3]&1 != 0 }
func (f IPv6Fragment) ID() uint32  { return binary.BigEndian.Uint32(f[4:8]) }

// Fragment returns what f says as a Fragment, at offset at.
func (f IPv6Fragment) Fragment(at int) Fragment {
	return Fragment{At: at, Offset: f.Offset(), More: f.More(), ID: f.ID()}
}
