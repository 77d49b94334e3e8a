package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"
)

// VM is one tenant VM in the lab: a namespace with eth0 whose host end
// (Dev) lives in its gateway's namespace.
type VM struct {
	Name    string // e.g. "acme-a"
	Tenant  string
	Gateway *Gateway
	NS      string // the VM's namespace
	Dev     string // host-side interface in the gateway namespace
	MAC     string
	VLAN    uint16
	IP6     netip.Addr
	IP4     netip.Addr
}

// Gateway is one hypervisor namespace.
type Gateway struct {
	Name   string // "a" or "b"
	NS     string
	Uplink string // interface name in NS
	VMs    []*VM
}

// Lab is a built lab. Close removes everything it made.
type Lab struct {
	Prefix   string
	Gateways []*Gateway
	made     []string              // namespaces, in creation order
	underlay map[string]netip.Addr // VTEP addresses when not the IPv4 default
}

// Tenant addresses: the same in every tenant, on purpose.
var (
	IP6A = netip.MustParseAddr("2001:db8:1::121")
	IP6B = netip.MustParseAddr("2001:db8:1::122")
	IP4A = netip.MustParseAddr("192.0.2.1")
	IP4B = netip.MustParseAddr("192.0.2.2")
)

// Tenant is one tenant of a lab: one VM on each gateway.
type Tenant struct {
	Name string // also the VM's host-side interface name: at most 15 bytes
	VLAN uint16
	// Tag names the VMs' namespaces (prefix+Tag+gateway); "" is the
	// name's first two letters.
	Tag string
	// IP4 and IP6 are the VMs' addresses on gateways a and b; zero values
	// are the shared IP4A/IP4B and IP6A/IP6B.
	IP4, IP6 [2]netip.Addr
}

// Tenants of the default lab: name and VLAN.
var Tenants = []Tenant{{Name: "acme", VLAN: 100}, {Name: "globex", VLAN: 200}}

// MaxPairs is the most tenants PairTenants makes: two addresses each in
// 192.0.2.0/24.
const MaxPairs = 126

// PairTenants returns n tenants ("p1".."pN", VLANs 401..) whose VM pairs
// have addresses of their own (192.0.2.1/.2, .3/.4, …), so a routed
// gateway can tell the pairs apart: the scale benchmark's lab.
func PairTenants(n int) ([]Tenant, error) {
	if n < 1 || n > MaxPairs {
		return nil, fmt.Errorf("lab: %d VM pairs: use 1 to %d", n, MaxPairs)
	}
	ts := make([]Tenant, n)
	for i := range ts {
		lo := byte(2*i + 1)
		ts[i] = Tenant{
			Name: fmt.Sprintf("p%d", i+1), VLAN: uint16(401 + i), Tag: fmt.Sprintf("p%d", i+1),
			IP4: [2]netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, lo}), netip.AddrFrom4([4]byte{192, 0, 2, lo + 1})},
			IP6: [2]netip.Addr{netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: 1, 15: lo}),
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: 1, 15: lo + 1})},
		}
	}
	return ts, nil
}

// Build creates the default lab (Tenants) with namespace names starting
// with prefix (keep it short: interface names are limited to 15 bytes).
// On error, whatever was made is removed.
func Build(ctx context.Context, prefix string) (*Lab, error) {
	return BuildTenants(ctx, prefix, Tenants)
}

