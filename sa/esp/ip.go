package esp

import (
	"encoding/binary"

	"github.com/vifsec/vifsec/header"
)

// ipLen validates the IP header at the start of pkt (header.ParseIPv4,
// header.ParseIPv6) and returns the packet's length according to the
// header (pkt may carry link-layer padding after it). ok is false for
// anything that is not a well-formed IPv4 or IPv6 packet that fits in pkt;
// an IPv6 payload length of 0 (a jumbogram, RFC 2675) is not supported.
func ipLen(pkt []byte) (n int, v6 bool, ok bool) {
	if len(pkt) < 1 {
		return 0, false, false
	}
	switch pkt[0] >> 4 {
	case 4:
		ip, ok := header.ParseIPv4(pkt)
		return len(ip), false, ok
	case 6:
		ip, ok := header.ParseIPv6(pkt)
		return len(ip), true, ok
	}
	return 0, false, false
}

// ipv6Insert walks the IPv6 extension headers of pkt (validated by ipLen)
// with header.WalkIPv6 and returns where ESP goes in transport mode (RFC
// 4303 §3.1.1: after hop-by-hop, routing and fragment headers, and after
// destination options that precede a routing header), and the offset of
// the Next Header byte that must point to ESP. frag reports a Fragment
// header with a non-zero offset or M set: transport mode protects whole
// datagrams only. ok is false for a chain the walker refuses.
func ipv6Insert(pkt []byte) (at, nextField int, frag, ok bool) {
	var c header.Chain
	c.Walk(pkt)
	if c.Frag.IsFragment() {
		return c.Insert, c.InsertField, true, c.Err == header.ChainOK
	}
	return c.Insert, c.InsertField, false, c.Err == header.ChainOK
}

// ipv6Upper walks pkt's extension headers with header.WalkIPv6 and returns
// the upper-layer header's offset and protocol and the offset of the Next
// Header byte that names it. frag reports a Fragment header with a
// non-zero offset or M set (a fragment is not reassembled here; for a
// non-first one proto is the fragment's next header). ok is false for a
// chain the walker refuses (truncated, too long, misplaced headers).
func ipv6Upper(pkt []byte) (at, nextField int, proto byte, frag, ok bool) {
	var c header.Chain
	c.Walk(pkt)
	return c.L4, c.NextField, c.Proto, c.Frag.IsFragment(), c.Err == header.ChainOK
}

// ipv4Checksum recomputes the header checksum of the IPv4 header h.
func ipv4Checksum(h []byte) {
	h[10], h[11] = 0, 0
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(h[10:12], ^uint16(sum))
}

// tos returns the IPv4 TOS / IPv6 Traffic Class byte (DSCP<<2 | ECN).
func tos(pkt []byte, v6 bool) byte {
	if v6 {
		return pkt[0]<<4 | pkt[1]>>4
	}
	return pkt[1]
}

func setTOS(pkt []byte, v6 bool, t byte) {
	if v6 {
		pkt[0] = 0x60 | t>>4
		pkt[1] = t<<4 | pkt[1]&0x0f
		return
	}
	pkt[1] = t
	ipv4Checksum(pkt[:int(pkt[0]&0x0f)*4])
}
