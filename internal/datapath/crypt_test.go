package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// atLeastTwoProcs runs the test with GOMAXPROCS 2 or more, so that the
// crypto pool has a helper.
func atLeastTwoProcs(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		prev := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
}

// recorder is a port that keeps a copy of every frame written to it.
type recorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Close() error { return nil }
func (r *recorder) ReadBatch([][]byte, []int, []vif.Meta, int) (int, error) {
	return 0, vif.ErrClosed
}
func (r *recorder) WriteBatch(frames [][]byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range frames {
		r.frames = append(r.frames, bytes.Clone(f))
	}
	return len(frames), nil
}

// take returns the frames written since the last take.
func (r *recorder) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.frames
	r.frames = nil
	return f
}

// cryptLab is gateway A's VIF worker (a guest with TSO, one ESP SA) and
// gateway B's uplink worker (the VM behind the peer), both with crypto
// helpers from pool.
type cryptLab struct {
	a, b      *worker
	vmA, vmB  *vmState
	outA, inB *sa.SA
	frame     []byte // the guest's super-frame, virtio-net header first
	segs      int    // ESP packets it becomes
	data      []byte // its TCP payload
}

func newCryptLab(t testing.TB, pool *cryptPool, upA, vifB vif.Port) *cryptLab {
	pol := func(dir sa.Direction, src, dst netip.Addr) tenant.Policy {
		return tenant.Policy{Name: "p-" + dir.String(), VM: "acme", Src: netip.PrefixFrom(src, 128), Dst: netip.PrefixFrom(dst, 128),
			SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoAny, Direction: dir, Action: tenant.ActionIPsec, Mode: sa.ModeTransport}
	}
	l := &cryptLab{}
	l.outA, _ = tenantSAs(t, "acme", macA1, 100, 1, 0x1000, 0x2000, satest.V6A, satest.V6B)
	_, l.inB = tenantSAs(t, "acme", macB1, 100, 1, 0x2000, 0x1000, satest.V6B, satest.V6A)

	ea := New(sa.NewDB(0), nil)
	ea.crypt = pool
	polA := []tenant.Policy{pol(sa.DirOut, satest.V6A, satest.V6B)}
	vifA := viftest.NewSink("vifA")
	l.vmA = &vmState{name: "acme", port: &txPort{Port: vifA, vnet: true}, mac: macA1, vlan: 100, def: tenant.ActionNone,
		spd: tenant.Compile(polA), policies: polA, sas: []*sa.SA{l.outA}, stats: new(VMStats), icmp: pmtu.NewRateLimiter(1, 1)}
	ea.snap.Store(&snapshot{byKey: map[vmKey]*vmState{}, byPort: map[vif.Port]*vmState{vifA: l.vmA}})
	ea.setConfig(func(c *config) { c.uplink = &txPort{Port: upA} })
	l.a = newTestWorker(ea, l.vmA.port, false)

	eb := New(sa.NewDB(0), nil)
	eb.crypt = pool
	polB := []tenant.Policy{pol(sa.DirIn, satest.V6A, satest.V6B)}
	l.vmB = &vmState{name: "acme", port: &txPort{Port: vifB}, mac: macB1, vlan: 100, def: tenant.ActionNone,
		spd: tenant.Compile(polB), policies: polB, sas: []*sa.SA{l.inB}, stats: new(VMStats)}
	_ = eb.db.Add(l.inB)
	eb.snap.Store(&snapshot{byKey: map[vmKey]*vmState{{100, macB1}: l.vmB}, byPort: map[vif.Port]*vmState{}})
	eb.setConfig(func(c *config) { c.coalesce = false })
	l.b = newTestWorker(eb, &txPort{Port: viftest.NewSink("upB")}, true)

	l.data = make([]byte, 60000)
	for i := range l.data {
		l.data[i] = byte(i * 13)
	}
	p := offloadtest.Packet{Src: satest.V6A, Dst: satest.V6B, Seq: 1000, Flags: 0x18, Payload: l.data}
	f, h := offloadtest.Super(p, 1440, true, false)
	copy(f[0:6], macB1[:])
	copy(f[6:12], macA1[:])
	l.frame = make([]byte, vif.VnetHdrLen+len(f))
	h.Put(l.frame)
	copy(l.frame[vif.VnetHdrLen:], f)
	mss := 1500 - espOverhead(l.outA) - 40 - 20
	l.segs = (len(l.data) + mss - 1) / mss
	return l
}

// send has A's guest send its super-frame.
func (l *cryptLab) send() {
	l.a.sizes[0] = copy(l.a.bufs[0][readOff:], l.frame)
	l.a.batch(1)
}

