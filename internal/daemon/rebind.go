package daemon

import (
	"slices"
	"strconv"
	"strings"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/tenant"
)

// RebindVM attaches v as AttachVM does or, when a VM named v.Name is
// already attached, moves it to v's device: the libvirt hook and the
// daemon's libvirt reconciliation call it each time a domain starts (its
// tap gets a new name: vnetN names are not reused) or is found running.
// It is idempotent: when the VM is attached exactly as v says, it changes
// nothing and reports changed false.
//
// Only Dev and Netns may change: the VM's SAs are keyed by its (vlan,
// mac) and its SPs and IKE policies name it, so a VM whose tenant, MAC,
// VLAN, addresses or tap creation differ is refused (CodeExists, naming
// what differs); the caller detaches it (which is refused while anything
// refers to it) and attaches v. A VM of that name with another Origin (an
// operator's `vm attach`, or another domain) is never touched
// (CodeExists).
func (d *Daemon) RebindVM(v tenant.VM) (changed bool, err error) {
	v.IPs = dedupAddrs(v.IPs)
	if err := v.Validate(); err != nil {
		return false, wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	old, ok := d.vms[v.Name]
	d.mu.Unlock()
	if !ok {
		// AttachVM checks again under the lock; a VM of the same name
		// attached in between is refused there as it should be.
		return true, d.AttachVM(v)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.vms[v.Name]; !ok || cur != old {
		return false, errf(CodeExists, "--vm: VM %q changed while being moved; try again", v.Name)
	}
	o := old.vm
	if o.Origin != v.Origin {
		return false, errf(CodeExists, "--vm: a VM named %q is already attached by %s, not by %s; it is left alone: detach it (vifsec vm detach --vm %s) or name this interface differently", v.Name, vmOriginText(o.Origin), vmOriginText(v.Origin), v.Name)
	}
	var differ []string
	if o.Tenant != v.Tenant {
		differ = append(differ, "--tenant "+o.Tenant)
	}
	if o.MAC != v.MAC {
		differ = append(differ, "--mac "+o.MAC.String())
	}
	if o.VLAN != v.VLAN {
		differ = append(differ, "--vlan "+strconv.Itoa(int(o.VLAN)))
	}
	if !slices.Equal(o.IPs, v.IPs) {
		ips := make([]string, len(o.IPs))
		for i, a := range o.IPs {
			ips[i] = a.String()
		}
		if len(ips) == 0 {
			ips = []string{"(any)"}
		}
		differ = append(differ, "--ip "+strings.Join(ips, " "))
	}
	if o.CreateTap != v.CreateTap {
		differ = append(differ, "--create-tap")
	}
	if len(differ) > 0 {
		return false, errf(CodeExists, "--vm: VM %q is attached with %s; only its device can move: detach it and attach it again", v.Name, strings.Join(differ, ", "))
	}
	if o.Dev == v.Dev && o.Netns == v.Netns {
		return false, nil
	}
	if err := d.commit([]store.Op{store.Put(store.KindVM, v.Name, mustJSON(v))}); err != nil {
		return false, err
	}
	old.vm = v
	d.changed()
	d.log.Info("vm moved", "vm", v.Name, "dev", v.Dev, "netns", v.Netns, "from_dev", o.Dev, "from_netns", o.Netns, "origin", v.Origin)
	return true, nil
}

func vmOriginText(o string) string {
	if o == "" {
		return "an operator (vifsec vm attach)"
	}
	return o
}
