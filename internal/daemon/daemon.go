package daemon

import (
	"context"
	"fmt"
	"github.com/vifsec/vifsec/header"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// Config configures a Daemon. A nil *Config means defaults.
type Config struct {
	// Logger receives one line per accepted change and per SA lifetime
	// event; nil discards. Keys are never logged.
	Logger *slog.Logger
	// DefaultDisabled starts with the global IPsec switch off until
	// someone sets it (`vifsec config modify --is-enabled`). By default it
	// is on, so SPs act as soon as they are added, as on ESXi.
	DefaultDisabled bool
	// SeqAnchor is the file, outside the store, that binds the store's
	// sequence reservations to this host's last start (seqres.go):
	// vifsecd keeps it beside its API socket. "" keeps none: after a
	// restart only SAs that stopped cleanly may send.
	SeqAnchor string
}

// Daemon holds the configured state of the host. It is safe for
// concurrent use: mutating methods serialise (validate, commit, apply)
// under one lock; read accessors take a shared lock and return copies;
// the sa.DB is the data path's and is read without any lock.
type Daemon struct {
	vifStatus atomic.Pointer[func() map[string]string]
	vmMTU     atomic.Pointer[func() map[string]int]
	ikeReport atomic.Pointer[func() IKEReport]
	ikeStats  atomic.Pointer[func() IKEStats]     // SetIKEStats (ikesa.go)
	ikeEvents atomic.Pointer[func(sa.Event) bool] // SetIKEEvents (ikesa.go)

	uplinkCnt atomic.Pointer[func() UplinkCounters] // SetUplinkCounters (uplinkcounters.go)
	links     atomic.Pointer[linkHooks]             // SetLinkCheck, SetUplinkState (uplinkstate.go)
	linksMu   sync.Mutex                            // serialises the setters of links

	log *slog.Logger
	st  store.Store
	db  *sa.DB

	mu      sync.RWMutex
	tenants map[string]tenant.Tenant
	vms     map[string]*vmEntry
	byScope map[sa.Scope]string // (vlan, mac) → VM name
	saVM    map[string]string   // SA name → VM name
	// saTenant maps the name of an underlay SA (`sa add --tenant`, zero
	// scope) to its tenant. An SA is in exactly one of saVM and saTenant.
	saTenant map[string]string
	sps      map[string]*spEntry
	nextSeq  uint64
	fdb      map[fdbKey]FDBEntry // static VXLAN forwarding entries
	uplink   *Uplink
	enabled  bool
	ike      *ikeState // IKE policies, certificates, CRLs and IKE-installed SAs

	gen     atomic.Uint64
	watchMu sync.Mutex
	watchCh chan struct{}
	applied dataPathSync // the generation the data path runs (applied.go)

	expiredMu sync.Mutex
	expired   map[*sa.SA]bool // already logged as expired

	seqs      seqBook // outbound sequence reservations (seqres.go)
	seqAnchor string
}

type vmEntry struct {
	vm       tenant.VM
	counters *VMCounters
}

func (e *vmEntry) scope() sa.Scope { return sa.Scope{VLAN: e.vm.VLAN, MAC: header.MAC(e.vm.MAC)} }

type spEntry struct {
	seq uint64
	p   tenant.Policy
}

// New restores the state held in st and returns the Daemon. It fails,
// naming the record, if a stored record is unreadable or inconsistent:
// the daemon never starts with part of its state silently dropped.
func New(st store.Store, cfg *Config) (*Daemon, error) {
	d, err := newDaemon(st, cfg)
	if err != nil {
		return nil, err
	}
	if err := d.startSeqs(d.seqAnchor); err != nil {
		d.Discard()
		return nil, err
	}
	return d, nil
}

// newDaemon is New without taking charge of sequence reservations.
func newDaemon(st store.Store, cfg *Config) (*Daemon, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{
		log: log, st: st, db: sa.NewDB(0),
		tenants: map[string]tenant.Tenant{}, vms: map[string]*vmEntry{},
		byScope: map[sa.Scope]string{}, saVM: map[string]string{}, saTenant: map[string]string{}, sps: map[string]*spEntry{},
		fdb: map[fdbKey]FDBEntry{}, nextSeq: 1, enabled: !cfg.DefaultDisabled,
		watchCh: make(chan struct{}), expired: map[*sa.SA]bool{}, ike: newIKEState(),
		seqs: seqBook{entries: map[string]*seqEntry{}, byKey: map[string]string{}}, seqAnchor: cfg.SeqAnchor,
	}
	recs, err := st.Load()
	if err != nil {
		return nil, fmt.Errorf("restore state: %w", err)
	}
	if err := d.restore(recs); err != nil {
		return nil, fmt.Errorf("restore state: %w", err)
	}
	d.gen.Store(1)
	return d, nil
}

// restore makes the state of a new Daemon that of recs, every record of
// its store in store order. It is strict where Converge is lenient: it
// fails, naming the record, at the first record (in store order) that
// breaks a rule. The rules and the way the state is built from the
// records are Converge's (rules.go, reload.go), so that a store New
// accepts is one a Converger applies the same.
func (d *Daemon) restore(recs []store.Record) error {
	c := NewConverger(d)
	res := c.converge(recs, nil)
	c.forget()
	for _, r := range recs {
		clear(r.Value) // SA records hold keys
	}
	if len(res.Problems) == 0 {
		return nil
	}
	d.Discard()
	p := firstStored(res.Problems)
	return fmt.Errorf("%s %q: %s", p.Kind, p.Name, p.Err)
}

// SADB returns the SA database. The data path looks SAs up in it directly;
// only the Daemon writes to it.
func (d *Daemon) SADB() *sa.DB { return d.db }

// Generation counts accepted changes; it grows by one per change.
func (d *Daemon) Generation() uint64 { return d.gen.Load() }

// Watch returns the current generation and a channel that is closed at
// the next change. The data path waits on it, then rebuilds from Snapshot.
func (d *Daemon) Watch() (uint64, <-chan struct{}) {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	return d.gen.Load(), d.watchCh
}

// changed publishes a change. The caller holds d.mu.
func (d *Daemon) changed() {
	d.watchMu.Lock()
	d.gen.Add(1)
	close(d.watchCh)
	d.watchCh = make(chan struct{})
	d.watchMu.Unlock()
}

// commit makes ops durable; the caller holds d.mu and applies the change to
// memory only if commit returns nil.
func (d *Daemon) commit(ops []store.Op) error {
	if err := d.st.Commit(ops); err != nil {
		d.log.Error("state commit failed; request refused, nothing changed", "err", err)
		return errf(CodeInternal, "vifsecd could not save the change (nothing changed): %v", err)
	}
	return nil
}

// Run does the daemon's periodic work until ctx is done: it applies SA
// seconds lifetimes once a second, logs SA lifetime events, and renews
// the SAs' sequence reservations (seqres.go). It returns when ctx is
// done, after storing every SA's exact last sequence number (a clean
// stop; the SAs send nothing more).
func (d *Daemon) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { d.runSeqs(ctx) })
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.tick(now)
		case ev := <-d.db.Events():
			if h := d.ikeEvents.Load(); h != nil && (*h)(ev) {
				d.log.Info("SA lifetime event handled by IKE", "sa", ev.Name, "event", ev.Kind.String(), "key", ev.Key.String())
				continue
			}
			d.log.Warn("SA lifetime event", "sa", ev.Name, "event", ev.Kind.String(), "key", ev.Key.String())
		}
	}
}

