package tenant

import (
	"encoding/binary"
	"net/netip"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/sa"
)

// SPD is the compiled security policy database of one VM: its policies,
// per direction, in the order given, in a form Lookup scans without
// allocating.
//
// An SPD is immutable once Compile returns it: any number of goroutines may
// call Lookup at once. To change a VM's policies, compile a new SPD and
// swap the pointer (an atomic.Pointer[SPD] in the data path). A nil *SPD is
// empty.
type SPD struct {
	dirs [2][]rule // [DirIn-1], [DirOut-1]
	n    int
}

// rule is one policy, reduced to what Lookup compares. Addresses are in
// 128-bit form (IPv4 as IPv4-mapped) with the family kept in flags.
type rule struct {
	src, dst prefix128
	idx      int32 // index into the slice given to Compile
	sport    uint16
	dport    uint16 // port, or ICMP type when flags&ruleICMPType
	proto    uint8
	flags    uint8
}

const (
	ruleIPv6     = 1 << iota // selects IPv6 (else IPv4)
	ruleAnyProto             // any upper-layer protocol
	ruleAnySport             // any source port
	ruleAnyDport             // any destination port / ICMP type
	ruleICMPType             // dport is an ICMP type
)

type prefix128 struct {
	hi, lo   uint64 // masked address
	mhi, mlo uint64 // mask
}

func (p *prefix128) contains(hi, lo uint64) bool {
	return hi&p.mhi == p.hi && lo&p.mlo == p.lo
}

func newPrefix128(p netip.Prefix) prefix128 {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	var mhi, mlo uint64
	switch {
	case bits >= 128:
		mhi, mlo = ^uint64(0), ^uint64(0)
	case bits >= 64:
		mhi, mlo = ^uint64(0), ^uint64(0)<<(128-bits)
	case bits > 0:
		mhi = ^uint64(0) << (64 - bits)
	}
	hi, lo := split(p.Addr())
	return prefix128{hi: hi & mhi, lo: lo & mlo, mhi: mhi, mlo: mlo}
}

