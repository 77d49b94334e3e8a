package gso

import (
	"encoding/binary"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/offload"
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
// __udp_gso_segment would, except for the UDP checksum: it is not
// computed but set to 0, "no checksum" (RFC 768; for IPv6 a value a
// receiver of its own would refuse, RFC 8200 §8.1, which is why these
// datagrams are not for anyone else). That saves a pass over every byte.
//
// frame and h are untrusted: h is validated against frame (Segment's
// rules: NEEDS_CSUM at the UDP header, a gso_size of 1-65534, headers that
// agree with the GSO type, IPv4 options and IPv6 extension headers walked
// by the one walker), and a frame that needs more datagrams than out or
// sizes hold is drop.TooManySegments, one a buffer cannot hold
// drop.NoRoom. A gso_size at least the payload gives one datagram.
func SplitUDP(frame []byte, h offload.VnetHdr, out [][]byte, offset int, sizes []int) (n int, d drop.Reason) {
	if h.GSO() != offload.GSOUDPL4 {
		return 0, drop.Unsupported
	}
	l, d := parse(frame, h)
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
	}
	return n, drop.None
}
