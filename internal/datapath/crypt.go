package datapath

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
)

// Parallel crypto inside one flow. A worker is one goroutine, and one
// VM's outbound traffic (its VIF has one queue) or one inbound SA (the
// uplink's fanout keeps it on one queue) has one worker: without help,
// one guest's TCP stream is encrypted on one core. So a worker does not
// seal or open an AEAD SA's packets as it meets them; it collects them
// in a run (cryptRun) and, where the run ends, does the crypto of the
// whole run at once, sharing it with the engine's helpers, then sends
// what came out in the run's order:
//
//  1. Collect: fromVIF stops an ESP packet before Encap (addSeal),
//     inboundESP before Decap (addOpen). A run holds one direction's
//     packets, outbound those of one SA, at most maxRun.
//  2. End the run (cryptFlush) before anything else is queued or
//     delivered, before the buffers its packets are in are reused, and
//     at the end of the batch: frames keep the order they had.
//  3. Outbound: reserve the run's sequence numbers as one block
//     (sa.SA.ReserveSeq); packet i gets first+i.
//  4. Crypto: packets are taken one at a time from a shared index by the
//     worker and by the helpers it could hand the run to (esp.EncapSeq,
//     esp.Decap), each with its own sa.Scratch.
//  5. Finish in run order on the worker: outbound, the Ethernet header
//     and forward (a packet whose number is not above the last one the
//     run sent on its SA is dropped and counted, drop.Reordered: the
//     wire order of an SA is its number order); inbound, the SPD check
//     and delivery.
//
// The pool has one helper per CPU beyond the first (GOMAXPROCS-1 when
// the engine starts its first worker; on Linux only, see waker), or as
// many as Engine.SetCryptoHelpers asked for, at most that many; with one
// CPU, or none asked for, there is no pool and a worker does its crypto
// inline, packet by packet, its packets never collected in a run. A worker offers its run only as many
// times as the run is long enough to pay for (cryptShare packets a
// share), wakes a parked helper only when none spins, never waits for a
// helper to become free, and never for one that was offered the run but
// did not start (it takes the offer back, see cryptJob): the worker does
// whatever no helper took. Sharing that does not pay stops for a while
// (crypt). Nothing is allocated per packet or per run: the run and its
// jobs are made once per set of buffers, each helper's scratch once.

// cryptShare is the fewest packets a participant's share of a run must
// have for offering it to a helper: runs of fewer than 2*cryptShare
// packets are done alone. Measured with one helper on a 2-CPU VM
// (runs of 1400-byte AES-GCM packets sealed back to back, each shared):
// a run of 8 took 8-220 µs shared against 7-17 µs alone, no gain; 12,
// 7-47 µs against 10-28 µs, a gain only while the other CPU was free;
// 16, 10-12 µs against 12-20 µs; 45, 33-52 µs against 52-65 µs.
const cryptShare = 8

// cryptSpin is how long a helper that finished a job polls for the
// next before it parks: about one super-frame's segmentation and
// sealing, so that a worker whose runs follow one another (a guest's
// TSO stream) hands them over without a wake-up (a system call, and tens
// of microseconds before the helper runs) each time.
const cryptSpin = 100 * time.Microsecond

// maxShareBackoff bounds the runs a worker does alone after runs whose
// sharing did not pay; cryptGain is the most, in percent of the time the
// run would have taken alone, that a shared run may take to have paid.
const (
	maxShareBackoff = 256
	cryptGain       = 90
)

// maxRun is the most packets a run holds: a super-frame's segments
// (maxSegs) or a batch.
const maxRun = max(maxSegs, 64)

// cryptPool is the engine's crypto helpers. A worker offers a job in a
// free slot of offers; a helper takes it from there. A helper that
// finished a job spins, polling the slots, for cryptSpin before it parks
// (waker: a read of an eventfd, so that the wake comes through the
// network poller to an idle CPU; a goroutine readied through a channel
// waits on the CPU of the goroutine that readied it, which a worker
// never leaves). A worker wakes a parked helper only when no helper
// spins.
type cryptPool struct {
	offers   []atomic.Pointer[cryptJob]
	spinning atomic.Int32
	parked   atomic.Int32
	stopped  atomic.Bool
	waker    *waker
	wg       sync.WaitGroup
	// busy counts the workers in a batch, procs the CPUs: while every
	// CPU has a worker, a helper could only take one from a worker, so
	// no run is offered and no helper spins.
	busy  atomic.Int32
	procs int32
	// alwaysShare makes workers offer every run long enough, whether
	// sharing paid or not (tests that must see runs shared).
	alwaysShare bool
}