func (d *Daemon) tick(now time.Time) {
	exp := d.db.Tick(now)
	d.expiredMu.Lock()
	defer d.expiredMu.Unlock()
	live := make(map[*sa.SA]bool, len(exp))
	for _, s := range exp {
		live[s] = true
		if !d.expired[s] {
			o := d.ownerOfSA(s.Name())
			d.log.Warn("SA expired: it drops traffic until replaced", "sa", s.Name(), "vm", o.vm, "tenant", o.tenant)
		}
	}
	d.expired = live
}

func (d *Daemon) ownerOfSA(name string) saOwner {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.ownerLocked(name)
}

// ownerLocked is ownerOfSA; the caller holds d.mu.
func (d *Daemon) ownerLocked(name string) saOwner {
	if vm, ok := d.saVM[name]; ok {
		return saOwner{vm: vm}
	}
	return saOwner{tenant: d.saTenant[name]}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SetVIFStatus installs the data path's report of which VM interfaces are
// attached; VIFStatus then answers from it.
func (d *Daemon) SetVIFStatus(f func() map[string]string) {
	d.vifStatus.Store(&f)
}

// VIFStatus says, per VM name, "attached" or why its interface is not
// (waiting for the device, gone): "" when no data path reports.
func (d *Daemon) VIFStatus() map[string]string {
	f := d.vifStatus.Load()
	if f == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range (*f)() {
		if v == "" {
			v = "attached"
		}
		out[k] = v
	}
	return out
}

// SetMTUReport installs the data path's report of each VM's effective MTU
// (after ESP and the overlay); VMMTUs answers from it.
func (d *Daemon) SetMTUReport(f func() map[string]int) { d.vmMTU.Store(&f) }

// VMMTUs returns each attached VM's effective MTU, or nil when no data path
// reports.
func (d *Daemon) VMMTUs() map[string]int {
	if f := d.vmMTU.Load(); f != nil {
		return (*f)()
	}
	return nil
}
