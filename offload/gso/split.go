package gso

import (
	"encoding/binary"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
)

// SplitUDP cuts a received UDP GSO super-frame (GSO_UDP_L4, described by
// h: what a veth hands AF_PACKET whole when its sender used UDP GSO, e.g.
// a peer's Train) into its datagrams of h.GSOSize payload each, the last
// one shorter, for a receiver that consumes them itself: ESP in UDP, whose
// ICV authenticates every byte that matters, or VXLAN to the local VTEP.
// Datagram i is written to out[i][offset:offset+sizes[i]]; it returns the
// number of datagrams. On a drop nothing is written.
//
// Per datagram, the headers are copied and their lengths rewritten (IPv4
// total length, ID incremented per datagram from the super-frame's and
// header checksum; IPv6 payload length; UDP length), as the kernel's
// __udp_gso_segment would. The UDP checksum follows each family's rule
// for a datagram whose checksum is not carried over: over IPv4 it is set
// to 0, "no checksum" (RFC 768), which saves a pass over every byte; over
// IPv6, where 0 is invalid (RFC 8200 §8.1), it is computed.
//
// The super-frame's checksum field is never trusted: with NEEDS_CSUM it
// is partial, and with DATA_VALID (a NIC's or the kernel's UDP GRO, whose
// device verified every datagram's checksum before merging them) it is
// left from the merge.
//
// frame and h are untrusted: h is validated against frame (Segment's
// rules, as for a received header, offload.VnetHdr.ValidateReceived:
// NEEDS_CSUM at the UDP header or DATA_VALID, a gso_size of 1-65534,
// headers that agree with the GSO type, IPv4 options and IPv6 extension
// headers walked by the one walker), and a frame that needs more
// datagrams than out or sizes hold is drop.TooManySegments, one a buffer
// cannot hold drop.NoRoom. A gso_size at least the payload gives one
// datagram.
func SplitUDP(frame []byte, h offload.VnetHdr, out [][]byte, offset int, sizes []int) (n int, d drop.Reason) {
	if h.GSO() != offload.GSOUDPL4 {
		return 0, drop.Unsupported
	}
	l, d := parse(frame, h, true)
	if d != drop.None {
		return 0, d
	}
	payload := l.end - l.pay
	seg := int(h.GSOSize)
	n = max(1, (payload+seg-1)/seg)
	if n > len(out) || n > len(sizes) {
		return 0, drop.TooManySegments
	}
	if offset < 0 {
		return 0, drop.NoRoom
	}
	for i := range n {
		if len(out[i])-offset < l.pay+min(seg, payload-i*seg) {
			return 0, drop.NoRoom
		}
	}
	ihl := int(frame[l.l3]&0x0f) * 4
	id0 := binary.BigEndian.Uint16(frame[l.l3+4:])
	for i := range n {
		dst := l.cut(out[i][offset:], frame, i, seg, ihl, id0)
		sizes[i] = len(dst)
		u := dst[l.l4:]
		binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
		u[6], u[7] = 0, 0
		if l.v6 {
			ip := dst[l.l3:]
			c := csum.Checksum(u, csum.Pseudo(ip[8:24], ip[24:40], header.ProtoUDP, len(u)))
			if c == 0 {
				c = 0xffff // RFC 768: a computed 0 is sent as all ones
			}
			binary.BigEndian.PutUint16(u[6:], c)
		}
	}
	return n, drop.None
}

// PartialUDP turns a received UDP GSO super-frame that came with
// DATA_VALID (see SplitUDP) into one a sender may write whole, as the
// kernel requires of UDP_L4: NEEDS_CSUM at the UDP checksum, whose field
// it sets to the folded pseudo-header sum over the super-frame's length
// (the kernel or device completes it per datagram as it cuts them). A
// header that already has NEEDS_CSUM is returned as it is. frame and h
// are validated as by SplitUDP; on a drop frame is unchanged.
func PartialUDP(frame []byte, h offload.VnetHdr) (offload.VnetHdr, drop.Reason) {
	if h.GSO() != offload.GSOUDPL4 {
		return h, drop.Unsupported
	}
	l, d := parse(frame, h, true)
	if d != drop.None {
		return h, d
	}
	if h.NeedsCsum() {
		return h, drop.None
	}
	ip := frame[l.l3:]
	var pseudo uint16
	if l.v6 {
		pseudo = csum.Pseudo(ip[8:24], ip[24:40], header.ProtoUDP, l.end-l.l4)
	} else {
		pseudo = csum.Pseudo(ip[12:16], ip[16:20], header.ProtoUDP, l.end-l.l4)
	}
	binary.BigEndian.PutUint16(frame[l.l4+6:], pseudo)
	h.Flags = offload.FlagNeedsCsum
	h.CsumStart, h.CsumOffset = uint16(l.l4), 6
	return h, drop.None
}