// cryptHelpers is how many helpers a pool asked for n has with procs
// CPUs: for n < 0 one per CPU beyond the first, otherwise n, at most
// that many; none where helpers cannot be parked (waker).
func cryptHelpers(n, procs int) int {
	if !haveWaker {
		return 0
	}
	if n < 0 || n > procs-1 {
		return max(procs-1, 0)
	}
	return n
}

// newCryptPool starts the helpers asked for n (cryptHelpers, with
// GOMAXPROCS CPUs); nil when that is none (workers do their crypto
// inline) or the waker cannot be made.
func newCryptPool(n int) *cryptPool {
	procs := runtime.GOMAXPROCS(0)
	if n = cryptHelpers(n, procs); n < 1 {
		return nil
	}
	wk, err := newWaker()
	if err != nil {
		return nil
	}
	p := &cryptPool{offers: make([]atomic.Pointer[cryptJob], n), waker: wk, procs: int32(procs)}
	for range n {
		p.wg.Add(1)
		go p.helper()
	}
	return p
}

// helpers is how many helpers p has (0 for nil).
func (p *cryptPool) helpers() int {
	if p == nil {
		return 0
	}
	return len(p.offers)
}

// close stops the helpers and waits for them. Workers may still call
// crypt: with no helper to take their jobs, they do them alone.
func (p *cryptPool) close() {
	if p == nil {
		return
	}
	p.stopped.Store(true)
	p.waker.wake(len(p.offers))
	p.waker.close() // and whoever still waits returns
	p.wg.Wait()
}

func (p *cryptPool) helper() {
	defer p.wg.Done()
	var sc sa.Scratch
	buf := new([8]byte)
	for !p.stopped.Load() {
		j := p.spin()
		if j == nil {
			p.parked.Add(1)
			// A worker that offered a job before it saw this helper
			// parked did not wake it: look once more.
			if j = p.take(); j == nil {
				p.waker.wait(buf)
			}
			p.parked.Add(-1)
		}
		if j != nil {
			j.run.work(&sc)
			j.run.finished.Add(1)
		}
	}
}

// take takes a job offered now, or returns nil.
func (p *cryptPool) take() *cryptJob {
	for i := range p.offers {
		o := &p.offers[i]
		if o.Load() == nil {
			continue
		}
		j := o.Swap(nil)
		if j == nil {
			continue
		}
		// The job is the one offered now, or, if this helper was slow, a
		// later offer of it: either way, posted is the worker's offer
		// to the taker.
		if st := j.state.Load(); st&3 == jobPosted && j.state.CompareAndSwap(st, st&^3|jobTaken) {
			return j
		}
	}
	return nil
}

// spin polls the offers for cryptSpin and returns the job it took, or
// nil.
func (p *cryptPool) spin() *cryptJob {
	p.spinning.Add(1)
	defer p.spinning.Add(-1)
	deadline := time.Now().Add(cryptSpin)
	for !p.stopped.Load() {
		for range 64 {
			if j := p.take(); j != nil {
				return j
			}
		}
		// No runtime.Gosched here or in the worker's wait: a goroutine
		// that yields goes to the global queue without waking an idle
		// CPU, and helper and worker could end up taking turns on one.
		if time.Now().After(deadline) || p.busy.Load() >= p.procs {
			return nil
		}
	}
	return nil
}

// The states of a cryptJob, in the low bits of its state word; the
// high bits are the posting's generation.
const (
	jobPosted    = 1 // offered; may be taken or taken back
	jobTaken     = 2 // a helper works on the run; it will count itself finished
	jobCancelled = 3 // the worker took it back; no helper touches the run
)

// cryptJob is one offer of a run to a helper. The worker posts it
// (state gen|posted) in a free slot of the pool's offers; a helper
// takes it (posted → taken) before touching the run. When the worker
// has done the run's work it takes back every job still posted
// (posted → cancelled): a helper that did not start by then costs the
// worker no wait.
type cryptJob struct {
	state atomic.Uint64
	gen   uint64
	slot  int
	run   *cryptRun
}

// cryptItem is one packet of a run.
type cryptItem struct {
	vm  *vmState
	s   *sa.SA
	buf []byte
	// off, n: the IP packet given to ESP; after the crypto, start and
	// end of the result in buf.
	off, n     int
	start, end int
	seq        uint64 // outbound: the number reserved for it
	d          drop.Reason
	macs       [12]byte       // the frame's destination and source MAC
	from       netip.AddrPort // inbound ESP in UDP: where it came from
}

