package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/vifsec/vifsec/header"
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
// host's desired state). New reads the store once; a Converger then
// applies each full record set the store delivers:
//
//  1. decode every record (cached by its bytes: an unchanged record is
//     not decoded again) and check it against the others, as restore
//     does; a record that breaks a rule is left out and reported as a
//     Problem, never half applied;
//  2. diff that desired state against the running one;
//  3. apply the diff under the state lock in one step, so the data path
//     sees one consistent Snapshot: SAs are added (and replaced ones
//     removed) by one sa.DB.Apply before the SPs naming them are
//     published, and SPs leave the SPD in the same step as their SAs
//     leave the DB;
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
// record sets. Records of kinds the Converger does not know are restored
// as New restores them.
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
	c.extraSeen = digestOther(recs) // restored below, not "changed"
	c.quiet = true
	res := c.Converge(recs, nil)
	c.quiet = false
	probs := res.Problems
	// Kinds this file does not converge: restore them as New would, from
	// copies (restore zeroes what it reads; the store's bytes are shared).
	var other []store.Record
	for _, r := range recs {
		if !convergedKinds[r.Kind] {
			other = append(other, store.Record{Kind: r.Kind, Name: r.Name, Value: bytes.Clone(r.Value)})
		}
	}
	if len(other) > 0 {
		// One at a time, so that one bad record leaves the others in.
		d.mu.Lock()
		for _, r := range other {
			if err := d.restore([]store.Record{r}); err != nil {
				probs = append(probs, Problem{Kind: r.Kind, Name: r.Name, Err: err.Error()})
			}
		}
		d.changed()
		d.mu.Unlock()
	}
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

// desired is the state a record set describes.
type desired struct {
	enabled bool
	uplink  *Uplink
	tenants map[string]tenant.Tenant
	vms     map[string]tenant.VM
	sas     map[string]*wantSA
	sps     map[string]*spEntry
	fdb     map[fdbKey]FDBEntry
}

type wantSA struct {
	owner saOwner
	cfg   sa.Config // keys included
}

