package datapath

import (
	"github.com/vifsec/vifsec/header"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// VM is one VM binding as the data path needs it.
type VM struct {
	Name string
	// Port is the VM's VIF, opened by the caller; the engine reads it from
	// one goroutine and closes it when the VM leaves the table.
	Port          vif.Port
	MAC           header.MAC
	VLAN          uint16
	IPs           []netip.Addr // allowed sources; empty = any
	DefaultAction tenant.Action
	// Policies in order, and for each the SA an ipsec policy names (nil
	// otherwise). The engine compiles Policies into the VM's SPD.
	Policies []tenant.Policy
	SAs      []*sa.SA
	// Stats receives the VM's counters; nil: the engine keeps its own,
	// per VM name, across updates.
	Stats *VMStats
	// VNI is the VM's tenant VXLAN network identifier (0: none); with an
	// overlay on the uplink it replaces the VLAN on the wire.
	VNI uint32
	// VnetHdr says Port's frames carry a virtio-net header
	// (vif.PacketOptions.VnetHdr): the guest's TSO/GSO super-frames and
	// partial checksums are then segmented and completed here.
	VnetHdr bool
	// IKE says the gateway runs IKE on this VM's behalf: IKE from the
	// wire for one of IPs (any address when IPs is empty) — UDP to port
	// 500, or to 4500 behind the non-ESP marker — goes to the handler
	// SetIKEHandler installed instead of the guest, and SendIKE may speak
	// from the VM's MAC and addresses. False: IKE is ordinary traffic.
	IKE bool
}

type vmKey struct {
	vlan uint16
	mac  header.MAC
}

// vmState is a VM in one published snapshot: immutable except its
// counters, which outlive snapshots.
type vmState struct {
	name     string
	port     *txPort
	mac      header.MAC
	vlan     uint16
	vni      uint32
	ips      []netip.Addr
	def      tenant.Action
	spd      *tenant.SPD
	policies []tenant.Policy
	sas      []*sa.SA
	stats    *VMStats
	// icmp limits the path-MTU errors sent back to the VM.
	icmp *pmtu.RateLimiter
	ike  bool // IKE on the VM's behalf (VM.IKE)
	// inBySA holds, per inbound SA, the inbound ipsec policies that name
	// it (compiled): an SA not named by the first match may still carry
	// the flow when one of these matches it (rekey overlap).
	inBySA map[*sa.SA]*tenant.SPD
}

// compileInBySA groups vm's inbound ipsec policies by the SA they name.
func compileInBySA(policies []tenant.Policy, sas []*sa.SA) map[*sa.SA]*tenant.SPD {
	by := map[*sa.SA][]tenant.Policy{}
	for i, p := range policies {
		if p.Direction == sa.DirIn && p.Action == tenant.ActionIPsec && i < len(sas) && sas[i] != nil {
			by[sas[i]] = append(by[sas[i]], p)
		}
	}
	out := make(map[*sa.SA]*tenant.SPD, len(by))
	for s, ps := range by {
		out[s] = tenant.Compile(ps)
	}
	return out
}

// snapshot is the table workers read: published whole, never modified.
type snapshot struct {
	byKey  map[vmKey]*vmState
	byVLAN map[uint16][]*vmState
	byPort map[vif.Port]*vmState
	// With a VXLAN underlay: VMs by (VNI, MAC) and by VNI.
	byVNIMAC map[FDBKey]*vmState
	byVNI    map[uint32][]*vmState
}

func newSnapshot() *snapshot {
	return &snapshot{byKey: map[vmKey]*vmState{}, byVLAN: map[uint16][]*vmState{}, byPort: map[vif.Port]*vmState{},
		byVNIMAC: map[FDBKey]*vmState{}, byVNI: map[uint32][]*vmState{}}
}

// txPort is a port as its writers see it: a VIF is written by the uplink's
// workers and, for local delivery, by other VIFs' workers. A port of one
// queue serialises its writers with mu; a port of several (vif.Multi)
// has a lock per queue, and a worker writes on the queue its sequence
// number picks, so workers spread over queues and rarely meet on one.
// The lock is taken once per batch, not per frame.
type txPort struct {
	mu sync.Mutex
	vif.Port
	vnet bool // frames carry a virtio-net header (vif.PacketOptions.VnetHdr)
	// udpGSO: the device takes UDP GSO super-frames whole (uplink only,
	// UplinkOptions.UDPGSO).
	udpGSO bool
	stats  PortStats
	// qs are the queues of a vif.Multi port (nil: one queue, Port).
	qs []*txQueue
	// down makes OnPortDown fire once per port, whichever queue failed.
	down sync.Once
}

type txQueue struct {
	mu sync.Mutex
	vif.Port
}

// newTxPort makes p's txPort, with one queue per queue of a vif.Multi.
func newTxPort(p vif.Port, vnet bool) *txPort {
	tp := &txPort{Port: p, vnet: vnet}
	if m, ok := p.(vif.Multi); ok {
		if qs := m.Queues(); len(qs) > 1 {
			for _, q := range qs {
				tp.qs = append(tp.qs, &txQueue{Port: q})
			}
		}
	}
	return tp
}

// rxQueues are the ports p's workers read, one worker each.
func (t *txPort) rxQueues() []vif.Port {
	if len(t.qs) == 0 {
		return []vif.Port{t.Port}
	}
	qs := make([]vif.Port, len(t.qs))
	for i, q := range t.qs {
		qs[i] = q.Port
	}
	return qs
}

func (t *txPort) write(frames [][]byte) { t.writeFrom(0, frames) }

// writeFrom writes frames for the worker with sequence number seq.
func (t *txPort) writeFrom(seq uint32, frames [][]byte) {
	var n int
	var err error
	if len(t.qs) > 0 {
		q := t.qs[seq%uint32(len(t.qs))]
		q.mu.Lock()
		n, err = q.WriteBatch(frames)
		q.mu.Unlock()
	} else {
		t.mu.Lock()
		n, err = t.WriteBatch(frames)
		t.mu.Unlock()
	}
	if err != nil || n < len(frames) {
		t.stats.TxErrors.Add(uint64(len(frames) - n))
	}
}

// Engine runs the data path.
type Engine struct {
	db   *sa.DB
	log  *slog.Logger
	snap atomic.Pointer[snapshot]
	// cfg is the rest of what a packet's handling depends on; cfgMu
	// serialises its writers (setConfig).
	cfg    atomic.Pointer[config]
	cfgMu  sync.Mutex
	misses chan netip.Addr
	held   vtepHold // frames waiting for neigh (overlay_hold.go)
	// OverlayStats count what the VXLAN underlay dropped.
	OverlayStats struct {
		NoNeighbor, EncapErrors, NoRemote, DecapErrors atomic.Uint64
		// UnderlayNoSA: ESP for the VTEP with no underlay SA; Unprotected:
		// plain VXLAN while the underlay must be protected.
		UnderlayNoSA, Unprotected atomic.Uint64
	}
	// GSOStats count UDP GSO trains: sent toward the uplink (joinTrains)
	// and received from it and cut (splitOwnUDP), and their datagrams.
	// Workers add to them once per batch.
	GSOStats struct {
		TrainsSent, SegmentsSent, TrainsReceived, SegmentsReceived atomic.Uint64
	}
	// IKE on VMs' behalf (ike.go).
	ikeHandler atomic.Pointer[func(IKEPacket)]
	ikeNeigh   ikeNeighbors
	ikeTxMu    sync.Mutex
	ikeTx      *worker // SendIKE's own worker, under ikeTxMu
	ikeID      atomic.Uint32
	// now is the clock of neighbour resolution (time.Now; tests set it
	// before the engine runs).
	now func() time.Time

	upWorkers []*worker
	// crypt is the crypto helpers workers share (crypt.go), started with
	// the first worker (nil: one CPU, or none asked for) and stopped by
	// Close; cryptAsk is SetCryptoHelpers's n. Under mu.
	crypt        *cryptPool
	cryptStarted bool
	cryptAsk     int
	UplinkRx     PortStats
	mu           sync.Mutex // Update, SetUplink, Close
	workers      map[vif.Port][]*worker
	// workerSeq numbers workers (worker.seq).
	workerSeq atomic.Uint32
	// pools hold the buffers of VIF workers between batches (bufs.go).
	poolsMu sync.Mutex
	pools   map[bufKind]*bufPool
	stats   map[string]*VMStats
	ports   map[vif.Port]*txPort
	wg      sync.WaitGroup
	closed  bool

	// OnPortDown, if set before ports are added, is called from a worker
	// whose port failed (the interface went down or away) just before the
	// worker stops. The port is not closed: the caller decides.
	OnPortDown func(p vif.Port, err error)
}

// New returns an engine with IPsec processing enabled and no VMs.
func New(db *sa.DB, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{db: db, log: log, workers: map[vif.Port][]*worker{}, stats: map[string]*VMStats{}, ports: map[vif.Port]*txPort{},
		misses: make(chan netip.Addr, 16), now: time.Now, cryptAsk: -1}
	e.cfg.Store(&config{enabled: true, coalesce: true, udpGSO: true, mtu: DefaultMTU, pathMTU: DefaultMTU})
	e.snap.Store(newSnapshot())
	return e
}

// config is the engine's configuration besides the VM table that the
// handling of a packet depends on. Like the snapshot it is published
// whole and never modified: a worker loads both once per batch, so a
// batch sees one consistent configuration and no packet pays for atomic
// loads of its own.
type config struct {
	enabled  bool // IPsec processing (SetEnabled)
	coalesce bool // ingress coalescing (SetCoalesce)
	udpGSO   bool // UDP GSO toward the uplink (SetUDPGSO)
	uplink   *txPort
	mtu      int // the uplink's MTU
	// pathMTU is the largest IP packet a VM may hand over before ESP:
	// mtu, less VXLAN's encapsulation when the overlay is on.
	pathMTU int
	overlay *overlayState
	// neigh holds the underlay next-hop MAC of each remote VTEP.
	neigh map[netip.Addr]header.MAC
}

// setConfig publishes a copy of the configuration that f changed.
func (e *Engine) setConfig(f func(*config)) {
	e.cfgMu.Lock()
	defer e.cfgMu.Unlock()
	c := *e.cfg.Load()
	f(&c)
	c.pathMTU = pathMTU(c.mtu, c.overlay)
	e.cfg.Store(&c)
}

// SetEnabled is ONTAP's `security ipsec config modify -is-enabled`: when
// false, no IPsec processing happens and frames pass as they are.
func (e *Engine) SetEnabled(on bool) { e.setConfig(func(c *config) { c.enabled = on }) }

// SetCoalesce turns ingress coalescing (GRO-like merging of a flow's
// TCP segments into one super-frame for VIFs that take virtio-net headers)
// on or off. It is on by default.
func (e *Engine) SetCoalesce(on bool) { e.setConfig(func(c *config) { c.coalesce = on }) }

// SetUDPGSO turns UDP GSO toward an uplink with virtio-net headers on or
// off: the ESP-in-UDP or VXLAN packets made from one TSO super-frame of a
// VM leave as one GSO_UDP_L4 super-frame (outbound.go, joinTrains). It is
// on by default. Receiving such super-frames is always on.
func (e *Engine) SetUDPGSO(on bool) { e.setConfig(func(c *config) { c.udpGSO = on }) }

// SetCryptoHelpers sets how many crypto helpers (goroutines that seal
// or open long runs of one SA's packets beside the worker, on CPUs no
// worker uses) the engine starts with its first worker: n < 0 one per
// CPU beyond the first (GOMAXPROCS-1, the default); 0 none, each worker
// doing its own crypto packet by packet; otherwise n, at most
// GOMAXPROCS-1. A helper polls for the next run for about 100 µs
// before it parks: on a host whose CPUs are busy with other work, 0
// leaves them alone. Once the first worker has started it changes
// nothing (CryptoHelpers reports what the engine has).
func (e *Engine) SetCryptoHelpers(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.cryptStarted {
		e.cryptAsk = n
	}
}

// CryptoHelpers reports how many crypto helpers the engine runs, or,
// before its first worker, will start with GOMAXPROCS as it is now.
func (e *Engine) CryptoHelpers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cryptStarted {
		return e.crypt.helpers()
	}
	return cryptHelpers(e.cryptAsk, runtime.GOMAXPROCS(0))
}

