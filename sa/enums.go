package sa

import "fmt"

// Direction is the direction of traffic an SA or a policy applies to, seen
// from the VM: Out is what the VM sends, In is what it receives.
type Direction uint8

const (
	DirInvalid Direction = iota
	DirIn
	DirOut
)

func (d Direction) String() string {
	switch d {
	case DirIn:
		return "in"
	case DirOut:
		return "out"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// ParseDirection parses the CLI spelling: "in" or "out".
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "in":
		return DirIn, nil
	case "out":
		return DirOut, nil
	}
	return DirInvalid, fmt.Errorf("%q is not a direction; use in or out", s)
}

// Mode is the IPsec mode of an SA or policy (RFC 4301 §4.1).
type Mode uint8

const (
	ModeInvalid Mode = iota
	ModeTransport
	ModeTunnel
)

func (m Mode) String() string {
	switch m {
	case ModeTransport:
		return "transport"
	case ModeTunnel:
		return "tunnel"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses the CLI spelling: "transport" or "tunnel".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "transport":
		return ModeTransport, nil
	case "tunnel":
		return ModeTunnel, nil
	}
	return ModeInvalid, fmt.Errorf("%q is not a mode; use transport or tunnel", s)
}