// Converge makes the daemon's state that of recs (every record of the
// store). begin, if not nil, is called holding the state lock before
// anything changes; if it returns false nothing is done (Skipped).
func (c *Converger) Converge(recs []store.Record, begin func() bool) ConvergeResult {
	res := ConvergeResult{Added: map[store.Kind]int{}, Updated: map[store.Kind]int{}, Removed: map[store.Kind]int{}}
	var probs []Problem
	bad := func(r store.Record, err error) {
		probs = append(probs, Problem{Kind: r.Kind, Name: r.Name, Err: err.Error()})
	}

	// 1. Decode each record on its own (cached), outside the lock.
	byKind := map[store.Kind][]store.Record{}
	objs := make(map[recKey]any, len(recs)) // nil: seen, not applicable
	for _, r := range recs {
		k := recKey{r.Kind, r.Name}
		if _, dup := objs[k]; dup {
			bad(r, fmt.Errorf("stored twice"))
			continue
		}
		objs[k] = nil
		byKind[r.Kind] = append(byKind[r.Kind], r)
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
			bad(r, e.err)
			continue
		}
		objs[k] = e.obj
	}
	for k := range c.cache {
		if _, ok := objs[k]; !ok {
			delete(c.cache, k)
		}
	}
	for _, rs := range byKind {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	}

	// An SA object built below takes its sequence numbers from its
	// stored reservation, read now, before the state lock (seqres.go).
	d := c.d
	var seqRecs map[string]store.Record
	var seqErr error
	if c.needSeqs(byKind[store.KindSA], objs) {
		var rs []store.Record
		rs, seqErr = d.st.LoadSeqs()
		seqRecs, _, _ = parseSeqs(rs)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if begin != nil && !begin() {
		res.Skipped = true
		return res
	}

	// 2. Check references across records, in the order of store.Kinds.
	want := &desired{enabled: c.defaultEnabled, tenants: make(map[string]tenant.Tenant, len(byKind[store.KindTenant])),
		vms: make(map[string]tenant.VM, len(byKind[store.KindVM])), sas: make(map[string]*wantSA, len(byKind[store.KindSA])),
		sps: make(map[string]*spEntry, len(byKind[store.KindSP])), fdb: make(map[fdbKey]FDBEntry, len(byKind[store.KindFDB]))}
	obj := func(r store.Record) (any, bool) { o := objs[recKey{r.Kind, r.Name}]; return o, o != nil }
	for _, r := range byKind[store.KindConfig] {
		if o, ok := obj(r); ok {
			want.enabled = o.(configRecord).IPsecEnabled
		}
	}
	for _, r := range byKind[store.KindUplink] {
		if o, ok := obj(r); ok {
			u := o.(Uplink)
			want.uplink = &u
		}
	}
	vnis := map[uint32]string{}
	for _, r := range byKind[store.KindTenant] {
		o, ok := obj(r)
		if !ok {
			continue
		}
		t := o.(tenant.Tenant)
		if other, dup := vnis[t.VNI]; dup && t.VNI != 0 {
			bad(r, fmt.Errorf("VNI %d is also tenant %q's", t.VNI, other))
			continue
		}
		vnis[t.VNI] = t.Name
		want.tenants[t.Name] = t
	}
	scopes := make(map[sa.Scope]string, len(byKind[store.KindVM]))
	for _, r := range byKind[store.KindVM] {
		o, ok := obj(r)
		if !ok {
			continue
		}
		v := o.(tenant.VM)
		if _, ok := want.tenants[v.Tenant]; !ok {
			bad(r, fmt.Errorf("tenant %q is not stored", v.Tenant))
			continue
		}
		sc := sa.Scope{VLAN: v.VLAN, MAC: header.MAC(v.MAC)}
		if other, dup := scopes[sc]; dup {
			bad(r, fmt.Errorf("same (vlan, mac) as VM %q", other))
			continue
		}
		scopes[sc] = v.Name
		want.vms[v.Name] = v
	}
	keys := make(map[sa.Key]string, len(byKind[store.KindSA]))
	for _, r := range byKind[store.KindSA] {
		o, ok := obj(r)
		if !ok {
			continue
		}
		w := o.(*wantSA)
		var scope sa.Scope
		var err error
		switch {
		case w.owner.vm != "":
			if v, ok := want.vms[w.owner.vm]; !ok {
				err = fmt.Errorf("VM %q is not stored", w.owner.vm)
			} else {
				scope = sa.Scope{VLAN: v.VLAN, MAC: header.MAC(v.MAC)}
			}
		default:
			if _, ok := want.tenants[w.owner.tenant]; !ok {
				err = fmt.Errorf("tenant %q is not stored", w.owner.tenant)
			}
		}
		if err == nil && w.cfg.Scope != scope {
			err = fmt.Errorf("stored with %s but its %s has %s", w.cfg.Scope, w.owner, scope)
		}
		if err == nil {
			if other, dup := keys[w.cfg.Key()]; dup {
				err = fmt.Errorf("SPI 0x%x is also SA %q's in the same scope", w.cfg.SPI, other)
			}
		}
		if err != nil {
			bad(r, err)
			continue
		}
		keys[w.cfg.Key()] = w.cfg.Name
		want.sas[w.cfg.Name] = w
	}
	for _, r := range byKind[store.KindSP] {
		o, ok := obj(r)
		if !ok {
			continue
		}
		e := o.(*spEntry)
		p := e.p
		if _, ok := want.vms[p.VM]; !ok {
			bad(r, fmt.Errorf("VM %q is not stored", p.VM))
			continue
		}
		if w := want.sas[p.SAName]; p.Action == tenant.ActionIPsec && w != nil && w.owner.vm != p.VM {
			bad(r, fmt.Errorf("SA %q is not an SA of VM %q (%s)", p.SAName, p.VM, w.owner))
			continue
		}
		want.sps[p.Name] = e
	}
	for _, r := range byKind[store.KindFDB] {
		o, ok := obj(r)
		if !ok {
			continue
		}
		e := o.(FDBEntry)
		if _, ok := want.tenants[e.Tenant]; !ok {
			bad(r, fmt.Errorf("tenant %q is not stored", e.Tenant))
			continue
		}
		want.fdb[e.key()] = e
	}

	// 3. SAs: keep the live object of every unchanged SA; build the new
	// and changed ones; one sa.DB.Apply adds them and removes the rest.
	var add []*sa.SA
	var remove []string
	removing := map[string]bool{}
	for name, w := range want.sas {
		live := d.db.Get(name)
		if live != nil && !storedSA(name) {
			bad(store.Record{Kind: store.KindSA, Name: name}, fmt.Errorf("the name is taken by an SA IKE installed"))
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
			bad(store.Record{Kind: store.KindSA, Name: name}, err)
			delete(want.sas, name)
			continue
		}
		d.adoptSeqLocked(s, seqRecs, seqErr)
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
			bad(store.Record{Kind: store.KindSA, Name: s.Name()}, fmt.Errorf("SPI 0x%x is used by SA %q in the same scope", s.SPI(), o.Name()))
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

	// 4. Everything else is swapped in, reusing unchanged entries.
	changed := len(add)+len(remove) > 0
	if want.enabled != d.enabled {
		d.enabled, changed = want.enabled, true
		res.Updated[store.KindConfig]++
	}
	if !reflect.DeepEqual(want.uplink, d.uplink) {
		d.uplink, changed = want.uplink, true
		res.Updated[store.KindUplink]++
	}
	if diffCount(d.tenants, want.tenants, func(a, b tenant.Tenant) bool { return a == b }, store.KindTenant, &res) {
		d.tenants, changed = want.tenants, true
	}
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
	if res.Added[store.KindVM]+res.Updated[store.KindVM]+res.Removed[store.KindVM] > 0 {
		// The SAs IKE installed for a VM that left (moved to another
		// host, detached there) or whose (vlan, mac) changed go with it;
		// its policies stay, dormant until it is here again.
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
		d.vms, d.byScope, changed = vms, byScope, true
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
	if res.Added[store.KindSP]+res.Updated[store.KindSP]+res.Removed[store.KindSP] > 0 {
		d.sps, changed = sps, true
	}
	if diffCount(fdbByName(d.fdb), fdbByName(want.fdb), func(a, b FDBEntry) bool { return a == b }, store.KindFDB, &res) {
		d.fdb, changed = want.fdb, true
	}

	// 5. Kinds converged elsewhere. They refer to one another (a policy
	// to its certificate, a CRL to its CA), so when any of them changed,
	// every handled kind is applied again, in store order.
	other := digestOther(recs)
	extraChanged := false
	for kind, dg := range other {
		if c.extraSeen[kind] != dg && c.Extra[kind] != nil {
			extraChanged = true
		}
	}
	for kind := range c.extraSeen {
		if _, ok := other[kind]; !ok && c.Extra[kind] != nil {
			extraChanged = true
		}
	}
	if extraChanged {
		for _, kind := range store.Kinds() {
			if h := c.Extra[kind]; h != nil {
				probs = append(probs, h(d, byKind[kind])...)
			}
		}
		changed = true
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
	c.extraSeen = other

	if changed {
		d.changed()
		res.Changed = true
	}
	sort.Slice(probs, func(i, j int) bool { return probs[i].String() < probs[j].String() })
	res.Problems = probs
	c.report(&res)
	return res
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

// decodeRecord decodes and checks one record on its own.
func decodeRecord(r store.Record) (any, error) {
	named := func(got string) error {
		if got != r.Name {
			return fmt.Errorf("holds %s %q", r.Kind, got)
		}
		return nil
	}
	switch r.Kind {
	case store.KindConfig:
		var c configRecord
		return c, json.Unmarshal(r.Value, &c)
	case store.KindUplink:
		var u Uplink
		if err := json.Unmarshal(r.Value, &u); err != nil {
			return nil, err
		}
		return u, u.Validate()
	case store.KindTenant:
		var t tenant.Tenant
		if err := json.Unmarshal(r.Value, &t); err != nil {
			return nil, err
		}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		return t, named(t.Name)
	case store.KindVM:
		var v tenant.VM
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return nil, err
		}
		if err := v.Validate(); err != nil {
			return nil, err
		}
		return v, named(v.Name)
	case store.KindSA:
		o, c, err := decodeSA(r.Value)
		if err == nil {
			err = named(c.Name)
		}
		if err == nil && (o.vm == "") == (o.tenant == "") {
			err = fmt.Errorf("names both or neither of a VM (%q) and a tenant (%q)", o.vm, o.tenant)
		}
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			clear(c.EncKey)
			clear(c.IntegKey)
			return nil, err
		}
		return &wantSA{owner: o, cfg: c}, nil
	case store.KindSP:
		var s spRecord
		if err := json.Unmarshal(r.Value, &s); err != nil {
			return nil, err
		}
		if err := s.Policy.Validate(); err != nil {
			return nil, err
		}
		return &spEntry{seq: s.Seq, p: s.Policy}, named(s.Policy.Name)
	case store.KindFDB:
		var e FDBEntry
		if err := json.Unmarshal(r.Value, &e); err != nil {
			return nil, err
		}
		if err := e.Validate(); err != nil {
			return nil, err
		}
		return e, named(e.key().storeName())
	}
	return nil, fmt.Errorf("kind %s is not converged here", r.Kind)
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
