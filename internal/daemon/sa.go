package daemon

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// SPIAuto as sa.Config.SPI asks AddSA and AddUnderlaySA to choose the SPI
// (`--sa-spi auto`): uniformly at random (crypto/rand) in
// 0x100-0xffffffff among those not used in the SA's scope, so that the
// SPI, which underlay ECMP hashes, has full entropy. The chosen SPI is
// told in a warning line "SPI 0x%08x chosen for NAME". 0 is reserved
// (RFC 4303 §2.1), so it is never a real SPI.
const SPIAuto uint32 = 0

// AddSA adds a manual SA for the VM named vm, which gives it its scope
// (vlan, mac): cfg.Scope is set from the VM. It returns warnings for the
// operator (a deprecated algorithm, the SPI chosen for SPIAuto) on
// success. Equivalent to: `vifsec sa add --vm NAME --sa-source ...
// --sa-name NAME` (esxcli `network ip ipsec sa add`).
//
// cfg's key slices are zeroed when AddSA returns: the SA keeps its own
// copy and the store its own.
func (d *Daemon) AddSA(vm string, cfg sa.Config) (warnings []string, err error) {
	defer clear(cfg.EncKey)
	defer clear(cfg.IntegKey)
	if err := tenant.ValidName(vm); err != nil {
		return nil, errf(CodeInvalid, "--vm: %w", err)
	}
	return d.addSA(saOwner{vm: vm}, cfg)
}

// AddUnderlaySA adds an underlay SA of the tenant named tenantName: ESP
// between VTEPs (its Src and Dst are hypervisor underlay addresses)
// around the tenant's VXLAN packets, used when the uplink has
// ProtectUnderlay. Its scope is the zero sa.Scope (no VM has the zero
// MAC), so SPIs are unique among underlay SAs, whatever their tenant.
// Otherwise as AddSA. Equivalent to: `vifsec sa add --tenant NAME
// --sa-source VTEP --sa-destination VTEP ... --sa-name NAME`.
func (d *Daemon) AddUnderlaySA(tenantName string, cfg sa.Config) (warnings []string, err error) {
	defer clear(cfg.EncKey)
	defer clear(cfg.IntegKey)
	if err := tenant.ValidName(tenantName); err != nil {
		return nil, errf(CodeInvalid, "--tenant: %w", err)
	}
	return d.addSA(saOwner{tenant: tenantName}, cfg)
}

