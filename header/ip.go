package header

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers (IANA; the IPv4 Protocol and IPv6 Next Header field).
const (
	ProtoHopByHop = 0
	ProtoICMP     = 1
	ProtoIPv4     = 4
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoDCCP     = 33
	ProtoIPv6     = 41
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDstOpts  = 60
	ProtoSCTP     = 132
	ProtoUDPLite  = 136
)

// Network-layer lengths.
const (
	IPv4MinLen = 20
	IPv4MaxLen = 60
	IPv6Len    = 40
	// IPv6FragmentLen is the length of an IPv6 fragment header.
	IPv6FragmentLen = 8
)

// IPv4 is a view of an IPv4 header and what follows it, to the end of
// the datagram (RFC 791):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	|         Identification        |Flags|      Fragment Offset    |
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	|                       Source Address                          |
//	|                    Destination Address                        |
//	|                    Options (IHL > 5)                          |
//
// Its accessors assume what ParseIPv4 checked.
type IPv4 []byte

// ParseIPv4 returns the IPv4 datagram at the start of b, cut to its total
// length (b may carry link-layer padding after it), or false unless b
// starts with version 4, an IHL of at least 5 words, and a total length
// that covers the header and fits in b.
func ParseIPv4(b []byte) (IPv4, bool) {
	if len(b) < IPv4MinLen || b[0]>>4 != 4 {
		return nil, false
	}
	hl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if hl < IPv4MinLen || total < hl || total > len(b) {
		return nil, false
	}
	return IPv4(b[:total]), true
}

func (h IPv4) HeaderLen() int      { return int(h[0]&0x0f) * 4 }
func (h IPv4) TOS() byte           { return h[1] }
func (h IPv4) TotalLen() int       { return int(binary.BigEndian.Uint16(h[2:4])) }
func (h IPv4) ID() uint16          { return binary.BigEndian.Uint16(h[4:6]) }
func (h IPv4) TTL() byte           { return h[8] }
func (h IPv4) Protocol() byte      { return h[9] }
func (h IPv4) Src() netip.Addr     { return netip.AddrFrom4([4]byte(h[12:16])) }
func (h IPv4) Dst() netip.Addr     { return netip.AddrFrom4([4]byte(h[16:20])) }
func (h IPv4) Payload() []byte     { return h[h.HeaderLen():] }
func (h IPv4) DF() bool            { return binary.BigEndian.Uint16(h[6:8])&ipv4DF != 0 }
func (h IPv4) MoreFragments() bool { return binary.BigEndian.Uint16(h[6:8])&ipv4MF != 0 }

// FragmentOffset is the fragment offset in bytes.
func (h IPv4) FragmentOffset() int { return int(binary.BigEndian.Uint16(h[6:8])&ipv4OffMask) * 8 }

// IsFragment reports MF set or a non-zero offset: the datagram is not
// whole.
func (h IPv4) IsFragment() bool { return IPv4IsFragment(h) }

// IPv4IsFragment is IsFragment on the first 8 bytes of an IPv4 header
// whose other fields have not been checked (len(b) ≥ 8).
func IPv4IsFragment(b []byte) bool {
	return binary.BigEndian.Uint16(b[6:8])&(ipv4MF|ipv4OffMask) != 0
}

const (
	ipv4DF      = 0x4000
	ipv4MF      = 0x2000
	ipv4OffMask = 0x1fff
)

// IPv6 is a view of an IPv6 header and what follows it, to the end of
// the packet (RFC 8200):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	|                   Source Address (16 bytes)                   |
//	|                Destination Address (16 bytes)                 |
//
// Its accessors assume len ≥ IPv6Len (what ParseIPv6 checked).
type IPv6 []byte

// ParseIPv6 returns the IPv6 packet at the start of b, cut to its payload
// length (b may carry link-layer padding after it), or false unless b
// starts with version 6 and a non-zero payload length that fits in b. A
// payload length of 0 (a jumbogram, RFC 2675) is refused here; a caller
// that takes it to mean "all of b" uses IPv6(b) after checking
// len(b) ≥ IPv6Len itself.
func ParseIPv6(b []byte) (IPv6, bool) {
	if len(b) < IPv6Len || b[0]>>4 != 6 {
		return nil, false
	}
	pl := int(binary.BigEndian.Uint16(b[4:6]))
	if pl == 0 || IPv6Len+pl > len(b) {
		return nil, false
	}
	return IPv6(b[:IPv6Len+pl]), true
}

func (h IPv6) TrafficClass() byte { return h[0]<<4 | h[1]>>4 }
func (h IPv6) PayloadLen() int    { return int(binary.BigEndian.Uint16(h[4:6])) }
func (h IPv6) NextHeader() byte   { return h[6] }
func (h IPv6) HopLimit() byte     { return h[7] }
func (h IPv6) Src() netip.Addr    { return netip.AddrFrom16([16]byte(h[8:24])) }
func (h IPv6) Dst() netip.Addr    { return netip.AddrFrom16([16]byte(h[24:40])) }
