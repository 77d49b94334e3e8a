package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// runDatapath measures the data path in memory: -vms VMs, each with its
// own aes128-gcm SA pair in transport mode and one flow, frames of -size
// bytes, outbound (VIF → ESP on the uplink) and inbound (ESP from the
// uplink → VIF), with GOMAXPROCS=1 and one queue and worker per port,
// then GOMAXPROCS=2 and two, and prints the ratio. As a PACKET_FANOUT
// hash group would, each VM's flow (outbound) and each SA (inbound)
// stays on one queue, VM i's on queue i mod K: the load of a host with
// several VMs spread over the workers. The ports replay prepared frames
// and count what is written: the cost measured is the engine's, not a
// socket's. Beside frames per second it prints the CPU time the process
// used: on a machine other work keeps busy, frames per CPU-second tell
// whether two workers do as much each as one alone. Every measurement
// runs -runs times; the ratio compares the best of each.
//
// With -single (the default) the same is measured for one flow alone:
// one VM's frames on one SA outbound and inbound (-vms 1), and "tso",
// one VM whose VIF takes virtio-net headers sending 64 KB TCP
// super-frames that the engine segments and seals (its ESP packets per
// second, and Gbit/s of ESP on the uplink). A VM's VIF has one queue and
// an SA stays on one uplink queue, so what a second core adds there is
// the crypto pool's, not a second worker's.
func runDatapath(args []string) error {
	fs := flag.NewFlagSet("datapath", flag.ContinueOnError)
	size := fs.Int("size", 1400, "Ethernet frame size")
	dur := fs.Duration("time", 2*time.Second, "time per outbound measurement (inbound replays a fixed number of frames: -frames)")
	vms := fs.Int("vms", 2, "VMs, each with its own SAs and flow")
	frames := fs.Int("frames", 1<<18, "inbound: ESP frames in all (each can be read once: anti-replay)")
	runs := fs.Int("runs", 3, "rounds of every measurement; the best is compared")
	contention := fs.Bool("contention", false, "with 2 procs, record mutex and blocking contention and print how long workers waited in all")
	single := fs.Bool("single", true, "also measure one flow alone: outbound and inbound with one VM, and one VM's TSO super-frames (tso)")
	fs.IntVar(&dpCryptoHelpers, "crypto-helpers", -1, "the engines' crypto helpers, as vifsecd --crypto-helpers: -1 one per CPU beyond the first, 0 none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if dpCryptoHelpers < -1 {
		return fmt.Errorf("-crypto-helpers: %d out of range; use -1 (one per CPU beyond the first), 0 (none) or a number of helpers", dpCryptoHelpers)
	}
	if *vms < 1 || *vms > 250 {
		return fmt.Errorf("-vms: %d out of range; use 1 to 250", *vms)
	}
	if *runs < 1 || *runs > 100 {
		return fmt.Errorf("-runs: %d out of range; use 1 to 100", *runs)
	}
	if *size < 128 || *size > 9000 {
		return fmt.Errorf("-size: %d out of range; use 128 to 9000", *size)
	}
	// Rounds alternate 1 and 2 procs, so that both see the same spells
	// of other work; the best of each is compared (other work only
	// ever slows a run down).
	type dpCase struct {
		dir string
		vms int
	}
	cases := []dpCase{{"outbound", *vms}, {"inbound", *vms}}
	if *single {
		cases = append(cases, dpCase{"outbound", 1}, dpCase{"inbound", 1}, dpCase{"tso", 1})
	}
	name := func(c dpCase) string { return fmt.Sprintf("%s vms=%d", c.dir, c.vms) }
	best := map[string][2]dpResult{}
	for round := range *runs {
		for i, procs := range []int{1, 2} {
			prev := runtime.GOMAXPROCS(procs)
			if *contention && procs == 2 {
				runtime.SetMutexProfileFraction(1)
				runtime.SetBlockProfileRate(1)
			}
			for _, c := range cases {
				r, err := dpRun(c.dir, procs, c.vms, *size, *frames, *dur)
				if err != nil {
					return err
				}
				bs := best[name(c)]
				if r.pps > bs[i].pps {
					bs[i] = r
				}
				best[name(c)] = bs
				fmt.Printf("datapath %s round=%d gomaxprocs=%d workers=%d vms=%d size=%d pps=%.0f gbps=%.2f cores=%.2f pps_per_core=%.0f dropped=%d\n",
					c.dir, round+1, procs, procs, c.vms, *size, r.pps, r.gbps, r.cores, r.pps/r.cores, r.drops)
			}
			runtime.GOMAXPROCS(prev)
			runtime.SetMutexProfileFraction(0)
			runtime.SetBlockProfileRate(0)
		}
	}
	if *contention {
		printContention()
	}
	for _, c := range cases {
		r := best[name(c)]
		fmt.Printf("datapath %s ratio 2/1 = %.2f (best of %d: %.0f/%.0f pps on %.2f/%.2f cores; per core %.2f)\n", name(c), r[1].pps/r[0].pps, *runs,
			r[1].pps, r[0].pps, r[1].cores, r[0].cores, (r[1].pps/r[1].cores)/(r[0].pps/r[0].cores))
	}
	return nil
}

