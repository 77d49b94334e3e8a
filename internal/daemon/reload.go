package daemon

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// This file makes a running Daemon follow a store whose records change
// under it (the fleet store on etcd: other hosts and operators write this
// host's desired state). New reads the store once (restore: the same
// steps, but the first record that breaks a rule fails it); a Converger
// then applies each full record set the store delivers:
//
//  1. decode: every record decoded and checked on its own (cached by its
//     bytes: an unchanged record is not decoded again);
//  2. desire: each record checked against the others in store order, by
//     the rules New's restore applies too (rules.go); a record that
//     breaks a rule is left out and reported as a Problem, never half
//     applied;
//  3. apply the difference between that desired state and the running
//     one under the state lock in one step, so the data path sees one
//     consistent Snapshot: applySAs adds SAs (and removes replaced ones)
//     by one sa.DB.Apply before the SPs naming them are published, and
//     SPs leave the SPD in the same step as their SAs leave the DB;
//     applyTenants, applyVMs and applySPs swap in the rest, reusing
//     unchanged entries; applyExtra applies the kinds converged
//     elsewhere (Extra: the IKE kinds);
//  4. bump the generation only if something changed.
//
// An SA whose stored config (keys included) did not change keeps its live
// object: its outbound sequence counter and its replay window go on, so
// the peer sees no replays and the receiver no gap. The daemon's own
// commits come back through the store's watch; converging to them
// changes nothing.

// Problem is a stored record that was not applied, and why.
type Problem struct {
	Kind store.Kind
	Name string
	Err  string
}

func (p Problem) String() string { return fmt.Sprintf("%s %q: %s", p.Kind, p.Name, p.Err) }

// ConvergeResult says what Converge did.
type ConvergeResult struct {
	// Skipped: begin refused the record set (older than the state).
	Skipped bool
	// Changed: the generation moved (something differs).
	Changed bool
	// Counts of objects added, changed or removed, by kind.
	Added, Updated, Removed map[store.Kind]int
	// Problems are the records left out, sorted.
	Problems []Problem
}

// Converger applies full record sets to a Daemon (see the top of this
// file). Converge calls must not run concurrently; the daemon's own
// mutating methods may run at any time.
type Converger struct {
	d              *Daemon
	defaultEnabled bool
	cache          map[recKey]*decoded
	reported       map[string]bool

	// Extra applies records of kinds this file does not converge
	// (IKE policies, certificates, CRLs) after the others, holding the
	// daemon's state lock; without a handler, a change of such a kind is
	// logged (another host's change applies at the next restart).
	// NewConverger sets the IKE kinds' handlers (ikeconverge.go).
	Extra map[store.Kind]func(d *Daemon, recs []store.Record) []Problem

	extraSeen map[store.Kind]string // digest of the records of other kinds last seen
	built     map[string]built      // SA name → the record and live SA it made
	quiet     bool                  // log the first state at debug level
}

// built ties a live SA to the decoded record it was made from (or found
// equal to), so an unchanged record needs no comparison.
type built struct {
	w *wantSA
	s *sa.SA
}

type recKey struct {
	kind store.Kind
	name string
}

// decoded is a record decoded and checked on its own (references are
// checked each time, against the whole set).
type decoded struct {
	raw []byte
	obj any
	err error
}

// NewConverger returns a Converger for d. Call it right after New: the
// IPsec switch's state at that moment is the default it returns to when
// the config record is deleted.
func NewConverger(d *Daemon) *Converger {
	return &Converger{d: d, defaultEnabled: d.Enabled(), cache: map[recKey]*decoded{}, reported: map[string]bool{},
		extraSeen: map[store.Kind]string{}, built: map[string]built{}, Extra: ikeConvergers()}
}

// NewFleet is New for a store whose records other writers change: it never
// fails because of a record (records that break a rule are left out and
// returned as Problems), and it returns the Converger that applies later
// record sets.
func NewFleet(st store.Store, cfg *Config, o *FleetOptions) (*Daemon, *Converger, []Problem, error) {
	if o == nil {
		o = &FleetOptions{}
	}
	recs, err := st.Load()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("restore state: %w", err)
	}
	d, err := newDaemon(emptyStore{st}, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	c := NewConverger(d)
	c.quiet = true
	res := c.Converge(recs, nil)
	c.quiet = false
	probs := res.Problems
	if o.Reserve {
		if err := d.startSeqs(d.seqAnchor); err != nil {
			d.Discard()
			return nil, nil, nil, err
		}
	}
	return d, c, probs, nil
}

