package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// runDatapath measures the data path in memory: one VM, aes128-gcm in
// transport mode, frames of -size bytes, outbound (VIF → ESP on the
// uplink) and inbound (ESP from the uplink → VIF), with GOMAXPROCS=1 and
// one worker per port, then GOMAXPROCS=2 and two, and prints the ratio.
// The ports replay prepared frames and count what is written: the cost
// measured is the engine's, not a socket's.
func runDatapath(args []string) error {
	fs := flag.NewFlagSet("datapath", flag.ContinueOnError)
	size := fs.Int("size", 1400, "Ethernet frame size")
	dur := fs.Duration("time", 2*time.Second, "time per measurement")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res := map[string][2]float64{}
	for i, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		for _, dir := range []string{"outbound", "inbound"} {
			pps, drops, err := dpRun(dir, procs, *size, *dur)
			if err != nil {
				return err
			}
			r := res[dir]
			r[i] = pps
			res[dir] = r
			fmt.Printf("datapath %s gomaxprocs=%d workers=%d size=%d pps=%.0f gbps=%.2f dropped=%d\n",
				dir, procs, procs, *size, pps, pps*float64(*size)*8/1e9, drops)
		}
		runtime.GOMAXPROCS(prev)
	}
	for _, dir := range []string{"outbound", "inbound"} {
		fmt.Printf("datapath %s ratio 2/1 = %.2f\n", dir, res[dir][1]/res[dir][0])
	}
	return nil
}

var (
	dpMACA = header.MAC{0x52, 0x54, 0, 0xa, 0, 1}
	dpMACB = header.MAC{0x52, 0x54, 0, 0xb, 0, 1}
)

// dpRun measures one direction with k workers per port, returning
// frames per second delivered and frames the engine dropped.
func dpRun(dir string, k, size int, d time.Duration) (float64, uint64, error) {
	local, remote := satest.V6A, satest.V6B
	if dir == "inbound" {
		local, remote = remote, local // the frames are made by the peer
	}
	mac := dpMACA
	cfg := func(dir sa.Direction, src, dst netip.Addr) sa.Config {
		return sa.Config{Name: "bench-" + dir.String(), Scope: sa.Scope{MAC: mac}, SPI: 0x1000, Dir: dir, Src: src, Dst: dst,
			Mode: sa.ModeTransport, Enc: sa.EncAES128GCM, EncKey: satest.Key(20, 1), Integ: sa.IntegNone, ReplayWindow: 4096}
	}
	plain := make([]byte, size)
	n := satest.UDP(plain, 14, local, remote, 1000, 2000, size-14-48)
	copy(plain[0:6], dpMACB[:])
	copy(plain[6:12], mac[:])
	binary.BigEndian.PutUint16(plain[12:], 0x86dd)
	plain = plain[:14+n]

	var frames [][]byte // per frame read, round-robin over queues
	if dir == "inbound" {
		// ESP the way the engine sends it: one engine encrypts, a second
		// (the one measured) decrypts.
		out, err := sa.New(cfg(sa.DirOut, local, remote))
		if err != nil {
			return 0, 0, err
		}
		src := &dpPort{frames: [][]byte{plain}, limit: 1 << 16}
		rec := &dpPort{record: true}
		e := dpEngine(out, nil, src, rec, 1, local, remote)
		for rec.written.Load() < 1<<16 && !src.done.Load() {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		e.Close()
		rec.mu.Lock()
		frames = rec.rec
		rec.mu.Unlock()
		for i := range frames {
			// Addressed to the measured engine's VM (same MAC) from a peer.
			copy(frames[i][0:6], dpMACA[:])
			copy(frames[i][6:12], dpMACB[:])
		}
		// Swap the addresses' roles: the measured VM is local, the peer
		// remote; the in SA's source is the sender.
	}
	local, remote = satest.V6A, satest.V6B
	var vifQ, upQ []*dpPort
	for range k {
		if dir == "outbound" {
			vifQ = append(vifQ, &dpPort{frames: [][]byte{plain}})
			upQ = append(upQ, &dpPort{})
		} else {
			vifQ = append(vifQ, &dpPort{})
			upQ = append(upQ, &dpPort{})
		}
	}
	if dir == "inbound" {
		for q := range k {
			for i := q; i < len(frames); i += k {
				upQ[q].frames = append(upQ[q].frames, frames[i])
			}
			upQ[q].limit = uint64(len(upQ[q].frames))
		}
	}
	var e *datapath.Engine
	var counted []*dpPort
	if dir == "outbound" {
		s, err := sa.New(cfg(sa.DirOut, local, remote))
		if err != nil {
			return 0, 0, err
		}
		e = dpEngine(s, nil, &dpGroup{vifQ}, &dpGroup{upQ}, k, local, remote)
		counted = upQ
	} else {
		s, err := sa.New(cfg(sa.DirIn, remote, local))
		if err != nil {
			return 0, 0, err
		}
		e = dpEngine(nil, s, &dpGroup{vifQ}, &dpGroup{upQ}, k, local, remote)
		counted = vifQ
	}
	total := func() (t uint64) {
		for _, p := range counted {
			t += p.written.Load()
		}
		return t
	}
	time.Sleep(50 * time.Millisecond) // warm up
	t0, c0 := time.Now(), total()
	deadline := t0.Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		if dir == "inbound" && allDone(upQ) {
			break
		}
	}
	c1, el := total(), time.Since(t0)
	var drops uint64
	if st := e.Stats("bench"); st != nil {
		for i := range st.Drops {
			drops += st.Drops[i].Load()
		}
	}
	e.Close()
	return float64(c1-c0) / el.Seconds(), drops, nil
}