// BuildTenants is Build with the given tenants instead of Tenants.
func BuildTenants(ctx context.Context, prefix string, tenants []Tenant) (l *Lab, err error) {
	l = &Lab{Prefix: prefix}
	made := l
	defer func() {
		if err != nil {
			made.Close() // l is already nil here: return nil, err
		}
	}()
	for gi, g := range []string{"a", "b"} {
		gw := &Gateway{Name: g, NS: prefix + "gw" + g, Uplink: "up0"}
		if err := l.addNS(ctx, gw.NS); err != nil {
			return nil, err
		}
		// The gateway's kernel must stay out of the VMs' traffic: no IPv6
		// (no ND answers, no link-local chatter), no addresses.
		for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
			if err := run(ctx, "ip", "netns", "exec", gw.NS, "sysctl", "-qw", k); err != nil {
				return nil, err
			}
		}
		for ti, t := range tenants {
			tag := t.Tag
			if tag == "" {
				tag = t.Name[:2]
			}
			vm := &VM{
				Name: t.Name + "-" + g, Tenant: t.Name, Gateway: gw,
				NS:   prefix + tag + g,
				Dev:  t.Name,
				MAC:  fmt.Sprintf("52:54:00:%02x:%02x:01", ti+1, gi+0xa),
				VLAN: t.VLAN,
				IP6:  []netip.Addr{IP6A, IP6B}[gi],
				IP4:  []netip.Addr{IP4A, IP4B}[gi],
			}
			if t.IP4[gi].IsValid() {
				vm.IP4 = t.IP4[gi]
			}
			if t.IP6[gi].IsValid() {
				vm.IP6 = t.IP6[gi]
			}
			if err := l.addNS(ctx, vm.NS); err != nil {
				return nil, err
			}
			steps := [][]string{
				{"ip", "link", "add", "eth0", "netns", vm.NS, "address", vm.MAC, "type", "veth", "peer", "name", vm.Dev, "netns", gw.NS},
				{"ip", "-n", vm.NS, "link", "set", "lo", "up"},
				{"ip", "-n", vm.NS, "addr", "add", vm.IP6.String() + "/64", "dev", "eth0", "nodad"},
				{"ip", "-n", vm.NS, "addr", "add", vm.IP4.String() + "/24", "dev", "eth0"},
				// Guests keep the defaults: MTU 1500, TSO/GSO and checksum
				// offload on. vifsec segments, completes checksums, clamps
				// MSS and signals the path MTU after ESP.
				{"ip", "-n", vm.NS, "link", "set", "eth0", "up"},
				{"ip", "-n", gw.NS, "link", "set", vm.Dev, "up"},
			}
			for _, s := range steps {
				if err := run(ctx, s...); err != nil {
					return nil, err
				}
			}
			if err := waitGlobalSettled(ctx, vm.NS, "eth0"); err != nil {
				return nil, err
			}
			gw.VMs = append(gw.VMs, vm)
		}
		l.Gateways = append(l.Gateways, gw)
	}
	a, b := l.Gateways[0], l.Gateways[1]
	for _, s := range [][]string{
		{"ip", "link", "add", a.Uplink, "netns", a.NS, "type", "veth", "peer", "name", b.Uplink, "netns", b.NS},
		{"ip", "-n", a.NS, "link", "set", a.Uplink, "up"},
		{"ip", "-n", b.NS, "link", "set", b.Uplink, "up"},
		// The wire is ours: frames vifsec writes must be whole and checksummed.
		{"ip", "netns", "exec", a.NS, "ethtool", "-K", a.Uplink, "tx", "off", "tso", "off", "gso", "off"},
		{"ip", "netns", "exec", b.NS, "ethtool", "-K", b.Uplink, "tx", "off", "tso", "off", "gso", "off"},
	} {
		if err := run(ctx, s...); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// VM finds a VM by tenant and gateway ("a" or "b").
func (l *Lab) VM(tenant, gw string) *VM {
	for _, g := range l.Gateways {
		for _, v := range g.VMs {
			if v.Tenant == tenant && g.Name == gw {
				return v
			}
		}
	}
	return nil
}

func (l *Lab) addNS(ctx context.Context, ns string) error {
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	l.made = append(l.made, ns)
	return nil
}

// Close deletes every namespace the lab made (their interfaces go with
// them). It is safe to call more than once.
func (l *Lab) Close() error {
	var errs []string
	for i := len(l.made) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "del", l.made[i]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v %s", l.made[i], err, bytes.TrimSpace(out)))
		}
	}
	l.made = nil
	if len(errs) > 0 {
		return fmt.Errorf("lab cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Exec runs a command inside namespace ns and returns its combined output.
func Exec(ctx context.Context, ns string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	return cmd.CombinedOutput()
}

func run(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