// FleetOptions qualify NewFleet. A nil *FleetOptions means defaults.
type FleetOptions struct {
	// Reserve makes the daemon the owner of the host's sequence
	// reservations (seqres.go): the host's own daemon. A temporary daemon
	// over a host's state (to check or change it from elsewhere) leaves
	// them alone; its SAs never send.
	Reserve bool
}

// emptyStore is st whose Load returns nothing, so New starts empty and
// Converge fills the state.
type emptyStore struct{ store.Store }

func (emptyStore) Load() ([]store.Record, error) { return nil, nil }

// convergedKinds are the kinds Converge applies itself.
var convergedKinds = map[store.Kind]bool{
	store.KindConfig: true, store.KindUplink: true, store.KindTenant: true, store.KindVM: true,
	store.KindSA: true, store.KindSP: true, store.KindFDB: true,
}

// storedSA says whether the SA named name is one the store holds (a
// manual SA): names of SAs IKE installs contain '/', which stored names
// (tenant.ValidName) cannot; those SAs are IKE's to manage.
func storedSA(name string) bool { return !strings.Contains(name, "/") }

// Converge makes the daemon's state that of recs (every record of the
// store). begin, if not nil, is called holding the state lock before
// anything changes; if it returns false nothing is done (Skipped).
func (c *Converger) Converge(recs []store.Record, begin func() bool) ConvergeResult {
	res := c.converge(recs, begin)
	c.report(&res)
	return res
}

// converge is Converge without the report: the steps at the top of this
// file.
func (c *Converger) converge(recs []store.Record, begin func() bool) ConvergeResult {
	res := ConvergeResult{Added: map[store.Kind]int{}, Updated: map[store.Kind]int{}, Removed: map[store.Kind]int{}}
	var probs problems
	set := c.decode(recs, &probs)
	seqs := c.reservations(set)

	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if begin != nil && !begin() {
		res.Skipped = true
		return res
	}
	want := set.desire(c.defaultEnabled, &probs)
	changed := c.applySAs(want, seqs, &res, &probs)
	changed = c.applyTenants(want, &res) || changed
	changed = c.applyVMs(want, &res) || changed
	changed = c.applySPs(want, &res) || changed
	changed = c.applyExtra(recs, set.byKind, &probs) || changed
	if changed {
		d.changed()
		res.Changed = true
	}
	sort.Slice(probs, func(i, j int) bool { return probs[i].String() < probs[j].String() })
	res.Problems = probs
	return res
}

// problems collects the records left out.
type problems []Problem

func (p *problems) add(r store.Record, err error) {
	*p = append(*p, Problem{Kind: r.Kind, Name: r.Name, Err: err.Error()})
}

// recordSet is a record set decoded: the records by kind, each kind's
// sorted by name, and the object each record of a converged kind decoded
// to (nil: left out, or a kind converged elsewhere).
type recordSet struct {
	byKind map[store.Kind][]store.Record
	objs   map[recKey]any
}

// decode is step 1: every record of a converged kind decoded and checked
// on its own (cached by its bytes), outside the state lock; each record
// left out goes to probs.
func (c *Converger) decode(recs []store.Record, probs *problems) *recordSet {
	s := &recordSet{byKind: map[store.Kind][]store.Record{}, objs: make(map[recKey]any, len(recs))}
	for _, r := range recs {
		k := recKey{r.Kind, r.Name}
		if _, dup := s.objs[k]; dup {
			probs.add(r, fmt.Errorf("stored twice"))
			continue
		}
		s.objs[k] = nil
		s.byKind[r.Kind] = append(s.byKind[r.Kind], r)
		if !convergedKinds[r.Kind] {
			continue
		}
		e := c.cache[k]
		if e == nil || !bytes.Equal(e.raw, r.Value) {
			obj, err := decodeRecord(r)
			e = &decoded{raw: r.Value, obj: obj, err: err}
			c.cache[k] = e
		}
		if e.err != nil {
			probs.add(r, e.err)
			continue
		}
		s.objs[k] = e.obj
	}
	for k := range c.cache {
		if _, ok := s.objs[k]; !ok {
			delete(c.cache, k)
		}
	}
	for _, rs := range s.byKind {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	}
	return s
}

