package datapath

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// perVMBudget is the most heap and goroutine stack an attached VM whose
// VIF is quiet may keep, whatever its queues: its workers hold no
// buffers between batches.
const perVMBudget = 48 << 10

// TestQuietVMsHoldNoBuffers attaches VMs with two queues each, as
// vifsecd does on two CPUs, and has every queue handle a frame (some
// with virtio-net headers take a super-frame's worth of segments):
// once the frames are through, what stays per VM is its table entry,
// its workers and their goroutines, not their buffers.
func TestQuietVMsHoldNoBuffers(t *testing.T) {
	const n, queues = 40, 2
	e := New(sa.NewDB(0), nil)
	t.Cleanup(e.Close)
	up := viftest.NewGroup("up", queues, 4*n*queues)
	e.SetUplink(up, 0)
	upOut := merge(t, up.Peers)

	var m0, m1 runtime.MemStats
	settle := func(m *runtime.MemStats) {
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(m)
	}
	settle(&m0)
	var vms []VM
	var groups []*viftest.Group
	for i := range n {
		g := viftest.NewGroup(fmt.Sprintf("vif%d", i), queues, 4)
		groups = append(groups, g)
		mac := header.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
		vms = append(vms, VM{Name: fmt.Sprintf("vm%d", i), Port: g, MAC: mac, IPs: []netip.Addr{src},
			DefaultAction: tenant.ActionNone, VnetHdr: i%2 == 0})
	}
	e.Update(vms)
	go func() {
		for range upOut {
		}
	}()
	want := uint64(0)
	for i, g := range groups {
		src := vms[i].IPs[0]
		f := frame(peerMAC, vms[i].MAC, src, satest.V4B, 200)
		for qi, q := range g.Q {
			switch {
			case vms[i].VnetHdr && qi == 0:
				// A TSO super-frame: its worker cuts it into segments.
				p := offloadtest.Packet{Src: src, Dst: satest.V4B, Seq: 1, Payload: make([]byte, 10*1400)}
				sf, h := offloadtest.Super(p, 1400, true, false)
				copy(sf[0:6], peerMAC[:])
				copy(sf[6:12], vms[i].MAC[:])
				b := make([]byte, vif.VnetHdrLen, vif.VnetHdrLen+len(sf))
				h.Put(b)
				q.Inject(append(b, sf...), vif.Meta{})
				want += 10
			case vms[i].VnetHdr:
				q.Inject(append(make([]byte, vif.VnetHdrLen), f...), vif.Meta{})
				want++
			default:
				q.Inject(f, vif.Meta{})
				want++
			}
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		got := uint64(0)
		for _, v := range vms {
			if st := e.Stats(v.Name); st != nil {
				got += st.PacketsOut.Load()
			}
		}
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames left the VMs", got, want)
		}
		time.Sleep(time.Millisecond)
	}
	e.Quiesce()
	// Every set of buffers is back in its pool once the queues drained;
	// the pools are bounded by the CPUs, not by the VMs.
	var pooled int64
	sets := 0
	for deadline := time.Now().Add(10 * time.Second); ; {
		pooled, sets = 0, 0
		held := false
		e.poolsMu.Lock()
		for _, p := range e.pools {
			if int(p.made.Load()) != len(p.free) {
				held = true
			}
			if p.made.Load() > p.max {
				t.Errorf("pool %+v made %d sets, bound %d", p.kind, p.made.Load(), p.max)
			}
			for range len(p.free) {
				b := <-p.free
				pooled += b.bytes()
				sets++
				p.free <- b
			}
		}
		e.poolsMu.Unlock()
		if !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("workers still hold buffers with their queues drained")
		}
		time.Sleep(time.Millisecond)
	}
	settle(&m1)
	per := (int64(m1.HeapAlloc+m1.StackInuse) - int64(m0.HeapAlloc+m0.StackInuse) - pooled) / n
	t.Logf("%d VMs with %d queues: %d bytes of heap and stack per VM, besides %d pooled sets of buffers (%d bytes)", n, queues, per, sets, pooled)
	if per > perVMBudget {
		t.Errorf("%d bytes per quiet VM, want at most %d", per, perVMBudget)
	}
	runtime.KeepAlive(vms)
}