// cryptRun is a worker's run of packets waiting for their crypto. It
// lives in the worker's batchBufs: no packet in it outlives the batch;
// what it learns (times, the last number sent) stays with the set.
type cryptRun struct {
	open  bool // Decap (inbound) rather than EncapSeq
	snap  *snapshot
	items [maxRun]cryptItem
	n     int

	// While the crypto runs: k items, next the index the next taker
	// gets.
	k    int
	next atomic.Int32
	jobs []cryptJob
	// finished counts the helpers that took a job of this run and are
	// done with it. The worker waits for them spinning, not parked: a
	// parked worker would be woken on the helper's CPU and wait there
	// for it.
	finished atomic.Int32

	// Runs to do alone (skip), and how many the last run that did not
	// pay set that to (backoff); the mean time per packet of runs done
	// alone.
	skip, backoff, unanswered int
	perPacket                 time.Duration

	// The last sequence number sent on lastSA from this run.
	lastSA  *sa.SA
	lastSeq uint64

	// Parallel counts runs shared with at least one helper, Shared the
	// packets in them, BackedOff the runs after which sharing stopped
	// for a while (read by tests and benchmarks).
	Parallel, Shared, BackedOff uint64
}

func newCryptRun(p *cryptPool) *cryptRun {
	r := &cryptRun{jobs: make([]cryptJob, p.helpers())}
	for i := range r.jobs {
		r.jobs[i].run = r
	}
	return r
}

// work does the crypto of the run's items not yet taken, one at a time.
func (r *cryptRun) work(sc *sa.Scratch) {
	for {
		i := int(r.next.Add(1)) - 1
		if i >= r.k {
			return
		}
		it := &r.items[i]
		if it.d != drop.None {
			continue
		}
		if r.open {
			it.start, it.end, it.d = esp.Decap(it.s, sc, it.buf, it.off, it.n)
		} else {
			it.start, it.end, it.d = esp.EncapSeq(it.s, sc, it.buf, it.off, it.n, it.seq)
		}
	}
}

// crypt does the crypto of the run's k items: with as many helpers as
// k is long enough for, or alone.
//
// Sharing has to pay, and on a host whose CPUs are busy with other work
// it does not: a woken helper does not get a CPU before the run is done
// (the wake cost the worker a system call), or it gets the worker's own
// CPU, or it is preempted holding a packet while the worker, done with
// the rest, waits for it. So the worker times its runs: alone, a mean
// time per packet (perPacket); shared, the whole run. A run shared with
// a helper that was awake and that did not take less than cryptGain of
// what alone would have, or two wakes in a row that no helper answered,
// make the worker do the next runs alone, twice as many each time it
// happens again (up to maxShareBackoff): on a busy host it tries once in
// that many runs, and it shares again from the first run that paid.
func (r *cryptRun) crypt(p *cryptPool, k int, sc *sa.Scratch) {
	r.k = k
	r.next.Store(0)
	r.finished.Store(0)
	t0 := time.Now()
	if !p.alwaysShare && (r.skip > 0 || r.perPacket == 0 || p.busy.Load() >= p.procs) || len(r.jobs) == 0 || 2*cryptShare > k {
		r.skip = max(r.skip-1, 0)
		r.work(sc)
		if el := time.Since(t0) / time.Duration(k); r.perPacket == 0 {
			r.perPacket = el
		} else {
			r.perPacket += (el - r.perPacket) / 8
		}
		return
	}
	posted := 0
	for slot := 0; slot < len(p.offers) && posted < len(r.jobs) && (posted+2)*cryptShare <= k; slot++ {
		j := &r.jobs[posted]
		if !p.offers[slot].CompareAndSwap(nil, j) {
			continue // another worker's offer
		}
		// A helper that finds it before the state says posted leaves it.
		j.gen++
		j.slot = slot
		j.state.Store(j.gen<<2 | jobPosted)
		posted++
	}
	woke := false
	if wake := min(posted-int(p.spinning.Load()), int(p.parked.Load())); wake > 0 {
		p.waker.wake(wake)
		woke = true
	}
	r.work(sc)
	taken := 0
	for i := range posted {
		j := &r.jobs[i]
		p.offers[j.slot].CompareAndSwap(j, nil)
		// Posted and not taken: no helper will touch the run.
		if !j.state.CompareAndSwap(j.gen<<2|jobPosted, j.gen<<2|jobCancelled) {
			taken++
		}
	}
	for r.finished.Load() != int32(taken) {
		// A helper that took a job finishes the one packet it holds.
	}
	if taken > 0 {
		r.Parallel++
		r.Shared += uint64(k)
	}
	// A helper woken now joins late, if at all: that run says little,
	// the next (the helper now spins) tells. Two wakes in a row that no
	// helper answered, or a run shared with an awake helper that took
	// no less time than alone, do tell.
	slow := taken > 0 && time.Since(t0) > r.perPacket*time.Duration(k)*cryptGain/100
	if woke && taken == 0 {
		r.unanswered++
	} else if taken > 0 {
		r.unanswered = 0
	}
	if r.unanswered >= 2 || !woke && slow {
		r.backoff = min(2*r.backoff+1, maxShareBackoff)
		r.skip = r.backoff
		r.unanswered = 0
		r.BackedOff++
	} else if taken > 0 && !slow {
		r.backoff = 0
	}
}