// receive hands frames from A's uplink to B's uplink worker, a batch at
// a time.
func (l *cryptLab) receive(frames [][]byte) {
	for len(frames) > 0 {
		n := min(len(frames), len(l.b.bufs))
		for i := range n {
			l.b.sizes[i] = copy(l.b.bufs[i][readOff:], frames[i])
			l.b.meta[i] = vif.Meta{}
		}
		l.b.batch(n)
		frames = frames[n:]
	}
}

// espSeq is the sequence number of the ESP frame f (802.1Q tag, IPv6).
func espSeq(t testing.TB, f []byte) uint32 {
	_, _, ok := esp.Locate(f[ethLen+vlanTagSize:])
	if !ok {
		t.Fatalf("not ESP: %x", f[:min(len(f), 64)])
	}
	return binary.BigEndian.Uint32(f[ethLen+vlanTagSize+ipv6HeaderLen+4:])
}

// TestCryptRunsKeepSeqOrder: a guest's super-frames, each cut into ~45
// segments that A seals in parallel with its helpers, leave with
// strictly increasing sequence numbers and none dropped as reordered;
// B, opening them in parallel, accepts every one in its replay window and
// delivers the guest's TCP stream in order, byte for byte.
func TestCryptRunsKeepSeqOrder(t *testing.T) {
	atLeastTwoProcs(t)
	pool := newCryptPool(runtime.GOMAXPROCS(0) - 1)
	t.Cleanup(pool.close)
	pool.alwaysShare = true
	upA, vifB := &recorder{}, &recorder{}
	l := newCryptLab(t, pool, upA, vifB)

	var last uint32
	sent := 0
	deadline := time.Now().Add(20 * time.Second)
	// At least 50 super-frames, and on until both sides shared runs with
	// a helper (a helper that is not running when a run starts is not
	// waited for: on a busy machine some runs are done alone).
	for sent < 50 || l.a.crun.Parallel == 0 || l.b.crun == nil || l.b.crun.Parallel == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d super-frames, runs shared: A %d, B %d", sent, l.a.crun.Parallel, l.b.crun.Parallel)
		}
		l.send()
		sent++
		frames := upA.take()
		if len(frames) != l.segs {
			t.Fatalf("super-frame %d: %d ESP frames on the uplink, want %d", sent, len(frames), l.segs)
		}
		for _, f := range frames {
			seq := espSeq(t, f)
			if seq <= last {
				t.Fatalf("super-frame %d: sequence number %d after %d on the wire", sent, seq, last)
			}
			last = seq
			copy(f[0:6], macB1[:]) // as B's uplink receives it
			copy(f[6:12], peerMAC[:])
		}
		l.receive(frames)
		// B's VM gets the stream in order: each segment's TCP sequence
		// number continues the previous one's, payload as sent.
		next := uint32(1000)
		got := vifB.take()
		if len(got) != l.segs {
			t.Fatalf("super-frame %d: B delivered %d frames, want %d", sent, len(got), l.segs)
		}
		for i, f := range got {
			ip := f[ethLen:]
			tcp := ip[ipv6HeaderLen:]
			seq := binary.BigEndian.Uint32(tcp[4:])
			payload := tcp[int(tcp[12]>>4)*4:]
			if seq != next || !bytes.Equal(payload, l.data[seq-1000:int(seq-1000)+len(payload)]) {
				t.Fatalf("super-frame %d, segment %d: TCP sequence %d (want %d) or payload differs", sent, i, seq, next)
			}
			next += uint32(len(payload))
		}
	}
	t.Logf("%d super-frames; runs shared with a helper: A %d of %d, B %d", sent, l.a.crun.Parallel, sent, l.b.crun.Parallel)
	for _, vm := range []*vmState{l.vmA, l.vmB} {
		for d := range vm.stats.Drops {
			if c := vm.stats.Drops[d].Load(); c != 0 {
				t.Errorf("VM %s: %d dropped for %v", vm.mac, c, drop.Reason(d))
			}
		}
	}
	if got, want := l.inB.Stats.Packets.Load(), uint64(sent*l.segs); got != want {
		t.Errorf("B's SA accepted %d packets, want %d", got, want)
	}
	if got := uint64(last); got != l.outA.LastSeq() {
		t.Errorf("last sequence number on the wire %d, A's SA handed out up to %d", got, l.outA.LastSeq())
	}
}