// newTestWorker is newWorker for tests that hand it batches themselves:
// it holds a set of buffers from the start, as a running worker does
// while frames flow.
func newTestWorker(e *Engine, p *txPort, uplink bool) *worker {
	w := newWorker(e, p, uplink)
	if w.batchBufs == nil {
		w.batchBufs = w.pool.get()
	}
	return w
}

// bytes is the memory of b's buffers.
func (b *batchBufs) bytes() int64 {
	n := int64(cap(b.icmpBuf) + cap(b.trainBuf))
	for _, bs := range [][][]byte{b.bufs, b.spare, b.seg} {
		for _, x := range bs {
			n += int64(cap(x))
		}
	}
	return n
}

// TestBusyVMsShareFewBuffers: VMs that all send at once, more queues than
// there are sets of buffers (one, here), all get their frames through:
// a worker waits for a set, and one with more to read gives its set up
// when others wait.
func TestBusyVMsShareFewBuffers(t *testing.T) {
	const n, queues, frames = 6, 2, 300
	e := New(sa.NewDB(0), nil)
	t.Cleanup(e.Close)
	frameSize := frameBufSize(DefaultMTU)
	kind := bufKind{nbuf: vif.MaxBatch, size: frameSize, frame: frameSize}
	e.pools = map[bufKind]*bufPool{kind: newBufPool(kind, 1)}
	up := viftest.NewGroup("up", queues, 16)
	e.SetUplink(up, 0)
	for _, p := range up.Peers {
		go func() {
			for {
				if _, ok := p.Recv(); !ok {
					return
				}
			}
		}()
	}
	var vms []VM
	var groups []*viftest.Group
	for i := range n {
		g := viftest.NewGroup(fmt.Sprintf("vif%d", i), queues, 8)
		groups = append(groups, g)
		vms = append(vms, VM{Name: fmt.Sprintf("vm%d", i), Port: g, MAC: header.MAC{2, 0, 0, 0, 0, byte(i)},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})}, DefaultAction: tenant.ActionNone})
	}
	e.Update(vms)
	for i, g := range groups {
		f := frame(peerMAC, vms[i].MAC, vms[i].IPs[0], satest.V4B, 200)
		for _, q := range g.Q {
			go func() {
				for range frames {
					q.Inject(f, vif.Meta{})
				}
			}()
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		done := 0
		for _, v := range vms {
			if e.Stats(v.Name).PacketsOut.Load() == queues*frames {
				done++
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d VMs got all their frames out", done, n)
		}
		time.Sleep(time.Millisecond)
	}
	if p := e.pools[kind]; p.made.Load() != 1 {
		t.Fatalf("%d sets made, bound 1", p.made.Load())
	}
}

// TestBufPoolAllocs: once a set of buffers exists, a VIF worker taking it
// when frames arrive and giving it back when its queue drains (run's
// release and get, and the contended check between full batches)
// allocates nothing.
func TestBufPoolAllocs(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	t.Cleanup(e.Close)
	for _, vnet := range []bool{false, true} {
		w := newWorker(e, &txPort{Port: viftest.NewSink("vif"), vnet: vnet}, false)
		if w.pool == nil {
			t.Fatal("a VIF worker without a pool")
		}
		w.batchBufs = w.pool.get() // warm-up: the pool makes its set
		w.release()
		allocs := testing.AllocsPerRun(100, func() {
			if w.batchBufs == nil {
				w.batchBufs = w.pool.get()
			}
			if w.pool.contended() {
				t.Fatal("contended with one worker")
			}
			w.release()
		})
		if allocs != 0 {
			t.Errorf("virtio-net headers %v: %v allocations per take and return", vnet, allocs)
		}
		if made := w.pool.made.Load(); made != 1 {
			t.Errorf("virtio-net headers %v: %d sets made, want the one reused", vnet, made)
		}
	}
}
