package tenant

import (
	"net/netip"

	"github.com/vifsec/vifsec/header"
)

// Data path. ParseFlow runs once per packet, in stages:
//
//  1. Version: the first nibble picks IPv4 or IPv6; anything else is malformed.
//  2. IP header: length checked, then addresses and hop limit read; the
//     packet's own length field bounds everything after (trailing link
//     padding is ignored).
//  3. IPv6 extension headers: hop-by-hop (first only), routing, destination
//     options and fragment headers are walked to the upper-layer protocol.
//  4. Fragments: a non-first fragment has a protocol but no ports or type
//     (NonFirst); SPD.LookupFragment classifies it.
//  5. Upper layer: ports for TCP and UDP, the type for ICMP and ICMPv6,
//     each after checking the header is all there.
//
// Nothing here allocates, locks or formats; every read is preceded by a
// length check, so a malformed packet yields false, never a panic.

// Flow is the selector view of one IP packet: what an SPD matches on.
// It is plain data, filled by ParseFlow in place so that the data path can
// keep one per worker.
type Flow struct {
	Src, Dst netip.Addr
	// Proto is the upper-layer protocol number (IPv4 protocol, or the IPv6
	// next header after the extension headers ParseFlow walks).
	Proto uint8
	// SrcPort and DstPort are set for TCP and UDP when HasL4; else 0.
	SrcPort, DstPort uint16
	// ICMPType is set for ICMP (1) and ICMPv6 (58) when HasL4; else 0.
	ICMPType uint8
	// HopLimit is the IPv6 hop limit or the IPv4 TTL.
	HopLimit uint8
	// HasL4 reports that the upper-layer header of a TCP, UDP, ICMP or
	// ICMPv6 packet was read. It is false for other protocols and for
	// non-first fragments, which carry no ports or type.
	HasL4 bool
	// Fragment reports that the packet is a fragment, first or not (IPv4
	// MF or offset, or any IPv6 fragment header).
	Fragment bool
	// NonFirst reports a fragment whose offset is not 0: it carries no
	// upper-layer header, so its ports or ICMP type are unknown and
	// SPD.LookupFragment, not Lookup, classifies it.
	NonFirst bool
	// L4 is the offset in the packet of the upper-layer header (after
	// the IPv4 options or IPv6 extension headers); 0 for a non-first
	// fragment.
	L4 int
}

// ParseFlow parses the IPv4 or IPv6 packet that starts at pkt[0] into f and
// reports whether it is well formed. On false, f holds no meaningful
// values. pkt is only read, never retained.
//
// The IP length field bounds the packet. An IPv6 payload length of 0 (a
// jumbogram, RFC 2675, or a GSO super-frame) means the packet is all of
// pkt. IPv6 headers other than hop-by-hop (0), routing (43), destination
// options (60) and fragment (44) are taken as the upper layer, so AH and
// ESP are protocols 51 and 50; a chain of more than header.MaxExtHeaders
// extension headers is malformed. The IPv4 header checksum is not checked.
func ParseFlow(pkt []byte, f *Flow) bool {
	*f = Flow{}
	if len(pkt) == 0 {
		return false
	}
	switch pkt[0] >> 4 {
	case 4:
		return parseIPv4(pkt, f)
	case 6:
		return parseIPv6(pkt, f)
	}
	return false
}

// parseIPv4 parses an IPv4 header (RFC 791; header.IPv4).
func parseIPv4(pkt []byte, f *Flow) bool {
	ip, ok := header.ParseIPv4(pkt)
	if !ok {
		return false
	}
	f.Src, f.Dst = ip.Src(), ip.Dst()
	f.HopLimit = ip.TTL()
	f.Proto = ip.Protocol()
	if ip.IsFragment() {
		f.Fragment = true
		if ip.FragmentOffset() != 0 {
			f.NonFirst = true
			return true
		}
	}
	f.L4 = ip.HeaderLen()
	return parseL4(ip.Payload(), f)
}

// parseIPv6 parses an IPv6 header (RFC 8200) and its extension headers,
// walked by header.WalkIPv6: a chain it cannot walk (truncated, longer
// than header.MaxExtHeaders, hop-by-hop other than first) is malformed.
func parseIPv6(pkt []byte, f *Flow) bool {
	if len(pkt) < header.IPv6Len {
		return false
	}
	ip := header.IPv6(pkt)
	if ip.PayloadLen() != 0 {
		var ok bool
		if ip, ok = header.ParseIPv6(pkt); !ok {
			return false
		}
	}
	f.Src, f.Dst = ip.Src(), ip.Dst()
	f.HopLimit = ip.HopLimit()
	var c header.Chain
	c.Walk(ip)
	if c.Err != header.ChainOK {
		return false
	}
	f.Proto = c.Proto
	if c.Frag.Present() {
		f.Fragment = true
		if c.Frag.NonFirst() {
			f.NonFirst = true
			return true
		}
	}
	f.L4 = c.L4
	return parseL4(ip[c.L4:], f)
}

// parseL4 reads the selectors of the upper-layer header b of f.Proto.
// TCP (RFC 9293) and UDP (RFC 768) start with source and destination
// port; ICMP (RFC 792) and ICMPv6 (RFC 4443) with type and code.
func parseL4(b []byte, f *Flow) bool {
	switch f.Proto {
	case header.ProtoTCP:
		t, ok := header.ParseTCP(b)
		if !ok {
			return false
		}
		f.SrcPort, f.DstPort = t.SrcPort(), t.DstPort()
	case header.ProtoUDP:
		u, ok := header.ParseUDP(b)
		if !ok {
			return false
		}
		f.SrcPort, f.DstPort = u.SrcPort(), u.DstPort()
	case header.ProtoICMP, header.ProtoICMPv6:
		m, ok := header.ParseICMP(b)
		if !ok {
			return false
		}
		f.ICMPType = m.Type()
	default:
		return true
	}
	f.HasL4 = true
	return true
}

// IsNeighborDiscovery reports whether f is an IPv6 neighbour discovery
// message (RFC 4861: ICMPv6 router solicitation 133, router advertisement
// 134, neighbour solicitation 135, neighbour advertisement 136, redirect
// 137). These always pass, whatever the SPD says, so a VM can reach its
// neighbours (ARP, not being IP, never reaches the SPD).
//
// To keep that exemption from being a way around the SPD, it holds only
// for what a neighbour can send: hop limit 255 (RFC 4861 §6.1, so the
// message cannot have been routed) and no fragmentation (RFC 6980).
func IsNeighborDiscovery(f *Flow) bool {
	return f.Proto == header.ProtoICMPv6 && f.HasL4 && !f.Fragment &&
		f.HopLimit == 255 && f.Src.Is6() &&
		f.ICMPType >= 133 && f.ICMPType <= 137
}
