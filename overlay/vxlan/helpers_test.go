package vxlan

import (
	"github.com/vifsec/vifsec/header"

	"encoding/binary"
	"net/netip"

	"github.com/vifsec/vifsec/offload/csum"
)

// Packet builders for the tests, with documentation addresses only
// (RFC 5737, RFC 3849) and locally administered MACs.

var (
	macVM     = [6]byte{0x02, 0x00, 0x5e, 0x10, 0x01, 0x01} // the tenant VM behind vifsec
	macPeer   = [6]byte{0x02, 0x00, 0x5e, 0x10, 0x01, 0x02} // the tenant host behind the remote VTEP
	macUplink = [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01} // vifsec's underlay interface
	macRemote = [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02} // the remote VTEP's underlay interface

	vtep4Local  = netip.MustParseAddr("198.51.100.1")
	vtep4Remote = netip.MustParseAddr("198.51.100.2")
	vtep6Local  = netip.MustParseAddr("2001:db8:ff::1")
	vtep6Remote = netip.MustParseAddr("2001:db8:ff::2")

	inner4VM   = netip.MustParseAddr("192.0.2.1")
	inner4Peer = netip.MustParseAddr("192.0.2.2")
	inner6VM   = netip.MustParseAddr("2001:db8:1::1")
	inner6Peer = netip.MustParseAddr("2001:db8:1::2")
)

func ether(dst, src [6]byte, etype uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], etype)
	return append(f, payload...)
}

// ipv4 is an IPv4 header (no options, DF, TTL 64) in front of payload.
func ipv4(src, dst netip.Addr, proto, tos byte, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0], h[1] = 0x45, tos
	binary.BigEndian.PutUint16(h[2:4], uint16(20+len(payload)))
	h[6], h[8], h[9] = 0x40, 64, proto
	a, b := src.As4(), dst.As4()
	copy(h[12:16], a[:])
	copy(h[16:20], b[:])
	binary.BigEndian.PutUint16(h[10:12], csum.Checksum(h, 0))
	return append(h, payload...)
}

// ipv6 is an IPv6 header (hop limit 64) in front of payload.
func ipv6(src, dst netip.Addr, next, tc byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	binary.BigEndian.PutUint32(h[0:4], 6<<28|uint32(tc)<<20)
	binary.BigEndian.PutUint16(h[4:6], uint16(len(payload)))
	h[6], h[7] = next, 64
	a, b := src.As16(), dst.As16()
	copy(h[8:24], a[:])
	copy(h[24:40], b[:])
	return append(h, payload...)
}

// echo is an ICMP (v6: ICMPv6) echo request or reply with id, seq and
// data; for ICMPv6 the checksum covers the pseudo-header of src and dst.
func echo(v6, reply bool, src, dst netip.Addr, id, seq uint16, data []byte) []byte {
	m := make([]byte, 8, 8+len(data))
	switch {
	case v6 && reply:
		m[0] = 129
	case v6:
		m[0] = 128
	case reply:
		m[0] = 0
	default:
		m[0] = 8
	}
	binary.BigEndian.PutUint16(m[4:6], id)
	binary.BigEndian.PutUint16(m[6:8], seq)
	m = append(m, data...)
	var s uint16
	if v6 {
		a, b := src.As16(), dst.As16()
		s = csum.Pseudo(a[:], b[:], 58, len(m))
	}
	binary.BigEndian.PutUint16(m[2:4], csum.Checksum(m, s))
	return m
}

// pingFrame is an inner Ethernet frame with an ICMP echo request from the
// VM to the peer.
func pingFrame(v6 bool, tos byte, id, seq uint16, data []byte) []byte {
	if v6 {
		return ether(macPeer, macVM, header.EtherTypeIPv6, ipv6(inner6VM, inner6Peer, 58, tos, echo(true, false, inner6VM, inner6Peer, id, seq, data)))
	}
	return ether(macPeer, macVM, header.EtherTypeIPv4, ipv4(inner4VM, inner4Peer, 1, tos, echo(false, false, inner4VM, inner4Peer, id, seq, data)))
}

func outer4(vni uint32) *Outer {
	return &Outer{SrcMAC: macUplink, DstMAC: macRemote, Src: vtep4Local, Dst: vtep4Remote, VNI: vni}
}

func outer6(vni uint32) *Outer {
	return &Outer{SrcMAC: macUplink, DstMAC: macRemote, Src: vtep6Local, Dst: vtep6Remote, VNI: vni}
}

// local is the remote VTEP's view (what it accepts) for frames built
// with outer4/outer6: Decap of our own Encap output.
func remoteLocal() *Local { return &Local{Addr4: vtep4Remote, Addr6: vtep6Remote} }

// place copies frame into a fresh buffer at offset Headroom with tail
// bytes after it, as the data path's buffers hold a read frame.
func place(frame []byte, tail int) []byte {
	buf := make([]byte, Headroom+len(frame)+tail)
	copy(buf[Headroom:], frame)
	return buf
}

// sumRef is the RFC 1071 checksum done the slow, obvious way, to check
// the fast path against.
func sumRef(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts { // all even-length but the last
		all = append(all, p...)
	}
	var s uint32
	for i := 0; i+1 < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
	}
	if len(all)%2 == 1 {
		s += uint32(all[len(all)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
