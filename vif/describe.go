package vif

import (
	"fmt"
	"net"
	"strings"
)

// LinkType is what kind of interface a VIF is, as vifsec names it.
// The zero value is invalid.
type LinkType string

// Link types Describe reports. A kernel link kind without a name here
// ("bridge", "dummy", "vxlan", "ipvlan", …) is reported as the kernel
// names it.
const (
	TypeVeth    LinkType = "veth"
	TypeMacvlan LinkType = "macvlan"
	TypeMacvtap LinkType = "macvtap"
	TypeTap     LinkType = "tap"
	TypeTun     LinkType = "tun"
	// TypeVF is an SR-IOV virtual function's own netdev.
	TypeVF LinkType = "vf"
	// TypeRepresentor is a switchdev representor of a VF, SF or PF
	// (phys_port_name "pf0vf3", "pf0sf1", "pf0").
	TypeRepresentor LinkType = "representor"
	TypeLoopback    LinkType = "loopback"
	// TypeDevice is a netdev of a driver without a link kind: a physical
	// NIC or a PF.
	TypeDevice LinkType = "device"
)

func (t LinkType) String() string {
	if t == "" {
		return "invalid"
	}
	return string(t)
}

// Info describes one interface as the kernel reports it, for the
// daemon's attach log and `vifsec vm list`.
type Info struct {
	Name  string
	Netns string // as given to Describe; "" is the daemon's
	Index int
	Type  LinkType
	MAC   net.HardwareAddr
	MTU   int
	// AdminUp is IFF_UP. OperUp is the RFC 2863 operational state "up";
	// a driver that reports none ("unknown": dummy, loopback) counts as
	// up while it is running (IFF_RUNNING).
	AdminUp, OperUp bool

	Macvlan     *MacvlanInfo     // Type macvlan or macvtap
	Tap         *TapInfo         // Type tap or tun, when the kernel reports tun details
	VF          *VFInfo          // Type vf
	Representor *RepresentorInfo // Type representor
}

// MacvlanInfo is a macvlan's or macvtap's mode and lower device.
type MacvlanInfo struct {
	Mode string // "private", "vepa", "bridge", "passthru", "source"
	// Parent is the lower device's name, "" when it is in another
	// network namespace than the macvlan; ParentIndex is its ifindex
	// there.
	Parent      string
	ParentIndex int
}

// TapInfo is what the kernel tells about a tun/tap device
// (IFLA_INFO_DATA of link kind "tun").
type TapInfo struct {
	// VnetHdr is IFF_VNET_HDR as set by whoever attached last: QEMU
	// sets it, and then frames carry virtio_net_hdr metadata on its side
	// of the device (never on the AF_PACKET side vifsec reads).
	VnetHdr    bool
	MultiQueue bool
	Persistent bool
}

// VFInfo locates an SR-IOV virtual function.
type VFInfo struct {
	PCI   string // the VF's PCI address, e.g. "0000:03:00.2"
	PFPCI string // its physical function's PCI address
	// PF is the physical function's netdev name; "" when the PF is not
	// in the network namespace sysfs was mounted in (see Describe).
	PF    string
	Index int // N of the PF's virtfnN
}

// RepresentorInfo is a switchdev representor's port, parsed from its
// phys_port_name: "[cC]pfPvfV" (a VF's), "[cC]pfPsfS" (a subfunction's),
// "pfP" (the host PF's). Absent numbers are -1.
type RepresentorInfo struct {
	PortName           string
	Controller, PF, VF int
	SF                 int
}

// String is one line for a log: type, name, netns, index, MAC, MTU,
// state and the type's details.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", i.Type, i.Name)
	if i.Netns != "" {
		fmt.Fprintf(&b, " netns %s", i.Netns)
	}
	fmt.Fprintf(&b, " ifindex %d", i.Index)
	if len(i.MAC) > 0 {
		fmt.Fprintf(&b, " mac %s", i.MAC)
	}
	fmt.Fprintf(&b, " mtu %d", i.MTU)
	switch {
	case i.OperUp:
		b.WriteString(" up")
	case i.AdminUp:
		b.WriteString(" up (no carrier)")
	default:
		b.WriteString(" down")
	}
	if m := i.Macvlan; m != nil {
		parent := m.Parent
		if parent == "" {
			parent = fmt.Sprintf("ifindex %d in another netns", m.ParentIndex)
		}
		fmt.Fprintf(&b, " mode %s parent %s", m.Mode, parent)
	}
	if t := i.Tap; t != nil {
		fmt.Fprintf(&b, " vnet_hdr %t multi_queue %t persist %t", t.VnetHdr, t.MultiQueue, t.Persistent)
	}
	if v := i.VF; v != nil {
		pf := v.PF
		if pf == "" {
			pf = v.PFPCI
		}
		fmt.Fprintf(&b, " pci %s pf %s vf %d", v.PCI, pf, v.Index)
	}
	if r := i.Representor; r != nil {
		fmt.Fprintf(&b, " port %s", r.PortName)
	}
	return b.String()
}
