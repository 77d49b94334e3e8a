package daemon

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/tenant"
)

// AddTenant adds t. Equivalent to: `vifsec tenant add --tenant NAME
// [--vni N] [--default-action none|discard]`.
func (d *Daemon) AddTenant(t tenant.Tenant) error {
	if t.DefaultAction == tenant.ActionInvalid {
		t.DefaultAction = tenant.ActionNone
	}
	if err := t.Validate(); err != nil {
		return wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[t.Name]; ok {
		return errf(CodeExists, "--tenant: a tenant named %q already exists", t.Name)
	}
	if t.VNI != 0 {
		for _, o := range d.tenants {
			if o.VNI == t.VNI {
				return errf(CodeExists, "--vni: VNI %d is already used by tenant %q; each tenant needs its own", t.VNI, o.Name)
			}
		}
	}
	if err := d.commit([]store.Op{store.Put(store.KindTenant, t.Name, mustJSON(t))}); err != nil {
		return err
	}
	d.tenants[t.Name] = t
	d.changed()
	d.log.Info("tenant added", "tenant", t.Name, "vni", t.VNI, "default_action", t.DefaultAction.String())
	return nil
}

// RemoveTenant removes the tenant named name. It refuses while VMs of the
// tenant are attached or it has underlay SAs or FDB entries, naming them.
func (d *Daemon) RemoveTenant(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[name]; !ok {
		return errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", name)
	}
	var vms []string
	for _, n := range sortedKeys(d.vms) {
		if d.vms[n].vm.Tenant == name {
			vms = append(vms, n)
		}
	}
	if len(vms) > 0 {
		return errf(CodeInUse, "--tenant: tenant %q still has VM %s; detach them first (vifsec vm detach --vm NAME)", name, strings.Join(vms, ", "))
	}
	var sas []string
	for _, n := range sortedKeys(d.saTenant) {
		if d.saTenant[n] == name {
			sas = append(sas, n)
		}
	}
	if len(sas) > 0 {
		return errf(CodeInUse, "--tenant: tenant %q still has underlay SA %s; remove them first (vifsec sa remove --sa-name %s)", name, strings.Join(sas, ", "), sas[0])
	}
	if what := d.ikeUsersLocked(name, ""); what != "" {
		return errf(CodeInUse, "--tenant: tenant %q still has %s; remove them first", name, what)
	}
	if macs := d.fdbMACs(name); macs != "" {
		return errf(CodeInUse, "--tenant: tenant %q still has FDB entries for MAC %s; remove them first (vifsec overlay fdb remove --tenant %s --mac MAC)", name, macs, name)
	}
	if err := d.commit([]store.Op{store.Delete(store.KindTenant, name)}); err != nil {
		return err
	}
	delete(d.tenants, name)
	d.changed()
	d.log.Info("tenant removed", "tenant", name)
	return nil
}

// Tenants returns every tenant sorted by name.
func (d *Daemon) Tenants() []tenant.Tenant {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]tenant.Tenant, 0, len(d.tenants))
	for _, n := range sortedKeys(d.tenants) {
		out = append(out, d.tenants[n])
	}
	return out
}

