//go:build !linux

package vif

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
)

// ResolveNeighbor is not supported off Linux.
func ResolveNeighbor(dev, nsName string, addr netip.Addr) ([6]byte, bool, error) {
	return [6]byte{}, false, fmt.Errorf("neighbour of %s: %w on %s", addr, errors.ErrUnsupported, runtime.GOOS)
}

// ResolveNeighbors is not supported off Linux.
func ResolveNeighbors(dev, nsName string, addrs []netip.Addr) (map[netip.Addr][6]byte, error) {
	return nil, fmt.Errorf("neighbours on %s: %w on %s", dev, errors.ErrUnsupported, runtime.GOOS)
}

// ListenUDP is not supported off Linux.
func ListenUDP(nsName string, addr netip.AddrPort) (net.PacketConn, error) {
	return nil, fmt.Errorf("udp %s: %w on %s", addr, errors.ErrUnsupported, runtime.GOOS)
}

// ListenESP is not supported off Linux.
func ListenESP(nsName string, addr netip.Addr) (net.PacketConn, error) {
	return nil, fmt.Errorf("esp %s: %w on %s", addr, errors.ErrUnsupported, runtime.GOOS)
}
