package datapath

import (
	"errors"
	"sync/atomic"

	"github.com/vifsec/vifsec/offload/gro"
	"github.com/vifsec/vifsec/offload/gso"
	"github.com/vifsec/vifsec/overlay/vxlan"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// Frame geometry: frames are read at readOff so ESP, an 802.1Q tag and
// VXLAN can be written in front in place. A buffer for one frame holds
// frameBufSize(MTU) bytes: never less than bufSize (a 1500-byte MTU frame
// plus ESP's tailroom with margin), more on a jumbo uplink. Ports with
// virtio-net headers read into gsoBufSize buffers (a 64 KiB super-frame,
// so any MTU); a port without them reads frames up to the uplink's MTU as
// it was when the port's worker started, and counts bigger ones as
// truncated.
//
// The most written in front of a VM's frame is ESP inside VXLAN inside
// underlay ESP toward a virtio-net uplink: the VM's ESP (esp.MaxPrefix,
// outer IPv6 + UDP + ESP + IV; its Ethernet header is rebuilt in the
// frame's own), VXLAN (vxlan.Headroom, outer Ethernet, tag, IPv6, UDP,
// VXLAN), the underlay's ESP (esp.MaxPrefix again) and the virtio-net
// header (TestHeadroomWorstCase sends such a frame).
const (
	readOff = max(esp.Headroom+vxlan.Headroom, 2*esp.MaxPrefix+vxlan.Headroom+vif.VnetHdrLen)
	bufSize = 4096
	maxOut  = 4 * vif.MaxBatch

	// Ports with virtio-net headers: batches of gsoBatch buffers big
	// enough for a 64 KiB super-frame, and up to maxSegs segments each
	// (64 KiB at the smallest useful MTU, 1280).
	gsoBatch   = 8
	gsoBufSize = readOff + vif.VnetHdrLen + 65535 + ethLen + 2*vlanTagSize + esp.Tailroom
	maxSegs    = 64
	// maxSpare bounds broadcast copies per batch.
	maxSpare = 8

	// frameExtra is what a frame buffer holds besides the IP packet: the
	// headroom, a virtio-net header, Ethernet with two tags, ESP's
	// tailroom.
	frameExtra = readOff + vif.VnetHdrLen + ethLen + 2*vlanTagSize + esp.Tailroom
)

// worker owns one port's receive loop and everything it needs per packet.
// Nothing in it is shared with other workers.
type worker struct {
	e      *Engine
	port   *txPort
	rx     vif.Port // the queue of port this worker reads
	seq    uint32   // picks the queue it writes on, of ports with several
	uplink bool
	done   chan struct{}
	// cfg is the engine's configuration for the batch being handled,
	// loaded at its start with the snapshot.
	cfg *config

	// The buffers of the batch being handled (bufs.go). A VIF's worker
	// takes them from pool when frames arrive and gives them back when
	// its queue is drained, so a quiet VM holds none; the uplink's
	// workers, always busy, keep theirs (pool nil).
	*batchBufs
	pool *bufPool

	sc   sa.Scratch
	flow tenant.Flow
	// crypt is the engine's crypto helpers (crypt.go); nil: none, the
	// worker seals and opens inline.
	crypt *cryptPool
	macs  [12]byte

	fragmenting bool // w.seg holds fragments being sent
	fragPolicy  int  // while fragmenting: the datagram's policy (-1: default)
	// train joins the uplink datagrams made from one super-frame into
	// one UDP GSO super-frame in trainBuf (joinTrains; bufs.go).
	train gso.Train
	// Trains counts the UDP GSO super-frames this batch sent, TrainSegs
	// the datagrams in them; Splits those from the uplink cut into
	// datagrams (uplink worker), SplitSegs the datagrams. batch adds them
	// to Engine.GSOStats at its end.
	Trains, TrainSegs, Splits, SplitSegs uint64

	// What the batch counts, added to shared counters once per batch:
	// frames a VM sent (forward), frames delivered to VMs (flush),
	// frames from the uplink (fromUplink).
	sent, delivered tally
	rxFrames        uint64

	// batches counts batch starts and ends: odd while one runs.
	batches atomic.Uint64

	// Uplink worker only: ingress coalescing (coalesce.go), and the VM
	// its pending run is for (nil: none).
	co   *gro.Coalescer
	coVM *vmState
}

type outFrame struct {
	dst        *txPort
	buf        []byte
	start, end int
	vm         *VMStats // counted as delivered to this VM (nil: uplink)
	hasHdr     bool     // a virtio-net header is already in the headroom
}

// frameBufSize is the size of a buffer for one frame carrying an IP
// packet of up to mtu bytes (frameExtra more, at least bufSize): an MTU of
// 1500 keeps bufSize, a jumbo MTU gets what it needs.
func frameBufSize(mtu int) int { return max(bufSize, frameExtra+mtu) }

// newWorker makes p's worker. Its frame buffers (reads without virtio-net
// headers, broadcast copies) are sized for the uplink's MTU at this
// moment; segment buffers follow the uplink's MTU as it changes
// (ensureSeg). A VIF's worker gets its buffers when frames arrive (run).
func newWorker(e *Engine, p *txPort, uplink bool) *worker {
	w := &worker{e: e, port: p, rx: p.Port, seq: e.workerSeq.Add(1) - 1, uplink: uplink, done: make(chan struct{}), cfg: e.cfg.Load(), crypt: e.crypt}
	frame := frameBufSize(w.cfg.mtu)
	switch {
	case p.vnet && uplink:
		// The uplink is the busiest port: full batches, each buffer big
		// enough for a coalesced (GRO) super-frame.
		w.batchBufs = newBatchBufs(bufKind{nbuf: vif.MaxBatch, size: gsoBufSize, frame: frame})
	case uplink:
		w.batchBufs = newBatchBufs(bufKind{nbuf: vif.MaxBatch, size: frame, frame: frame})
	case p.vnet:
		// A port with virtio-net headers hands over super-frames of up to
		// 64 KiB, a few per batch.
		w.pool = e.bufPool(bufKind{nbuf: gsoBatch, size: gsoBufSize, frame: frame, icmp: true})
	default:
		w.pool = e.bufPool(bufKind{nbuf: vif.MaxBatch, size: frame, frame: frame})
	}
	if uplink {
		w.co = gro.New(gsoBufSize-readOff, readOff)
	}
	return w
}

func (w *worker) run() {
	defer w.e.wg.Done()
	defer close(w.done)
	defer w.release()
	waiter, _ := w.rx.(vif.Waiter)
	if waiter == nil && w.pool != nil {
		// A port that cannot wait without buffers: the worker keeps a
		// set of its own, outside the pool's bound.
		w.batchBufs, w.pool = newBatchBufs(w.pool.kind), nil
	}
	full := false // the last batch filled every buffer: read on at once
	for {
		switch {
		case w.pool == nil:
		case !full:
			// Drained: the buffers go back while the queue is quiet.
			w.release()
			if err := waiter.WaitRead(); err != nil {
				w.stop(err)
				return
			}
		case w.pool.contended():
			// More to read, but others wait for buffers: their turn.
			w.release()
		}
		if w.batchBufs == nil {
			w.batchBufs = w.pool.get()
		}
		n, err := w.rx.ReadBatch(w.bufs, w.sizes, w.meta, readOff)
		if err != nil {
			w.stop(err)
			return
		}
		w.batch(n)
		full = n == len(w.bufs)
	}
}

// stop ends the worker on err from its port: the port failed unless it
// was closed.
func (w *worker) stop(err error) {
	if errors.Is(err, vif.ErrClosed) {
		return
	}
	w.e.log.Warn("port read failed; worker stops", "port", w.port.Name(), "err", err)
	w.port.down.Do(func() {
		if f := w.e.OnPortDown; f != nil {
			f(w.port.Port, err)
		}
	})
}

// release gives a pooled worker's buffers back.
func (w *worker) release() {
	if w.pool != nil && w.batchBufs != nil {
		w.pool.put(w.batchBufs)
		w.batchBufs = nil
	}
}

// batch processes n frames just read and sends what they produced.
func (w *worker) batch(n int) {
	w.batches.Add(1) // odd: in a batch (Engine.Quiesce)
	defer w.batches.Add(1)
	if w.crypt != nil {
		// Helpers share runs only while some CPU runs no worker.
		w.crypt.busy.Add(1)
		defer w.crypt.busy.Add(-1)
	}
	snap := w.e.snap.Load()
	w.cfg = w.e.cfg.Load()
	for i := 0; i < n; i++ {
		switch {
		case w.uplink && w.port.vnet:
			w.fromUplinkVnet(snap, w.bufs[i], readOff, w.sizes[i], w.meta[i])
		case w.uplink:
			w.fromUplink(snap, w.bufs[i], readOff, w.sizes[i], w.meta[i])
		case w.port.vnet:
			w.fromVnet(snap, w.bufs[i], readOff, w.sizes[i], w.meta[i])
		default:
			w.fromVIF(snap, w.bufs[i], readOff, w.sizes[i], w.meta[i])
		}
	}
	w.cryptFlush()
	w.flushRun()
	w.flush()
	w.sent.commit()
	if w.rxFrames > 0 {
		w.e.UplinkRx.Frames.Add(w.rxFrames)
		w.rxFrames = 0
	}
	w.commitTrains()
}

// commitTrains adds the batch's UDP GSO counts to the engine's.
func (w *worker) commitTrains() {
	if w.Trains > 0 {
		w.e.GSOStats.TrainsSent.Add(w.Trains)
		w.e.GSOStats.SegmentsSent.Add(w.TrainSegs)
		w.Trains, w.TrainSegs = 0, 0
	}
	if w.Splits > 0 {
		w.e.GSOStats.TrainsReceived.Add(w.Splits)
		w.e.GSOStats.SegmentsReceived.Add(w.SplitSegs)
		w.Splits, w.SplitSegs = 0, 0
	}
}

// tally sums what a worker counts for one VM while it handles a batch,
// so that it adds to the VM's counters, which other workers add to as
// well, once per batch (or per port written) instead of once per frame.
type tally struct {
	packets, bytes *atomic.Uint64 // the VM's counters
	n, b           uint64
}

// add counts a frame of size bytes on packets and bytes; what the tally
// held for other counters is added to them first.
func (t *tally) add(packets, bytes *atomic.Uint64, size int) {
	if t.packets != packets {
		t.commit()
		t.packets, t.bytes = packets, bytes
	}
	t.n++
	t.b += uint64(size)
}

// commit adds what the tally holds to the VM's counters.
func (t *tally) commit() {
	if t.n > 0 {
		t.packets.Add(t.n)
		t.bytes.Add(t.b)
	}
	*t = tally{}
}

// ensureSeg allocates the segment buffers on a VIF worker's first
// super-frame or fragmentation (most VMs' workers never need them), each
// big enough for a segment of the uplink's MTU; it allocates them again,
// bigger, when the uplink's MTU has grown since. Buffers a frame still
// queued refers to stay valid: they are replaced, never reused.
func (w *worker) ensureSeg() {
	size := frameBufSize(w.cfg.mtu)
	if w.seg != nil && len(w.seg[0]) >= size {
		return
	}
	w.seg = make([][]byte, maxSegs)
	for i := range w.seg {
		w.seg[i] = make([]byte, size)
	}
	w.segSizes = make([]int, maxSegs)
}

// pathMTU is the largest IP packet a VM may hand over before ESP: the
// uplink MTU, less VXLAN's encapsulation when the overlay is on.
func (w *worker) pathMTU() int { return w.cfg.pathMTU }

// espOverhead is the most s adds to an IP packet: ESP framing plus the
// outer header in tunnel mode.
func espOverhead(s *sa.SA) int {
	o := s.Overhead()
	if s.Mode() == sa.ModeTunnel {
		if s.Dst().Unmap().Is4() {
			o += 20
		} else {
			o += 40
		}
	}
	return o
}

// ipHeaderMin is the fixed IP header length of pkt's family.
func ipHeaderMin(pkt []byte) int {
	if pkt[0]>>4 == 6 {
		return ipv6HeaderLen
	}
	return ipv4HeaderLen
}

// lookup finds vm's policy for w.flow in direction dir (-1: the default
// action). A non-first fragment is classified only when every policy its
// datagram could match has the same outcome (tenant's LookupFragment);
// otherwise ok is false and the fragment must be dropped.
func (w *worker) lookup(vm *vmState, dir sa.Direction) (idx int, ok bool) {
	if !w.flow.NonFirst {
		return vm.spd.Lookup(dir, &w.flow), true
	}
	return vm.spd.LookupFragment(dir, &w.flow, vm.sameOutcome)
}

// sameOutcome reports whether vm's policies i and j (-1: the default
// action) do the same with a packet: the same action, and for ipsec the
// same SA.
func (vm *vmState) sameOutcome(i, j int) bool {
	a, s := vm.outcome(i)
	b, t := vm.outcome(j)
	return a == b && s == t
}

func (vm *vmState) outcome(i int) (tenant.Action, *sa.SA) {
	if i < 0 {
		return vm.def, nil
	}
	a := vm.policies[i].Action
	if a != tenant.ActionIPsec || i >= len(vm.sas) {
		return a, nil
	}
	return a, vm.sas[i]
}

// etherTypeOf returns the EtherType for an IP packet's first byte.
func etherTypeOf(b byte) uint16 {
	if b>>4 == 6 {
		return etherIPv6
	}
	return etherIPv4
}

// queue sends the frame buf[start:end] to dst at the end of the batch.
// The frame must have vif.VnetHdrLen bytes of headroom in buf, where a
// virtio-net header is written for ports that take one.
func (w *worker) queue(dst *txPort, buf []byte, start, end int, vm *VMStats) {
	w.cryptFlush() // what the run holds came first
	if w.nout == maxOut {
		w.flush()
	}
	w.out[w.nout] = outFrame{dst: dst, buf: buf, start: start, end: end, vm: vm}
	w.nout++
}

// flush writes the queued frames, one WriteBatch per destination port,
// after those of the crypto run (crypt.go).
func (w *worker) flush() {
	w.cryptFlush()
	for i := 0; i < w.nout; i++ {
		dst := w.out[i].dst
		if dst == nil {
			continue
		}
		w.group = w.group[:0]
		for j := i; j < w.nout; j++ {
			o := &w.out[j]
			if o.dst != dst {
				continue
			}
			start := o.start
			if dst.vnet {
				start -= vif.VnetHdrLen
				if !o.hasHdr {
					// A plain frame: no GSO, checksums complete (the
					// guest verifies them), flags 0.
					clear(o.buf[start:o.start])
				}
			}
			w.group = append(w.group, o.buf[start:o.end])
			if o.vm != nil {
				w.delivered.add(&o.vm.PacketsIn, &o.vm.BytesIn, o.end-o.start)
			}
			o.dst = nil
		}
		dst.writeFrom(w.seq, w.group)
		w.delivered.commit()
	}
	clear(w.out[:w.nout])
	w.nout = 0
	w.nsp = 0
}