// dpCryptoHelpers is -crypto-helpers, given to every engine dpEngine makes.
var dpCryptoHelpers = -1

type dpResult struct {
	pps   float64
	gbps  float64 // frames of -size bytes, or (tso) the ESP frames' bytes
	cores float64 // CPU time the process used / wall time
	drops uint64
}

// dpMAC is VM i's MAC (side 0xa) or its peer's (0xb).
func dpMAC(side byte, i int) header.MAC {
	return header.MAC{0x52, 0x54, 0, side, byte(i >> 8), byte(i)}
}

// dpAddr is VM i's address (side 0xa) or its peer's (0xb).
func dpAddr(side byte, i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, side, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
}

// dpVM is one bench VM: its flow's frame as the VM sends it, and its SAs.
type dpVM struct {
	plain   []byte
	out, in *sa.SA
}

// dpSA is VM i's SA in direction dir (SPI 0x1000+i out, 0x2000+i in);
// the peer's outbound SA is the VM's inbound one's twin (in true).
func dpSA(i int, dir sa.Direction, in bool, src, dst netip.Addr) (*sa.SA, error) {
	spi := 0x1000 + uint32(i)
	if in {
		spi += 0x1000
	}
	return sa.New(sa.Config{Name: fmt.Sprintf("bench%d-%s", i, dir), Scope: sa.Scope{MAC: dpMAC(0xa, i)}, SPI: spi, Dir: dir,
		Src: src, Dst: dst, Mode: sa.ModeTransport, Enc: sa.EncAES128GCM, EncKey: satest.Key(20, byte(i)), Integ: sa.IntegNone, ReplayWindow: 4096})
}

