package tenant

import (
	"encoding/binary"
	"net/netip"
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
}

// ParseFlow parses the IPv4 or IPv6 packet that starts at pkt[0] into f and
// reports whether it is well formed. On false, f holds no meaningful
// values. pkt is only read, never retained.
//
// The IP length field bounds the packet. An IPv6 payload length of 0 (a
// jumbogram, RFC 2675, or a GSO super-frame) means the packet is all of
// pkt. IPv6 headers other than hop-by-hop (0), routing (43), destination
// options (60) and fragment (44) are taken as the upper layer, so AH and
// ESP are protocols 51 and 50. The IPv4 header checksum is not checked.
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

// parseIPv4 parses an IPv4 header (RFC 791):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	|         Identification        |Flags|      Fragment Offset    |
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	|                       Source Address                          |
//	|                    Destination Address                        |
//	|                    Options (IHL > 5)                          |
func parseIPv4(pkt []byte, f *Flow) bool {
	if len(pkt) < 20 {
		return false
	}
	hl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if hl < 20 || total < hl || total > len(pkt) {
		return false
	}
	f.Src = netip.AddrFrom4([4]byte(pkt[12:16]))
	f.Dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	f.HopLimit = pkt[8]
	f.Proto = pkt[9]
	frag := binary.BigEndian.Uint16(pkt[6:8])
	const moreFragments, offsetMask = 0x2000, 0x1fff
	if frag&(moreFragments|offsetMask) != 0 {
		f.Fragment = true
		if frag&offsetMask != 0 {
			f.NonFirst = true
			return true
		}
	}
	return parseL4(pkt[hl:total], f)
}

// parseIPv6 parses an IPv6 header (RFC 8200) and its extension headers:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	|                   Source Address (16 bytes)                   |
//	|                Destination Address (16 bytes)                 |
//
//	hop-by-hop, routing, destination options:
//	| Next Header   | Hdr Ext Len   | (Hdr Ext Len+1)*8 bytes in all
//	fragment (8 bytes):
//	| Next Header   |   Reserved    |      Fragment Offset    |Res|M|
func parseIPv6(pkt []byte, f *Flow) bool {
	if len(pkt) < 40 {
		return false
	}
	end := len(pkt)
	if plen := int(binary.BigEndian.Uint16(pkt[4:6])); plen != 0 {
		end = 40 + plen
		if end > len(pkt) {
			return false
		}
	}
	f.Src = netip.AddrFrom16([16]byte(pkt[8:24]))
	f.Dst = netip.AddrFrom16([16]byte(pkt[24:40]))
	f.HopLimit = pkt[7]
	next := pkt[6]
	// Every header is at least 8 bytes, so the walk ends within len/8 steps.
	for off := 40; ; {
		switch next {
		case protoHopByHop, protoRouting, protoDstOpts:
			if next == protoHopByHop && off != 40 {
				return false // RFC 8200 §4.3: only right after the IPv6 header
			}
			if end-off < 8 {
				return false
			}
			n := (int(pkt[off+1]) + 1) * 8
			if end-off < n {
				return false
			}
			next = pkt[off]
			off += n
		case protoFragment:
			if end-off < 8 {
				return false
			}
			f.Fragment = true
			next = pkt[off]
			const offsetMask = 0xfff8
			if binary.BigEndian.Uint16(pkt[off+2:off+4])&offsetMask != 0 {
				f.Proto = next
				f.NonFirst = true
				return true
			}
			off += 8
		default:
			f.Proto = next
			return parseL4(pkt[off:end], f)
		}
	}
}

// parseL4 reads the selectors of the upper-layer header b of f.Proto.
// TCP (RFC 9293) and UDP (RFC 768) start with source and destination
// port; ICMP (RFC 792) and ICMPv6 (RFC 4443) with type and code.
func parseL4(b []byte, f *Flow) bool {
	switch f.Proto {
	case protoTCP:
		if len(b) < 20 {
			return false
		}
		if off := int(b[12]>>4) * 4; off < 20 || off > len(b) {
			return false
		}
	case protoUDP:
		if len(b) < 8 {
			return false
		}
	case protoICMP, protoICMPv6:
		if len(b) < 4 {
			return false
		}
		f.ICMPType = b[0]
		f.HasL4 = true
		return true
	default:
		return true
	}
	f.SrcPort = binary.BigEndian.Uint16(b[0:2])
	f.DstPort = binary.BigEndian.Uint16(b[2:4])
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
	return f.Proto == protoICMPv6 && f.HasL4 && !f.Fragment &&
		f.HopLimit == 255 && f.Src.Is6() &&
		f.ICMPType >= 133 && f.ICMPType <= 137
}