// seqsRead are the stored sequence reservations by SA name, and the error
// reading them.
type seqsRead struct {
	byName map[string]store.Record
	err    error
}

// reservations reads the stored sequence reservations, before the state
// lock, if an SA object may be built: it takes its sequence numbers from
// its reservation (seqres.go).
func (c *Converger) reservations(s *recordSet) seqsRead {
	if !c.needSeqs(s.byKind[store.KindSA], s.objs) {
		return seqsRead{}
	}
	rs, err := c.d.st.LoadSeqs()
	byName, _, _ := parseSeqs(rs)
	return seqsRead{byName: byName, err: err}
}

// applySAs is step 3: it keeps the live object of every unchanged SA,
// builds the new and changed ones, and adds them and removes the rest in
// one sa.DB.Apply; it then records whom each stored SA belongs to. It
// reports whether anything changed.
func (c *Converger) applySAs(want *desired, seqs seqsRead, res *ConvergeResult, probs *problems) bool {
	d := c.d
	var add []*sa.SA
	var remove []string
	removing := map[string]bool{}
	for name, w := range want.sas {
		live := d.db.Get(name)
		if live != nil && !storedSA(name) {
			probs.add(store.Record{Kind: store.KindSA, Name: name}, fmt.Errorf("the name is taken by an SA IKE installed"))
			delete(want.sas, name)
			continue
		}
		if b := c.built[name]; live != nil && b.w == w && b.s == live {
			continue // the same record that made this live SA
		}
		if live != nil && d.ownerLocked(name) == w.owner && sameSA(live, &w.cfg) {
			c.built[name] = built{w, live}
			continue
		}
		s, err := sa.New(w.cfg)
		if err != nil {
			probs.add(store.Record{Kind: store.KindSA, Name: name}, err)
			delete(want.sas, name)
			continue
		}
		d.adoptSeqLocked(s, seqs.byName, seqs.err)
		add = append(add, s)
		c.built[name] = built{w, s}
		if live != nil {
			remove = append(remove, name)
			removing[name] = true
			res.Updated[store.KindSA]++
		} else {
			res.Added[store.KindSA]++
		}
	}
	for _, m := range []map[string]string{d.saVM, d.saTenant} {
		for name := range m {
			if storedSA(name) && want.sas[name] == nil && !removing[name] {
				remove = append(remove, name)
				removing[name] = true
				res.Removed[store.KindSA]++
			}
		}
	}
	for name := range c.built {
		if want.sas[name] == nil {
			delete(c.built, name)
		}
	}
	// An SA IKE installed may hold a key a stored SA wants.
	add = slices.DeleteFunc(add, func(s *sa.SA) bool {
		if o := d.db.Lookup(s.Key()); o != nil && o.Name() != s.Name() && !removing[o.Name()] {
			probs.add(store.Record{Kind: store.KindSA, Name: s.Name()}, fmt.Errorf("SPI 0x%x is used by SA %q in the same scope", s.SPI(), o.Name()))
			delete(want.sas, s.Name())
			return true
		}
		return false
	})
	if len(add)+len(remove) > 0 {
		var old []*sa.SA
		for _, n := range remove {
			old = append(old, d.db.Get(n))
		}
		if err := d.db.Apply(add, remove); err != nil {
			// Checked above; only the Daemon writes to db.
			panic(fmt.Sprintf("daemon: converge: sa.DB refused the change: %v", err))
		}
		d.seqs.mu.Lock()
		for _, s := range old {
			d.seqs.untrackLocked(s.Name(), s)
		}
		d.seqs.mu.Unlock()
	}
	// SA ownership: IKE's SAs stay as they are.
	for name, w := range want.sas {
		if w.owner.vm != "" {
			if d.saVM[name] != w.owner.vm {
				delete(d.saTenant, name)
				d.saVM[name] = w.owner.vm
			}
		} else if d.saTenant[name] != w.owner.tenant {
			delete(d.saVM, name)
			d.saTenant[name] = w.owner.tenant
		}
	}
	for name := range removing {
		if want.sas[name] == nil {
			delete(d.saVM, name)
			delete(d.saTenant, name)
		}
	}
	return len(add)+len(remove) > 0
}