// cryptOn reports whether packets of s go through the worker's run: the
// engine has helpers and s's crypto runs on several goroutines at once.
func (w *worker) cryptOn(s *sa.SA) bool { return w.crypt != nil && s.ConcurrentCrypto() }

// runFor returns the worker's run ready for another packet of direction
// open (and, outbound, SA s): the run pending is finished first if it is
// of the other direction or SA, or full.
func (w *worker) runFor(open bool, s *sa.SA) *cryptRun {
	if w.crun == nil {
		w.crun = newCryptRun(w.crypt)
	}
	r := w.crun
	if r.n > 0 && (r.open != open || r.n == maxRun || !open && r.items[0].s != s) {
		w.cryptFlush()
	}
	r.open = open
	return r
}

// addSeal puts the IP packet buf[off:off+n] of vm's frame (whose MACs
// are macs) into the run, to be sealed with s and forwarded.
func (w *worker) addSeal(snap *snapshot, vm *vmState, s *sa.SA, buf []byte, off, n int, macs *[12]byte) {
	r := w.runFor(false, s)
	r.snap = snap
	r.items[r.n] = cryptItem{vm: vm, s: s, buf: buf, off: off, n: n, macs: *macs}
	r.n++
}

// addOpen puts the ESP frame buf[off:off+n] for vm into the run, to be
// opened with s and delivered.
func (w *worker) addOpen(vm *vmState, s *sa.SA, buf []byte, off, n int, from netip.AddrPort) {
	r := w.runFor(true, s)
	it := &r.items[r.n]
	*it = cryptItem{vm: vm, s: s, buf: buf, off: off + ethLen, n: n - ethLen, from: from}
	copy(it.macs[:], buf[off:off+12])
	r.n++
}

// cryptFlush does the crypto of the pending run and sends or delivers
// its packets, in order. The run is empty from its start: what its
// packets' sending calls (queue, flush, deliver) finds nothing pending.
func (w *worker) cryptFlush() {
	r := w.crun
	if r == nil || r.n == 0 {
		return
	}
	k := r.n
	r.n = 0
	if !r.open {
		reserveRun(r.items[:k])
	}
	r.crypt(w.crypt, k, &w.sc)
	for i := range k {
		it := &r.items[i]
		if r.open {
			w.decapped(it.vm, it.s, it.buf, it.start, it.end, it.d, it.from, &it.macs)
			continue
		}
		if it.d == drop.None {
			if it.s == r.lastSA && it.seq <= r.lastSeq {
				it.d = drop.Reordered
			} else {
				r.lastSA, r.lastSeq = it.s, it.seq
			}
		}
		w.sealed(r.snap, it.vm, it.s, it.buf, it.start, it.end, it.d, &it.macs)
	}
	clear(r.items[:k]) // no buffer or SA stays referenced
	r.snap = nil
}

// reserveRun gives each item of an outbound run (one SA) its sequence
// number, in order, from as few blocks as the SA's limits allow; items
// that get none are dropped for the reason the SA gives.
func reserveRun(items []cryptItem) {
	s := items[0].s
	for i := 0; i < len(items); {
		first, granted, d := s.ReserveSeq(len(items) - i)
		if d != drop.None {
			for ; i < len(items); i++ {
				items[i].d = d
			}
			return
		}
		for g := range granted {
			items[i+g].seq = first + uint64(g)
		}
		i += granted
	}
}
