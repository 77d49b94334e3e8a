package tenant

import (
	"fmt"
	"strconv"

	"github.com/vifsec/vifsec/header"
)

// Action is what a policy does with the traffic it selects
// (esxcli `--action`). The zero value is invalid.
type Action uint8

const (
	// ActionInvalid is the zero value: no action set.
	ActionInvalid Action = iota
	// ActionNone passes the traffic unmodified, in clear.
	ActionNone
	// ActionDiscard drops the traffic.
	ActionDiscard
	// ActionIPsec protects the traffic with the policy's SA (SAName).
	ActionIPsec
)

// String returns the CLI spelling: "none", "discard" or "ipsec".
func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionDiscard:
		return "discard"
	case ActionIPsec:
		return "ipsec"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// ParseAction parses the CLI spelling: "none", "discard" or "ipsec".
func ParseAction(s string) (Action, error) {
	switch s {
	case "none":
		return ActionNone, nil
	case "discard":
		return ActionDiscard, nil
	case "ipsec":
		return ActionIPsec, nil
	}
	return ActionInvalid, fmt.Errorf("%q is not an action; use none, discard or ipsec", s)
}

// MarshalText returns the CLI spelling; ActionInvalid marshals as "" so a
// zero value round-trips, any other unknown value is an error.
func (a Action) MarshalText() ([]byte, error) {
	if a == ActionInvalid {
		return []byte{}, nil
	}
	if a > ActionIPsec {
		return nil, fmt.Errorf("tenant: cannot marshal %v", a)
	}
	return []byte(a.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (a *Action) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*a = ActionInvalid
		return nil
	}
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Proto is the upper-layer protocol selector of a policy
// (esxcli `--upper-layer-protocol`). The zero value is invalid.
type Proto uint8

const (
	// ProtoInvalid is the zero value: no protocol set.
	ProtoInvalid Proto = iota
	// ProtoAny matches every protocol.
	ProtoAny
	ProtoTCP
	ProtoUDP
	// ProtoICMP6 is ICMPv6; the policy's DstPort then selects the ICMPv6 type.
	ProtoICMP6
	// ProtoICMP is ICMP for IPv4 (ext); DstPort selects the ICMP type.
	ProtoICMP
)

// String returns the CLI spelling: "any", "tcp", "udp", "icmp6" or "icmp".
func (p Proto) String() string {
	switch p {
	case ProtoAny:
		return "any"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP6:
		return "icmp6"
	case ProtoICMP:
		return "icmp"
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// Number returns the IANA protocol number: 6, 17, 58 or 1. It returns 0
// for ProtoAny and ProtoInvalid, which select no single number.
func (p Proto) Number() uint8 {
	switch p {
	case ProtoTCP:
		return header.ProtoTCP
	case ProtoUDP:
		return header.ProtoUDP
	case ProtoICMP6:
		return header.ProtoICMPv6
	case ProtoICMP:
		return header.ProtoICMP
	}
	return 0
}

// isICMP reports whether the policy's DstPort selects an ICMP type.
func (p Proto) isICMP() bool { return p == ProtoICMP6 || p == ProtoICMP }

// ParseProto parses the CLI spelling: "any", "tcp", "udp", "icmp6" or "icmp".
func ParseProto(s string) (Proto, error) {
	switch s {
	case "any":
		return ProtoAny, nil
	case "tcp":
		return ProtoTCP, nil
	case "udp":
		return ProtoUDP, nil
	case "icmp6":
		return ProtoICMP6, nil
	case "icmp":
		return ProtoICMP, nil
	}
	return ProtoInvalid, fmt.Errorf("%q is not an upper-layer protocol; use any, tcp, udp, icmp6 or icmp", s)
}

// MarshalText returns the CLI spelling; ProtoInvalid marshals as "".
func (p Proto) MarshalText() ([]byte, error) {
	if p == ProtoInvalid {
		return []byte{}, nil
	}
	if p > ProtoICMP {
		return nil, fmt.Errorf("tenant: cannot marshal %v", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (p *Proto) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*p = ProtoInvalid
		return nil
	}
	v, err := ParseProto(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Port is a port selector (esxcli `--source-port`, `--destination-port`):
// any port, or one port 0-65535. With ProtoICMP6 or ProtoICMP a destination
// Port selects the ICMP type instead, 0-255.
//
// The zero value is unset (invalid), so that a policy built without its
// ports fails Validate rather than silently matching any port. Ports
// compare with ==.
type Port struct {
	v uint32 // 0 unset, 1 any, n+2 port n
}

// PortAny is the selector that matches any port.
var PortAny = Port{v: 1}

// PortNumber returns the selector that matches port (or ICMP type) n only.
func PortNumber(n uint16) Port { return Port{v: uint32(n) + 2} }

// IsValid reports whether p is set (any or a number).
func (p Port) IsValid() bool { return p.v != 0 }

// IsAny reports whether p matches any port.
func (p Port) IsAny() bool { return p.v == 1 }

// Number returns the port p selects; ok is false for any and unset.
func (p Port) Number() (n uint16, ok bool) {
	if p.v < 2 {
		return 0, false
	}
	return uint16(p.v - 2), true
}

// String returns the CLI spelling, "any" or the decimal number; "unset"
// for the zero value.
func (p Port) String() string {
	switch p.v {
	case 0:
		return "unset"
	case 1:
		return "any"
	}
	return strconv.FormatUint(uint64(p.v-2), 10)
}

// ParsePort parses the CLI spelling: "any" or a decimal number 0-65535.
func ParsePort(s string) (Port, error) {
	if s == "any" {
		return PortAny, nil
	}
	n, ok := parseDecimal(s, 65535)
	if !ok {
		return Port{}, fmt.Errorf("%q is not a port; use 0-65535 or any", s)
	}
	return PortNumber(uint16(n)), nil
}

// MarshalText returns the CLI spelling; the unset Port marshals as "".
func (p Port) MarshalText() ([]byte, error) {
	if p.v == 0 {
		return []byte{}, nil
	}
	return []byte(p.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (p *Port) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*p = Port{}
		return nil
	}
	v, err := ParsePort(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// parseDecimal parses 1-10 ASCII decimal digits (leading zeros allowed, no
// sign) whose value is at most max.
func parseDecimal(s string, max uint32) (uint32, bool) {
	if len(s) == 0 || len(s) > 10 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > uint64(max) {
		return 0, false
	}
	return uint32(n), true
}