// Enabled reports the switch.
func (e *Engine) Enabled() bool { return e.cfg.Load().enabled }

// Coalescing reports SetCoalesce's switch.
func (e *Engine) Coalescing() bool { return e.cfg.Load().coalesce }

// UDPGSO reports SetUDPGSO's switch.
func (e *Engine) UDPGSO() bool { return e.cfg.Load().udpGSO }

// Path-MTU errors sent to one VM: at most this many per second, in bursts
// of icmpBurst (RFC 4443 §2.4(f) asks for a limit; Linux defaults to 1/s per
// destination with a burst of 50 per host).
const (
	icmpPerSecond = 100
	icmpBurst     = 10
)

// DefaultMTU is the uplink MTU assumed until SetUplink is told one.
const DefaultMTU = 1500

// SetUplink starts using p as the uplink (nil stops), whose MTU (the
// largest IP packet it carries; 0 = DefaultMTU) bounds what ESP may
// produce. The engine closes the previous uplink port.
func (e *Engine) SetUplink(p vif.Port, mtu int) { e.SetUplinkWith(p, UplinkOptions{MTU: mtu}) }

// UplinkOptions describe the uplink port.
type UplinkOptions struct {
	// MTU is the largest IP packet the uplink carries; 0 = DefaultMTU.
	MTU int
	// VnetHdr says the port's frames carry a virtio-net header: frames the
	// NIC or the kernel coalesced (GRO) arrive described, and are handed
	// to the VMs as the super-frames they are.
	VnetHdr bool
	// UDPGSO says the uplink port takes UDP GSO super-frames, so the
	// engine may send ESP-in-UDP and VXLAN trains as one super-frame
	// (Engine.SetUDPGSO). Only with VnetHdr. Either the device segments
	// them itself (tx-udp-segmentation on: a NIC with USO, a veth, which
	// carries them whole), or the port sends through the qdisc
	// (vif.PacketOptions.Qdisc) and the kernel segments them in software;
	// a port with PACKET_QDISC_BYPASS toward a device without USO cannot
	// take them (__dev_direct_xmit drops the frame).
	UDPGSO bool
}

