package entropy

import (
	"crypto/rand"
	"encoding/binary"
)

// The outer source port range: the IANA dynamic/private range RFC 7348 §5
// recommends for the VXLAN source port.
const (
	PortMin = 49152
	PortMax = 65535
)

// Hasher computes flow hashes and source ports under one secret key. It
// is immutable after NewHasher and safe for concurrent use.
type Hasher struct {
	k0, k1 uint64
}

// NewHasher returns a Hasher keyed with key. The key must be secret and
// random per host (RandomKey); the same key gives the same ports, which
// tests and a restarted daemon that wants stable paths may rely on.
func NewHasher(key [16]byte) *Hasher {
	return &Hasher{
		k0: binary.LittleEndian.Uint64(key[0:8]),
		k1: binary.LittleEndian.Uint64(key[8:16]),
	}
}

// RandomKey returns a key from crypto/rand for NewHasher.
func RandomKey() [16]byte {
	var k [16]byte
	rand.Read(k[:]) // never fails (crypto/rand, Go 1.24+)
	return k
}

// SourcePort returns the outer UDP source port, in [PortMin, PortMax],
// for innerFrame (an Ethernet frame) in VNI vni. It allocates nothing.
func (h *Hasher) SourcePort(innerFrame []byte, vni uint32) uint16 {
	// The top 14 bits of the hash: SipHash's output bits are all equally
	// good, and 16384 ports fill the range exactly.
	return PortMin + uint16(h.Hash(innerFrame, vni)>>50)
}

// Hash returns the 64-bit keyed hash of innerFrame's flow (see the package
// doc for what the flow is) in VNI vni.
func (h *Hasher) Hash(innerFrame []byte, vni uint32) uint64 {
	var k [maxKey]byte
	n := flowKey(&k, innerFrame, vni)
	return sipHash24(h.k0, h.k1, k[:n])
}

// Flow key layout, in a fixed buffer on the stack:
//
//	0      1      2      4      8
//	+------+------+------+------+---------------------+---------+
//	| kind | proto| etype| VNI  | src addr | dst addr | L4 word |
//	+------+------+------+------+---------------------+---------+
//
// The kind keeps flows of different shapes from colliding on equal bytes;
// the L4 word is the two ports, the SPI, or absent.
const (
	maxKey = 8 + 2*16 + 4

	kindL2    = 1 // non-IP: MACs and EtherType
	kindProto = 2 // IP addresses and protocol (fragments, other protocols, short L4)
	kindPorts = 3 // IP addresses, protocol and ports
	kindSPI   = 4 // IP addresses, protocol and SPI (ESP, ESP-in-UDP, AH)
)

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherVLAN = 0x8100

	protoHopOpts  = 0
	protoTCP      = 6
	protoUDP      = 17
	protoDCCP     = 33
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoDstOpts  = 60
	protoSCTP     = 132
	protoUDPLite  = 136

	portNATT = 4500 // RFC 3948 UDP encapsulation of ESP
)

// flowKey writes the flow key of frame into k and returns its length.
func flowKey(k *[maxKey]byte, frame []byte, vni uint32) int {
	binary.BigEndian.PutUint32(k[4:8], vni)
	if len(frame) < 14 {
		k[0] = kindL2
		return 8 + copy(k[8:], frame)
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	l3 := frame[14:]
	if et == etherVLAN && len(frame) >= 18 {
		// One 802.1Q tag: the flow is what it carries.
		et = binary.BigEndian.Uint16(frame[16:18])
		l3 = frame[18:]
	}
	binary.BigEndian.PutUint16(k[2:4], et)
	var proto byte
	var l4 []byte
	var addrs int
	switch {
	case et == etherIPv4 && len(l3) >= 20 && l3[0]>>4 == 4:
		ihl := int(l3[0]&0x0f) * 4
		if ihl < 20 || ihl > len(l3) {
			ihl = 20 // options we cannot skip: addresses and protocol only
			l4 = nil
		} else if binary.BigEndian.Uint16(l3[6:8])&0x3fff == 0 {
			l4 = l3[ihl:] // not a fragment
		}
		proto = l3[9]
		addrs = copy(k[8:], l3[12:20])
	case et == etherIPv6 && len(l3) >= 40 && l3[0]>>4 == 6:
		addrs = copy(k[8:], l3[8:40])
		proto, l4 = ipv6Upper(l3)
	default:
		k[0] = kindL2
		return 8 + copy(k[8:20], frame[0:12])
	}
	k[1] = proto
	n := 8 + addrs
	kind := byte(kindProto)
	switch proto {
	case protoTCP, protoUDP, protoSCTP, protoDCCP, protoUDPLite:
		if len(l4) < 4 {
			break
		}
		kind = kindPorts
		copy(k[n:n+4], l4[0:4])
		if proto == protoUDP && len(l4) >= 12 && l4[8]|l4[9]|l4[10]|l4[11] != 0 &&
			(binary.BigEndian.Uint16(l4[0:2]) == portNATT || binary.BigEndian.Uint16(l4[2:4]) == portNATT) {
			// ESP in UDP (RFC 3948 §2.2): the SA, not the NAT's ports.
			// A zero marker is IKE, hashed by its ports.
			kind = kindSPI
			copy(k[n:n+4], l4[8:12])
		}
		n += 4
	case protoESP:
		if len(l4) < 4 {
			break
		}
		kind = kindSPI
		n += copy(k[n:n+4], l4[0:4])
	case protoAH:
		if len(l4) < 8 {
			break
		}
		kind = kindSPI
		n += copy(k[n:n+4], l4[4:8])
	}
	k[0] = kind
	return n
}

// ipv6Upper walks pkt's extension headers (at most 8) to the upper-layer
// protocol and returns it with the bytes that follow; for a fragment it
// returns the fragment header's next header and no bytes, so every
// fragment of a datagram is the same flow. AH is upper-layer here: its
// SPI is the flow.
func ipv6Upper(pkt []byte) (proto byte, l4 []byte) {
	proto, rest := pkt[6], pkt[40:]
	for range 8 {
		switch proto {
		case protoHopOpts, protoRouting, protoDstOpts:
			if len(rest) < 8 {
				return proto, nil
			}
			n := (int(rest[1]) + 1) * 8
			if n > len(rest) {
				return proto, nil
			}
			proto, rest = rest[0], rest[n:]
		case protoFragment:
			if len(rest) < 8 {
				return proto, nil
			}
			return rest[0], nil
		default:
			return proto, rest
		}
	}
	return proto, nil
}
