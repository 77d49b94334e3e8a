package vif

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// sysfsRoot is where sysfs is mounted. describe takes the root as an
// argument so that tests can point the SR-IOV lookups at a fake tree.
const sysfsRoot = "/sys"

// Describe tells what interface name is in network namespace nsName
// ("" = the daemon's): its type, MAC, MTU, state and, by type, macvlan
// mode and parent, tap flags, SR-IOV VF or representor details.
//
// Everything namespaced comes from rtnetlink on a socket opened inside
// nsName. sysfs is read only for SR-IOV, and only where it does not
// depend on the namespace: the VF's PCI address comes from netlink
// (IFLA_PARENT_DEV_NAME, Linux 5.14+), and /sys/bus/pci is the same in
// every namespace. The one namespaced sysfs read is the PF's netdev name
// (/sys/bus/pci/devices/PF/net/), which shows the namespace sysfs was
// mounted in, normally the daemon's, where PFs stay; VFInfo.PFPCI is
// always set. On a kernel without IFLA_PARENT_DEV_NAME a VF is
// recognised only in the daemon's own namespace (through
// /sys/class/net/NAME/device) and is otherwise reported as a device.
func Describe(name, nsName string) (Info, error) {
	info, err := describe(name, nsName, sysfsRoot)
	if err != nil {
		where := ""
		if nsName != "" {
			where = " --netns " + nsName
		}
		return Info{}, fmt.Errorf("describe --dev %s%s: %w", name, where, err)
	}
	return info, nil
}

func describe(name, nsName, sysRoot string) (Info, error) {
	ns := netns.None()
	if nsName != "" {
		h, err := netns.GetFromName(nsName)
		if err != nil {
			return Info{}, err
		}
		defer h.Close()
		ns = h
	}
	sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return Info{}, fmt.Errorf("netlink socket: %w", err)
	}
	defer sock.Close()
	sockets := map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}

	msg, err := getLink(sockets, name, 0)
	if err != nil {
		return Info{}, err
	}
	link, err := netlink.LinkDeserialize(nil, msg)
	if err != nil {
		return Info{}, fmt.Errorf("RTM_NEWLINK: %w", err)
	}
	// The netlink package does not decode IFLA_PHYS_PORT_NAME.
	var portName string
	if attrs, err := nl.ParseRouteAttr(msg[unix.SizeofIfInfomsg:]); err == nil {
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_PHYS_PORT_NAME {
				portName = strings.TrimRight(string(a.Value), "\x00")
			}
		}
	}

	a := link.Attrs()
	info := Info{
		Name:    a.Name,
		Netns:   nsName,
		Index:   a.Index,
		MAC:     a.HardwareAddr,
		MTU:     a.MTU,
		AdminUp: a.Flags&net.FlagUp != 0,
		OperUp: a.OperState == netlink.OperUp ||
			a.OperState == netlink.OperUnknown && a.Flags&net.FlagRunning != 0,
	}
	switch l := link.(type) {
	case *netlink.Veth:
		info.Type = TypeVeth
	case *netlink.Macvlan:
		info.Type = TypeMacvlan
		info.Macvlan = macvlanInfo(sockets, l)
	case *netlink.Macvtap:
		info.Type = TypeMacvtap
		info.Macvlan = macvlanInfo(sockets, &l.Macvlan)
	case *netlink.Tuntap:
		info.Type = TypeTun
		if l.Mode == netlink.TUNTAP_MODE_TAP || l.Mode == 0 && a.EncapType == "ether" {
			info.Type = TypeTap
		}
		if l.Mode != 0 { // the kernel sent IFLA_INFO_DATA
			info.Tap = &TapInfo{
				VnetHdr:    l.Flags&netlink.TUNTAP_VNET_HDR != 0,
				MultiQueue: l.Flags&netlink.TUNTAP_MULTI_QUEUE != 0,
				Persistent: !l.NonPersist,
			}
		}
	case *netlink.Device:
		info.Type = TypeDevice
		if a.Flags&net.FlagLoopback != 0 {
			info.Type = TypeLoopback
		}
		if r, ok := parsePortName(portName); ok {
			info.Type, info.Representor = TypeRepresentor, r
			break
		}
		pci := ""
		if a.ParentDevBus == "pci" {
			pci = a.ParentDev
		} else if a.ParentDev == "" && nsName == "" {
			pci = pciOfNetdev(sysRoot, name)
		}
		if pci != "" {
			if vf, ok := sriovVF(sysRoot, pci); ok {
				info.Type, info.VF = TypeVF, vf
			}
		}
	default:
		info.Type = LinkType(link.Type())
	}
	return info, nil
}

