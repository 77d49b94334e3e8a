package vxlan

import (
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"

	"encoding/binary"
	"net/netip"

	"github.com/vifsec/vifsec/offload/csum"
)

// Local is the local VTEP: what Decap accepts. Decap only reads it, so
// one Local may be shared by any number of goroutines.
type Local struct {
	// Addr4 and Addr6 are the local VTEP's underlay addresses. VXLAN to
	// any other address (or over a family whose address is not set) is
	// refused with drop.NotLocal.
	Addr4, Addr6 netip.Addr
	// Port is the VXLAN UDP port; 0 means DefaultPort.
	Port uint16
	// InnerVLAN accepts inner frames with an 802.1Q tag (RFC 7348 §6:
	// discarded unless configured).
	InnerVLAN bool
}

// Result is what Decap found in a valid VXLAN frame.
type Result struct {
	// VNI names the tenant.
	VNI uint32
	// The inner Ethernet frame is buf[Start:End]. End excludes the outer
	// frame's link-layer padding.
	Start, End int
	// Src and SrcPort are the remote VTEP's address and the outer UDP
	// source port (for learning; not authenticated).
	Src     netip.Addr
	SrcPort uint16
	// VLAN is the outer 802.1Q VLAN ID, 0 if the frame was untagged.
	VLAN uint16
}

// Decap validates the VXLAN frame buf[off:off+n] (outer Ethernet, one
// optional 802.1Q tag, IPv4 or IPv6, UDP to l's address and port, VXLAN)
// and returns where its inner frame lies, its VNI and the remote VTEP.
//
// Stages:
//  1. Outer Ethernet and 802.1Q tag (drop: malformed, not-vxlan).
//  2. IPv4 or IPv6 header and lengths; IPv6 hop-by-hop, destination
//     options and spent routing headers are skipped (drop: malformed,
//     not-vxlan).
//  3. UDP destination port, then destination address (drop: not-vxlan,
//     not-local) and fragments (drop: fragment; a non-first fragment
//     cannot be told from other UDP and is not-vxlan).
//  4. Checksums: IPv4 header; UDP if non-zero on IPv4, always on IPv6
//     (drop: bad-checksum, zero-checksum).
//  5. VXLAN I flag (drop: bad-flags), VNI.
//  6. Inner frame: Ethernet length, 802.1Q tag (drop: malformed,
//     inner-vlan); RFC 6040 ECN decapsulation into the inner IP header
//     (drop: ecn-dr).
//
// Decap never panics on any input and allocates nothing. It writes to buf
// only in stage 6, and only the inner IP header's ECN field (and the IPv4
// header checksum) of a frame it accepts.
func Decap(l *Local, buf []byte, off, n int) (r Result, d drop.Reason) {
	if off < 0 || n < 0 || off > len(buf) || n > len(buf)-off {
		return Result{}, drop.Malformed
	}
	f := buf[off : off+n]
	// 1.
	if len(f) < header.EthernetLen {
		return Result{}, drop.Malformed
	}
	at := header.EthernetLen
	et := binary.BigEndian.Uint16(f[12:14])
	if et == header.EtherTypeVLAN {
		if len(f) < header.EthernetLen+header.VLANTagLen {
			return Result{}, drop.Malformed
		}
		r.VLAN = binary.BigEndian.Uint16(f[14:16]) & 0x0fff
		et = binary.BigEndian.Uint16(f[16:18])
		at += header.VLANTagLen
	}
	port := l.Port
	if port == 0 {
		port = DefaultPort
	}
	// 2, 3.
	var (
		ip     = f[at:]
		u      []byte // UDP header and payload, cut to the UDP length
		tos    byte
		pseudo uint16
		v6     bool
		ipSum  bool // IPv4: header checksum still to verify
		ihl    int
	)
	switch et {
	case header.EtherTypeIPv4:
		if len(ip) < header.IPv4MinLen || ip[0]>>4 != 4 {
			return Result{}, drop.Malformed
		}
		ihl = int(ip[0]&0x0f) * 4
		tl := int(binary.BigEndian.Uint16(ip[2:4]))
		if ihl < header.IPv4MinLen || tl < ihl || tl > len(ip) {
			return Result{}, drop.Malformed
		}
		ip = ip[:tl]
		if ip[9] != header.ProtoUDP {
			return Result{}, drop.NotVXLAN
		}
		frag := binary.BigEndian.Uint16(ip[6:8])
		if frag&0x1fff != 0 {
			return Result{}, drop.NotVXLAN // no UDP header to tell
		}
		if len(ip)-ihl < header.UDPLen {
			return Result{}, drop.Malformed
		}
		u = ip[ihl:]
		if binary.BigEndian.Uint16(u[2:4]) != port {
			return Result{}, drop.NotVXLAN
		}
		if a := l.Addr4.Unmap(); !a.Is4() || [4]byte(ip[16:20]) != a.As4() {
			return Result{}, drop.NotLocal
		}
		if frag&0x2000 != 0 {
			return Result{}, drop.Fragment
		}
		ipSum = true
		tos = ip[1]
		r.Src = netip.AddrFrom4([4]byte(ip[12:16]))
		pseudo = csum.Pseudo(ip[12:16], ip[16:20], header.ProtoUDP, 0)
	case header.EtherTypeIPv6:
		if len(ip) < header.IPv6Len || ip[0]>>4 != 6 {
			return Result{}, drop.Malformed
		}
		pl := int(binary.BigEndian.Uint16(ip[4:6]))
		if pl == 0 || header.IPv6Len+pl > len(ip) {
			return Result{}, drop.Malformed // jumbograms included
		}
		ip = ip[:header.IPv6Len+pl]
		c := header.WalkIPv6(ip)
		switch {
		case c.Err == header.ChainTruncated:
			return Result{}, drop.Malformed
		case c.Err != header.ChainOK, c.Routed: // a routing header with segments left: not the final destination
			return Result{}, drop.NotVXLAN
		case c.Frag.Present():
			if !c.Frag.NonFirst() && c.Proto == header.ProtoUDP && len(ip)-c.L4 >= header.UDPLen &&
				binary.BigEndian.Uint16(ip[c.L4+2:c.L4+4]) == port {
				return Result{}, drop.Fragment
			}
			return Result{}, drop.NotVXLAN
		case c.Proto != header.ProtoUDP:
			return Result{}, drop.NotVXLAN
		}
		rest := ip[c.L4:]
		if len(rest) < header.UDPLen {
			return Result{}, drop.Malformed
		}
		u = rest
		if binary.BigEndian.Uint16(u[2:4]) != port {
			return Result{}, drop.NotVXLAN
		}
		if a := l.Addr6; !a.Is6() || a.Is4In6() || [16]byte(ip[24:40]) != a.As16() {
			return Result{}, drop.NotLocal
		}
		v6 = true
		tos = ip[0]<<4 | ip[1]>>4
		r.Src = netip.AddrFrom16([16]byte(ip[8:24]))
		pseudo = csum.Pseudo(ip[8:24], ip[24:40], header.ProtoUDP, 0)
	default:
		return Result{}, drop.NotVXLAN
	}
	ul := int(binary.BigEndian.Uint16(u[4:6]))
	if ul < header.UDPLen+HeaderLen || ul > len(u) {
		return Result{}, drop.Malformed
	}
	u = u[:ul]
	// 4.
	if ipSum && csum.Sum(ip[:ihl], 0) != 0xffff {
		return Result{}, drop.BadChecksum
	}
	if c := binary.BigEndian.Uint16(u[6:8]); c != 0 || v6 {
		if c == 0 {
			return Result{}, drop.ZeroChecksum
		}
		// The pseudo-header above has length 0: add the UDP length
		// (RFC 768; RFC 8200 §8.1 sums to the same words).
		s := csum.Add(pseudo, uint16(ul))
		if csum.Sum(u, s) != 0xffff {
			return Result{}, drop.BadChecksum
		}
	}
	// 5.
	h := Header(u[header.UDPLen : header.UDPLen+HeaderLen])
	if !h.Valid() {
		return Result{}, drop.BadFlags
	}
	r.VNI = h.VNI()
	r.SrcPort = binary.BigEndian.Uint16(u[0:2])
	// 6.
	inner := u[header.UDPLen+HeaderLen:]
	if len(inner) < header.EthernetLen {
		return Result{}, drop.Malformed
	}
	if !l.InnerVLAN {
		if et := binary.BigEndian.Uint16(inner[12:14]); et == header.EtherTypeVLAN || et == header.EtherTypeSTag {
			return Result{}, drop.InnerVLAN
		}
	}
	if d := decapECN(inner, tos); d != drop.None {
		return Result{}, d
	}
	// inner is a reslice of f (never a full slice expression), so the
	// difference of capacities is its offset in f.
	r.Start = off + cap(f) - cap(inner)
	r.End = r.Start + len(inner)
	return r, drop.None
}

