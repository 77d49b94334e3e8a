package vif

import (
	"errors"
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
	known, err := ResolveNeighbors(dev, nsName, []netip.Addr{addr})
	mac, ok = known[addr.Unmap()]
	return mac, ok, err
}

// ResolveNeighbors is ResolveNeighbor for several addresses with one
// netlink handle and one dump of the table per address family: the
// addresses the kernel knows, by address (unmapped); the others it is
// asked to resolve. An error from asking for one address does not keep
// the others from being returned.
func ResolveNeighbors(dev, nsName string, addrs []netip.Addr) (map[netip.Addr][6]byte, error) {
	known := make(map[netip.Addr][6]byte, len(addrs))
	if len(addrs) == 0 {
		return known, nil
	}
	h, err := handleIn(nsName)
	if err != nil {
		return known, err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return known, fmt.Errorf("--dev %s: %w", dev, err)
	}
	asked, families := map[netip.Addr]bool{}, map[int]bool{}
	for _, a := range addrs {
		asked[a.Unmap()] = true
		if a.Unmap().Is4() {
			families[netlink.FAMILY_V4] = true
		} else {
			families[netlink.FAMILY_V6] = true
		}
	}
	const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP
	for family := range families {
		ns, err := h.NeighList(l.Attrs().Index, family)
		if err != nil {
			return known, fmt.Errorf("neighbours of %s: %w", dev, err)
		}
		for _, n := range ns {
			a, _ := netip.AddrFromSlice(n.IP)
			if asked[a.Unmap()] && len(n.HardwareAddr) == 6 && n.State&usable != 0 {
				known[a.Unmap()] = [6]byte(n.HardwareAddr)
			}
		}
	}
	var errs []error
	for a := range asked {
		if _, ok := known[a]; ok {
			continue
		}
		family := netlink.FAMILY_V6
		if a.Is4() {
			family = netlink.FAMILY_V4
		}
		err := h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family, IP: net.IP(a.AsSlice()), Flags: netlink.NTF_USE, State: netlink.NUD_NONE})
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %s on %s: %w", a, dev, err))
		}
	}
	return known, errors.Join(errs...)
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