// addSA is AddSA and AddUnderlaySA; the caller zeroes cfg's keys.
func (d *Daemon) addSA(o saOwner, cfg sa.Config) (warnings []string, err error) {
	if err := tenant.ValidName(cfg.Name); err != nil {
		return nil, errf(CodeInvalid, "--sa-name: %w", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if o.vm != "" {
		e := d.vms[o.vm]
		if e == nil {
			return nil, errf(CodeNotFound, "--vm: no VM named %q; attach it first (vifsec vm attach) or see vifsec vm list", o.vm)
		}
		cfg.Scope = e.scope()
	} else {
		if _, ok := d.tenants[o.tenant]; !ok {
			return nil, errf(CodeNotFound, "--tenant: no tenant named %q; add it first (vifsec tenant add --tenant %s) or see vifsec tenant list", o.tenant, o.tenant)
		}
		cfg.Scope = sa.Scope{}
	}
	if cfg.Created.IsZero() {
		cfg.Created = time.Now().UTC().Round(0) // stored (wall clock only), so seconds lifetimes survive restarts
	}
	auto := cfg.SPI == SPIAuto
	if auto {
		spi, ok := d.randomSPI(cfg.Scope)
		if !ok {
			return nil, errf(CodeExists, "--sa-spi auto: found no unused SPI in the %s; give one with --sa-spi 0xHEX", scopeName(o))
		}
		cfg.SPI = spi
	}
	s, err := sa.New(cfg)
	if err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	if old := d.db.Get(cfg.Name); old != nil {
		return nil, errf(CodeExists, "--sa-name: an SA named %q already exists (%s); SA names are unique on the host", cfg.Name, d.ownerLocked(cfg.Name))
	}
	if old := d.db.Lookup(cfg.Key()); old != nil {
		if o.vm != "" {
			return nil, errf(CodeExists, "--sa-spi: SPI 0x%x is already used by SA %q of VM %s; SPIs are unique per VM (or use --sa-spi auto)", cfg.SPI, old.Name(), o.vm)
		}
		return nil, errf(CodeExists, "--sa-spi: SPI 0x%x is already used by underlay SA %q (tenant %s); SPIs of underlay SAs are unique on the host, whatever their tenant (or use --sa-spi auto)", cfg.SPI, old.Name(), d.saTenant[old.Name()])
	}
	if o.vm != "" {
		if err := vmEndpoint(d.vms[o.vm].vm, &cfg); err != nil {
			return nil, err
		}
	}
	// SPs left without an SA by `sa remove --removeall` still name it: the
	// new SA must fit them as `sp add` would have required.
	for _, sp := range d.spsUsing(cfg.Name) {
		if o.vm == "" {
			return nil, errf(CodeInvalid, "--tenant: SP %q of VM %s names SA %q, and an SP cannot use an underlay SA; add this SA with --vm %s, or remove the SP first", sp.Name, sp.VM, cfg.Name, sp.VM)
		}
		if sp.VM != o.vm {
			return nil, errf(CodeInvalid, "--vm: SP %q of VM %s names SA %q; add this SA for --vm %s, or remove the SP first", sp.Name, sp.VM, cfg.Name, sp.VM)
		}
		if sp.Mode != cfg.Mode {
			return nil, errf(CodeInvalid, "--sa-mode %s does not match --sp-mode %s of SP %q, which names SA %q; they must be equal", cfg.Mode, sp.Mode, sp.Name, cfg.Name)
		}
	}

	d.seqs.mu.Lock()
	defer d.seqs.mu.Unlock()
	dupKey := d.warnDupKeyLocked(cfg.Name, keyFingerprint(&cfg))
	rec, err := encodeSA(o, &cfg)
	if err != nil {
		return nil, errf(CodeInternal, "encode SA %q: %v", cfg.Name, err)
	}
	// The SA and its first reservation are stored together: nothing was
	// sent under its key, and nothing above seqChunkMin will be before a
	// renewal is durable.
	seq := newSeqRecord(&cfg, seqChunkMin)
	err = d.commit([]store.Op{store.Put(store.KindSA, cfg.Name, rec), seqOp(cfg.Name, seq)})
	clear(rec)
	if err != nil {
		return nil, err
	}
	s.SetSeqLimit(seqChunkMin, seqChunkMin/2)
	if d.seqs.on {
		d.seqs.trackLocked(cfg.Name, &seqEntry{s: s, rec: seq, chunk: seqChunkMin, renewed: time.Now()})
	}
	if err := d.db.Add(s); err != nil {
		// Checked above under d.mu, and only the Daemon writes to db.
		panic(fmt.Sprintf("daemon: sa.DB refused SA %q after commit: %v", cfg.Name, err))
	}
	if o.vm != "" {
		d.saVM[cfg.Name] = o.vm
	} else {
		d.saTenant[cfg.Name] = o.tenant
	}
	d.changed()

	if dupKey != "" {
		warnings = append(warnings, dupKey)
	}
	if auto {
		warnings = append(warnings, fmt.Sprintf("SPI 0x%08x chosen for %s (--sa-spi auto)", cfg.SPI, cfg.Name))
	}
	if cfg.Enc.Deprecated() {
		warnings = append(warnings, fmt.Sprintf("--encryption-algorithm %s is deprecated (RFC 8221): use it only for peers that offer nothing else; prefer aes256-gcm or chacha20-poly1305", cfg.Enc))
	}
	if cfg.Enc == sa.EncNull {
		warnings = append(warnings, "--encryption-algorithm null: traffic of this SA is authenticated but not encrypted")
	}
	if o.tenant != "" {
		if u := d.uplink; u == nil || u.Protect != ProtectUnderlay {
			warnings = append(warnings, fmt.Sprintf("underlay SA %q is unused until the uplink protects the underlay (vifsec uplink set ... --overlay vxlan --protect underlay)", cfg.Name))
		} else if cfg.Src != u.VXLANLocal && cfg.Dst != u.VXLANLocal {
			warnings = append(warnings, fmt.Sprintf("neither --sa-source %v nor --sa-destination %v is the uplink's --vxlan-local %v: underlay SA %q is unused until they match", cfg.Src, cfg.Dst, u.VXLANLocal, cfg.Name))
		}
	}
	d.log.Info("sa added", "sa", cfg.Name, "vm", o.vm, "tenant", o.tenant, "spi", fmt.Sprintf("0x%x", cfg.SPI), "auto_spi", auto,
		"src", cfg.Src, "dst", cfg.Dst, "mode", cfg.Mode.String(), "enc", cfg.Enc.String(), "integ", cfg.Integ.String())
	return warnings, nil
}

// vmEndpoint refuses a VM SA neither of whose addresses is the VM's: its
// packets leave from, or arrive for, the VM's MAC, so (in transport mode
// as in tunnel mode, where they are the outer addresses) one end is the
// VM, and which one gives the SA's direction. A VM without --ip may use
// any address.
func vmEndpoint(v tenant.VM, cfg *sa.Config) error {
	if len(v.IPs) == 0 || slices.Contains(v.IPs, cfg.Src.Unmap()) || slices.Contains(v.IPs, cfg.Dst.Unmap()) {
		return nil
	}
	ips := make([]string, len(v.IPs))
	for i, a := range v.IPs {
		ips[i] = a.String()
	}
	return errf(CodeInvalid, "--sa-source %v, --sa-destination %v: neither is an address of VM %s (--ip %s); one end of a VM's SA must be the VM "+
		"(--sa-source for outbound, --sa-destination for inbound), or add the address to the VM (vifsec vm attach ... --ip ADDR)",
		cfg.Src, cfg.Dst, v.Name, strings.Join(ips, ", "))
}

func scopeName(o saOwner) string {
	if o.vm != "" {
		return "SPIs of VM " + o.vm
	}
	return "SPIs of underlay SAs"
}

// minSPI is the lowest SPI that is not reserved (RFC 4303 §2.1).
const minSPI = 0x100

// randomSPI picks an SPI uniformly in minSPI-0xffffffff among those free
// in scope; the caller holds d.mu.
func (d *Daemon) randomSPI(scope sa.Scope) (uint32, bool) {
	for range 1 << 16 {
		spi := randomSPIValue()
		if d.db.Lookup(sa.Key{Scope: scope, SPI: spi}) == nil {
			return spi, true
		}
	}
	return 0, false
}

// randomSPIValue returns a uniformly random SPI in minSPI-0xffffffff
// (rejection sampling of crypto/rand words).
func randomSPIValue() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:]) // never fails (Go ≥ 1.24)
		if v := binary.BigEndian.Uint32(b[:]); v >= minSPI {
			return v
		}
	}
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
	if ch := d.ike.saChild[name]; ch != nil {
		return errf(CodeInUse, "--sa-name: SA %q is managed by IKE (policy %s of tenant %s): IKE rekeys and deletes it; delete or modify the policy instead (vifsec policy delete --tenant %s --name %s)", name, ch.policy, ch.tenant, ch.tenant, ch.policy)
	}
	if users := d.spsUsing(name); len(users) > 0 {
		names := make([]string, len(users))
		for i, p := range users {
			names[i] = p.Name
		}
		return errf(CodeInUse, "--sa-name: SA %q is used by SP %s; remove the SP first (vifsec sp remove --sp-name %s), or use --removeall to remove every SA and leave such SPs without one",
			name, strings.Join(names, ", "), names[0])
	}
	d.seqs.mu.Lock()
	defer d.seqs.mu.Unlock()
	if err := d.commit([]store.Op{store.Delete(store.KindSA, name), store.Delete(store.KindSeq, name)}); err != nil {
		return err
	}
	d.seqs.untrackLocked(name, nil)
	if _, err := d.db.Remove(name); err != nil {
		panic(fmt.Sprintf("daemon: sa.DB refused to remove SA %q after commit: %v", name, err))
	}
	o := d.ownerLocked(name)
	delete(d.saVM, name)
	delete(d.saTenant, name)
	d.changed()
	d.log.Info("sa removed", "sa", name, "vm", o.vm, "tenant", o.tenant)
	return nil
}

