package esp

import "encoding/binary"

// IP protocol numbers (IANA) this package handles.
const (
	protoHopByHop = 0
	protoIPv4     = 4
	protoTCP      = 6
	protoUDP      = 17
	protoIPv6     = 41
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoNoNext   = 59
	protoICMPv6   = 58
	protoDstOpts  = 60
)

const (
	ipv4MinLen = 20
	ipv6Len    = 40
)

// ipLen validates the IP header at the start of pkt and returns the
// packet's length according to the header (pkt may carry link-layer
// padding after it). ok is false for anything that is not a well-formed
// IPv4 or IPv6 packet that fits in pkt.
func ipLen(pkt []byte) (n int, v6 bool, ok bool) {
	if len(pkt) < 1 {
		return 0, false, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4MinLen {
			return 0, false, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(pkt[2:4]))
		if ihl < ipv4MinLen || tot < ihl || tot > len(pkt) {
			return 0, false, false
		}
		return tot, false, true
	case 6:
		if len(pkt) < ipv6Len {
			return 0, true, false
		}
		pl := int(binary.BigEndian.Uint16(pkt[4:6]))
		if pl == 0 || ipv6Len+pl > len(pkt) { // 0: jumbogram (RFC 2675), not supported
			return 0, true, false
		}
		return ipv6Len + pl, true, true
	}
	return 0, false, false
}

// ipv6Insert walks the IPv6 extension headers of pkt (validated by ipLen)
// and returns where ESP goes in transport mode (RFC 4303 §3.1.1: after
// hop-by-hop, routing and fragment headers, and after destination options
// that precede a routing header), and the offset of the Next Header byte
// that must point to ESP. frag reports a Fragment header with a non-zero
// offset or M set: transport mode protects whole datagrams only.
func ipv6Insert(pkt []byte) (at, nextField int, frag, ok bool) {
	at, nextField = ipv6Len, 6
	off, field := ipv6Len, 6
	for {
		nh := pkt[field]
		switch nh {
		case protoHopByHop, protoRouting, protoFragment, protoDstOpts:
		default:
			return at, nextField, frag, true
		}
		if off+8 > len(pkt) {
			return 0, 0, false, false
		}
		l := 8
		if nh != protoFragment {
			l = (int(pkt[off+1]) + 1) * 8
		} else if binary.BigEndian.Uint16(pkt[off+2:off+4])&0xfff9 != 0 {
			frag = true
		}
		if off+l > len(pkt) {
			return 0, 0, false, false
		}
		if nh == protoDstOpts && pkt[off] != protoRouting {
			// Destination options for the final destination: after ESP.
			return at, nextField, frag, true
		}
		field = off
		off += l
		if nh != protoDstOpts {
			at, nextField = off, field
		}
	}
}

// ipv6Upper walks pkt's extension headers (hop-by-hop, routing,
// destination options, fragment) to the upper-layer header: it returns its
// offset and protocol and the offset of the Next Header byte that names it.
// frag reports a Fragment header with a non-zero offset or M set; the walk
// stops there, with proto the fragment's next header (a fragment is not
// reassembled here). ok is false for a truncated or overlong chain.
func ipv6Upper(pkt []byte) (at, nextField int, proto byte, frag, ok bool) {
	return ipv6Walk(pkt, ipv6Len, 6)
}

// ipv6Walk is ipv6Upper from the header at off, whose type is named by
// the byte at field.
func ipv6Walk(pkt []byte, off, field int) (at, nextField int, proto byte, frag, ok bool) {
	for i := 0; i < 16; i++ { // bound the walk: a chain of empty headers is an attack, not traffic
		nh := pkt[field]
		switch nh {
		case protoHopByHop, protoRouting, protoDstOpts, protoFragment:
		default:
			return off, field, nh, false, true
		}
		if off+8 > len(pkt) {
			return 0, 0, 0, false, false
		}
		l := 8
		if nh != protoFragment {
			l = (int(pkt[off+1]) + 1) * 8
		} else if binary.BigEndian.Uint16(pkt[off+2:off+4])&0xfff9 != 0 {
			return off + 8, off, pkt[off], true, true
		}
		if off+l > len(pkt) {
			return 0, 0, 0, false, false
		}
		field = off
		off += l
	}
	return 0, 0, 0, false, false
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

// ipv4Fragment reports MF set or a non-zero fragment offset.
func ipv4Fragment(h []byte) bool { return binary.BigEndian.Uint16(h[6:8])&0x3fff != 0 }

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
