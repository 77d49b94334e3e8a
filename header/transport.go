package header

import "encoding/binary"

// Transport-layer lengths.
const (
	TCPMinLen  = 20
	UDPLen     = 8
	ICMPLen    = 8 // ICMP and ICMPv6: type, code, checksum and the rest-of-header word
	ICMPMinLen = 4 // type, code, checksum
)

// TCP flags (RFC 9293 §3.1, RFC 3168).
const (
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagPSH = 0x08
	TCPFlagACK = 0x10
	TCPFlagURG = 0x20
	TCPFlagECE = 0x40
	TCPFlagCWR = 0x80
)

// TCP is a view of a TCP header, its options and what follows (RFC 9293
// §3.1):
//
//	|          Source Port          |       Destination Port        |
//	|                        Sequence Number                        |
//	|                    Acknowledgment Number                      |
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|           Checksum            |         Urgent Pointer        |
//	|                    Options (Data Offset > 5)                  |
//
// Its accessors assume what ParseTCP checked: h[:h.DataOffset()] is there.
type TCP []byte

// ParseTCP returns the TCP segment at the start of b, or false unless b
// holds a header whose data offset is at least 5 words and fits in b.
func ParseTCP(b []byte) (TCP, bool) {
	if len(b) < TCPMinLen {
		return nil, false
	}
	if d := int(b[12]>>4) * 4; d < TCPMinLen || d > len(b) {
		return nil, false
	}
	return TCP(b), true
}

func (h TCP) SrcPort() uint16  { return binary.BigEndian.Uint16(h[0:2]) }
func (h TCP) DstPort() uint16  { return binary.BigEndian.Uint16(h[2:4]) }
func (h TCP) Seq() uint32      { return binary.BigEndian.Uint32(h[4:8]) }
func (h TCP) DataOffset() int  { return int(h[12]>>4) * 4 }
func (h TCP) Flags() byte      { return h[13] }
func (h TCP) Checksum() uint16 { return binary.BigEndian.Uint16(h[16:18]) }

// Options are the option bytes between the fixed header and the data.
func (h TCP) Options() []byte { return h[TCPMinLen:h.DataOffset()] }

// UDP is a view of a UDP header and what follows (RFC 768):
//
//	|          Source Port          |       Destination Port        |
//	|            Length             |           Checksum            |
//
// Its accessors assume len ≥ UDPLen (what ParseUDP checked).
type UDP []byte

// ParseUDP returns the UDP datagram at the start of b, or false if b is
// too short for a header. The length field is not checked against b
// (callers differ on a datagram that must be whole).
func ParseUDP(b []byte) (UDP, bool) {
	if len(b) < UDPLen {
		return nil, false
	}
	return UDP(b), true
}

func (h UDP) SrcPort() uint16  { return binary.BigEndian.Uint16(h[0:2]) }
func (h UDP) DstPort() uint16  { return binary.BigEndian.Uint16(h[2:4]) }
func (h UDP) Length() int      { return int(binary.BigEndian.Uint16(h[4:6])) }
func (h UDP) Checksum() uint16 { return binary.BigEndian.Uint16(h[6:8]) }

// Whole reports whether the length field is exactly len(h): the datagram
// ends where the IP packet does.
func (h UDP) Whole() bool { return h.Length() == len(h) }

// ICMP is a view of an ICMP (RFC 792) or ICMPv6 (RFC 4443) header:
//
//	|     Type      |     Code      |          Checksum             |
//
// Its accessors assume len ≥ ICMPMinLen (what ParseICMP checked).
type ICMP []byte

// ParseICMP returns the ICMP or ICMPv6 message at the start of b, or false
// if b is too short for type, code and checksum.
func ParseICMP(b []byte) (ICMP, bool) {
	if len(b) < ICMPMinLen {
		return nil, false
	}
	return ICMP(b), true
}

func (h ICMP) Type() byte { return h[0] }
func (h ICMP) Code() byte { return h[1] }
