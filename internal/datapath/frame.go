package datapath

import (
	"encoding/binary"
	"github.com/vifsec/vifsec/drop"
	"net/netip"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/vif"
)

// What a frame may be, in either direction, before anything else looks
// at it. Every check of the link layer and of ARP and neighbour discovery
// is here, so that the worker's paths cannot disagree on them:
//
//  1. Tags: at most one VLAN tag, counting the one the kernel moved into
//     packet metadata (vif.Meta) with the ones still in the frame. It must
//     be 802.1Q (TPID 0x8100) and name the binding's VLAN, or VID 0 (a
//     priority tag: no VLAN), which is normalised to the binding's. The
//     tag is taken out; the receiving stack sees an untagged frame. A
//     second tag — 802.1Q, 802.1ad (0x88a8)
//     or the pre-standard 0x9100 — is refused: the receiving stack would
//     see a frame that was never classified, and the next gateway would
//     demultiplex it by a VLAN the sender chose.
//  2. EtherType allow-list, the same both ways: IPv4 and IPv6 (what the
//     SPD classifies and ESP protects) and ARP (IPv4 cannot reach a
//     neighbour without it; checked below). Anything else — LLDP, MPLS,
//     PPPoE, 802.3 length-field frames (LLC, STP) — carries no IP the SPD
//     could see, or IP the SPD would not see, and is dropped.
//  3. ARP (RFC 826): Ethernet/IPv4 only, request or reply, no longer than a
//     padded minimum frame. From a VM the sender hardware address must be
//     its MAC and the sender protocol address one of its --ip (or 0.0.0.0
//     in a request: an RFC 5227 probe).
//  4. Neighbour discovery (RFC 4861), which passes whatever the SPD says:
//     no extension headers, code 0, well-formed options, and a size bound
//     per type, so that the exemption carries neighbour discovery and
//     nothing else. From a VM, link-layer address options must be its MAC,
//     an NA's target and a DAD probe's target one of its --ip or a
//     link-local address, and router advertisements and redirects come
//     from a link-local address (as receivers require, §6.1.2, §8.1).
//  5. Local delivery: an IP packet a VM sends to the MAC of another VM on
//     this host must be for one of that VM's --ip, so that a VM that
//     answers for another's address receives nothing in its place.

// The link- and network-layer constants of the data path, by their short
// local names: the values are package header's, the one floor for header
// parsing.
const (
	ethLen        = header.EthernetLen
	vlanTagSize   = header.VLANTagLen
	etherIPv4     = header.EtherTypeIPv4
	etherARP      = header.EtherTypeARP
	etherVLAN     = header.EtherTypeVLAN
	etherIPv6     = header.EtherTypeIPv6
	ipv4HeaderLen = header.IPv4MinLen
	ipv6HeaderLen = header.IPv6Len
	ipv6Len       = header.IPv6Len
	udpHeaderLen  = header.UDPLen
	tcpHeaderMin  = header.TCPMinLen
	protoTCP      = header.ProtoTCP
	protoUDP      = header.ProtoUDP
	protoICMPv6   = header.ProtoICMPv6
	vidMask       = header.VIDMask
)

// isTagType reports a TPID that starts a VLAN tag: 802.1Q, 802.1ad
// service tags, and the pre-standard stacked tag some switches still send.
func isTagType(et uint16) bool { return header.IsTPID(et) }

// l2 is a frame's link-layer header as the data path accepts it.
type l2 struct {
	etype  uint16 // EtherType of what follows the header
	vlan   uint16 // VID of the frame's tag; 0 when untagged or priority-tagged
	tagged bool   // there is a tag, in packet metadata or in the frame
	inband bool   // the tag is in the frame: the header is ethLen+vlanTagSize
}

// parseL2 reads the Ethernet header of frame f and its VLAN tag, with m
// the metadata the port gave: DropMalformed when the header is cut short,
// DropBadTag when there is more than one tag, or a tag that is not 802.1Q
// or names the reserved VID 4095.
//
//	| dst MAC (6) | src MAC (6) | 0x8100 | PCP DEI VID (2) | EtherType (2) | ...
func parseL2(f []byte, m vif.Meta) (h l2, d drop.Reason) {
	e, ok := header.ParseEthernet(f)
	if !ok {
		return l2{}, drop.Malformed
	}
	h.etype = e.Type()
	if m.Tagged {
		h.vlan, h.tagged = m.VLAN&header.VIDMask, true
	}
	if header.IsTPID(h.etype) {
		if m.Tagged || h.etype != header.EtherTypeVLAN {
			return l2{}, drop.BadTag
		}
		t, ok := header.ParseVLANTag(f[header.EthernetLen:])
		if !ok {
			return l2{}, drop.Malformed
		}
		h.vlan, h.tagged, h.inband = t.VID(), true, true
		h.etype = t.Type()
		if header.IsTPID(h.etype) {
			return l2{}, drop.BadTag
		}
	}
	if h.vlan > header.VIDMax {
		return l2{}, drop.BadTag
	}
	return h, drop.None
}

