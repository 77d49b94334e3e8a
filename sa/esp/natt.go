package esp

import (
	"encoding/binary"
	"fmt"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload/csum"
)

// NAT traversal (RFC 3948, RFC 7296 §2.23): what arrives on UDP port 4500
// is ESP in UDP, IKE behind a 4-byte non-ESP marker, or a NAT-keepalive;
// IKE also arrives on port 500 without a marker.
//
//	ESP in UDP (RFC 3948 §2.1)          IKE on 4500 (RFC 3948 §2.2)
//	+------------------------------+    +------------------------------+
//	| Src port     | Dst port 4500 |    | Src port     | Dst port 4500 |
//	| Length       | Checksum      |    | Length       | Checksum      |
//	+------------------------------+    +------------------------------+
//	| SPI (never 0)                |    | Non-ESP marker: 0x00000000   |
//	| Sequence number … ESP        |    | IKE header …                 |
//
//	NAT-keepalive (RFC 3948 §2.3): one byte, 0xff.

const (
	// NATTPort is the UDP port of ESP in UDP and of IKE once NAT
	// traversal moved it off port 500 (RFC 3948, RFC 7296 §2.23).
	NATTPort = 4500
	// IKEPort is IKE's own UDP port (RFC 7296 §2).
	IKEPort = 500
	// NonESPMarkerLen is the size of the zero word in front of IKE
	// messages on NATTPort.
	NonESPMarkerLen = 4

	udpLen = 8
)

// Kind is what Classify found in a packet from the wire.
type Kind uint8

const (
	KindInvalid   Kind = iota
	KindOther          // none of the below: ordinary traffic
	KindESP            // plain ESP (IP protocol 50)
	KindESPInUDP       // shaped as ESP in UDP to NATTPort (RFC 3948): see Classify
	KindIKE            // UDP to IKEPort, or to NATTPort behind the non-ESP marker
	KindKeepalive      // a NAT-keepalive to NATTPort (RFC 3948 §2.3)
	KindFragment       // a fragment of a plain ESP packet (not reassembled)
)

var kindNames = [...]string{KindOther: "other", KindESP: "esp", KindESPInUDP: "esp-in-udp", KindIKE: "ike",
	KindKeepalive: "nat-keepalive", KindFragment: "esp-fragment"}

