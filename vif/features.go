package vif

import (
	"fmt"
	"strings"
)

// Feature is one netdev feature of an interface and its state, as
// `ethtool -k` shows it. The kernel keeps four bitmaps per device
// (include/linux/netdevice.h): hw_features, wanted_features, features
// and the NETIF_F_NEVER_CHANGE set; ethtool netlink reports them as
// ETHTOOL_A_FEATURES_HW, _WANTED, _ACTIVE and _NOCHANGE.
type Feature struct {
	// Name is the kernel's name for the feature (ETH_SS_FEATURES):
	// "tx-tcp-segmentation", "esp-hw-offload", …
	Name string
	// Available is hw_features: the driver lets the user switch the
	// feature (`ethtool -K`). Hardware that cannot do something has it
	// unavailable, and so has a driver that always does it.
	Available bool
	// Active is features: in effect now.
	Active bool
	// Requested is wanted_features: what was last asked for. It differs
	// from Active when the kernel could not grant the request, for
	// instance because a feature it depends on is off.
	Requested bool
	// NeverChange is a feature no one may ever switch, whatever the
	// driver says (NETIF_F_NEVER_CHANGE: vlan-challenged, netns-local,
	// fcoe-mtu).
	NeverChange bool
}

// Fixed reports whether the feature cannot be switched: ethtool's
// "[fixed]".
func (f Feature) Fixed() bool { return !f.Available || f.NeverChange }

// State is the feature's value as `ethtool -k` prints it: "on" or
// "off", followed by " [fixed]" when it cannot be switched or
// " [requested on]" / " [requested off]" when it is not what was asked.
func (f Feature) State() string {
	s := "off"
	if f.Active {
		s = "on"
	}
	switch {
	case f.Fixed():
		s += " [fixed]"
	case f.Active != f.Requested:
		if f.Requested {
			s += " [requested on]"
		} else {
			s += " [requested off]"
		}
	}
	return s
}

// String is the feature's `ethtool -k` line: "name: state".
func (f Feature) String() string { return f.Name + ": " + f.State() }

// FeatureSet is every named feature of one interface, as Features read
// it at one instant. It is a value: reading it is safe from any number
// of goroutines, and it does not follow later changes.
type FeatureSet struct {
	Dev   string
	Netns string // as given to Features; "" is the daemon's
	// Features are in the kernel's bit order (NETIF_F_*_BIT), as
	// `ethtool -k` lists them after its legacy groups.
	Features []Feature
}

// ethtoolAliases are the legacy names `ethtool -k` prints instead of
// a kernel feature's own name when the legacy flag covers exactly one
// feature (ethtool's off_flag_def). Legacy flags that cover several
// features are Groups.
var ethtoolAliases = map[string]string{
	"rx-checksumming":              "rx-checksum",
	"udp-fragmentation-offload":    "tx-udp-fragmentation",
	"generic-segmentation-offload": "tx-generic-segmentation",
	"generic-receive-offload":      "rx-gro",
	"large-receive-offload":        "rx-lro",
	"rx-vlan-offload":              "rx-vlan-hw-parse",
	"tx-vlan-offload":              "tx-vlan-hw-insert",
	"ntuple-filters":               "rx-ntuple-filter",
	"receive-hashing":              "rx-hashing",
}

// Lookup finds a feature by its kernel name or by the legacy name
// `ethtool -k` prints for it ("generic-segmentation-offload" for
// "tx-generic-segmentation"). A kernel that does not know the feature
// has no entry: ok is false.
func (s FeatureSet) Lookup(name string) (f Feature, ok bool) {
	if k, ok := ethtoolAliases[name]; ok {
		name = k
	}
	for _, f := range s.Features {
		if f.Name == name {
			return f, true
		}
	}
	return Feature{}, false
}