// TestCryptReorderedDropped: a packet of a run whose number is not above
// the last one the run sent on its SA is dropped and counted as
// reordered, never sent.
func TestCryptReorderedDropped(t *testing.T) {
	atLeastTwoProcs(t)
	pool := newCryptPool(runtime.GOMAXPROCS(0) - 1)
	t.Cleanup(pool.close)
	upA := &recorder{}
	l := newCryptLab(t, pool, upA, &recorder{})
	l.send()
	if got := len(upA.take()); got != l.segs {
		t.Fatalf("%d frames sent, want %d", got, l.segs)
	}
	// As if a run had sent far ahead on the SA: everything now is behind.
	l.a.crun.lastSeq = 1 << 40
	l.send()
	if got := len(upA.take()); got != 0 {
		t.Errorf("%d frames sent behind the SA's last number", got)
	}
	if got := l.vmA.stats.Drops[drop.Reordered].Load(); got != uint64(l.segs) {
		t.Errorf("reordered drops %d, want %d", got, l.segs)
	}
	if got := l.outA.Stats.Drops[drop.Reordered].Load(); got != uint64(l.segs) {
		t.Errorf("SA's reordered drops %d, want %d", got, l.segs)
	}
}

// TestCryptAllocs: sealing a super-frame's run and opening a batch of
// one SA's ESP frames with the helpers allocates nothing.
func TestCryptAllocs(t *testing.T) {
	atLeastTwoProcs(t)
	pool := newCryptPool(runtime.GOMAXPROCS(0) - 1)
	t.Cleanup(pool.close)
	pool.alwaysShare = true
	// ESP frames for B, made by A beforehand (each can be opened once).
	upA := &recorder{}
	l := newCryptLab(t, pool, upA, viftest.NewSink("vifB"))
	const runs = 20
	var frames [][]byte
	for len(frames) < (runs+1)*len(l.b.bufs) {
		l.send()
		frames = append(frames, upA.take()...)
	}
	for _, f := range frames {
		copy(f[0:6], macB1[:])
		copy(f[6:12], peerMAC[:])
	}
	delivered := l.vmB.stats.PacketsIn.Load()
	allocs := testing.AllocsPerRun(runs, func() {
		l.receive(frames[:len(l.b.bufs)])
		frames = frames[len(l.b.bufs):]
	})
	if allocs != 0 {
		t.Errorf("opening a batch of %d with helpers: %v allocs", len(l.b.bufs), allocs)
	}
	if got := l.vmB.stats.PacketsIn.Load() - delivered; got != (runs+1)*uint64(len(l.b.bufs)) {
		t.Errorf("B delivered %d frames, want %d", got, (runs+1)*len(l.b.bufs))
	}

	up := viftest.NewSink("upA")
	l = newCryptLab(t, pool, up, viftest.NewSink("vifB"))
	allocs = testing.AllocsPerRun(runs, func() {
		before := up.Frames
		l.send()
		if up.Frames-before != l.segs {
			t.Fatalf("uplink got %d frames, want %d", up.Frames-before, l.segs)
		}
	})
	if allocs != 0 {
		t.Errorf("sealing a super-frame's run with helpers: %v allocs", allocs)
	}
}