// getLink sends RTM_GETLINK for name (or index when name is "") and
// returns the RTM_NEWLINK payload: struct ifinfomsg and attributes.
func getLink(sockets map[int]*nl.SocketHandle, name string, index int) ([]byte, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.Sockets = sockets
	m := nl.NewIfInfomsg(unix.AF_UNSPEC)
	m.Index = int32(index)
	req.AddData(m)
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(nl.RTEXT_FILTER_VF)))
	if name != "" {
		typ := unix.IFLA_IFNAME
		if len(name) >= unix.IFNAMSIZ {
			typ = unix.IFLA_ALT_IFNAME
		}
		req.AddData(nl.NewRtAttr(typ, nl.ZeroTerminated(name)))
	}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	switch {
	case errors.Is(err, unix.ENODEV):
		return nil, fmt.Errorf("no such interface: %w", err)
	case err != nil:
		return nil, fmt.Errorf("RTM_GETLINK: %w", err)
	case len(msgs) != 1:
		return nil, fmt.Errorf("RTM_GETLINK: %d answers, want 1", len(msgs))
	case len(msgs[0]) < unix.SizeofIfInfomsg:
		return nil, fmt.Errorf("RTM_GETLINK: short answer (%d bytes)", len(msgs[0]))
	}
	return msgs[0], nil
}

var macvlanModes = map[netlink.MacvlanMode]string{
	netlink.MACVLAN_MODE_PRIVATE:  "private",
	netlink.MACVLAN_MODE_VEPA:     "vepa",
	netlink.MACVLAN_MODE_BRIDGE:   "bridge",
	netlink.MACVLAN_MODE_PASSTHRU: "passthru",
	netlink.MACVLAN_MODE_SOURCE:   "source",
}

func macvlanInfo(sockets map[int]*nl.SocketHandle, l *netlink.Macvlan) *MacvlanInfo {
	a := l.Attrs()
	m := &MacvlanInfo{Mode: macvlanModes[l.Mode], ParentIndex: a.ParentIndex}
	if m.Mode == "" {
		m.Mode = fmt.Sprintf("mode %d", l.Mode)
	}
	// IFLA_LINK_NETNSID is sent only when the parent is elsewhere.
	if a.NetNsID < 0 && a.ParentIndex > 0 {
		if msg, err := getLink(sockets, "", a.ParentIndex); err == nil {
			if p, err := netlink.LinkDeserialize(nil, msg); err == nil {
				m.Parent = p.Attrs().Name
			}
		}
	}
	return m
}

// portNameRE matches a switchdev representor's phys_port_name
// (drivers/net/ethernet/mellanox/mlx5/core/en_rep.c and
// net/devlink/port.c __devlink_port_phys_port_name_get).
var portNameRE = regexp.MustCompile(`^(?:c(\d+))?pf(\d+)(?:vf(\d+)|sf(\d+))?$`)

// parsePortName recognises a representor's phys_port_name. An uplink
// port ("p0") is not a representor of a function and is not matched.
func parsePortName(s string) (*RepresentorInfo, bool) {
	m := portNameRE.FindStringSubmatch(s)
	if m == nil {
		return nil, false
	}
	num := func(s string) int {
		if s == "" {
			return -1
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return -1
		}
		return n
	}
	return &RepresentorInfo{PortName: s, Controller: num(m[1]), PF: num(m[2]), VF: num(m[3]), SF: num(m[4])}, true
}

// pciOfNetdev is the PCI address behind netdev name in the namespace
// sysfs was mounted in, or "".
func pciOfNetdev(sysRoot, name string) string {
	dev := filepath.Join(sysRoot, "class/net", name, "device")
	sub, err := os.Readlink(filepath.Join(dev, "subsystem"))
	if err != nil || filepath.Base(sub) != "pci" {
		return ""
	}
	target, err := os.Readlink(dev)
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// sriovVF reports whether PCI function pci is an SR-IOV VF: it has a
// physfn link to its PF, which lists it as one of its virtfnN.
func sriovVF(sysRoot, pci string) (*VFInfo, bool) {
	devices := filepath.Join(sysRoot, "bus/pci/devices")
	pf, err := os.Readlink(filepath.Join(devices, pci, "physfn"))
	if err != nil {
		return nil, false
	}
	vf := &VFInfo{PCI: pci, PFPCI: filepath.Base(pf), Index: -1}
	links, _ := filepath.Glob(filepath.Join(devices, vf.PFPCI, "virtfn*"))
	for _, l := range links {
		t, err := os.Readlink(l)
		if err != nil || filepath.Base(t) != pci {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(l), "virtfn")); err == nil {
			vf.Index = n
		}
	}
	if ents, err := os.ReadDir(filepath.Join(devices, vf.PFPCI, "net")); err == nil && len(ents) > 0 {
		vf.PF = ents[0].Name()
	}
	return vf, true
}
