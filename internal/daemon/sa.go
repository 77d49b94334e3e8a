package daemon

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// AddSA adds a manual SA for the VM named vm, which gives it its scope
// (vlan, mac): cfg.Scope is set from the VM. It returns warnings for the
// operator (a deprecated algorithm) on success. Equivalent to:
// `vifsec sa add --vm NAME --sa-source ... --sa-name NAME` (esxcli
// `network ip ipsec sa add`).
//
// cfg's key slices are zeroed when AddSA returns: the SA keeps its own
// copy and the store its own.
func (d *Daemon) AddSA(vm string, cfg sa.Config) (warnings []string, err error) {
	defer clear(cfg.EncKey)
	defer clear(cfg.IntegKey)
	if err := tenant.ValidName(vm); err != nil {
		return nil, errf(CodeInvalid, "--vm: %w", err)
	}
	if err := tenant.ValidName(cfg.Name); err != nil {
		return nil, errf(CodeInvalid, "--sa-name: %w", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.vms[vm]
	if e == nil {
		return nil, errf(CodeNotFound, "--vm: no VM named %q; attach it first (vifsec vm attach) or see vifsec vm list", vm)
	}
	cfg.Scope = e.scope()
	if cfg.Created.IsZero() {
		cfg.Created = time.Now().UTC().Round(0) // stored (wall clock only), so seconds lifetimes survive restarts
	}
	s, err := sa.New(cfg)
	if err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	if old := d.db.Get(cfg.Name); old != nil {
		return nil, errf(CodeExists, "--sa-name: an SA named %q already exists (VM %s); SA names are unique on the host", cfg.Name, d.saVM[cfg.Name])
	}
	if old := d.db.Lookup(cfg.Key()); old != nil {
		return nil, errf(CodeExists, "--sa-spi: SPI 0x%x is already used by SA %q of VM %s; SPIs are unique per VM", cfg.SPI, old.Name(), vm)
	}
	// SPs left without an SA by `sa remove --removeall` still name it: the
	// new SA must fit them as `sp add` would have required.
	for _, sp := range d.spsUsing(cfg.Name) {
		if sp.VM != vm {
			return nil, errf(CodeInvalid, "--vm: SP %q of VM %s names SA %q; add this SA for --vm %s, or remove the SP first", sp.Name, sp.VM, cfg.Name, sp.VM)
		}
		if sp.Mode != cfg.Mode {
			return nil, errf(CodeInvalid, "--sa-mode %s does not match --sp-mode %s of SP %q, which names SA %q; they must be equal", cfg.Mode, sp.Mode, sp.Name, cfg.Name)
		}
	}

	rec, err := encodeSA(vm, &cfg)
	if err != nil {
		return nil, errf(CodeInternal, "encode SA %q: %v", cfg.Name, err)
	}
	err = d.commit([]store.Op{store.Put(store.KindSA, cfg.Name, rec)})
	clear(rec)
	if err != nil {
		return nil, err
	}
	if err := d.db.Add(s); err != nil {
		// Checked above under d.mu, and only the Daemon writes to db.
		panic(fmt.Sprintf("daemon: sa.DB refused SA %q after commit: %v", cfg.Name, err))
	}
	d.saVM[cfg.Name] = vm
	d.changed()

	if cfg.Enc.Deprecated() {
		warnings = append(warnings, fmt.Sprintf("--encryption-algorithm %s is deprecated (RFC 8221): use it only for peers that offer nothing else; prefer aes256-gcm or chacha20-poly1305", cfg.Enc))
	}
	if cfg.Enc == sa.EncNull {
		warnings = append(warnings, "--encryption-algorithm null: traffic of this SA is authenticated but not encrypted")
	}
	d.log.Info("sa added", "sa", cfg.Name, "vm", vm, "spi", fmt.Sprintf("0x%x", cfg.SPI), "src", cfg.Src, "dst", cfg.Dst,
		"mode", cfg.Mode.String(), "enc", cfg.Enc.String(), "integ", cfg.Integ.String())
	return warnings, nil
}

// spsUsing returns the ipsec SPs that name the SA called name, in SPD
// order; the caller holds d.mu.
func (d *Daemon) spsUsing(name string) []tenant.Policy {
	var out []*spEntry
	for _, e := range d.sps {
		if e.p.Action == tenant.ActionIPsec && e.p.SAName == name {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *spEntry) int { return cmpU64(a.seq, b.seq) })
	ps := make([]tenant.Policy, len(out))
	for i, e := range out {
		ps[i] = e.p
	}
	return ps
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RemoveSA removes the SA named name. It refuses, naming them, while SPs
// use it. Equivalent to: `vifsec sa remove --sa-name NAME`.
func (d *Daemon) RemoveSA(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db.Get(name) == nil {
		return errf(CodeNotFound, "--sa-name: no SA named %q (see vifsec sa list)", name)
	}
	if users := d.spsUsing(name); len(users) > 0 {
		names := make([]string, len(users))
		for i, p := range users {
			names[i] = p.Name
		}
		return errf(CodeInUse, "--sa-name: SA %q is used by SP %s; remove the SP first (vifsec sp remove --sp-name %s), or use --removeall to remove every SA and leave such SPs without one",
			name, strings.Join(names, ", "), names[0])
	}
	if err := d.commit([]store.Op{store.Delete(store.KindSA, name)}); err != nil {
		return err
	}
	if _, err := d.db.Remove(name); err != nil {
		panic(fmt.Sprintf("daemon: sa.DB refused to remove SA %q after commit: %v", name, err))
	}
	vm := d.saVM[name]
	delete(d.saVM, name)
	d.changed()
	d.log.Info("sa removed", "sa", name, "vm", vm)
	return nil
}

// Unprotected is an ipsec SP that `sa remove --removeall` left without its
// SA. The data path discards its traffic (fail closed) until an SA of
// that name is added again.
type Unprotected struct {
	SP, VM, SA string
}

// RemoveAllSAs removes every SA, even those in use, and returns their names
// and the SPs it left without an SA. Equivalent to:
// `vifsec sa remove --removeall`.
func (d *Daemon) RemoveAllSAs() (removed []string, left []Unprotected, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	removed = sortedKeys(d.saVM)
	if len(removed) == 0 {
		return nil, nil, nil
	}
	ops := make([]store.Op, len(removed))
	for i, n := range removed {
		ops[i] = store.Delete(store.KindSA, n)
		for _, p := range d.spsUsing(n) {
			left = append(left, Unprotected{SP: p.Name, VM: p.VM, SA: n})
		}
	}
	if err := d.commit(ops); err != nil {
		return nil, nil, err
	}
	if err := d.db.Apply(nil, removed); err != nil {
		panic(fmt.Sprintf("daemon: sa.DB refused to remove all SAs after commit: %v", err))
	}
	clear(d.saVM)
	d.changed()
	spNames := make([]string, len(left))
	for i, u := range left {
		spNames[i] = u.SP
	}
	d.log.Warn("all SAs removed", "count", len(removed), "sps_without_sa", strings.Join(spNames, ","))
	return removed, left, nil
}

// SAInfo describes one SA for listing. Config carries no keys.
type SAInfo struct {
	VM     string
	Config sa.Config
	// Dir is the SA's direction: Config.Dir if set, else the direction of
	// the SPs that use it if they agree, else DirInvalid.
	Dir     sa.Direction
	UsedBy  []string // SPs using it, in SPD order
	Expired bool
	Stats   *sa.Counters
}

// SAs returns every SA sorted by name.
func (d *Daemon) SAs() []SAInfo {
	d.mu.RLock()
	defer d.mu.RUnlock()
	list := d.db.List()
	out := make([]SAInfo, 0, len(list))
	for _, s := range list {
		out = append(out, d.saInfo(s))
	}
	return out
}

// saInfo describes s; the caller holds d.mu.
func (d *Daemon) saInfo(s *sa.SA) SAInfo {
	cfg := s.Config()
	info := SAInfo{VM: d.saVM[cfg.Name], Config: cfg, Dir: cfg.Dir, Expired: s.Expired(), Stats: &s.Stats}
	for i, p := range d.spsUsing(cfg.Name) {
		info.UsedBy = append(info.UsedBy, p.Name)
		if cfg.Dir == sa.DirInvalid {
			if i == 0 {
				info.Dir = p.Direction
			} else if info.Dir != p.Direction {
				info.Dir = sa.DirInvalid
			}
		}
	}
	return info
}
