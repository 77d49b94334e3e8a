package vxlan

import (
	"github.com/vifsec/vifsec/header"

	"encoding/binary"
)

// DefaultPort is the IANA-assigned VXLAN UDP port (RFC 7348 §5).
const DefaultPort = 4789

// MaxVNI is the largest VXLAN Network Identifier (24 bits).
const MaxVNI = 1<<24 - 1

// Header sizes and the buffer geometry Encap needs.
const (
	HeaderLen = 8 // the VXLAN header

	// Headroom is the most Encap writes in front of the inner frame: outer
	// Ethernet with an 802.1Q tag, IPv6, UDP and VXLAN.
	Headroom = header.EthernetLen + header.VLANTagLen + header.IPv6Len + header.UDPLen + HeaderLen // 74

	// OverheadIPv4 and OverheadIPv6 are how much smaller the inner IP MTU
	// is than the underlay's IP MTU: outer IP, UDP, VXLAN and the inner
	// Ethernet header (an outer 802.1Q tag does not count against the IP
	// MTU).
	OverheadIPv4 = header.IPv4MinLen + header.UDPLen + HeaderLen + header.EthernetLen // 50
	OverheadIPv6 = header.IPv6Len + header.UDPLen + HeaderLen + header.EthernetLen    // 70
)

// Header is a view of a VXLAN header (RFC 7348 §5):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                VXLAN Network Identifier (VNI) |   Reserved    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Its accessors assume len(h) ≥ HeaderLen: get one from ParseHeader.
type Header []byte

// FlagI is the I flag: the VNI is valid. It must be set (RFC 7348 §5).
const FlagI = 0x08

// ParseHeader returns the VXLAN header at the start of b, or false if b
// is too short to hold one.
func ParseHeader(b []byte) (Header, bool) {
	if len(b) < HeaderLen {
		return nil, false
	}
	return Header(b[:HeaderLen]), true
}

// Flags is the first byte: FlagI and reserved bits.
func (h Header) Flags() byte { return h[0] }

// Valid reports whether the I flag is set. Reserved bits are ignored, as
// RFC 7348 §5 requires of a receiver.
func (h Header) Valid() bool { return h[0]&FlagI != 0 }

// VNI is the 24-bit VXLAN Network Identifier.
func (h Header) VNI() uint32 { return binary.BigEndian.Uint32(h[4:8]) >> 8 }

// Put writes a header with the I flag and vni (its low 24 bits), reserved
// fields zero.
func (h Header) Put(vni uint32) {
	binary.BigEndian.PutUint32(h[0:4], FlagI<<24)
	binary.BigEndian.PutUint32(h[4:8], vni<<8)
}

// innerTOS returns the inner frame's IPv4 TOS or IPv6 traffic class
// (DSCP and ECN), with where it lives for Decap's ECN update; ok is false
// for a non-IP frame. One 802.1Q tag is looked through.
func innerTOS(frame []byte) (tos byte, l3 int, v6, ok bool) {
	if len(frame) < header.EthernetLen {
		return 0, 0, false, false
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	l3 = header.EthernetLen
	if et == header.EtherTypeVLAN && len(frame) >= header.EthernetLen+header.VLANTagLen {
		et = binary.BigEndian.Uint16(frame[16:18])
		l3 += header.VLANTagLen
	}
	p := frame[l3:]
	switch {
	case et == header.EtherTypeIPv4 && len(p) >= header.IPv4MinLen && p[0]>>4 == 4:
		return p[1], l3, false, true
	case et == header.EtherTypeIPv6 && len(p) >= header.IPv6Len && p[0]>>4 == 6:
		return p[0]<<4 | p[1]>>4, l3, true, true
	}
	return 0, 0, false, false
}