// dpRun measures one direction with k queues and workers per port (k
// uplink queues and one VIF queue for tso).
func dpRun(dir string, k, vms, size, frames int, d time.Duration) (dpResult, error) {
	tso := dir == "tso"
	var bvms []dpVM
	for i := range vms {
		local, remote := dpAddr(0xa, i), dpAddr(0xb, i)
		plain := make([]byte, size)
		n := satest.UDP(plain, 14, local, remote, 1000, 2000, size-14-48)
		vmMAC, peerMAC := dpMAC(0xa, i), dpMAC(0xb, i)
		copy(plain[0:6], peerMAC[:])
		copy(plain[6:12], vmMAC[:])
		binary.BigEndian.PutUint16(plain[12:], 0x86dd)
		v := dpVM{plain: plain[:14+n]}
		var err error
		if v.out, err = dpSA(i, sa.DirOut, false, local, remote); err != nil {
			return dpResult{}, err
		}
		if v.in, err = dpSA(i, sa.DirIn, true, remote, local); err != nil {
			return dpResult{}, err
		}
		bvms = append(bvms, v)
	}
	vifQ := k
	if tso {
		vifQ = 1 // a VIF has one queue (internal/attach)
	}
	vifs := make([][]*dpPort, vms)
	for i := range vifs {
		for range vifQ {
			vifs[i] = append(vifs[i], &dpPort{})
		}
	}
	upQ := make([]*dpPort, k)
	for q := range upQ {
		upQ[q] = &dpPort{}
	}
	var counted []*dpPort
	switch dir {
	case "tso":
		// 64000 bytes of TCP handed over as a TSO guest does (partial
		// checksum, gso_size 1448): the engine cuts it to fit the MTU
		// after ESP.
		p := offloadtest.Packet{Src: dpAddr(0xa, 0), Dst: dpAddr(0xb, 0), Seq: 1000, Flags: 0x18, Payload: make([]byte, 64000)}
		f, h := offloadtest.Super(p, 1448, true, false)
		vmMAC, peerMAC := dpMAC(0xa, 0), dpMAC(0xb, 0)
		copy(f[0:6], peerMAC[:])
		copy(f[6:12], vmMAC[:])
		fr := make([]byte, vif.VnetHdrLen+len(f))
		h.Put(fr)
		copy(fr[vif.VnetHdrLen:], f)
		vifs[0][0].frames = [][]byte{fr}
		counted = upQ
	case "outbound":
		for i, v := range bvms {
			vifs[i][i%k].frames = [][]byte{v.plain}
		}
		counted = upQ
	default:
		// ESP from each VM's peer, sealed with the VM's inbound SA's
		// twin, in order; VM i's on uplink queue i mod K.
		per := max(frames/vms, 1)
		for i := range bvms {
			peerOut, err := dpSA(i, sa.DirOut, true, dpAddr(0xb, i), dpAddr(0xa, i))
			if err != nil {
				return dpResult{}, err
			}
			q := upQ[i%k]
			for range per {
				f, err := dpSeal(peerOut, size, dpAddr(0xb, i), dpAddr(0xa, i), dpMAC(0xa, i), dpMAC(0xb, i))
				if err != nil {
					return dpResult{}, err
				}
				q.frames = append(q.frames, f)
			}
		}
		for _, q := range upQ {
			q.limit = uint64(len(q.frames))
			// Each queue's VMs' frames interleaved, as they would arrive.
			q.frames = interleave(q.frames, (vms+k-1-indexOf(upQ, q))/k)
		}
		for i := range vifs {
			counted = append(counted, vifs[i]...)
		}
	}
	// The previous run's frames are garbage: collect now, not while
	// measuring (the collector's CPU time would count as the engine's).
	runtime.GC()
	e := dpEngine(bvms, vifs, upQ, tso)
	total := func() (t uint64) {
		for _, p := range counted {
			t += p.written.Load()
		}
		return t
	}
	totalBytes := func() (t uint64) {
		for _, p := range counted {
			t += p.bytes.Load()
		}
		return t
	}
	// Warm up; inbound frames are few (each is read once), so briefly.
	warm := 50 * time.Millisecond
	if dir == "inbound" {
		warm = 5 * time.Millisecond
	}
	time.Sleep(warm)
	t0, c0, b0, cpu0 := time.Now(), total(), totalBytes(), cpuTime()
	deadline := t0.Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		// Inbound: until a queue has read all its frames, while every
		// worker still has work.
		if dir == "inbound" && anyDone(upQ) {
			break
		}
	}
	c1, b1, el, cpu1 := total(), totalBytes(), time.Since(t0), cpuTime()
	var drops uint64
	for i := range bvms {
		if st := e.Stats(fmt.Sprintf("bench%d", i)); st != nil {
			for j := range st.Drops {
				drops += st.Drops[j].Load()
			}
		}
	}
	e.Close()
	r := dpResult{pps: float64(c1-c0) / el.Seconds(), cores: (cpu1 - cpu0).Seconds() / el.Seconds(), drops: drops}
	r.gbps = r.pps * float64(size) * 8 / 1e9
	if tso {
		r.gbps = float64(b1-b0) * 8 / 1e9 / el.Seconds()
	}
	return r, nil
}