// l2Len is the length of the link-layer header of f, a frame a VM sent:
// ethLen, or ethLen+vlanTagSize with a tag in the frame. It only measures;
// the frame's tags are judged where it is classified.
func l2Len(f []byte) int {
	if h, d := parseL2(f, vif.Meta{}); d == drop.None && h.inband {
		return ethLen + vlanTagSize
	}
	return ethLen
}

// untag removes the in-band tag of the frame buf[off:off+n] by moving its
// MAC addresses over it, and returns the untagged frame's offset and
// length.
func untag(buf []byte, off, n int) (int, int) {
	copy(buf[off+vlanTagSize:off+vlanTagSize+12], buf[off:off+12])
	return off + vlanTagSize, n - vlanTagSize
}

// etherTypeAllowed is the allow-list of step 2.
func etherTypeAllowed(et uint16) bool {
	return et == etherIPv4 || et == etherIPv6 || et == etherARP
}

// arpMaxLen bounds an ARP message with its trailing padding: what pads a
// minimum-size (60-byte) frame, and a tag's worth more for a frame padded
// before its tag was taken out.
const arpMaxLen = 60 - ethLen + vlanTagSize

// checkARP applies step 3 to a, the ARP message (and padding) of a frame
// for or from vm (out: from).
//
//	0      2      4    5    6      8          14         18         24         28
//	| htype| ptype|hlen|plen| oper | sha      | spa      | tha      | tpa      |
func checkARP(vm *vmState, a []byte, out bool) drop.Reason {
	if len(a) < arpLen || len(a) > arpMaxLen {
		return drop.BadNeighbor
	}
	op := binary.BigEndian.Uint16(a[6:8])
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherIPv4 || a[4] != 6 || a[5] != 4 ||
		op != arpRequest && op != arpReply {
		return drop.BadNeighbor
	}
	if !out {
		return drop.None
	}
	spa := netip.AddrFrom4([4]byte(a[14:18]))
	if header.MAC(a[8:14]) != vm.mac || !vm.owns(spa) && !(op == arpRequest && spa.IsUnspecified()) {
		return drop.BadNeighbor
	}
	return drop.None
}

// Neighbour discovery messages (RFC 4861 §4): the fixed part before the
// options, and the most a message may carry (fixed part and options).
// Solicitations and advertisements need a link-layer address option and
// perhaps a nonce (RFC 7527); a router advertisement several prefixes,
// MTU, routes and DNS options; a redirect its target's link-layer address
// and the start of the redirected packet's header.
const (
	ndRouterSolicit = 133
	ndRouterAdvert  = 134
	ndRedirect      = 137
)

var ndLimits = [5]struct{ fixed, max int }{
	0:                                {8, 64}, // router solicitation: type ndRouterSolicit
	ndRouterAdvert - ndRouterSolicit: {16, 512},
	ndSolicit - ndRouterSolicit:      {24, 64},
	ndAdvert - ndRouterSolicit:       {24, 64},
	ndRedirect - ndRouterSolicit:     {40, 128},
}

// checkND applies step 4 to ip, an IPv6 packet that tenant's
// IsNeighborDiscovery accepted (ICMPv6 type 133-137, hop limit 255, not a
// fragment), for or from vm (out: from).
//
//	IPv6 (next header 58) | type | code | checksum | fixed part | options: type, length (units of 8), ...
func checkND(vm *vmState, ip []byte, out bool) drop.Reason {
	if len(ip) < ipv6HeaderLen || ip[6] != protoICMPv6 {
		return drop.BadNeighbor
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if ipv6HeaderLen+plen > len(ip) || plen < 4 || ip[ipv6HeaderLen] < ndRouterSolicit || ip[ipv6HeaderLen] > ndRedirect {
		return drop.BadNeighbor
	}
	m := ip[ipv6HeaderLen : ipv6HeaderLen+plen]
	typ := m[0]
	lim := ndLimits[typ-ndRouterSolicit]
	if m[1] != 0 || len(m) < lim.fixed || len(m) > lim.max {
		return drop.BadNeighbor
	}
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	if (typ == ndRouterAdvert || typ == ndRedirect) && !src.IsLinkLocalUnicast() {
		return drop.BadNeighbor
	}
	for o := m[lim.fixed:]; len(o) > 0; o = o[int(o[1])*8:] {
		if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
			return drop.BadNeighbor
		}
		if out && (o[0] == ndOptSrcLL || o[0] == ndOptTgtLL) && (o[1] != 1 || header.MAC(o[2:8]) != vm.mac) {
			return drop.BadNeighbor
		}
	}
	if !out {
		return drop.None
	}
	if typ == ndAdvert || typ == ndSolicit && src.IsUnspecified() {
		// The address claimed (NA) or about to be (DAD) must be the VM's.
		if t := netip.AddrFrom16([16]byte(m[8:24])); !vm.owns(t) && !t.IsLinkLocalUnicast() {
			return drop.BadNeighbor
		}
	}
	return drop.None
}

// accepts applies step 5: whether an IP packet for dst, unicast to vm's
// MAC from another VM on this host, may be delivered to vm. Without --ip
// any address is vm's; link-local, multicast and broadcast destinations
// name no VM's protected traffic.
func (vm *vmState) accepts(dst netip.Addr) bool {
	return vm.owns(dst) || dst.IsLinkLocalUnicast() || dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
