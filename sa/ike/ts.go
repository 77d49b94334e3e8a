package ike

import (
	"net/netip"

	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Traffic selectors (RFC 7296 §2.9).
//
// A policy's selectors are its prefixes with its protocol and port range.
// The responder narrows what the initiator offers to the intersection with
// its own policy: every non-empty intersection of an offered selector with
// one of the policy's is kept (RFC 7296 §2.9 lets the responder pick any
// subset; keeping all intersections narrows least). The initiator accepts
// a response whose every selector lies within one it offered.

// selectors turns prefixes plus protocol and ports into wire selectors.
// A port range of [0, 0] means any port.
func selectors(ps []netip.Prefix, proto uint8, ports [2]uint16) []wire.Selector {
	lo, hi := ports[0], ports[1]
	if lo == 0 && hi == 0 {
		hi = 0xffff
	}
	out := make([]wire.Selector, 0, len(ps))
	for _, p := range ps {
		p = p.Masked()
		out = append(out, wire.Selector{Proto: proto, StartPort: lo, EndPort: hi, Start: p.Addr(), End: lastAddr(p)})
	}
	return out
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		for i := p.Bits(); i < 32; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// family reports 4 or 6 for a selector with consistent addresses, 0 if not.
func family(s wire.Selector) int {
	switch s.TSType() {
	case wire.TSIPv4Range:
		return 4
	case wire.TSIPv6Range:
		return 6
	}
	return 0
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return b
	}
	return a
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return a
	}
	return b
}

// intersect returns a ∩ b and whether it is non-empty. OPAQUE port ranges
// (start > end) intersect only with the full range [0, 65535].
func intersect(a, b wire.Selector) (wire.Selector, bool) {
	f := family(a)
	if f == 0 || f != family(b) {
		return wire.Selector{}, false
	}
	var r wire.Selector
	switch {
	case a.Proto == 0:
		r.Proto = b.Proto
	case b.Proto == 0 || a.Proto == b.Proto:
		r.Proto = a.Proto
	default:
		return wire.Selector{}, false
	}
	aOpaque, bOpaque := a.StartPort > a.EndPort, b.StartPort > b.EndPort
	switch {
	case aOpaque && bOpaque:
		r.StartPort, r.EndPort = a.StartPort, a.EndPort
	case aOpaque || bOpaque:
		full, op := b, a
		if bOpaque {
			full, op = a, b
		}
		if full.StartPort != 0 || full.EndPort != 0xffff {
			return wire.Selector{}, false
		}
		r.StartPort, r.EndPort = op.StartPort, op.EndPort
	default:
		r.StartPort, r.EndPort = max(a.StartPort, b.StartPort), min(a.EndPort, b.EndPort)
		if r.StartPort > r.EndPort {
			return wire.Selector{}, false
		}
	}
	r.Start, r.End = maxAddr(a.Start, b.Start), minAddr(a.End, b.End)
	if r.End.Less(r.Start) {
		return wire.Selector{}, false
	}
	return r, true
}

// narrow returns every non-empty intersection of an offered selector with
// one of ours, without duplicates, in the order offered.
func narrow(offered, ours []wire.Selector) []wire.Selector {
	var out []wire.Selector
	for _, o := range offered {
		for _, p := range ours {
			x, ok := intersect(o, p)
			if !ok {
				continue
			}
			dup := false
			for _, y := range out {
				if y == x {
					dup = true
					break
				}
			}
			if !dup {
				out = append(out, x)
			}
		}
	}
	return out
}

// within reports whether every selector of got lies inside one of ours.
func within(got, ours []wire.Selector) bool {
	if len(got) == 0 {
		return false
	}
	for _, g := range got {
		ok := false
		for _, p := range ours {
			if x, hit := intersect(g, p); hit && x == g {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// rangePrefixes covers [start, end] exactly with the fewest prefixes.
func rangePrefixes(start, end netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for !end.Less(start) {
		bits := start.BitLen()
		// The largest block that starts at start and ends at or before end.
		for b := 0; b <= start.BitLen(); b++ {
			p := netip.PrefixFrom(start, b)
			if p.Masked().Addr() != start {
				continue
			}
			if !end.Less(lastAddr(p)) {
				bits = b
				break
			}
		}
		p := netip.PrefixFrom(start, bits)
		out = append(out, p)
		l := lastAddr(p)
		next := l.Next()
		if !next.IsValid() || len(out) > 256 {
			break
		}
		start = next
	}
	return out
}

// selectorPrefixes flattens selectors into address prefixes, and reports
// the protocol and port range they share; if they do not all share one,
// fallbackProto and fallbackPorts (the policy's) are reported instead.
func selectorPrefixes(ss []wire.Selector, fallbackProto uint8, fallbackPorts [2]uint16) ([]netip.Prefix, uint8, [2]uint16) {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, rangePrefixes(s.Start, s.End)...)
	}
	if len(ss) == 0 {
		return out, fallbackProto, fallbackPorts
	}
	proto, ports := ss[0].Proto, [2]uint16{ss[0].StartPort, ss[0].EndPort}
	for _, s := range ss[1:] {
		if s.Proto != proto || s.StartPort != ports[0] || s.EndPort != ports[1] {
			return out, fallbackProto, fallbackPorts
		}
	}
	if ports == [2]uint16{0, 0xffff} {
		ports = [2]uint16{}
	}
	return out, proto, ports
}