// dpSeal returns a size-byte frame's UDP packet from src to dst sealed
// with s, from peerMAC to vmMAC, as the VM's peer's gateway sends it.
func dpSeal(s *sa.SA, size int, src, dst netip.Addr, vmMAC, peerMAC header.MAC) ([]byte, error) {
	const room = 256
	buf := make([]byte, room+size+64)
	n := satest.UDP(buf, room, src, dst, 2000, 1000, size-14-48)
	var sc sa.Scratch
	start, end, d := esp.Encap(s, &sc, buf, room, n)
	if d != drop.None {
		return nil, fmt.Errorf("seal: %v", d)
	}
	f := buf[start-14 : end]
	copy(f[0:6], vmMAC[:])
	copy(f[6:12], peerMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	return bytes.Clone(f), nil
}

// interleave reorders frames, made VM by VM in runs of equal length, so
// the VMs' frames alternate; each VM's stay in order.
func interleave(frames [][]byte, vms int) [][]byte {
	if vms <= 1 {
		return frames
	}
	per := len(frames) / vms
	out := make([][]byte, 0, len(frames))
	for j := range per {
		for v := range vms {
			out = append(out, frames[v*per+j])
		}
	}
	return out
}

func indexOf(ps []*dpPort, p *dpPort) int {
	for i, q := range ps {
		if q == p {
			return i
		}
	}
	return -1
}

// printContention prints the mutex and blocking profiles' totals and
// their biggest entries, by the innermost vifsec function in the stack.
func printContention() {
	for _, name := range []string{"mutex", "block"} {
		var recs []runtime.BlockProfileRecord
		n, _ := runtime.BlockProfile(nil)
		if name == "mutex" {
			n, _ = runtime.MutexProfile(nil)
		}
		recs = make([]runtime.BlockProfileRecord, n+16)
		if name == "mutex" {
			n, _ = runtime.MutexProfile(recs)
		} else {
			n, _ = runtime.BlockProfile(recs)
		}
		by := map[string]int64{}
		var total int64
		for _, r := range recs[:n] {
			total += r.Cycles
			where := "?"
			frames := runtime.CallersFrames(r.Stack())
			for {
				f, more := frames.Next()
				if strings.Contains(f.Function, "vifsec/") {
					where = f.Function
					break
				}
				if !more {
					break
				}
			}
			by[where] += r.Cycles
		}
		fmt.Printf("datapath contention %s: %d events, %.1f ms in all\n", name, n, float64(total)/cyclesPerMs())
		type kv struct {
			k string
			v int64
		}
		var top []kv
		for k, v := range by {
			top = append(top, kv{k, v})
		}
		sort.Slice(top, func(i, j int) bool { return top[i].v > top[j].v })
		for _, e := range top[:min(5, len(top))] {
			fmt.Printf("datapath contention %s   %.1f ms %s\n", name, float64(e.v)/cyclesPerMs(), e.k)
		}
	}
}

// cyclesPerMs is how many of the profiles' cycles make a millisecond,
// as runtime/pprof states it in the mutex profile's text form.
func cyclesPerMs() float64 {
	var b bytes.Buffer
	if err := pprof.Lookup("mutex").WriteTo(&b, 1); err == nil {
		for _, l := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(l, "cycles/second="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
					return f / 1000
				}
			}
		}
	}
	return 1e6 // unknown: about 1 GHz
}

// cpuTime is the CPU time (user and system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func anyDone(ps []*dpPort) bool {
	for _, p := range ps {
		if p.done.Load() {
			return true
		}
	}
	return false
}

// dpEngine makes the engine; tso: VIFs take virtio-net headers and the
// policies cover TCP too.
func dpEngine(vms []dpVM, vifs [][]*dpPort, upQ []*dpPort, tso bool) *datapath.Engine {
	db := sa.NewDB(0)
	var sas []*sa.SA
	for _, v := range vms {
		sas = append(sas, v.out, v.in)
	}
	if err := db.Apply(sas, nil); err != nil {
		panic(err)
	}
	e := datapath.New(db, nil)
	e.SetCryptoHelpers(dpCryptoHelpers)
	proto := tenant.ProtoUDP
	if tso {
		proto = tenant.ProtoAny
	}
	pol := func(vm string, dir sa.Direction, src, dst netip.Addr) tenant.Policy {
		return tenant.Policy{Name: "p-" + dir.String(), VM: vm, Src: netip.PrefixFrom(src, 128), Dst: netip.PrefixFrom(dst, 128),
			SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: proto, Direction: dir, Action: tenant.ActionIPsec, Mode: 1}
	}
	var dvms []datapath.VM
	for i, v := range vms {
		name := fmt.Sprintf("bench%d", i)
		local, remote := dpAddr(0xa, i), dpAddr(0xb, i)
		dvms = append(dvms, datapath.VM{Name: name, Port: &dpGroup{vifs[i]}, MAC: dpMAC(0xa, i), DefaultAction: tenant.ActionNone,
			Policies: []tenant.Policy{pol(name, sa.DirOut, local, remote), pol(name, sa.DirIn, remote, local)},
			SAs:      []*sa.SA{v.out, v.in}, VnetHdr: tso})
	}
	e.Update(dvms)
	e.SetUplink(&dpGroup{upQ}, 0)
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
	bytes   atomic.Uint64
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
	var b int
	for _, f := range frames {
		b += len(f)
	}
	p.bytes.Add(uint64(b))
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
