package header

import (
	"encoding/binary"
	"fmt"
	"net"
)

// Link-layer lengths and EtherTypes (IEEE 802.3, 802.1Q, IANA).
const (
	EthernetLen = 14 // destination, source, EtherType
	VLANTagLen  = 4  // TPID (the EtherType field) is counted in EthernetLen: TCI and inner EtherType

	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100 // 802.1Q customer tag
	EtherTypeIPv6 = 0x86dd
	EtherTypeSTag = 0x88a8 // 802.1ad service tag
	EtherTypeQinQ = 0x9100 // pre-standard stacked tag

	VIDMask = 0x0fff // the VLAN ID bits of a TCI
	VIDMax  = 0x0ffe // VID 4095 is reserved (IEEE 802.1Q table 9-2)
)

// IsTPID reports whether et starts a VLAN tag: 802.1Q, 802.1ad or the
// pre-standard 0x9100.
func IsTPID(et uint16) bool {
	return et == EtherTypeVLAN || et == EtherTypeSTag || et == EtherTypeQinQ
}

// MAC is an Ethernet address, such as a VM interface's.
type MAC [6]byte

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// MarshalText writes aa:bb:cc:dd:ee:ff.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads any form net.ParseMAC accepts for a 6-byte address.
func (m *MAC) UnmarshalText(b []byte) error {
	hw, err := net.ParseMAC(string(b))
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("%q is not a MAC address; write six hex bytes like 52:54:00:12:34:56", b)
	}
	copy(m[:], hw)
	return nil
}

// Ethernet is a view of an Ethernet II header (its accessors assume
// len ≥ EthernetLen: get one from ParseEthernet):
//
//	| destination (6) | source (6) | EtherType or TPID (2) |
type Ethernet []byte

// ParseEthernet returns the Ethernet header at the start of b, or false if
// b is too short to hold one.
func ParseEthernet(b []byte) (Ethernet, bool) {
	if len(b) < EthernetLen {
		return nil, false
	}
	return Ethernet(b[:EthernetLen]), true
}

func (e Ethernet) Dst() MAC     { return MAC(e[0:6]) }
func (e Ethernet) Src() MAC     { return MAC(e[6:12]) }
func (e Ethernet) Type() uint16 { return binary.BigEndian.Uint16(e[12:14]) }

// VLANTag is a view of the 4 bytes that follow a TPID (IEEE 802.1Q §9.6):
//
//	| PCP (3) DEI (1) VID (12) | EtherType (2) |
//
// Its accessors assume len ≥ VLANTagLen: get one from ParseVLANTag.
type VLANTag []byte

// ParseVLANTag returns the tag at the start of b (the bytes right after
// the TPID), or false if b is too short.
func ParseVLANTag(b []byte) (VLANTag, bool) {
	if len(b) < VLANTagLen {
		return nil, false
	}
	return VLANTag(b[:VLANTagLen]), true
}

func (t VLANTag) TCI() uint16  { return binary.BigEndian.Uint16(t[0:2]) }
func (t VLANTag) VID() uint16  { return t.TCI() & VIDMask }
func (t VLANTag) Type() uint16 { return binary.BigEndian.Uint16(t[2:4]) }

// Link is where an Ethernet frame's payload starts, as LinkLayer finds it.
type Link struct {
	Type uint16 // EtherType of the payload
	L3   int    // offset of the payload in the frame
	Tags int    // VLAN tags stepped over
	VID  uint16 // VID of the outermost tag (0 with none)
}

// LinkLayer reads frame's Ethernet header and steps over at most maxTags
// VLAN tags (any TPID IsTPID accepts). ok is false when the frame is too
// short for its headers; a frame with more than maxTags tags is returned
// with Type the next TPID and Tags == maxTags, for the caller to refuse.
func LinkLayer(frame []byte, maxTags int) (l Link, ok bool) {
	e, ok := ParseEthernet(frame)
	if !ok {
		return Link{}, false
	}
	l.Type, l.L3 = e.Type(), EthernetLen
	for l.Tags < maxTags && IsTPID(l.Type) {
		t, ok := ParseVLANTag(frame[l.L3:])
		if !ok {
			return Link{}, false
		}
		if l.Tags == 0 {
			l.VID = t.VID()
		}
		l.Type = t.Type()
		l.L3 += VLANTagLen
		l.Tags++
	}
	return l, true
}