// decapECN applies RFC 6040 §4.2 to the inner frame's IP header given the
// outer TOS/traffic class: outer CE marks ECT inner CE and drops Not-ECT;
// outer ECT(1) over inner ECT(0) becomes ECT(1). Non-IP inner frames are
// left alone.
func decapECN(inner []byte, outerTOS byte) drop.Reason {
	const ect1, ect0, ce = 1, 2, 3
	out := outerTOS & 3
	if out != ce && out != ect1 {
		return drop.None
	}
	it, l3, v6, ok := innerTOS(inner)
	if !ok {
		return drop.None
	}
	in := it & 3
	var nt byte
	switch {
	case out == ce && in == 0:
		return drop.ECN
	case out == ce && in != ce:
		nt = it | ce
	case out == ect1 && in == ect0:
		nt = it&^3 | ect1
	default:
		return drop.None
	}
	p := inner[l3:]
	if v6 {
		p[0] = p[0]&0xf0 | nt>>4
		p[1] = p[1]&0x0f | nt<<4
		return drop.None
	}
	old := binary.BigEndian.Uint16(p[0:2])
	p[1] = nt
	binary.BigEndian.PutUint16(p[10:12], csum.Update(binary.BigEndian.Uint16(p[10:12]), old, binary.BigEndian.Uint16(p[0:2])))
	return drop.None
}