// AttachVM stores v; the data path (cmd/vifsecd, internal/attach) then
// attaches its device, or waits for it to appear.
// Equivalent to: `vifsec vm attach --vm NAME --tenant NAME --dev IFNAME
// [--netns NS] --mac MAC [--vlan 0-4094] [--ip ADDR]...`.
func (d *Daemon) AttachVM(v tenant.VM) error {
	v.IPs = dedupAddrs(v.IPs)
	if err := v.Validate(); err != nil {
		return wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[v.Tenant]; !ok {
		return errf(CodeNotFound, "--tenant: no tenant named %q; add it first (vifsec tenant add --tenant %s)", v.Tenant, v.Tenant)
	}
	if _, ok := d.vms[v.Name]; ok {
		return errf(CodeExists, "--vm: a VM named %q is already attached", v.Name)
	}
	e := &vmEntry{vm: v, counters: new(VMCounters)}
	if other, ok := d.byScope[e.scope()]; ok {
		return errf(CodeExists, "--mac/--vlan: VM %q already has mac %s on vlan %d; a VM interface is identified by (vlan, mac), which must be unique", other, v.MAC, v.VLAN)
	}
	if err := d.ipsFree(v); err != nil {
		return err
	}
	if err := d.commit([]store.Op{store.Put(store.KindVM, v.Name, mustJSON(v))}); err != nil {
		return err
	}
	d.vms[v.Name] = e
	d.byScope[e.scope()] = v.Name
	d.changed()
	d.log.Info("vm attached", "vm", v.Name, "tenant", v.Tenant, "dev", v.Dev, "netns", v.Netns, "mac", v.MAC.String(), "vlan", v.VLAN)
	return nil
}

// ipsFree refuses v if another VM of its tenant already claims one of its
// --ip addresses: anti-spoofing and the SPs of each would then admit the
// other's traffic. The caller holds d.mu.
func (d *Daemon) ipsFree(v tenant.VM) error {
	for _, n := range sortedKeys(d.vms) {
		o := d.vms[n].vm
		if o.Tenant != v.Tenant {
			continue
		}
		for _, a := range v.IPs {
			if slices.Contains(o.IPs, a) {
				return errf(CodeExists, "--ip %v: VM %q of tenant %s already has this address; an address belongs to one VM of a tenant (detach %s first, or give another --ip)", a, n, v.Tenant, n)
			}
		}
	}
	return nil
}

func dedupAddrs(in []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range in {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// DetachVM removes the VM named name. It refuses while manual SAs or SPs
// of the VM exist, naming them: they are keyed by the VM's (vlan, mac).
// IKE policies of the VM stay, dormant until it is attached again; the SAs
// IKE installed for it go.
func (d *Daemon) DetachVM(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.vms[name]; !ok {
		return errf(CodeNotFound, "--vm: no VM named %q (see vifsec vm list)", name)
	}
	var sas, sps []string
	for _, n := range sortedKeys(d.saVM) {
		if d.saVM[n] == name && !isIKESAName(n) {
			sas = append(sas, n)
		}
	}
	for _, n := range sortedKeys(d.sps) {
		if d.sps[n].p.VM == name {
			sps = append(sps, n)
		}
	}
	if len(sas)+len(sps) > 0 {
		var what []string
		if len(sps) > 0 {
			what = append(what, "SP "+strings.Join(sps, ", "))
		}
		if len(sas) > 0 {
			what = append(what, "SA "+strings.Join(sas, ", "))
		}
		return errf(CodeInUse, "--vm: VM %q still has %s; remove them first (vifsec sp remove, vifsec sa remove)", name, strings.Join(what, " and "))
	}
	if err := d.commit([]store.Op{store.Delete(store.KindVM, name)}); err != nil {
		return err
	}
	// IKE policies of the VM stay, dormant until it is attached again (a
	// libvirt domain's restart, a move); their SAs go with the VM.
	var dormant []string
	for _, k := range sortedKeys(d.ike.policies) {
		if p := d.ike.policies[k]; p.VM == name {
			dormant = append(dormant, p.Name)
			d.removeChildrenLocked(d.childrenOfLocked(k))
		}
	}
	e := d.vms[name]
	delete(d.vms, name)
	delete(d.byScope, e.scope())
	d.changed()
	if len(dormant) > 0 {
		d.log.Info("vm detached; its IKE policies wait for it", "vm", name, "policies", strings.Join(dormant, ","))
	} else {
		d.log.Info("vm detached", "vm", name)
	}
	return nil
}

// VMs returns every VM sorted by name.
func (d *Daemon) VMs() []tenant.VM {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]tenant.VM, 0, len(d.vms))
	for _, n := range sortedKeys(d.vms) {
		v := d.vms[n].vm
		v.IPs = slices.Clone(v.IPs)
		out = append(out, v)
	}
	return out
}

// SetUplink stores u, replacing the uplink; the data path moves to it.
// With a link check installed (SetLinkCheck), an interface that does not
// exist is refused, naming --dev (or --netns). Equivalent to:
// `vifsec uplink set --dev IFNAME ...`.
func (d *Daemon) SetUplink(u Uplink) error {
	if u.Overlay == OverlayInvalid {
		u.Overlay = OverlayNone
	}
	if u.Overlay == OverlayVXLAN && u.VXLANPort == 0 {
		u.VXLANPort = DefaultVXLANPort
	}
	if err := u.Validate(); err != nil {
		return wrap(CodeInvalid, err)
	}
	if err := d.checkLink(&u); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.commit([]store.Op{store.Put(store.KindUplink, uplinkKey, mustJSON(u))}); err != nil {
		return err
	}
	d.uplink = &u
	d.changed()
	d.log.Info("uplink set", "dev", u.Dev, "netns", u.Netns, "overlay", u.Overlay.String(), "protect", u.Protect.String())
	return nil
}

// Uplink returns the uplink and whether one is set.
func (d *Daemon) Uplink() (Uplink, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.uplink == nil {
		return Uplink{}, false
	}
	return *d.uplink, true
}

// SetEnabled sets the global IPsec switch. Equivalent to:
// `vifsec config modify --is-enabled true|false` (ONTAP
// `security ipsec config modify -is-enabled`).
func (d *Daemon) SetEnabled(on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.commit([]store.Op{store.Put(store.KindConfig, configKey, mustJSON(configRecord{IPsecEnabled: on}))}); err != nil {
		return err
	}
	d.enabled = on
	d.changed()
	d.log.Info("config modified", "ipsec_enabled", on)
	return nil
}

// Enabled reports the global IPsec switch (`vifsec config show`).
func (d *Daemon) Enabled() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.enabled
}
