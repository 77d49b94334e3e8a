package gso

import (
	"encoding/binary"
	"github.com/vifsec/vifsec/drop"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
)

const (
	maxTags = 2 // 802.1Q and 802.1ad

	optEOL  = 0
	optNOP  = 1
	optLSRR = 0x83 // loose source route
	optSSRR = 0x89 // strict source route

)

// layout is where a super-frame's headers are, as parse found them.
// Offsets are into the frame.
type layout struct {
	l3, l4, pay int // network header, transport header, payload
	end         int // end of the IP packet (frame bytes after it are ignored)
	v6, udp     bool
}

// Segment splits the GSO super-frame frame, described by h, into frames
// whose IP packets (L3 header to end of payload) are at most mtu bytes.
// Segment i is written to out[i][offset:offset+sizes[i]]; it returns the
// number of segments. On a drop nothing is written.
//
// Per segment (as Linux's software GSO does):
//   - L2, L3 and L4 headers are copied (802.1Q/802.1ad tags, IPv4 options
//     and IPv6 hop-by-hop, routing and destination-options headers kept);
//   - IPv4: total length, ID incremented per segment from the
//     super-frame's, header checksum; IPv6: payload length;
//   - TCP: sequence number advanced by the payload before it; CWR only on
//     the first segment, FIN and PSH only on the last; other flags, the ACK
//     number, window and options copied; full checksum;
//   - UDP (USO): each segment is a datagram of gso_size payload (the last
//     one shorter) with its own length and full checksum (0 sent as
//     0xffff).
//
// TCP payload per segment is min(gso_size, mtu - headers): TCP may be cut
// finer than the guest asked. USO datagram boundaries are the
// application's (UDP_SEGMENT), so a gso_size that does not fit is
// DropTooBig: signal the MTU to the guest instead.
//
// The checksum in the super-frame is ignored (with NEEDS_CSUM it is only
// the pseudo-header sum): each segment's is computed from its own bytes
// and the IP header's addresses. A source-routed IPv4 frame (LSRR/SSRR
// option) or an IPv6 one with a routing header that has segments left is
// DropUnsupported, since its pseudo-header would need the final
// destination (RFC 8200 §8.1). h is re-validated against frame; its GSO type
// must match the frame's L3 and L4 protocols, and with NEEDS_CSUM its
// csum_start must be the L4 header. If the caller removed bytes from the
// front of the frame (a VLAN tag), it adjusts h with VnetHdr.Shift.
//
// out and sizes need at least as many entries as segments, at most
// ceil(payload / segment payload) (a 64 KiB TCP frame at MTU 1400 makes 49
// segments); each out[i] needs offset plus the segment's frame length.
// A GSO_NONE or UFO frame is DropUnsupported: a GSO_NONE frame needs only
// csum.Complete.
//
// Stages:
//  1. Validate h and find the headers; check they agree with h.
//  2. Size the segments; check the batch and every buffer before writing.
//  3. Per segment: copy the headers and this segment's payload, then
//     rewrite L3 lengths/ID/checksum and L4 sequence/flags/length/checksum.
func Segment(frame []byte, h offload.VnetHdr, mtu int, out [][]byte, offset int, sizes []int) (n int, d drop.Reason) {
	// 1.
	l, d := parse(frame, h, false)
	if d != drop.None {
		return 0, d
	}
	// 2.
	payload := l.end - l.pay
	room := mtu - (l.pay - l.l3) // payload bytes a segment may carry
	seg := int(h.GSOSize)
	if l.udp {
		if payload > seg && seg > room || payload <= seg && payload > room {
			return 0, drop.TooBig
		}
	} else {
		seg = min(seg, room)
	}
	if seg < 1 {
		if payload > 0 || room < 0 {
			return 0, drop.TooBig
		}
		seg = 1 // a header-only frame that fits
	}
	n = 1
	if payload > seg {
		n = (payload + seg - 1) / seg
	}
	if n > len(out) || n > len(sizes) {
		return 0, drop.TooManySegments
	}
	if offset < 0 {
		return 0, drop.NoRoom
	}
	for i := range n {
		size := l.pay + min(seg, payload-i*seg)
		if len(out[i])-offset < size {
			return 0, drop.NoRoom
		}
	}
	// 3.
	var addrs uint16
	if l.v6 {
		addrs = csum.Sum(frame[l.l3+8:l.l3+header.IPv6Len], 0)
	} else {
		addrs = csum.Sum(frame[l.l3+12:l.l3+20], 0)
	}
	proto := uint16(header.ProtoTCP)
	if l.udp {
		proto = header.ProtoUDP
	}
	addrs = csum.Add(addrs, proto)
	ihl := int(frame[l.l3]&0x0f) * 4
	id0 := binary.BigEndian.Uint16(frame[l.l3+4:])
	var seq0 uint32
	var flags0 byte
	if !l.udp {
		seq0 = binary.BigEndian.Uint32(frame[l.l4+4:])
		flags0 = frame[l.l4+13]
	}
	for i := range n {
		dst := l.cut(out[i][offset:], frame, i, seg, ihl, id0)
		sizes[i] = len(dst)
		l4 := dst[l.l4:]
		pseudo := csum.Add(addrs, uint16(len(l4)))
		if l.udp {
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
			l4[6], l4[7] = 0, 0
			c := csum.Checksum(l4, pseudo)
			if c == 0 {
				c = 0xffff // RFC 768, RFC 8200 §8.1: 0 means "no checksum"
			}
			binary.BigEndian.PutUint16(l4[6:], c)
			continue
		}
		binary.BigEndian.PutUint32(l4[4:], seq0+uint32(i*seg))
		f := flags0
		if i > 0 {
			f &^= header.TCPFlagCWR
		}
		if i < n-1 {
			f &^= header.TCPFlagFIN | header.TCPFlagPSH
		}
		l4[13] = f
		l4[16], l4[17] = 0, 0
		binary.BigEndian.PutUint16(l4[16:], csum.Checksum(l4, pseudo))
	}
	return n, drop.None
}