func allDone(ps []*dpPort) bool {
	for _, p := range ps {
		if !p.done.Load() {
			return false
		}
	}
	return true
}

func dpEngine(out, in *sa.SA, vifPort, up vif.Port, k int, local, remote netip.Addr) *datapath.Engine {
	db := sa.NewDB(0)
	var sas []*sa.SA
	for _, s := range []*sa.SA{out, in} {
		if s != nil {
			sas = append(sas, s)
		}
	}
	if err := db.Apply(sas, nil); err != nil {
		panic(err)
	}
	e := datapath.New(db, nil)
	pol := func(dir sa.Direction, src, dst netip.Addr) tenant.Policy {
		return tenant.Policy{Name: "p-" + dir.String(), VM: "bench", Src: netip.PrefixFrom(src, 128), Dst: netip.PrefixFrom(dst, 128),
			SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoUDP, Direction: dir, Action: tenant.ActionIPsec, Mode: 1}
	}
	e.Update([]datapath.VM{{Name: "bench", Port: vifPort, MAC: dpMACA, DefaultAction: tenant.ActionNone,
		Policies: []tenant.Policy{pol(sa.DirOut, local, remote), pol(sa.DirIn, remote, local)},
		SAs:      []*sa.SA{out, in}}})
	e.SetUplink(up, 0)
	return e
}

// dpPort replays frames (round-robin, up to limit reads when limit is
// set) and counts what is written to it, keeping copies when record.
type dpPort struct {
	frames  [][]byte
	next    int
	limit   uint64
	read    uint64
	done    atomic.Bool
	written atomic.Uint64
	record  bool
	mu      sync.Mutex
	rec     [][]byte
	closed  atomic.Bool
}

func (p *dpPort) Name() string { return "bench" }
func (p *dpPort) Close() error { p.closed.Store(true); return nil }

func (p *dpPort) ReadBatch(bufs [][]byte, sizes []int, meta []vif.Meta, offset int) (int, error) {
	for {
		if p.closed.Load() {
			return 0, vif.ErrClosed
		}
		if len(p.frames) > 0 && (p.limit == 0 || p.read < p.limit) {
			break
		}
		p.done.Store(true)
		time.Sleep(time.Millisecond)
	}
	n := 0
	for n < len(bufs) && (p.limit == 0 || p.read < p.limit) {
		f := p.frames[p.next]
		p.next = (p.next + 1) % len(p.frames)
		sizes[n] = copy(bufs[n][offset:], f)
		meta[n] = vif.Meta{}
		n++
		p.read++
	}
	return n, nil
}

func (p *dpPort) WriteBatch(frames [][]byte) (int, error) {
	if p.record {
		p.mu.Lock()
		for _, f := range frames {
			p.rec = append(p.rec, append([]byte(nil), f...))
		}
		p.mu.Unlock()
	}
	p.written.Add(uint64(len(frames)))
	return len(frames), nil
}

// dpGroup is a vif.Multi of dpPorts.
type dpGroup struct{ q []*dpPort }

func (g *dpGroup) Name() string { return "bench" }
func (g *dpGroup) Queues() []vif.Port {
	qs := make([]vif.Port, len(g.q))
	for i, q := range g.q {
		qs[i] = q
	}
	return qs
}
func (g *dpGroup) ReadBatch(b [][]byte, s []int, m []vif.Meta, o int) (int, error) {
	return g.q[0].ReadBatch(b, s, m, o)
}
func (g *dpGroup) WriteBatch(f [][]byte) (int, error) { return g.q[0].WriteBatch(f) }
func (g *dpGroup) Close() error {
	for _, q := range g.q {
		q.Close()
	}
	return nil
}