// Unprotected is an ipsec SP that `sa remove --removeall` left without its
// SA. The data path discards its traffic (fail closed) until an SA of
// that name is added again.
type Unprotected struct {
	SP, VM, SA string
}

// RemoveAllSAs removes every SA (underlay SAs too), even those in use, but
// not the SAs IKE manages (see ikesa.go), and
// returns their names and the SPs it left without an SA. Equivalent to:
// `vifsec sa remove --removeall`.
func (d *Daemon) RemoveAllSAs() (removed []string, left []Unprotected, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	removed = append(sortedKeys(d.saVM), sortedKeys(d.saTenant)...)
	removed = slices.DeleteFunc(removed, isIKESAName) // managed by IKE: left alone
	slices.Sort(removed)
	if len(removed) == 0 {
		return nil, nil, nil
	}
	ops := make([]store.Op, 0, 2*len(removed))
	for _, n := range removed {
		ops = append(ops, store.Delete(store.KindSA, n), store.Delete(store.KindSeq, n))
		for _, p := range d.spsUsing(n) {
			left = append(left, Unprotected{SP: p.Name, VM: p.VM, SA: n})
		}
	}
	d.seqs.mu.Lock()
	defer d.seqs.mu.Unlock()
	if err := d.commit(ops); err != nil {
		return nil, nil, err
	}
	for _, n := range removed {
		d.seqs.untrackLocked(n, nil)
	}
	if err := d.db.Apply(nil, removed); err != nil {
		panic(fmt.Sprintf("daemon: sa.DB refused to remove all SAs after commit: %v", err))
	}
	for _, n := range removed {
		delete(d.saVM, n)
		delete(d.saTenant, n)
	}
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
	// VM is the SA's VM; "" for an underlay SA.
	VM string
	// Tenant is the tenant of the SA's VM, or of the underlay SA.
	Tenant string
	Config sa.Config
	// Dir is the SA's direction: Config.Dir if set, else the direction of
	// the SPs that use it if they agree, else DirInvalid. For an underlay
	// SA without Config.Dir it is DirOut if Config.Src is the uplink's
	// --vxlan-local, DirIn if Config.Dst is, when the uplink has
	// ProtectUnderlay; else DirInvalid (the SA is unused).
	Dir     sa.Direction
	UsedBy  []string // SPs using it, in SPD order
	Expired bool
	Stats   *sa.Counters

	// IKEPolicy is the IKE policy whose Child SA this SA is; "" for a
	// manual SA. IKE SAs have Config.Dir set.
	IKEPolicy string

	// Refused says why the SA refuses to send until it is replaced by an
	// SA with a new key (its sequence numbers cannot be proven unused,
	// seqres.go); "" if it does not.
	Refused string
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
	info := SAInfo{VM: d.saVM[cfg.Name], Config: cfg, Dir: cfg.Dir, Expired: s.Expired(), Stats: &s.Stats, Refused: s.Refused()}
	if ch := d.ike.saChild[cfg.Name]; ch != nil {
		info.Tenant, info.IKEPolicy = ch.tenant, ch.policy
		if ch.vm != "" {
			ps, _ := d.ikeSPsLocked(ch.vm)
			for _, p := range ps {
				if p.SAName == cfg.Name {
					info.UsedBy = append(info.UsedBy, p.Name)
				}
			}
		}
		return info
	}
	if tn, ok := d.saTenant[cfg.Name]; ok {
		info.Tenant = tn
		if u := d.uplink; cfg.Dir == sa.DirInvalid && u != nil && u.Protect == ProtectUnderlay {
			switch u.VXLANLocal {
			case cfg.Src:
				info.Dir = sa.DirOut
			case cfg.Dst:
				info.Dir = sa.DirIn
			}
		}
		return info
	}
	if e := d.vms[info.VM]; e != nil {
		info.Tenant = e.vm.Tenant
	}
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