// sourceRouted reports whether IPv4 options carry a loose or strict
// source route, whose last address, not the header's destination, is the
// one in the TCP/UDP pseudo-header. The walk stops at EOL or at a
// malformed option (the options are copied, not interpreted).
func sourceRouted(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case optEOL:
			return false
		case optNOP:
			i++
			continue
		case optLSRR, optSSRR:
			return true
		}
		if i+1 >= len(opts) || opts[i+1] < 2 {
			return false
		}
		i += int(opts[i+1])
	}
	return false
}

// parse validates h against frame and finds the headers. Every read is
// length-checked first: frame is guest input. received selects
// ValidateReceived's rules for h (a header the kernel wrote), else
// Validate's (one a sender wrote).
func parse(frame []byte, h offload.VnetHdr, received bool) (l layout, d drop.Reason) {
	if received {
		d = h.ValidateReceived(frame)
	} else {
		d = h.Validate(frame)
	}
	if d != drop.None {
		return l, d
	}
	var wantV4, wantV6 bool
	switch h.GSO() {
	case offload.GSOTCPv4:
		wantV4 = true
	case offload.GSOTCPv6:
		wantV6 = true
	case offload.GSOUDPL4:
		wantV4, wantV6, l.udp = true, true, true
	default: // GSONone, GSOUDP (UFO)
		return l, drop.Unsupported
	}

	// Ethernet, up to two VLAN tags.
	if len(frame) < header.EthernetLen {
		return l, drop.Malformed
	}
	etype := binary.BigEndian.Uint16(frame[12:])
	l.l3 = header.EthernetLen
	for range maxTags {
		if etype != header.EtherTypeVLAN && etype != header.EtherTypeSTag {
			break
		}
		if len(frame) < l.l3+header.VLANTagLen {
			return l, drop.Malformed
		}
		etype = binary.BigEndian.Uint16(frame[l.l3+2:])
		l.l3 += header.VLANTagLen
	}
	var proto byte
	switch {
	case etype == header.EtherTypeIPv4 && wantV4:
		ip := frame[l.l3:]
		if len(ip) < header.IPv4MinLen || ip[0]>>4 != 4 {
			return l, drop.Malformed
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		switch {
		case total == 0:
			return l, drop.Unsupported // BIG TCP: length in the skb, not the header
		case ihl < header.IPv4MinLen || total < ihl || total > len(ip):
			return l, drop.Malformed
		case binary.BigEndian.Uint16(ip[6:])&0x3fff != 0: // MF or an offset
			return l, drop.Fragment
		}
		if sourceRouted(ip[header.IPv4MinLen:ihl]) {
			return l, drop.Unsupported
		}
		proto = ip[9]
		l.l4 = l.l3 + ihl
		l.end = l.l3 + total
	case etype == header.EtherTypeIPv6 && wantV6:
		l.v6 = true
		ip := frame[l.l3:]
		if len(ip) < header.IPv6Len || ip[0]>>4 != 6 {
			return l, drop.Malformed
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if plen == 0 {
			return l, drop.Unsupported // jumbogram / BIG TCP
		}
		l.end = l.l3 + header.IPv6Len + plen
		if l.end > len(frame) {
			return l, drop.Malformed
		}
		c := header.WalkIPv6(frame[l.l3:l.end])
		switch {
		case c.Frag.Present():
			return l, drop.Fragment
		case c.Err != header.ChainOK:
			return l, drop.Malformed
		case c.Routed:
			return l, drop.Unsupported // segments left: the pseudo-header needs the final destination
		case c.Proto == header.ProtoAH:
			return l, drop.Unsupported
		}
		proto = c.Proto
		l.l4 = l.l3 + c.L4
	case etype == header.EtherTypeIPv4 || etype == header.EtherTypeIPv6:
		return l, drop.BadVnetHdr // GSO type of the other family
	default:
		return l, drop.BadVnetHdr // a GSO type on a non-IP frame
	}

	if l.udp {
		if proto != header.ProtoUDP {
			return l, drop.BadVnetHdr
		}
		if l.l4+header.UDPLen > l.end || int(binary.BigEndian.Uint16(frame[l.l4+4:])) != l.end-l.l4 {
			return l, drop.Malformed
		}
		l.pay = l.l4 + header.UDPLen
	} else {
		if proto != header.ProtoTCP {
			return l, drop.BadVnetHdr
		}
		if l.l4+header.TCPMinLen > l.end {
			return l, drop.Malformed
		}
		doff := int(frame[l.l4+12]>>4) * 4
		if doff < header.TCPMinLen || l.l4+doff > l.end {
			return l, drop.Malformed
		}
		if frame[l.l4+13]&(header.TCPFlagSYN|header.TCPFlagRST) != 0 {
			return l, drop.Unsupported
		}
		l.pay = l.l4 + doff
	}
	if h.NeedsCsum() && int(h.CsumStart) != l.l4 {
		return l, drop.BadVnetHdr
	}
	return l, drop.None
}

// cut writes segment i (payload bytes i*seg onward, at most seg) of the
// super-frame laid out as l into buf: the headers up to the payload, its
// part of the payload, and the IP header's length (and, for IPv4, ID i
// after the first's and its checksum) made true for it. It returns the
// segment; the caller has checked that buf holds it. The transport
// header is the caller's to finish.
func (l *layout) cut(buf, frame []byte, i, seg, ihl int, id0 uint16) []byte {
	p0 := l.pay + i*seg
	p1 := min(p0+seg, l.end)
	dst := buf[:l.pay+p1-p0]
	copy(dst, frame[:l.pay])
	copy(dst[l.pay:], frame[p0:p1])
	ip := dst[l.l3:]
	if l.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(len(ip)-header.IPv6Len))
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		binary.BigEndian.PutUint16(ip[4:], id0+uint16(i))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], csum.Checksum(ip[:ihl], 0))
	}
	return dst
}
