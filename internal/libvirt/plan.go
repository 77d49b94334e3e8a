package libvirt

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/vifsec/vifsec/tenant"
)

// OriginPrefix starts the Origin of every VM attached for a libvirt
// domain: "libvirt:" and the domain's UUID.
const OriginPrefix = "libvirt:"

// Origin is the tenant.VM.Origin of the VMs of the domain with uuid.
func Origin(uuid string) string { return OriginPrefix + strings.ToLower(uuid) }

// DomainOf returns the domain UUID of a VM origin, false if the VM was not
// attached for a libvirt domain.
func DomainOf(origin string) (uuid string, ok bool) {
	uuid, ok = strings.CutPrefix(origin, OriginPrefix)
	return uuid, ok && uuid != ""
}

// DefaultVMName is the vifsec VM name of a domain's interface when the
// metadata gives none: the domain name, '-', and the MAC's 12 hex digits
// ("web1-525400123456"). It is stable (a domain keeps its MACs across
// restarts, and the name does not depend on the interface's position or
// its vnetN) and unique on the host (the daemon refuses a second VM with
// the same (vlan, mac) anyway). Characters a VM name may not hold are
// written '_', and a long domain name is cut to fit 64 characters.
func DefaultVMName(domain string, mac tenant.MAC) string {
	const maxDomain = tenant.MaxNameLen - 13
	var b strings.Builder
	for i, r := range domain {
		ok := r < 0x80 && ('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && (r == '_' || r == '.' || r == '-'))
		if !ok {
			r = '_'
		}
		if i == 0 && r == '_' {
			b.WriteString("d")
		}
		b.WriteRune(r)
		if b.Len() >= maxDomain {
			break
		}
	}
	s := b.String()
	if len(s) > maxDomain {
		s = s[:maxDomain]
	}
	if s == "" {
		s = "domain"
	}
	return s + "-" + hex.EncodeToString(mac[:])
}

// Binding is one VM to attach for a domain's interface.
type Binding struct {
	VM tenant.VM
	// Interface is the position of the domain's <interface>.
	Interface int
}

// PlanOptions says how much Plan must know. A nil *PlanOptions means the
// zero value.
type PlanOptions struct {
	// NeedDev: the host device of every interface must be known (at
	// start, reconnect and in reconciliation; at prepare it does not
	// exist yet).
	NeedDev bool
	// SysFS is where sysfs is mounted ("" means /sys), to find a hostdev
	// VF's host netdev.
	SysFS string
}

// Plan returns the VMs that d's interfaces are attached as: none if d has
// no vifsec metadata. Every problem is returned (joined), each naming the
// interface, and then no binding: a domain is protected whole or not.
//
// Per interface: the tenant, name, VLAN, device and addresses come from
// its <vifsec:interface> if it says, else from <vifsec:vm> (tenant), the
// default name (DefaultVMName), the interface's single <vlan><tag> (0 if
// none; a trunk of several tags must say which in vlan=), and the device
// by type: <target dev> for ethernet, bridge, network and direct
// (macvtap); for hostdev, the VF's switchdev representor (or its own
// netdev) found in sysfs from <source><address>. Interfaces with
// protect="no" are left out; other types (user, vhostuser, ...) have no
// host device vifsec can use and are refused unless left out. A direct
// interface is planned like the others, and its macvtap then refused by
// vifsecd's data path (internal/attach), which the hook waits for with
// fail="closed".
func (d *Domain) Plan(o *PlanOptions) ([]Binding, error) {
	if d.Meta == nil {
		return nil, nil
	}
	if o == nil {
		o = &PlanOptions{}
	}
	var out []Binding
	var errs []error
	names := map[string]int{}
	metas := d.Meta.metaByMAC()
	for i := range d.Interfaces {
		ifc := &d.Interfaces[i]
		b, skip, err := d.bind(ifc, metas[ifc.MAC], o)
		if skip {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if j, dup := names[b.VM.Name]; dup {
			errs = append(errs, fmt.Errorf("interfaces %d and %d would both be VM %q; give them different name= in <vifsec:interface>", j, i, b.VM.Name))
			continue
		}
		names[b.VM.Name] = i
		out = append(out, b)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (d *Domain) bind(ifc *Interface, mi *MetaInterface, o *PlanOptions) (b Binding, skip bool, err error) {
	where := fmt.Sprintf("interface %d (type %s, mac %s)", ifc.Index, ifc.Type, ifc.MACText)
	if ifc.MACText == "" {
		return b, false, fmt.Errorf("interface %d (type %s): no <mac address>; vifsec finds a VM by its MAC", ifc.Index, ifc.Type)
	}
	if mi != nil && !mi.Protect {
		return b, true, nil
	}
	if mi == nil {
		mi = &MetaInterface{VLAN: -1, Protect: true}
	}
	v := tenant.VM{Tenant: d.Meta.Tenant, MAC: ifc.MAC, IPs: mi.IPs, Origin: Origin(d.UUID)}
	if mi.Tenant != "" {
		v.Tenant = mi.Tenant
	}
	if v.Tenant == "" {
		return b, false, fmt.Errorf("%s: no tenant; give tenant= in <vifsec:vm> or in <vifsec:interface mac=%q>", where, ifc.MACText)
	}
	v.Name = mi.Name
	if v.Name == "" {
		v.Name = DefaultVMName(d.Name, ifc.MAC)
	}
	vlan, err := ifc.vlan(mi.VLAN)
	if err != nil {
		return b, false, fmt.Errorf("%s: %w", where, err)
	}
	v.VLAN = vlan
	v.Dev, err = ifc.hostDev(mi.Dev, o)
	if err != nil {
		return b, false, fmt.Errorf("%s: %w", where, err)
	}
	if o.NeedDev {
		if err := v.Validate(); err != nil {
			return b, false, fmt.Errorf("%s: %w", where, err)
		}
	}
	return Binding{VM: v, Interface: ifc.Index}, false, nil
}

// vlan returns the interface's vifsec VLAN: want (from vlan=, -1 if not
// given), which must then be one of the interface's tags if it has any,
// else its single tag, else 0.
func (ifc *Interface) vlan(want int) (uint16, error) {
	if want >= 0 {
		if len(ifc.Tags) == 0 {
			return uint16(want), nil
		}
		for _, t := range ifc.Tags {
			if int(t.ID) == want {
				return t.ID, nil
			}
		}
		return 0, fmt.Errorf("vlan=%d in <vifsec:interface> is not one of the interface's <vlan> tags (%s)", want, tagList(ifc.Tags))
	}
	switch len(ifc.Tags) {
	case 0:
		return 0, nil
	case 1:
		return ifc.Tags[0].ID, nil
	}
	return 0, fmt.Errorf("the interface is a trunk of VLANs %s; vifsec keys one (vlan, mac) per interface: say which with <vifsec:interface mac=%q vlan=\"N\"/>", tagList(ifc.Tags), ifc.MACText)
}

func tagList(ts []VLANTag) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = fmt.Sprint(t.ID)
	}
	return strings.Join(s, ", ")
}

// hostDev returns the interface's host device: override (dev=) if given,
// else by type. With o.NeedDev false a device not known yet is "".
func (ifc *Interface) hostDev(override string, o *PlanOptions) (string, error) {
	if override != "" {
		return override, nil
	}
	switch ifc.Type {
	case "ethernet", "bridge", "network", "direct":
		if ifc.Target == "" && o.NeedDev {
			return "", fmt.Errorf("no <target dev> (libvirt names the host device when the domain starts); give dev= in <vifsec:interface mac=%q> if the device is elsewhere", ifc.MACText)
		}
		return ifc.Target, nil
	case "hostdev":
		if ifc.PCI == "" {
			return "", fmt.Errorf("hostdev interface without <source><address type='pci'>; give dev= in <vifsec:interface mac=%q>", ifc.MACText)
		}
		if !o.NeedDev {
			return "", nil
		}
		return vfNetdev(o.SysFS, ifc.PCI)
	}
	return "", fmt.Errorf("vifsec protects interfaces of type ethernet, bridge, network, direct and hostdev; a %q interface has no host device it can use: leave it alone with <vifsec:interface mac=%q protect=\"no\"/>, or give dev=", ifc.Type, ifc.MACText)
}