// TestCryptWorkersShareHelpers (for -race): several gateways' workers
// seal and open at once with one pool of helpers.
func TestCryptWorkersShareHelpers(t *testing.T) {
	atLeastTwoProcs(t)
	pool := newCryptPool(runtime.GOMAXPROCS(0) - 1)
	t.Cleanup(pool.close)
	pool.alwaysShare = true
	var wg sync.WaitGroup
	for range 3 {
		upA, vifB := &recorder{}, &recorder{}
		l := newCryptLab(t, pool, upA, vifB)
		wg.Go(func() {
			for range 20 {
				l.send()
				frames := upA.take()
				for _, f := range frames {
					copy(f[0:6], macB1[:])
					copy(f[6:12], peerMAC[:])
				}
				l.receive(frames)
				if got := len(vifB.take()); got != l.segs {
					t.Errorf("B delivered %d frames, want %d", got, l.segs)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkCryptRun seals runs of k 1400-byte packets of one AES-GCM SA,
// back to back, alone (inline) and with the pool's helpers (GOMAXPROCS
// as given: -cpu 2): where sharing starts to pay sets cryptShare.
//
//	go test -run '^$' -bench CryptRun -cpu 2 ./internal/datapath/
func BenchmarkCryptRun(b *testing.B) {
	for _, k := range []int{4, 8, 12, 16, 24, 32, 45, 64} {
		for _, mode := range []string{"inline", "pool"} {
			b.Run(fmt.Sprintf("k=%d/%s", k, mode), func(b *testing.B) {
				var pool *cryptPool
				if mode == "pool" {
					if pool = newCryptPool(runtime.GOMAXPROCS(0) - 1); pool == nil {
						b.Skip("GOMAXPROCS 1: no helpers")
					}
					defer pool.close()
					pool.alwaysShare = true
				} else {
					pool = &cryptPool{} // no helpers: every run inline
				}
				out, _ := tenantSAs(b, "acme", macA1, 0, 1, 0x1000, 0x2000, satest.V6A, satest.V6B)
				r := newCryptRun(pool)
				bufs := make([][]byte, k)
				for i := range bufs {
					bufs[i] = make([]byte, readOff+1500+esp.Tailroom)
				}
				pkt := make([]byte, 1400)
				n := satest.UDP(pkt, 0, satest.V6A, satest.V6B, 1, 2, 1400-48)
				var sc sa.Scratch
				b.SetBytes(int64(k * 1400))
				b.ReportAllocs()
				for b.Loop() {
					for i := range k {
						copy(bufs[i][readOff:], pkt[:n])
						r.items[i] = cryptItem{s: out, buf: bufs[i], off: readOff, n: n}
					}
					reserveRun(r.items[:k])
					r.crypt(pool, k, &sc)
				}
				b.ReportMetric(float64(r.Parallel)/float64(b.N), "shared/run")
			})
		}
	}
}

// helperGoroutines counts the crypto helpers in the process, started or
// not yet (newCryptPool creates no other goroutine).
func helperGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by github.com/vifsec/vifsec/internal/datapath.newCryptPool ")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestCryptoHelpersOption: SetCryptoHelpers(n), before the first port,
// decides the pool an engine starts: with 0 no pool and no helper
// goroutine, the workers sealing and opening inline (they never collect
// a run); with n > 0 n helpers, at most GOMAXPROCS-1; with -1 (the
// default) GOMAXPROCS-1. Traffic passes either way, and a later call
// changes nothing.
func TestCryptoHelpersOption(t *testing.T) {
	if !haveWaker {
		t.Skip("no crypto helpers on this platform")
	}
	prev := runtime.GOMAXPROCS(4)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	for _, tc := range []struct {
		name string
		set  bool
		n    int
		want int
	}{
		{"default", false, 0, 3},
		{"0", true, 0, 0},
		{"1", true, 1, 1},
		{"2", true, 2, 2},
		{"-1", true, -1, 3},
		{"capped", true, 9, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := helperGoroutines()
			a, b, _ := buildWith(t, func(e *Engine) {
				if tc.set {
					e.SetCryptoHelpers(tc.n)
				}
				if got := e.CryptoHelpers(); got != tc.want {
					t.Errorf("before the first port: CryptoHelpers %d, want %d", got, tc.want)
				}
			})
			for _, s := range []*side{a, b} {
				p := poolOf(s.e)
				if p.helpers() != tc.want || (p == nil) != (tc.want == 0) {
					t.Errorf("pool %v with %d helpers, want %d", p != nil, p.helpers(), tc.want)
				}
				if got := s.e.CryptoHelpers(); got != tc.want {
					t.Errorf("running: CryptoHelpers %d, want %d", got, tc.want)
				}
			}
			if got := helperGoroutines() - before; got != 2*tc.want {
				t.Errorf("%d helper goroutines for two engines, want %d", got, 2*tc.want)
			}

			// A batch of one SA's packets: a run long enough to share.
			const k = 40
			var fs [][]byte
			for i := range k {
				fs = append(fs, frame(macB1, macA1, satest.V6A, satest.V6B, 100+i))
			}
			a.guests["acme"].WriteBatch(fs)
			for i := range k {
				if got := recv(t, b.guests["acme"]); !bytes.Equal(got, fs[i]) {
					t.Fatalf("frame %d delivered as %x, want %x", i, got, fs[i])
				}
			}
			// Every worker has the engine's pool (nil: it seals and opens
			// inline). B's uplink worker, which keeps its buffers, opened
			// the frames: in a run (crun, made before it delivered them)
			// only with helpers.
			for _, s := range []*side{a, b} {
				s.e.mu.Lock()
				ws := append([]*worker(nil), s.e.upWorkers...)
				for _, w := range s.e.workers {
					ws = append(ws, w...)
				}
				s.e.mu.Unlock()
				for _, w := range ws {
					if w.crypt != poolOf(s.e) {
						t.Errorf("worker with pool %p, engine's %p", w.crypt, poolOf(s.e))
					}
				}
			}
			b.e.mu.Lock()
			w := b.e.upWorkers[0]
			b.e.mu.Unlock()
			if got := w.crun != nil; got != (tc.want > 0) {
				t.Errorf("%d helpers: B's uplink worker collected a run %v, want %v", tc.want, got, tc.want > 0)
			}

			a.e.SetCryptoHelpers(tc.want + 1)
			if got := a.e.CryptoHelpers(); got != tc.want {
				t.Errorf("SetCryptoHelpers after start: CryptoHelpers %d, want %d still", got, tc.want)
			}
		})
	}
}

// poolOf is e's crypto pool.
func poolOf(e *Engine) *cryptPool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.crypt
}
