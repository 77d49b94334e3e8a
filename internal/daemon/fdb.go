package daemon

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/tenant"
)

// FDBEntry is a static VXLAN forwarding entry: frames of tenant Tenant to
// MAC go to the remote VTEP Remote (VXLAN with the tenant's VNI, to the
// uplink's --vxlan-port). Equivalent to: `vifsec overlay fdb add --tenant
// NAME --mac MAC --remote ADDR`. (Tenant, MAC) is unique.
type FDBEntry struct {
	Tenant string     `json:"tenant"`
	MAC    tenant.MAC `json:"mac"`
	Remote netip.Addr `json:"remote"`
}

type fdbKey struct {
	tenant string
	mac    tenant.MAC
}

func (e *FDBEntry) key() fdbKey { return fdbKey{e.Tenant, e.MAC} }

// storeName is the entry's name in the store: tenant names cannot hold
// '/', so "TENANT/MAC" is unique.
func (k fdbKey) storeName() string { return k.tenant + "/" + k.mac.String() }

// Validate returns nil if e can be stored, else every problem found, each
// naming its flag. Whether the tenant exists is for the Daemon to say.
func (e *FDBEntry) Validate() error {
	var errs []error
	if err := tenant.ValidName(e.Tenant); err != nil {
		errs = append(errs, fmt.Errorf("--tenant: %w", err))
	}
	switch {
	case e.MAC.IsZero():
		errs = append(errs, fmt.Errorf("--mac: %v is the all-zero MAC address; give the unicast MAC of the VM behind the remote VTEP, e.g. 52:54:00:12:34:56", e.MAC))
	case e.MAC.IsMulticast():
		errs = append(errs, fmt.Errorf("--mac: %v is a multicast MAC address (lowest bit of the first octet set); an FDB entry is for one VM's unicast MAC, e.g. 52:54:00:12:34:56", e.MAC))
	}
	if err := checkRemote(e.Remote); err != nil {
		errs = append(errs, fmt.Errorf("--remote: %w", err))
	}
	return errors.Join(errs...)
}

// checkRemote says why a cannot be a remote VTEP address.
func checkRemote(a netip.Addr) error {
	const rule = "give the unicast underlay address of the remote VTEP, e.g. 2001:db8::2 or 192.0.2.2"
	switch {
	case !a.IsValid():
		return fmt.Errorf("required; %s", rule)
	case a.Zone() != "":
		return fmt.Errorf("%v has a zone; zones are not accepted, %s", a, rule)
	case a.Is4In6():
		return fmt.Errorf("%v is an IPv4-mapped IPv6 address; write it as IPv4 (%v)", a, a.Unmap())
	case a.IsUnspecified():
		return fmt.Errorf("%v is the unspecified address; %s", a, rule)
	case a.IsMulticast():
		return fmt.Errorf("%v is a multicast address; static FDB entries name one remote VTEP: %s", a, rule)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%v is the broadcast address; %s", a, rule)
	}
	return nil
}

func compareFDB(a, b FDBEntry) int {
	if c := cmp.Compare(a.Tenant, b.Tenant); c != 0 {
		return c
	}
	return bytes.Compare(a.MAC[:], b.MAC[:])
}

// AddFDB adds the static VXLAN forwarding entry e. It refuses an entry for
// a (tenant, MAC) that already has one: remove it first to change it.
// Equivalent to: `vifsec overlay fdb add --tenant NAME --mac MAC --remote ADDR`.
func (d *Daemon) AddFDB(e FDBEntry) error {
	if err := e.Validate(); err != nil {
		return wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[e.Tenant]; !ok {
		return errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", e.Tenant)
	}
	k := e.key()
	if old, ok := d.fdb[k]; ok {
		return errf(CodeExists, "--mac: tenant %q already has an FDB entry for %v (remote %v); remove it first to change it (vifsec overlay fdb remove --tenant %s --mac %v)", e.Tenant, e.MAC, old.Remote, e.Tenant, e.MAC)
	}
	if err := d.commit([]store.Op{store.Put(store.KindFDB, k.storeName(), mustJSON(e))}); err != nil {
		return err
	}
	d.fdb[k] = e
	d.changed()
	d.log.Info("fdb entry added", "tenant", e.Tenant, "mac", e.MAC.String(), "remote", e.Remote.String())
	return nil
}

// RemoveFDB removes the forwarding entry of (tenantName, mac).
// Equivalent to: `vifsec overlay fdb remove --tenant NAME --mac MAC`.
func (d *Daemon) RemoveFDB(tenantName string, mac tenant.MAC) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[tenantName]; !ok {
		return errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
	}
	k := fdbKey{tenantName, mac}
	if _, ok := d.fdb[k]; !ok {
		return errf(CodeNotFound, "--mac: tenant %q has no FDB entry for %v (see vifsec overlay fdb list --tenant %s)", tenantName, mac, tenantName)
	}
	if err := d.commit([]store.Op{store.Delete(store.KindFDB, k.storeName())}); err != nil {
		return err
	}
	delete(d.fdb, k)
	d.changed()
	d.log.Info("fdb entry removed", "tenant", tenantName, "mac", mac.String())
	return nil
}

// FDB returns the forwarding entries of the tenant named tenantName, or of
// every tenant if it is "", sorted by tenant then MAC. Equivalent to:
// `vifsec overlay fdb list [--tenant NAME]`.
func (d *Daemon) FDB(tenantName string) []FDBEntry {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.fdbLocked(tenantName)
}

// fdbLocked is FDB; the caller holds d.mu.
func (d *Daemon) fdbLocked(tenantName string) []FDBEntry {
	out := []FDBEntry{}
	for _, e := range d.fdb {
		if tenantName == "" || e.Tenant == tenantName {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, compareFDB)
	return out
}

// fdbMACs lists the MACs of the tenant's FDB entries, sorted; the caller
// holds d.mu.
func (d *Daemon) fdbMACs(tenantName string) string {
	var macs []string
	for _, e := range d.fdbLocked(tenantName) {
		macs = append(macs, e.MAC.String())
	}
	return strings.Join(macs, ", ")
}
