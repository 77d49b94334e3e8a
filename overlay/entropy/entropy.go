package entropy

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/vifsec/vifsec/header"
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

// portNATT is RFC 3948's UDP port for ESP in UDP.
const portNATT = 4500

// flowKey writes the flow key of frame into k and returns its length.
func flowKey(k *[maxKey]byte, frame []byte, vni uint32) int {
	binary.BigEndian.PutUint32(k[4:8], vni)
	if len(frame) < header.EthernetLen {
		k[0] = kindL2
		return 8 + copy(k[8:], frame)
	}
	et := header.Ethernet(frame).Type()
	l3 := frame[header.EthernetLen:]
	if t, ok := header.ParseVLANTag(l3); ok && et == header.EtherTypeVLAN {
		// One 802.1Q tag: the flow is what it carries.
		et, l3 = t.Type(), l3[header.VLANTagLen:]
	}
	binary.BigEndian.PutUint16(k[2:4], et)
	var proto byte
	var l4 []byte
	var addrs int
	switch {
	case et == header.EtherTypeIPv4 && len(l3) >= header.IPv4MinLen && l3[0]>>4 == 4:
		// Addresses and protocol of any IPv4 header; ports only of a
		// well-formed datagram that is not a fragment.
		proto = l3[9]
		addrs = copy(k[8:], l3[12:20])
		if ip, ok := header.ParseIPv4(l3); ok && !ip.IsFragment() {
			l4 = ip.Payload()
		}
	case et == header.EtherTypeIPv6 && len(l3) >= header.IPv6Len && l3[0]>>4 == 6:
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
	case header.ProtoTCP, header.ProtoUDP, header.ProtoSCTP, header.ProtoDCCP, header.ProtoUDPLite:
		if len(l4) < 4 {
			break
		}
		kind = kindPorts
		copy(k[n:n+4], l4[0:4])
		if proto == header.ProtoUDP && len(l4) >= 12 && l4[8]|l4[9]|l4[10]|l4[11] != 0 &&
			(binary.BigEndian.Uint16(l4[0:2]) == portNATT || binary.BigEndian.Uint16(l4[2:4]) == portNATT) {
			// ESP in UDP (RFC 3948 §2.2): the SA, not the NAT's ports.
			// A zero marker is IKE, hashed by its ports.
			kind = kindSPI
			copy(k[n:n+4], l4[8:12])
		}
		n += 4
	case header.ProtoESP:
		if len(l4) < 4 {
			break
		}
		kind = kindSPI
		n += copy(k[n:n+4], l4[0:4])
	case header.ProtoAH:
		if len(l4) < 8 {
			break
		}
		kind = kindSPI
		n += copy(k[n:n+4], l4[4:8])
	}
	k[0] = kind
	return n
}

// ipv6Upper returns the upper-layer protocol of the IPv6 packet pkt and
// the bytes that follow its header, as header.WalkIPv6 finds them; for a
// fragment (first or not) it returns the protocol and no bytes, so every
// fragment of a datagram is the same flow. AH is upper-layer here: its
// SPI is the flow. A packet whose length or chain the walker refuses is
// hashed by its addresses and the fixed header's next header only.
func ipv6Upper(pkt []byte) (proto byte, l4 []byte) {
	ip, ok := header.ParseIPv6(pkt)
	if !ok {
		return pkt[6], nil
	}
	c := header.WalkIPv6(ip)
	switch {
	case c.Err != header.ChainOK:
		return pkt[6], nil
	case c.Frag.IsFragment():
		return c.Proto, nil
	}
	return c.Proto, ip[c.L4:]
}