// applyTenants swaps in the IPsec switch, the uplink, the tenants and the
// FDB where they differ.
func (c *Converger) applyTenants(want *desired, res *ConvergeResult) bool {
	d := c.d
	changed := false
	if want.enabled != d.enabled {
		d.enabled, changed = want.enabled, true
		res.Updated[store.KindConfig]++
	}
	if !reflect.DeepEqual(want.uplink, d.uplink) {
		d.uplink, changed = want.uplink, true
		res.Updated[store.KindUplink]++
	}
	if diffCount(d.tenants, want.tenants, func(a, b tenant.Tenant) bool { return a == b }, store.KindTenant, res) {
		d.tenants, changed = want.tenants, true
	}
	if diffCount(fdbByName(d.fdb), fdbByName(want.fdb), func(a, b FDBEntry) bool { return a == b }, store.KindFDB, res) {
		d.fdb, changed = want.fdb, true
	}
	return changed
}

// applyVMs swaps in the VMs, keeping the counters of those that stay.
func (c *Converger) applyVMs(want *desired, res *ConvergeResult) bool {
	d := c.d
	vms := make(map[string]*vmEntry, len(want.vms))
	byScope := make(map[sa.Scope]string, len(want.vms))
	for name, v := range want.vms {
		e := d.vms[name]
		switch {
		case e == nil:
			e = &vmEntry{vm: v, counters: new(VMCounters)}
			res.Added[store.KindVM]++
		case !reflect.DeepEqual(e.vm, v):
			e = &vmEntry{vm: v, counters: e.counters}
			res.Updated[store.KindVM]++
		}
		vms[name] = e
		byScope[e.scope()] = name
	}
	for name := range d.vms {
		if _, ok := want.vms[name]; !ok {
			res.Removed[store.KindVM]++
		}
	}
	if res.Added[store.KindVM]+res.Updated[store.KindVM]+res.Removed[store.KindVM] == 0 {
		return false
	}
	// The SAs IKE installed for a VM that left (moved to another host,
	// detached there) or whose (vlan, mac) changed go with it; its
	// policies stay, dormant until it is here again.
	var gone []*ikeChild
	for _, ch := range d.ike.children {
		e, old := vms[ch.vm], d.vms[ch.vm]
		if e == nil || old == nil || e.scope() != old.scope() {
			gone = append(gone, ch)
		}
	}
	if len(gone) > 0 {
		d.removeChildrenLocked(gone)
	}
	d.vms, d.byScope = vms, byScope
	return true
}

// applySPs swaps in the SPs, keeping the entries that did not change.
func (c *Converger) applySPs(want *desired, res *ConvergeResult) bool {
	d := c.d
	sps := make(map[string]*spEntry, len(want.sps))
	for name, e := range want.sps {
		if old := d.sps[name]; old != nil && old.seq == e.seq && reflect.DeepEqual(old.p, e.p) {
			e = old
		} else if old != nil {
			res.Updated[store.KindSP]++
		} else {
			res.Added[store.KindSP]++
		}
		sps[name] = e
		if e.seq >= d.nextSeq {
			d.nextSeq = e.seq + 1
		}
	}
	for name := range d.sps {
		if want.sps[name] == nil {
			res.Removed[store.KindSP]++
		}
	}
	if res.Added[store.KindSP]+res.Updated[store.KindSP]+res.Removed[store.KindSP] == 0 {
		return false
	}
	d.sps = sps
	return true
}

// applyExtra is step 5: the kinds converged elsewhere (Extra). They refer
// to one another (a policy to its certificate, a CRL to its CA), so when
// any of them changed, every handled kind is applied again, in store
// order.
func (c *Converger) applyExtra(recs []store.Record, byKind map[store.Kind][]store.Record, probs *problems) bool {
	d := c.d
	other := digestOther(recs)
	defer func() { c.extraSeen = other }()
	changed := false
	for kind, dg := range other {
		if c.extraSeen[kind] != dg && c.Extra[kind] != nil {
			changed = true
		}
	}
	for kind := range c.extraSeen {
		if _, ok := other[kind]; !ok && c.Extra[kind] != nil {
			changed = true
		}
	}
	if changed {
		for _, kind := range store.Kinds() {
			if h := c.Extra[kind]; h != nil {
				*probs = append(*probs, h(d, byKind[kind])...)
			}
		}
	}
	for kind, dg := range other {
		if c.extraSeen[kind] != dg && c.Extra[kind] == nil {
			// The change may be this daemon's own (applied already) or
			// another host's: which, only the kind's own code can tell.
			d.log.Warn("stored records changed; changes of this kind made by other hosts apply here when vifsecd restarts", "kind", string(kind))
		}
	}
	for kind := range c.extraSeen {
		if _, ok := other[kind]; !ok && c.Extra[kind] == nil {
			d.log.Warn("stored records removed; changes of this kind made by other hosts apply here when vifsecd restarts", "kind", string(kind))
		}
	}
	return changed
}

