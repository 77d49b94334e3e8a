package daemon

import (
	"slices"
	"strings"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/tenant"
)

// AddSP appends p to its VM's SPD (policies match first-added first).
// With action ipsec, p.SAName must name an SA of the same VM whose mode
// equals p.Mode. Equivalent to: `vifsec sp add --vm NAME ... --sp-name
// NAME` (esxcli `network ip ipsec sp add`, also `vifsec add`).
func (d *Daemon) AddSP(p tenant.Policy) error {
	if err := p.Validate(); err != nil {
		return wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vms[p.VM] == nil {
		return errf(CodeNotFound, "--vm: no VM named %q; attach it first (vifsec vm attach) or see vifsec vm list", p.VM)
	}
	if e := d.sps[p.Name]; e != nil {
		return errf(CodeExists, "--sp-name: an SP named %q already exists (VM %s); SP names are unique on the host", p.Name, e.p.VM)
	}
	if p.Action == tenant.ActionIPsec {
		s := d.db.Get(p.SAName)
		if s == nil {
			return errf(CodeNotFound, "--sa-name: no SA named %q; add it first (vifsec sa add --vm %s ... --sa-name %s)", p.SAName, p.VM, p.SAName)
		}
		if tn, ok := d.saTenant[p.SAName]; ok {
			return errf(CodeInvalid, "--sa-name: SA %q is an underlay SA of tenant %s (it protects VXLAN between VTEPs); an SP uses an SA of its own VM (vifsec sa add --vm %s)", p.SAName, tn, p.VM)
		}
		if vm := d.saVM[p.SAName]; vm != p.VM {
			return errf(CodeInvalid, "--sa-name: SA %q belongs to VM %s, not %s; an SP uses an SA of its own VM", p.SAName, vm, p.VM)
		}
		if s.Mode() != p.Mode {
			return errf(CodeInvalid, "--sp-mode %s does not match --sa-mode %s of SA %q; they must be equal", p.Mode, s.Mode(), p.SAName)
		}
	}
	e := &spEntry{seq: d.nextSeq, p: p}
	if err := d.commit([]store.Op{store.Put(store.KindSP, p.Name, mustJSON(spRecord{Seq: e.seq, Policy: p}))}); err != nil {
		return err
	}
	d.nextSeq++
	d.sps[p.Name] = e
	d.changed()
	d.log.Info("sp added", "sp", p.Name, "vm", p.VM, "src", p.Src, "dst", p.Dst, "proto", p.ULProto.String(),
		"direction", p.Direction.String(), "action", p.Action.String(), "sa", p.SAName)
	return nil
}

// RemoveSP removes the SP named name. Equivalent to:
// `vifsec sp remove --sp-name NAME`.
func (d *Daemon) RemoveSP(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.sps[name]
	if e == nil && strings.HasPrefix(name, "ike/") {
		return errf(CodeInUse, "--sp-name: SP %q is derived from an IKE policy; modify or delete the policy instead (vifsec policy modify/delete)", name)
	}
	if e == nil {
		return errf(CodeNotFound, "--sp-name: no SP named %q (see vifsec sp list)", name)
	}
	if err := d.commit([]store.Op{store.Delete(store.KindSP, name)}); err != nil {
		return err
	}
	delete(d.sps, name)
	d.changed()
	d.log.Info("sp removed", "sp", name, "vm", e.p.VM)
	return nil
}

// RemoveAllSPs removes every SP and returns their names. Equivalent to:
// `vifsec sp remove --removeall`.
func (d *Daemon) RemoveAllSPs() ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := sortedKeys(d.sps)
	if len(names) == 0 {
		return nil, nil
	}
	ops := make([]store.Op, len(names))
	for i, n := range names {
		ops[i] = store.Delete(store.KindSP, n)
	}
	if err := d.commit(ops); err != nil {
		return nil, err
	}
	clear(d.sps)
	d.changed()
	d.log.Warn("all SPs removed", "count", len(names))
	return names, nil
}

// SPInfo describes one SP for listing.
type SPInfo struct {
	Policy tenant.Policy
	// SAMissing is set for an ipsec SP whose SA was removed by
	// `sa remove --removeall`: its traffic is discarded.
	SAMissing bool
}

// SPs returns every SP, grouped by VM (sorted by name), each VM's in SPD
// order.
func (d *Daemon) SPs() []SPInfo {
	d.mu.RLock()
	defer d.mu.RUnlock()
	es := d.sortedSPs()
	out := make([]SPInfo, len(es))
	for i, e := range es {
		out[i] = SPInfo{Policy: e.p, SAMissing: e.p.Action == tenant.ActionIPsec && d.db.Get(e.p.SAName) == nil}
	}
	return out
}

// sortedSPs returns the SPs by VM name, then SPD order; the caller holds d.mu.
func (d *Daemon) sortedSPs() []*spEntry {
	es := make([]*spEntry, 0, len(d.sps))
	for _, e := range d.sps {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *spEntry) int {
		if a.p.VM != b.p.VM {
			if a.p.VM < b.p.VM {
				return -1
			}
			return 1
		}
		return cmpU64(a.seq, b.seq)
	})
	return es
}
