package lab

import (
	"context"
	"fmt"
	"net/netip"
)

// IKETenantsLab is the topology of the two-tenant IKE test: one hypervisor
// running vifsecd with two guests of different tenants that share their
// address, and a switch joining its uplink to two strongSwan hosts, one
// per tenant, each with the same protected subnet behind it.
//
//	guest acme   192.0.2.10 ──veth── acme   │    │           ┌─ pa0 ── eth0 192.0.2.20 (peer A, charon)
//	                                        │ HV │ up0 ── hv0 br0                prot0 198.51.100.1/24
//	guest globex 192.0.2.10 ──veth── globex │    │           └─ pb0 ── eth0 192.0.2.30 (peer B, charon)
//	                                                                      prot0 198.51.100.1/24
//
// Both guests answer ARP for 192.0.2.10, so each peer has a permanent
// neighbour entry for it naming its own tenant's guest. VLAN 0 throughout
// (these kernels have no 802.1Q devices for the peers to terminate a tag).
type IKETenantsLab struct {
	*Lab
	GW     *Gateway // vifsecd's namespace; uplink "up0"
	Switch string   // the bridge's namespace
	// Peers, in the order of Tenants: peer A for acme, peer B for globex.
	Peers []*IKETenantPeer
}

// IKETenantPeer is one tenant's strongSwan host and the guest it serves.
type IKETenantPeer struct {
	Tenant string
	NS     string
	MAC    string     // of its eth0
	Addr   netip.Addr // its IKE address on the shared wire
	Guest  *VM        // the tenant's guest on the hypervisor
}

// Addresses of the two-tenant lab besides IKEGuest4, IKEProtected4 and
// IKEProtHost4, which it shares with the IKE lab.
var (
	IKEPeerA4 = netip.MustParseAddr("192.0.2.20")
	IKEPeerB4 = netip.MustParseAddr("192.0.2.30")
)

// PeerTable is the routing table a strongSwan peer answers its guest's
// tunnelled traffic by (ip rule from the protected subnet into libipsec's
// TUN device). Not 220: that is charon's own (kernel-netlink
// routing_table, looked up "from all" at priority 220), where
// kernel-libipsec puts its TUN route to the guest (install_routes = no
// notwithstanding); an identical route of ours there would collide with it.
// charon's own IKE and ESP in UDP to the guest, whose address is the IKE
// peer's too, stay on the main table by StartCharon's rule from its
// address.
const PeerTable = 221

// BuildIKETenants creates the two-tenant IKE lab with namespace names
// starting with prefix. On error, whatever was made is removed.
func BuildIKETenants(ctx context.Context, prefix string) (_ *IKETenantsLab, err error) {
	l := &IKETenantsLab{Lab: &Lab{Prefix: prefix}}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	gw := &Gateway{Name: "a", NS: prefix + "hv", Uplink: "up0"}
	l.GW, l.Switch = gw, prefix+"sw"
	l.Gateways = []*Gateway{gw}
	for _, ns := range []string{gw.NS, l.Switch} {
		if err := l.addNS(ctx, ns); err != nil {
			return nil, err
		}
	}
	steps := [][]string{
		// Neither the hypervisor's nor the switch's kernel takes part.
		{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "netns", "exec", l.Switch, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", l.Switch, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "-n", l.Switch, "link", "add", "br0", "type", "bridge"},
		{"ip", "link", "add", gw.Uplink, "netns", gw.NS, "type", "veth", "peer", "name", "hv0", "netns", l.Switch},
		{"ip", "-n", l.Switch, "link", "set", "hv0", "master", "br0"},
	}
	for ti, t := range Tenants {
		guest := &VM{Name: t.Name + "-vm", Tenant: t.Name, Gateway: gw, NS: prefix + t.Name[:2], Dev: t.Name,
			MAC: []string{"52:54:00:0a:01:10", "52:54:00:0a:02:10"}[ti], IP4: IKEGuest4}
		peer := &IKETenantPeer{Tenant: t.Name, NS: prefix + []string{"pa", "pb"}[ti],
			MAC: []string{"52:54:00:0b:00:20", "52:54:00:0b:00:30"}[ti], Addr: []netip.Addr{IKEPeerA4, IKEPeerB4}[ti], Guest: guest}
		port := []string{"pa0", "pb0"}[ti]
		gw.VMs = append(gw.VMs, guest)
		l.Peers = append(l.Peers, peer)
		for _, ns := range []string{guest.NS, peer.NS} {
			if err := l.addNS(ctx, ns); err != nil {
				return nil, err
			}
		}
		steps = append(steps,
			[]string{"ip", "link", "add", "eth0", "netns", guest.NS, "address", guest.MAC, "type", "veth", "peer", "name", guest.Dev, "netns", gw.NS},
			[]string{"ip", "-n", guest.NS, "link", "set", "lo", "up"},
			[]string{"ip", "-n", guest.NS, "addr", "add", IKEGuest4.String() + "/24", "dev", "eth0"},
			[]string{"ip", "-n", guest.NS, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", guest.NS, "route", "add", IKEProtected4.String(), "via", peer.Addr.String()},
			[]string{"ip", "-n", gw.NS, "link", "set", guest.Dev, "up"},

			[]string{"ip", "link", "add", "eth0", "netns", peer.NS, "address", peer.MAC, "type", "veth", "peer", "name", port, "netns", l.Switch},
			[]string{"ip", "-n", l.Switch, "link", "set", port, "master", "br0"},
			[]string{"ip", "-n", l.Switch, "link", "set", port, "up"},
			[]string{"ip", "-n", peer.NS, "link", "set", "lo", "up"},
			[]string{"ip", "-n", peer.NS, "addr", "add", peer.Addr.String() + "/24", "dev", "eth0"},
			[]string{"ip", "-n", peer.NS, "link", "set", "eth0", "up"},
			// The guests share 192.0.2.10 and both answer ARP for it.
			[]string{"ip", "-n", peer.NS, "neigh", "replace", IKEGuest4.String(), "lladdr", guest.MAC, "dev", "eth0", "nud", "permanent"},
			[]string{"ip", "-n", peer.NS, "link", "add", "prot0", "type", "bridge"},
			[]string{"ip", "-n", peer.NS, "addr", "add", IKEProtHost4.String() + "/24", "dev", "prot0"},
			[]string{"ip", "-n", peer.NS, "link", "set", "prot0", "up"},
			// charon's own traffic (IKE, ESP in UDP) leaves through eth0;
			// the guest's tunnelled traffic is answered into libipsec's
			// TUN device by source (PeerTable, which the test fills once
			// charon runs).
			[]string{"ip", "netns", "exec", peer.NS, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
			[]string{"ip", "netns", "exec", peer.NS, "sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"},
			[]string{"ip", "-n", peer.NS, "rule", "add", "from", IKEProtected4.String(), "lookup", fmt.Sprint(PeerTable), "priority", "100"},
			[]string{"ip", "netns", "exec", peer.NS, "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"},
		)
	}
	steps = append(steps,
		[]string{"ip", "-n", l.Switch, "link", "set", "hv0", "up"},
		[]string{"ip", "-n", l.Switch, "link", "set", "br0", "up"},
		[]string{"ip", "-n", gw.NS, "link", "set", gw.Uplink, "up"},
		// The wire is ours: frames vifsec writes must be whole and checksummed.
		[]string{"ip", "netns", "exec", gw.NS, "ethtool", "-K", gw.Uplink, "tx", "off", "tso", "off", "gso", "off"},
	)
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			return nil, err
		}
	}
	return l, nil
}
