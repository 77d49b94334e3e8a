package lab

import (
	"context"
	"net/netip"
)

// IKELab is the topology of the IKE interop tests: one hypervisor running
// vifsecd between a guest and a flat L2 wire, and a strongSwan host on that
// wire with a protected subnet behind it.
//
//	guest (IKEGuest)          hypervisor (vifsecd)              peer (charon)
//	eth0 192.0.2.10 ──veth── vm1 │ GW │ up0 ──veth── eth0 192.0.2.20
//	     2001:db8:1::10                                   2001:db8:1::20
//	                                     prot0 (bridge) 198.51.100.1/24
//	                                                       2001:db8:2::1/64
//
// The guest runs nothing but its IP stack: vifsec speaks IKE for it from
// 192.0.2.10 and does its ESP. The guest's VLAN is 0 (these kernels have
// no 802.1Q devices for the peer to terminate a tag on).
type IKELab struct {
	*Lab
	GW    *Gateway // vifsecd's namespace; uplink "up0"
	Guest *VM      // tenant "acme", device "vm1" on the hypervisor
	Peer  string   // the strongSwan host's namespace
}

// Addresses of the IKE lab (RFC 5737, RFC 3849).
var (
	IKEGuest4     = netip.MustParseAddr("192.0.2.10")
	IKEGuest6     = netip.MustParseAddr("2001:db8:1::10")
	IKEPeer4      = netip.MustParseAddr("192.0.2.20")
	IKEPeer6      = netip.MustParseAddr("2001:db8:1::20")
	IKEProtected4 = netip.MustParsePrefix("198.51.100.0/24")
	IKEProtected6 = netip.MustParsePrefix("2001:db8:2::/64")
	IKEProtHost4  = netip.MustParseAddr("198.51.100.1")
	IKEProtHost6  = netip.MustParseAddr("2001:db8:2::1")
)

// IKEGuestMAC is the guest's MAC; IKE on its behalf leaves with it.
const IKEGuestMAC = "52:54:00:0a:00:10"

// BuildIKE creates the IKE lab with namespace names starting with prefix.
// On error, whatever was made is removed.
func BuildIKE(ctx context.Context, prefix string) (l *IKELab, err error) {
	l = &IKELab{Lab: &Lab{Prefix: prefix}}
	made := l
	defer func() {
		if err != nil {
			made.Close() // l is already nil here: return nil, err
		}
	}()
	gw := &Gateway{Name: "a", NS: prefix + "gw", Uplink: "up0"}
	guest := &VM{Name: "acme-a", Tenant: "acme", Gateway: gw, NS: prefix + "vm", Dev: "vm1", MAC: IKEGuestMAC,
		IP4: IKEGuest4, IP6: IKEGuest6}
	gw.VMs = []*VM{guest}
	l.GW, l.Guest, l.Peer = gw, guest, prefix+"sw"
	l.Gateways = []*Gateway{gw}
	for _, ns := range []string{gw.NS, guest.NS, l.Peer} {
		if err := l.addNS(ctx, ns); err != nil {
			return nil, err
		}
	}
	steps := [][]string{
		{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "link", "add", "eth0", "netns", guest.NS, "address", guest.MAC, "type", "veth", "peer", "name", guest.Dev, "netns", gw.NS},
		{"ip", "link", "add", "eth0", "netns", l.Peer, "type", "veth", "peer", "name", gw.Uplink, "netns", gw.NS},
		{"ip", "-n", guest.NS, "link", "set", "lo", "up"},
		{"ip", "-n", guest.NS, "addr", "add", IKEGuest4.String() + "/24", "dev", "eth0"},
		{"ip", "-n", guest.NS, "addr", "add", IKEGuest6.String() + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", guest.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", guest.NS, "route", "add", IKEProtected4.String(), "via", IKEPeer4.String()},
		{"ip", "-n", guest.NS, "route", "add", IKEProtected6.String(), "via", IKEPeer6.String()},
		{"ip", "-n", l.Peer, "link", "set", "lo", "up"},
		{"ip", "-n", l.Peer, "addr", "add", IKEPeer4.String() + "/24", "dev", "eth0"},
		{"ip", "-n", l.Peer, "addr", "add", IKEPeer6.String() + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", l.Peer, "link", "set", "eth0", "up"},
		{"ip", "-n", l.Peer, "link", "add", "prot0", "type", "bridge"},
		{"ip", "-n", l.Peer, "addr", "add", IKEProtHost4.String() + "/24", "dev", "prot0"},
		{"ip", "-n", l.Peer, "addr", "add", IKEProtHost6.String() + "/64", "dev", "prot0", "nodad"},
		{"ip", "-n", l.Peer, "link", "set", "prot0", "up"},
		{"ip", "-n", gw.NS, "link", "set", guest.Dev, "up"},
		{"ip", "-n", gw.NS, "link", "set", gw.Uplink, "up"},
		// The wire is ours: frames vifsec writes must be whole and checksummed.
		{"ip", "netns", "exec", gw.NS, "ethtool", "-K", gw.Uplink, "tx", "off", "tso", "off", "gso", "off"},
		{"ip", "netns", "exec", l.Peer, "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"},
	}
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			return nil, err
		}
	}
	for _, nd := range [][2]string{{guest.NS, "eth0"}, {l.Peer, "eth0"}, {l.Peer, "prot0"}} {
		if err := waitGlobalSettled(ctx, nd[0], nd[1]); err != nil {
			return nil, err
		}
	}
	return l, nil
}
