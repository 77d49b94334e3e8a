package pmtu

import (
	"encoding/binary"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload/csum"
)

const (
	// MaxICMPv4 is the largest ICMP error ICMPTooBig builds for IPv4: RFC
	// 1812 §4.3.2.3 quotes as much of the original as fits in 576 bytes.
	MaxICMPv4 = 576
	// MaxICMPv6 is the largest ICMPv6 error: RFC 4443 §2.4(c), as much as
	// fits in the IPv6 minimum MTU.
	MaxICMPv6 = 1280

	ttl = 64 // hop limit of the errors, Linux's default
	// tosInternetControl is IP precedence 6 (RFC 791), which Linux's
	// icmp_send gives its errors.
	tosInternetControl = 0xc0
)

// ICMPTooBig writes into dst, and returns the length of, the error a
// router on the path would send for the IP packet orig (starting at its IP
// header) that did not fit mtu:
//
//   - IPv4: ICMP destination unreachable, code 4 "fragmentation needed and
//     DF set" (RFC 792) with the next-hop MTU in the second word (RFC 1191
//     §4), quoting orig's IP header and as much data as keeps the error
//     within 576 bytes (RFC 1812 §4.3.2.3; at least the 8 bytes RFC 792
//     asks for);
//   - IPv6: ICMPv6 packet too big (RFC 4443 §3.2) with the MTU, quoting as
//     much of orig as keeps the error within 1280 bytes.
//
// The error goes back to orig's source, from orig's destination (the
// gateway answers as the path, so the guest's stack matches the error to
// its flow): an IP packet with TTL/hop limit 64 and correct IP, ICMP and
// ICMPv6 checksums. The caller puts the Ethernet header in front.
//
// It returns 0, writing nothing, where no error may or can be sent:
// orig malformed or not IP; orig itself an ICMP or ICMPv6 error message
// (RFC 1122 §3.2.2, RFC 4443 §2.4(e)); an IPv4 fragment other than the
// first (RFC 1122 §3.2.2); orig's source not a unicast address or its
// destination multicast or broadcast (no address to answer from, RFC
// 1812 §4.3.2.7, RFC 4443 §2.2); mtu outside 68-65535 for IPv4 (RFC 791's
// minimum and the field's range) or below 1 for IPv6; dst too short for
// the headers plus orig's IP header and 8 bytes of data. A shorter dst
// than the maximum quotes less. dst must not overlap orig.
func ICMPTooBig(dst, orig []byte, mtu int) int {
	if len(orig) < 1 {
		return 0
	}
	switch orig[0] >> 4 {
	case 4:
		return tooBig4(dst, orig, mtu)
	case 6:
		return tooBig6(dst, orig, mtu)
	}
	return 0
}

func tooBig4(dst, orig []byte, mtu int) int {
	if len(orig) < header.IPv4MinLen || mtu < 68 || mtu > 0xffff {
		return 0
	}
	ihl := int(orig[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(orig[2:]))
	if ihl < header.IPv4MinLen || ihl > len(orig) || total < ihl {
		return 0
	}
	if binary.BigEndian.Uint16(orig[6:])&0x1fff != 0 {
		return 0 // not the first fragment
	}
	src, odst := orig[12:16], orig[16:20]
	if !unicast4(src) || !unicast4(odst) {
		return 0
	}
	if orig[9] == header.ProtoICMP {
		if ihl >= len(orig) || icmpError4(orig[ihl]) {
			return 0
		}
	}
	quote := orig[:min(total, len(orig))]
	const hdr = header.IPv4MinLen + header.ICMPLen
	q := min(len(quote), MaxICMPv4-hdr, len(dst)-hdr)
	if q < min(len(quote), ihl+8) {
		return 0
	}
	n := hdr + q
	b := dst[:n]
	b[0] = 0x45
	b[1] = tosInternetControl
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	binary.BigEndian.PutUint32(b[4:], 0x00004000) // ID 0 with DF: an atomic datagram (RFC 6864 §4.1)
	b[8], b[9] = ttl, header.ProtoICMP
	b[10], b[11] = 0, 0
	copy(b[12:16], odst)
	copy(b[16:20], src)
	binary.BigEndian.PutUint16(b[10:], csum.Checksum(b[:header.IPv4MinLen], 0))
	m := b[header.IPv4MinLen:]
	m[0], m[1] = 3, 4 // destination unreachable, fragmentation needed
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint32(m[4:], uint32(mtu)) // unused (0) and next-hop MTU
	copy(m[header.ICMPLen:], quote[:q])
	binary.BigEndian.PutUint16(m[2:], csum.Checksum(m, 0))
	return n
}

func tooBig6(dst, orig []byte, mtu int) int {
	if len(orig) < header.IPv6Len || mtu < 1 || uint64(mtu) > 0xffffffff {
		return 0
	}
	src, odst := orig[8:24], orig[24:40]
	if !unicast6(src) || odst[0] == 0xff {
		return 0
	}
	end := header.IPv6Len + int(binary.BigEndian.Uint16(orig[4:]))
	if end == header.IPv6Len || end > len(orig) {
		end = len(orig) // a jumbogram, or a truncated copy
	}
	if icmpError6(orig[:end]) {
		return 0
	}
	quote := orig[:end]
	const hdr = header.IPv6Len + header.ICMPLen
	q := min(len(quote), MaxICMPv6-hdr, len(dst)-hdr)
	if q < min(len(quote), header.IPv6Len+8) {
		return 0
	}
	n := hdr + q
	b := dst[:n]
	binary.BigEndian.PutUint32(b[0:], 6<<28)
	binary.BigEndian.PutUint16(b[4:], uint16(n-header.IPv6Len))
	b[6], b[7] = header.ProtoICMPv6, ttl
	copy(b[8:24], odst)
	copy(b[24:40], src)
	m := b[header.IPv6Len:]
	m[0], m[1] = 2, 0 // packet too big
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint32(m[4:], uint32(mtu))
	copy(m[header.ICMPLen:], quote[:q])
	binary.BigEndian.PutUint16(m[2:], csum.Checksum(m, csum.Pseudo(b[8:24], b[24:40], header.ProtoICMPv6, len(m))))
	return n
}

// icmpError4 reports whether an ICMP type is an error message (RFC 792,
// RFC 1122 §3.2.2: destination unreachable, source quench, redirect, time
// exceeded, parameter problem).
func icmpError4(typ byte) bool {
	switch typ {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

// icmpError6 reports whether the IPv6 packet pkt carries an ICMPv6 error
// message (type below 128, RFC 4443 §2.1), walking its extension headers
// with header.WalkIPv6.
// A chain it cannot follow is taken as an error message: better to stay
// silent than to answer an error with an error.
func icmpError6(pkt []byte) bool {
	c := header.WalkIPv6(pkt)
	switch {
	case c.Err != header.ChainOK:
		return true
	case c.Frag.NonFirst():
		return false // a later fragment: no ICMPv6 header in it
	case c.Proto != header.ProtoICMPv6:
		return false
	}
	return c.L4 >= len(pkt) || pkt[c.L4] < 128
}

// unicast4 reports whether a is a unicast address a host may be: not
// 0/8, loopback, multicast, reserved (240/4) or broadcast.
func unicast4(a []byte) bool {
	return a[0] != 0 && a[0] != 127 && a[0] < 224
}

// unicast6 reports whether a is neither unspecified, loopback nor
// multicast.
func unicast6(a []byte) bool {
	if a[0] == 0xff {
		return false
	}
	for _, c := range a[:15] {
		if c != 0 {
			return true
		}
	}
	return a[15] > 1
}