func split(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// Compile returns the SPD of policies, which keep their order: Lookup
// returns the first match, as an index into policies. Compile does not
// validate (call Policy.Validate first) and does not retain policies; a
// policy whose selectors or direction are not set, or whose Src and Dst
// differ in family, never matches. Host bits in Src and Dst are ignored.
func Compile(policies []Policy) *SPD {
	s := &SPD{n: len(policies)}
	for i := range policies {
		p := &policies[i]
		if p.Direction != sa.DirIn && p.Direction != sa.DirOut ||
			!p.Src.IsValid() || !p.Dst.IsValid() ||
			p.Src.Addr().Is4() != p.Dst.Addr().Is4() ||
			p.ULProto == ProtoInvalid || p.ULProto > ProtoICMP ||
			!p.SrcPort.IsValid() || !p.DstPort.IsValid() {
			continue
		}
		r := rule{
			src:   newPrefix128(p.Src),
			dst:   newPrefix128(p.Dst),
			idx:   int32(i),
			proto: p.ULProto.Number(),
		}
		if !p.Src.Addr().Is4() {
			r.flags |= ruleIPv6
		}
		if p.ULProto == ProtoAny {
			r.flags |= ruleAnyProto
		}
		if n, ok := p.SrcPort.Number(); ok {
			r.sport = n
		} else {
			r.flags |= ruleAnySport
		}
		if n, ok := p.DstPort.Number(); ok {
			if p.ULProto.isICMP() && n > 255 {
				continue // no ICMP type is that large
			}
			r.dport = n
		} else {
			r.flags |= ruleAnyDport
		}
		if p.ULProto.isICMP() {
			r.flags |= ruleICMPType
		}
		d := p.Direction - sa.DirIn
		s.dirs[d] = append(s.dirs[d], r)
	}
	return s
}

// Len returns the number of policies given to Compile (the bound of the
// indices Lookup returns).
func (s *SPD) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Lookup returns the index, in the slice given to Compile, of the first
// policy of direction dir that matches f, or -1 if none does. Data path:
// it does not allocate.
//
// A policy matches when its Src contains f.Src, its Dst contains f.Dst
// (same family), its protocol is any or f.Proto, and each port is any or
// equal to f's. A port other than any matches only a TCP or UDP flow whose
// ports were read (not a non-first fragment); with icmp6 or icmp, the
// destination port matches f.ICMPType instead.
func (s *SPD) Lookup(dir sa.Direction, f *Flow) int {
	if s == nil || dir != sa.DirIn && dir != sa.DirOut {
		return -1
	}
	var fam uint8
	switch {
	case f.Src.Is4() && f.Dst.Is4():
	case f.Src.Is6() && f.Dst.Is6():
		fam = ruleIPv6
	default:
		return -1
	}
	shi, slo := split(f.Src)
	dhi, dlo := split(f.Dst)
	ports := f.HasL4 && (f.Proto == header.ProtoTCP || f.Proto == header.ProtoUDP)
	rules := s.dirs[dir-sa.DirIn]
	for i := range rules {
		r := &rules[i]
		if r.flags&ruleIPv6 != fam ||
			r.flags&ruleAnyProto == 0 && r.proto != f.Proto ||
			!r.src.contains(shi, slo) || !r.dst.contains(dhi, dlo) {
			continue
		}
		if r.flags&ruleAnySport == 0 && (!ports || r.sport != f.SrcPort) {
			continue
		}
		if r.flags&ruleAnyDport == 0 {
			if r.flags&ruleICMPType != 0 {
				if !f.HasL4 || r.dport != uint16(f.ICMPType) {
					continue
				}
			} else if !ports || r.dport != f.DstPort {
				continue
			}
		}
		return int(r.idx)
	}
	return -1
}

// LookupFragment is Lookup for a non-first fragment (f.NonFirst), whose
// ports or ICMP type are unknown: it returns the first policy of direction
// dir that matches f whatever those are (-1: none, the default action),
// and ok when every policy that could be the first match of some fragment
// of f's datagram — each port- or type-specific policy before that one
// that matches f otherwise, and that one or the default — has the same
// outcome by same (i or j is -1 for the default action). When ok is
// false the fragment's outcome depends on ports it does not carry, and
// the caller must drop it (RFC 4301 §7.1). For any other flow it is
// Lookup, with ok true. Data path: same must not retain its arguments,
// and LookupFragment does not allocate.
//
// Port-specific policies count only for TCP and UDP fragments, type-
// specific ones only for ICMP, as in Lookup: the datagram of a fragment
// of another protocol has no ports, so no such policy can match it.
func (s *SPD) LookupFragment(dir sa.Direction, f *Flow, same func(i, j int) bool) (idx int, ok bool) {
	if !f.NonFirst {
		return s.Lookup(dir, f), true
	}
	if s == nil || dir != sa.DirIn && dir != sa.DirOut {
		return -1, true
	}
	var fam uint8
	switch {
	case f.Src.Is4() && f.Dst.Is4():
	case f.Src.Is6() && f.Dst.Is6():
		fam = ruleIPv6
	default:
		return -1, true
	}
	shi, slo := split(f.Src)
	dhi, dlo := split(f.Dst)
	ports := f.Proto == header.ProtoTCP || f.Proto == header.ProtoUDP
	first := -2 // the first candidate's index, once there is one
	ok = true
	rules := s.dirs[dir-sa.DirIn]
	for i := range rules {
		r := &rules[i]
		if r.flags&ruleIPv6 != fam ||
			r.flags&ruleAnyProto == 0 && r.proto != f.Proto ||
			!r.src.contains(shi, slo) || !r.dst.contains(dhi, dlo) {
			continue
		}
		// A policy that names a port can match only a datagram with
		// ports; one that names an ICMP type, any ICMP datagram.
		if r.flags&ruleAnySport == 0 && !ports ||
			r.flags&ruleAnyDport == 0 && r.flags&ruleICMPType == 0 && !ports {
			continue
		}
		wild := r.flags&ruleAnySport != 0 && r.flags&ruleAnyDport != 0
		if first == -2 {
			first = int(r.idx)
		} else if ok && !same(first, int(r.idx)) {
			ok = false
		}
		if wild {
			if !ok {
				return -1, false
			}
			return int(r.idx), true
		}
	}
	if first != -2 && (!ok || !same(first, -1)) {
		return -1, false
	}
	return -1, true
}
