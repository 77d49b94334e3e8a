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
	// Err is ChainOK, or why the walk stopped short (then Proto, L4 and
	// NextField are those of the header it could not step over).
	Err ChainErr
}

// WalkIPv6 walks the extension headers of pkt, an IPv6 packet whose fixed
// header starts at pkt[0] and whose end is len(pkt) (cut it to the
// payload length first: ParseIPv6). It is the only walker of IPv6
// extension headers in vifsec. It allocates nothing and reads nothing
// beyond what it has checked is there.
func WalkIPv6(pkt []byte) Chain {
	it := NewExtIter(pkt)
	var c Chain
	for {
		h, ok := it.Next()
		if !ok {
			break
		}
		switch {
		case h.Type == ProtoFragment:
			c.Frag = IPv6Fragment(pkt[h.At:]).Fragment(h.At)
		case h.Type == ProtoRouting && pkt[h.At+3] != 0:
			c.Routed = true
		}
	}
	c.Proto, c.L4, c.NextField, c.Err = it.Upper()
	return c
}

// ExtHeader is one extension header ExtIter stepped over.
type ExtHeader struct {
	Type  uint8 // ProtoHopByHop, ProtoRouting, ProtoDstOpts or ProtoFragment
	At    int   // its offset in the packet
	Len   int   // its length in bytes: (Hdr Ext Len + 1) * 8, or 8 for a fragment header
	Field int   // offset of the Next Header byte that named it
}

// Next is the offset of the header after h.
func (h ExtHeader) Next() int { return h.At + h.Len }

// ExtIter steps over an IPv6 packet's extension headers one at a time,
// for a caller that needs each header's place (ESP's transport-mode
// insertion point); WalkIPv6 is it run to the end. The rules are the
// walker's: hop-by-hop first only, one fragment header, the walk stops
// after a non-first fragment's header, at most MaxExtHeaders headers,
// each checked to lie within the packet.
//
//	hop-by-hop, routing, destination options:
//	| Next Header   | Hdr Ext Len   | ...  (Hdr Ext Len+1)*8 bytes in all
//	fragment (8 bytes):
//	| Next Header   |   Reserved    |      Fragment Offset    |Res|M|
type ExtIter struct {
	pkt   []byte
	next  uint8 // type of the header at off
	field int   // offset of the byte that holds next
	off   int
	n     int
	frag  bool // a fragment header was walked
	done  bool
	err   ChainErr
}

// NewExtIter starts an iteration over pkt's extension headers (pkt as for
// WalkIPv6).
func NewExtIter(pkt []byte) ExtIter {
	if len(pkt) < IPv6Len {
		return ExtIter{pkt: pkt, done: true, err: ChainTruncated}
	}
	return ExtIter{pkt: pkt, next: pkt[6], field: 6, off: IPv6Len}
}

// Next steps over the next extension header and returns it, or returns
// false at the upper layer or when the chain cannot be walked (Upper then
// says which).
func (it *ExtIter) Next() (ExtHeader, bool) {
	if it.done {
		return ExtHeader{}, false
	}
	var l int
	switch it.next {
	case ProtoHopByHop:
		if it.off != IPv6Len {
			return it.stop(ChainMisplaced)
		}
	case ProtoRouting, ProtoDstOpts:
	case ProtoFragment:
		if it.frag {
			return it.stop(ChainMisplaced)
		}
		l = IPv6FragmentLen
	default:
		return it.stop(ChainOK)
	}
	if it.n == MaxExtHeaders {
		return it.stop(ChainTooLong)
	}
	if len(it.pkt)-it.off < 8 {
		return it.stop(ChainTruncated)
	}
	if l == 0 {
		l = (int(it.pkt[it.off+1]) + 1) * 8
		if len(it.pkt)-it.off < l {
			return it.stop(ChainTruncated)
		}
	}
	h := ExtHeader{Type: it.next, At: it.off, Len: l, Field: it.field}
	it.n++
	it.field, it.next, it.off = it.off, it.pkt[it.off], it.off+l
	if h.Type == ProtoFragment {
		it.frag = true
		if IPv6Fragment(it.pkt[h.At:]).Offset() != 0 {
			it.done = true // non-first: no more headers to read, the fragment's next header is Upper
		}
	}
	return h, true
}

func (it *ExtIter) stop(e ChainErr) (ExtHeader, bool) {
	it.done, it.err = true, e
	return ExtHeader{}, false
}

// Upper returns, once Next has returned false, the upper-layer protocol,
// its offset and the offset of the Next Header byte naming it, and
// ChainOK; or, when the walk stopped short, the header it could not step
// over and the reason.
func (it *ExtIter) Upper() (proto uint8, at, field int, err ChainErr) {
	return it.next, it.off, it.field, it.err
}

// IPv6Fragment is a view of an IPv6 fragment header (RFC 8200 §4.5). Its
// accessors assume len ≥ IPv6FragmentLen: get one from an ExtHeader of
// type ProtoFragment (ExtIter checked it is there).
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
