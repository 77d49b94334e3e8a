package vif

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ResolveNeighbor returns the link-layer address of addr on interface dev
// in namespace nsName ("" = the daemon's), as the kernel's neighbour table
// (ARP / ND) knows it. When it does not know it yet, ResolveNeighbor asks
// the kernel to resolve it (NTF_USE, as `ip neigh replace ADDR dev DEV
// use`) and reports ok false: call again later. The kernel needs a route
// to addr through dev (an address of the same subnet on dev).
func ResolveNeighbor(dev, nsName string, addr netip.Addr) (mac [6]byte, ok bool, err error) {
	h, err := handleIn(nsName)
	if err != nil {
		return mac, false, err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return mac, false, fmt.Errorf("--dev %s: %w", dev, err)
	}
	addr = addr.Unmap()
	family := netlink.FAMILY_V6
	if addr.Is4() {
		family = netlink.FAMILY_V4
	}
	ns, err := h.NeighList(l.Attrs().Index, family)
	if err != nil {
		return mac, false, fmt.Errorf("neighbours of %s: %w", dev, err)
	}
	const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP
	for _, n := range ns {
		a, _ := netip.AddrFromSlice(n.IP)
		if a.Unmap() == addr && len(n.HardwareAddr) == 6 && n.State&usable != 0 {
			copy(mac[:], n.HardwareAddr)
			return mac, true, nil
		}
	}
	err = h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family, IP: net.IP(addr.AsSlice()), Flags: netlink.NTF_USE, State: netlink.NUD_NONE})
	if err != nil {
		return mac, false, fmt.Errorf("resolve %s on %s: %w", addr, dev, err)
	}
	return mac, false, nil
}

// handleIn opens a netlink handle inside namespace nsName.
func handleIn(nsName string) (*netlink.Handle, error) {
	if nsName == "" {
		return netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("--netns %s: %w", nsName, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
}

// ListenUDP opens a UDP socket bound to addr inside namespace nsName. The
// daemon holds the VXLAN port with one so the host's stack does not answer
// VXLAN meant for vifsec with ICMP port-unreachable.
func ListenUDP(nsName string, addr netip.AddrPort) (net.PacketConn, error) {
	return listenIn(nsName, func() (net.PacketConn, error) { return net.ListenPacket("udp", addr.String()) })
}

// ListenESP opens a raw IP socket for protocol 50 (ESP) bound to addr
// inside namespace nsName. With the underlay protected, the daemon holds
// one so the host's stack, which has no ESP of its own here, does not
// answer vifsec's ESP with ICMP protocol-unreachable.
func ListenESP(nsName string, addr netip.Addr) (net.PacketConn, error) {
	network := "ip6:50"
	if addr.Unmap().Is4() {
		network = "ip4:50"
	}
	return listenIn(nsName, func() (net.PacketConn, error) { return net.ListenPacket(network, addr.Unmap().String()) })
}

// listenIn runs listen on a thread inside namespace nsName; the socket
// stays in that namespace.
func listenIn(nsName string, listen func() (net.PacketConn, error)) (net.PacketConn, error) {
	type result struct {
		c   net.PacketConn
		err error
	}
	res := make(chan result, 1)
	go func() {
		// The thread switches namespace and dies with the goroutine.
		runtime.LockOSThread()
		if nsName != "" {
			ns, err := netns.GetFromName(nsName)
			if err != nil {
				res <- result{nil, fmt.Errorf("--netns %s: %w", nsName, err)}
				return
			}
			defer ns.Close()
			if err := netns.Set(ns); err != nil {
				res <- result{nil, fmt.Errorf("--netns %s: %w", nsName, err)}
				return
			}
		}
		c, err := listen()
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}