// forget zeroes the keys of the SA records c holds (decoded, and the
// record that built each live SA) and drops them: c is thrown away.
func (c *Converger) forget() {
	for _, e := range c.cache {
		if w, ok := e.obj.(*wantSA); ok {
			clear(w.cfg.EncKey)
			clear(w.cfg.IntegKey)
		}
	}
	clear(c.cache)
	clear(c.built)
}

// needSeqs says whether Converge may build an SA object from recs (a
// record that did not build the live SA of its name), which then needs
// its reservation; only the reservations' owner reads them.
func (c *Converger) needSeqs(recs []store.Record, objs map[recKey]any) bool {
	c.d.seqs.mu.Lock()
	on := c.d.seqs.on
	c.d.seqs.mu.Unlock()
	if !on {
		return false
	}
	for _, r := range recs {
		w, ok := objs[recKey{r.Kind, r.Name}].(*wantSA)
		if !ok {
			continue
		}
		if b := c.built[r.Name]; b.w != w || c.d.db.Get(r.Name) != b.s {
			return true
		}
	}
	return false
}

// report logs what changed, and each problem once while it lasts.
func (c *Converger) report(res *ConvergeResult) {
	log := c.d.log
	if res.Changed && c.quiet {
		log.Debug("restored the stored state", "added", countString(res.Added), "generation", c.d.gen.Load())
	} else if res.Changed {
		log.Info("converged to the stored state", "added", countString(res.Added), "updated", countString(res.Updated),
			"removed", countString(res.Removed), "generation", c.d.gen.Load())
	}
	now := map[string]bool{}
	for _, p := range res.Problems {
		s := p.String()
		now[s] = true
		if !c.reported[s] {
			log.Warn("stored record not applied", "kind", string(p.Kind), "name", p.Name, "err", p.Err)
		}
	}
	c.reported = now
}

func countString(m map[store.Kind]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, ",")
}

// diffCount counts added, changed and removed entries of a map into res;
// it reports whether anything differs.
func diffCount[V any](old, new map[string]V, eq func(a, b V) bool, kind store.Kind, res *ConvergeResult) bool {
	n := 0
	for k, v := range new {
		if o, ok := old[k]; !ok {
			res.Added[kind]++
			n++
		} else if !eq(o, v) {
			res.Updated[kind]++
			n++
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			res.Removed[kind]++
			n++
		}
	}
	return n > 0
}

func fdbByName(m map[fdbKey]FDBEntry) map[string]FDBEntry {
	out := make(map[string]FDBEntry, len(m))
	for k, e := range m {
		out[k.storeName()] = e
	}
	return out
}

// digestOther summarises the records of kinds Converge does not apply,
// to notice when they change.
func digestOther(recs []store.Record) map[store.Kind]string {
	byKind := map[store.Kind][]string{}
	for _, r := range recs {
		if !convergedKinds[r.Kind] {
			byKind[r.Kind] = append(byKind[r.Kind], r.Name+"\x00"+string(r.Value))
		}
	}
	out := map[store.Kind]string{}
	for k, v := range byKind {
		sort.Strings(v)
		out[k] = strings.Join(v, "\x01")
	}
	return out
}

// sameSA says whether live was built from exactly cfg (keys included).
func sameSA(live *sa.SA, cfg *sa.Config) bool {
	a := live.ConfigWithKeys()
	defer clear(a.EncKey)
	defer clear(a.IntegKey)
	b := *cfg
	if !a.Created.Equal(b.Created) {
		return false
	}
	a.Created = b.Created
	if len(a.EncKey) == 0 && len(b.EncKey) == 0 {
		a.EncKey, b.EncKey = nil, nil
	}
	if len(a.IntegKey) == 0 && len(b.IntegKey) == 0 {
		a.IntegKey, b.IntegKey = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// Discard zeroes the keys of every SA of a Daemon that is being thrown
// away without Close (a temporary daemon over another host's state). It
// changes nothing in the store.
func (d *Daemon) Discard() {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for _, s := range d.db.List() {
		names = append(names, s.Name())
	}
	if len(names) > 0 {
		d.db.Apply(nil, names)
	}
}