// Group is an offload made of one or more kernel features.
type Group struct {
	// Name is the name `ethtool -k` gives the group where it has one
	// ("tcp-segmentation-offload"), else vifsec's.
	Name string
	// Features are the members the kernel knows, in the group's order;
	// a member the running kernel does not have is left out.
	Features []Feature
}

// Any reports whether any member is active: the rule `ethtool -k`
// applies to a legacy flag that covers several features.
func (g Group) Any() bool {
	for _, f := range g.Features {
		if f.Active {
			return true
		}
	}
	return false
}

// All reports whether the group has members and all are active.
func (g Group) All() bool {
	for _, f := range g.Features {
		if !f.Active {
			return false
		}
	}
	return len(g.Features) > 0
}

// String is one line: the group's name, on when Any member is, and
// the members' states, e.g. "tcp-segmentation-offload: on
// (tx-tcp-segmentation: on, tx-tcp6-segmentation: off [requested on])".
func (g Group) String() string {
	var b strings.Builder
	b.WriteString(g.Name)
	switch {
	case len(g.Features) == 0:
		b.WriteString(": unknown to this kernel")
		return b.String()
	case g.Any():
		b.WriteString(": on")
	default:
		b.WriteString(": off")
	}
	b.WriteString(" (")
	for i, f := range g.Features {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.String())
	}
	b.WriteString(")")
	return b.String()
}

// group collects the named features that s has, in the order given.
func (s FeatureSet) group(name string, members ...string) Group {
	g := Group{Name: name}
	for _, m := range members {
		if f, ok := s.Lookup(m); ok {
			g.Features = append(g.Features, f)
		}
	}
	return g
}

// TSO is TCP segmentation offload of IPv4 and IPv6: with it on, the
// stack (or a guest) hands the device TCP super-frames of up to 64 KiB.
// `ethtool -k`'s tcp-segmentation-offload also counts the ECN and
// mangle-ID variants, which only refine these two.
func (s FeatureSet) TSO() Group {
	return s.group("tcp-segmentation-offload", "tx-tcp-segmentation", "tx-tcp6-segmentation")
}

// GSO is generic segmentation offload: the stack segments in software
// just before the driver, so super-frames travel as far as possible.
func (s FeatureSet) GSO() Group {
	return s.group("generic-segmentation-offload", "tx-generic-segmentation")
}

// TxChecksum is transmit checksum offload of TCP and UDP: any protocol
// (ip-generic, NETIF_F_HW_CSUM) or IPv4 / IPv6 only. `ethtool -k`'s
// tx-checksumming also counts SCTP and FCoE CRCs, which vifsec never
// offloads.
func (s FeatureSet) TxChecksum() Group {
	return s.group("tx-checksumming", "tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6")
}

// GRO is generic receive offload: the stack coalesces received
// segments of a flow into super-frames.
func (s FeatureSet) GRO() Group {
	return s.group("generic-receive-offload", "rx-gro")
}

// ESP is the NIC's IPsec offload (xfrm offload, Linux 4.13+): ESP
// crypto in hardware (esp-hw-offload), checksums inside ESP
// (esp-tx-csum-hw-offload) and segmentation of ESP super-frames
// (tx-esp-segmentation). vifsec's data path does not use it; it is
// read so that operators see what an uplink offers.
func (s FeatureSet) ESP() Group {
	return s.group("esp", "esp-hw-offload", "esp-tx-csum-hw-offload", "tx-esp-segmentation")
}

// Offloads are the groups vifsec reports, in the order
// `vifsec offload show` prints them.
func (s FeatureSet) Offloads() []Group {
	return []Group{s.TSO(), s.GSO(), s.TxChecksum(), s.GRO(), s.ESP()}
}

// featuresError is the error of Features, naming the interface and
// namespace as the command-line flags do.
func featuresError(name, nsName string, err error) error {
	where := ""
	if nsName != "" {
		where = " --netns " + nsName
	}
	return fmt.Errorf("features --dev %s%s: %w", name, where, err)
}