func (k Kind) String() string {
	if k != KindInvalid && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Class is the result of Classify: offsets are within the packet given.
type Class struct {
	Kind Kind
	V6   bool
	// UDP is the offset of the UDP header (ESP in UDP, IKE, keepalive).
	UDP int
	// ESP is the offset of the ESP header and SPI its SPI (KindESP,
	// KindESPInUDP).
	ESP int
	SPI uint32
	// IKE is the offset of the IKE message (after the non-ESP marker on
	// NATTPort); the message runs to End.
	IKE int
	// End is where the IP packet ends according to its header (link-layer
	// padding may follow).
	End int
}

// Classify tells plain ESP, ESP in UDP, IKE and NAT-keepalives apart from
// other traffic in the IP packet pkt, reading only its headers. It judges
// by shape alone: any UDP datagram to NATTPort whose first word is not 0
// and that has room for an ESP header is KindESPInUDP, and any one-byte
// 0xff datagram to it KindKeepalive — an application of the receiving host
// on port 4500 (its own NAT-T IPsec, say) sends the same. Whether it is
// ESP is for the caller to decide, by looking up an SA with that SPI
// (the data path does, and otherwise hands it on as ordinary UDP). It is what
// the data path asks of every IP packet from the wire, so it never
// allocates. A packet that is malformed or too short for what its headers
// announce is KindOther (the caller's ordinary path deals with it), except
// that a UDP datagram must be whole: its length field must match the IP
// length. IPv4 fragments and IPv6 fragments (other than atomic ones) of
// UDP are KindOther: the UDP header of a non-first fragment is not there
// to read, so no fragment of IKE or ESP in UDP is recognised (IKE avoids
// IP fragmentation with RFC 7383).
func Classify(pkt []byte) Class {
	n, v6, ok := ipLen(pkt)
	if !ok {
		return Class{Kind: KindOther}
	}
	pkt = pkt[:n]
	c := Class{Kind: KindOther, V6: v6, End: n}
	var at int
	var proto byte
	var frag bool
	if v6 {
		if at, _, proto, frag, ok = ipv6Upper(pkt); !ok {
			return c
		}
	} else {
		at, proto, frag = int(pkt[0]&0x0f)*4, pkt[9], header.IPv4IsFragment(pkt)
	}
	switch {
	case frag:
		if proto == header.ProtoESP {
			c.Kind = KindFragment
		}
		return c
	case proto == header.ProtoESP:
		if h, ok := ParseHeader(pkt[at:]); ok {
			c.Kind, c.ESP, c.SPI = KindESP, at, h.SPI()
		}
		return c
	case proto != header.ProtoUDP:
		return c
	}
	u := pkt[at:]
	if len(u) < udpLen || int(binary.BigEndian.Uint16(u[4:6])) != len(u) {
		return c
	}
	c.UDP = at
	pl := u[udpLen:]
	switch binary.BigEndian.Uint16(u[2:4]) {
	case IKEPort:
		c.Kind, c.IKE = KindIKE, at+udpLen
	case NATTPort:
		switch {
		case len(pl) == 1 && pl[0] == 0xff:
			c.Kind = KindKeepalive
		case len(pl) >= NonESPMarkerLen && binary.BigEndian.Uint32(pl) == 0:
			c.Kind, c.IKE = KindIKE, at+udpLen+NonESPMarkerLen
		case len(pl) >= 8:
			c.Kind, c.ESP, c.SPI = KindESPInUDP, at+udpLen, binary.BigEndian.Uint32(pl)
		}
	}
	return c
}

// espInUDP reports whether u (a UDP header and everything after it, to the
// end of the IP packet) is ESP in UDP as Classify finds it: whole, to
// NATTPort, with a non-zero first word and room for an ESP header.
func espInUDP(u []byte) bool {
	return len(u) >= udpLen+8 && int(binary.BigEndian.Uint16(u[4:6])) == len(u) &&
		binary.BigEndian.Uint16(u[2:4]) == NATTPort && binary.BigEndian.Uint32(u[udpLen:]) != 0
}

// natChecksum repairs the upper-layer checksum of pkt, an IP packet just
// rebuilt by transport-mode decapsulation of ESP in UDP: its IP header is
// hdrLen bytes and the byte at nextField names what follows (over IPv6,
// extension headers that followed ESP, such as destination options, are
// stepped over). RFC 3948 §3.1.2 lets a receiver zero a UDP checksum
// (IPv4 only: IPv6 UDP needs one, RFC 8200 §8.1) and recompute a TCP one;
// ICMPv6 covers a pseudo-header too and is recomputed. Other protocols
// carry no address-dependent checksum. The pseudo-header uses the packet's
// destination address as it stands: a routing header with segments left
// (a final destination elsewhere) is not looked into.
func natChecksum(pkt []byte, hdrLen, nextField int, v6 bool) {
	at, proto := hdrLen, pkt[nextField]
	if v6 {
		// The rebuilt packet's chain: the headers that stayed in front
		// of ESP, then what followed ESP inside it.
		var frag, ok bool
		if at, _, proto, frag, ok = ipv6Upper(pkt); !ok || frag {
			return
		}
	}
	l4 := pkt[at:]
	var field int
	switch {
	case proto == header.ProtoUDP && len(l4) >= udpLen:
		if !v6 {
			l4[6], l4[7] = 0, 0
			return
		}
		field = 6
	case proto == header.ProtoTCP && len(l4) >= 20:
		field = 16
	case proto == header.ProtoICMPv6 && v6 && len(l4) >= 4:
		field = 2
	default:
		return
	}
	src, dst := pkt[12:16], pkt[16:20]
	if v6 {
		src, dst = pkt[8:24], pkt[24:40]
	}
	l4[field], l4[field+1] = 0, 0
	c := csum.Checksum(l4, csum.Pseudo(src, dst, proto, len(l4)))
	if c == 0 && proto == header.ProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[field:], c)
}
