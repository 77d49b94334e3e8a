package datapath

import (
	"runtime"
	"sync/atomic"

	"github.com/vifsec/vifsec/vif"
)

// batchBufs is what a worker needs while it handles a batch, and only
// then: receive buffers, copies for broadcasts, segment buffers, room
// for an ICMP error, and the queue of frames to send. Nothing in it
// outlives the batch (flush sends every queued frame before the batch
// ends), so a VIF's worker gives it back to its pool whenever its queue
// is drained and takes one again when frames arrive. The memory of
// buffers then follows how many VIF workers are busy at once, not how
// many VMs are attached or how many queues each has.
type batchBufs struct {
	bufs  [][]byte
	sizes []int
	meta  []vif.Meta
	spare [][]byte // copies for frames that go to several ports in different forms
	nsp   int

	out   [maxOut]outFrame
	nout  int
	group [][]byte

	// Made on first use (ensureSeg): segments of a super-frame (or
	// fragments of a packet).
	seg      [][]byte
	segSizes []int
	// Ports with virtio-net headers only: room to build an ICMP error.
	icmpBuf []byte
	// Made on first use (joinTrains): the UDP GSO super-frame joined
	// from a super-frame's datagrams.
	trainBuf []byte
	// Made on first use, with crypto helpers only: the packets waiting
	// for their crypto (crypt.go).
	crun *cryptRun
}

// bufKind is what a set of buffers is made for: nbuf receive buffers of
// size bytes, spares of frame bytes, and an ICMP buffer or not.
type bufKind struct {
	nbuf, size, frame int
	icmp              bool
}

func newBatchBufs(k bufKind) *batchBufs {
	b := &batchBufs{bufs: make([][]byte, k.nbuf), sizes: make([]int, k.nbuf), meta: make([]vif.Meta, k.nbuf),
		spare: make([][]byte, maxSpare), group: make([][]byte, 0, maxOut)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, k.size)
	}
	// Spares hold tagged copies of broadcast frames a VM sends on a VLAN:
	// a few per batch is plenty (beyond that, broadcasts are dropped).
	for i := range b.spare {
		b.spare[i] = make([]byte, k.frame)
	}
	if k.icmp {
		b.icmpBuf = make([]byte, bufSize)
	}
	return b
}

// bufPool holds the sets of one kind that no worker is using. It makes
// at most max sets: a set is big (a VIF with virtio-net headers reads
// 64 KiB super-frames), and more than twice as many as there are CPUs
// to run workers would only sit in workers that wait to run. A worker
// that finds none free waits for one (get); one that has frames left
// after a full batch gives its set up when others wait (contended), so
// a busy VM cannot keep the others' frames waiting.
type bufPool struct {
	kind    bufKind
	max     int32
	made    atomic.Int32
	waiting atomic.Int32
	free    chan *batchBufs
}

func newBufPool(k bufKind, max int) *bufPool {
	return &bufPool{kind: k, max: int32(max), free: make(chan *batchBufs, max)}
}

// get takes a free set, makes one if fewer than max exist, or waits for
// one to come back.
func (p *bufPool) get() *batchBufs {
	select {
	case b := <-p.free:
		return b
	default:
	}
	if p.made.Add(1) <= p.max {
		return newBatchBufs(p.kind)
	}
	p.made.Add(-1)
	p.waiting.Add(1)
	b := <-p.free
	p.waiting.Add(-1)
	return b
}

// put gives a set back; it never waits (there are at most max).
func (p *bufPool) put(b *batchBufs) { p.free <- b }

// contended reports whether a worker waits for a set.
func (p *bufPool) contended() bool { return p.waiting.Load() > 0 }

// bufPool returns the engine's pool of sets of kind k.
func (e *Engine) bufPool(k bufKind) *bufPool {
	e.poolsMu.Lock()
	defer e.poolsMu.Unlock()
	p := e.pools[k]
	if p == nil {
		p = newBufPool(k, 2*runtime.GOMAXPROCS(0))
		if e.pools == nil {
			e.pools = map[bufKind]*bufPool{}
		}
		e.pools[k] = p
	}
	return p
}