// SetUplinkWith is SetUplink with options.
func (e *Engine) SetUplinkWith(p vif.Port, o UplinkOptions) {
	mtu := o.MTU
	if mtu <= 0 {
		mtu = DefaultMTU
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setConfig(func(c *config) { c.mtu = mtu })
	if ws := e.upWorkers; ws != nil {
		e.setConfig(func(c *config) { c.uplink = nil })
		ws[0].port.Close()
		for _, w := range ws {
			<-w.done
		}
		e.upWorkers = nil
	}
	if p == nil {
		return
	}
	tp := newTxPort(p, o.VnetHdr)
	tp.udpGSO = o.VnetHdr && o.UDPGSO
	e.setConfig(func(c *config) { c.uplink = tp })
	e.upWorkers = e.startWorkers(tp, true)
}

// startWorkers starts one worker per queue of tp, and the crypto
// helpers with the first. The caller holds e.mu.
func (e *Engine) startWorkers(tp *txPort, uplink bool) []*worker {
	if !e.cryptStarted {
		e.crypt, e.cryptStarted = newCryptPool(e.cryptAsk), true
	}
	var ws []*worker
	for _, q := range tp.rxQueues() {
		w := newWorker(e, tp, uplink)
		w.rx = q
		ws = append(ws, w)
		e.wg.Add(1)
		go w.run()
	}
	return ws
}

// Update publishes a new VM table. VMs whose Port is new get a worker;
// ports no longer present are closed and their workers stopped. Counters
// persist per VM name.
func (e *Engine) Update(vms []VM) {
	e.mu.Lock()
	defer e.mu.Unlock()
	next := newSnapshot()
	keepStats := map[string]*VMStats{}
	keepPorts := map[vif.Port]*txPort{}
	for i := range vms {
		v := &vms[i]
		st := v.Stats
		if st == nil {
			st = e.stats[v.Name]
		}
		if st == nil {
			st = new(VMStats)
		}
		keepStats[v.Name] = st
		tp := e.ports[v.Port]
		if tp == nil {
			tp = newTxPort(v.Port, v.VnetHdr)
		}
		keepPorts[v.Port] = tp
		s := &vmState{
			name: v.Name, port: tp, mac: v.MAC, vlan: v.VLAN, vni: v.VNI,
			ips: append([]netip.Addr(nil), v.IPs...), def: v.DefaultAction,
			spd:      tenant.Compile(v.Policies),
			policies: append([]tenant.Policy(nil), v.Policies...),
			sas:      append([]*sa.SA(nil), v.SAs...),
			stats:    st,
			icmp:     pmtu.NewRateLimiter(icmpPerSecond, icmpBurst),
			ike:      v.IKE,
			inBySA:   compileInBySA(v.Policies, v.SAs),
		}
		if s.def == tenant.ActionInvalid {
			s.def = tenant.ActionNone
		}
		next.byKey[vmKey{v.VLAN, v.MAC}] = s
		next.byVLAN[v.VLAN] = append(next.byVLAN[v.VLAN], s)
		next.byPort[v.Port] = s
		if v.VNI != 0 {
			next.byVNIMAC[FDBKey{v.VNI, v.MAC}] = s
			next.byVNI[v.VNI] = append(next.byVNI[v.VNI], s)
		}
	}
	e.snap.Store(next)
	// Stop workers of ports that left, after publishing: a worker still
	// finishing a batch sees the new table.
	for p, ws := range e.workers {
		if keepPorts[p] == nil {
			p.Close()
			for _, w := range ws {
				<-w.done
			}
			delete(e.workers, p)
		}
	}
	for p, tp := range keepPorts {
		if e.workers[p] == nil && !e.closed {
			e.workers[p] = e.startWorkers(tp, false)
		}
	}
	e.stats, e.ports = keepStats, keepPorts
}

// Quiesce returns once no frame is being handled with a table older than
// the one published last: every worker that was in a batch when Quiesce
// was called has finished it, and SendIKE is not in the middle of a send.
// After Update (or SetOverlay) and Quiesce, an SA the new table no longer
// names is used by nobody: it may be expired and its keys zeroed. Workers
// never wait for the control plane, so this wait is short.
func (e *Engine) Quiesce() {
	e.mu.Lock()
	ws := append([]*worker(nil), e.upWorkers...)
	for _, pws := range e.workers {
		ws = append(ws, pws...)
	}
	e.mu.Unlock()
	for _, w := range ws {
		for b := w.batches.Load(); b%2 == 1 && w.batches.Load() == b; {
			select {
			case <-w.done:
				b = 0 // the worker stopped
			default:
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	// A SendIKE under way holds ikeTxMu: taking it waits for that send.
	e.ikeTxMu.Lock()
	//lint:ignore SA2001 the critical section is empty on purpose (above)
	e.ikeTxMu.Unlock()
}

// Stats returns the counters of the VM named name, or nil.
func (e *Engine) Stats(name string) *VMStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats[name]
}

// AllStats returns every VM's counters by name.
func (e *Engine) AllStats() map[string]*VMStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]*VMStats, len(e.stats))
	for k, v := range e.stats {
		out[k] = v
	}
	return out
}

// Close stops every worker and closes every port.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.SetUplink(nil, 0)
	e.Update(nil)
	e.wg.Wait()
	e.mu.Lock()
	p := e.crypt
	e.crypt = nil
	e.mu.Unlock()
	p.close()
}
