//go:build !linux

package vif

import (
	"errors"
	"fmt"
	"runtime"
)

// PacketPort is an AF_PACKET port; off Linux there is none.
type PacketPort struct{ Port }

// OpenPacket is not supported off Linux: it returns an error wrapping
// errors.ErrUnsupported.
func OpenPacket(name, nsName string) (*PacketPort, error) {
	return OpenPacketWith(name, nsName, PacketOptions{})
}

// OpenPacketWith is not supported off Linux.
func OpenPacketWith(name, nsName string, opt PacketOptions) (*PacketPort, error) {
	return nil, fmt.Errorf("--dev %s: AF_PACKET: %w on %s", name, errors.ErrUnsupported, runtime.GOOS)
}
