//go:build linux

package main

// bench-e2e --scale: N VM pairs (pair i: tenant pN's VM on gateway a to
// its VM on gateway b, addresses of its own), one iperf3 TCP stream each,
// all at once, for N = 1, 2, 4, … up to the CPUs, on the lab bench-e2e
// uses (lab.BuildTenants with lab.PairTenants) and with the same gateway
// set-ups (bridges, vifsecd, wireguard-go). Per case and N it prints:
//
//	scale CASE pairs=N gbps=SUM min_pair_gbps=M retransmits=R ofo=O reorder=S gw_a_cores=CA gw_b_cores=CB softirq_cores=SI busy_cores=B
//
// gw_*_cores is the forwarding process's CPU (vifsecd, wireguard-go)
// from /proc/PID/stat; for plain, where the kernel forwards, it is n/a
// and softirq_cores (machine-wide, /proc/stat) is where that work shows.
// ofo is the receivers' TcpExtTCPOFOQueue delta (segments queued out of
// order), reorder the senders' TcpExtTCPSACKReorder+TCPTSReorder delta
// (reordering TCP detected), both summed over the pairs' namespaces.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vifsec/vifsec/examples/lab"
)

var scaleCases = []string{"plain", "none", "aes128-gcm", "wireguard-go"}

// pairCounts parses --pairs, or makes 1, 2, 4, … up to n CPUs (and n).
func pairCounts(flagValue string, n int) ([]int, error) {
	var counts []int
	if flagValue == "" {
		for c := 1; c < n; c *= 2 {
			counts = append(counts, c)
		}
		return append(counts, n), nil
	}
	for _, f := range strings.Split(flagValue, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > lab.MaxPairs {
			return nil, fmt.Errorf("--pairs: %q is not a pair count from 1 to %d", f, lab.MaxPairs)
		}
		counts = append(counts, c)
	}
	sort.Ints(counts)
	return counts, nil
}

// scaleSetup is one case's gateways, set up for all pairs.
type scaleSetup struct {
	pids  []int                  // forwarding processes on gateways a and b; none for plain
	check func(n int) error      // after a run with n pairs: the traffic took the case's path
	stop  func() error           // undoes the set-up
	note  string                 // what the case is
	stats func() (uint64, error) // bytes the case's path carried from a to b so far
}

type scaleRow struct {
	gbps, minGbps       float64
	retrans, ofo, reord int64
	cores               []float64
	softirq, busy       float64
	err                 error
}

func runScale(ctx context.Context, pairsFlag string, dur time.Duration, mode, wgBin string, waitIdle time.Duration, keep string) (err error) {
	counts, err := pairCounts(pairsFlag, runtime.NumCPU())
	if err != nil {
		return err
	}
	if err := preflight(map[string]bool{"wireguard-go": true}, ""); err != nil {
		return err
	}
	bin, err := lab.Binaries()
	if err != nil {
		return err
	}
	for _, b := range []string{"vifsecd", "vifsec"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s missing: run make build", filepath.Join(bin, b))
		}
	}
	if wgBin, err = wireguardGo(bin, wgBin); err != nil {
		return err
	}
	maxN := counts[len(counts)-1]
	tenants, err := lab.PairTenants(maxN)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "vifsec-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	progress(fmt.Sprintf("scale lab: 2 gateways, %d VM pairs (eth0 MTU 1500, tx/tso/gso on), uplink veth", maxN))
	l, err := lab.BuildTenants(ctx, fmt.Sprintf("bs%d", os.Getpid()%10000), tenants)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
		progress("teardown: namespaces removed")
	}()
	var as []*lab.VM
	for _, t := range tenants {
		as = append(as, l.VM(t.Name, "a"))
	}
	bn := &bench{ctx: ctx, l: l, bin: bin, tmp: tmp, dur: dur, mode: mode, keep: keep, idle: waitIdle, wgBin: wgBin,
		a: as[0], b: l.VM(tenants[0].Name, "b")}

	fmt.Printf("# iperf3 TCP %s per run; N pairs p1..pN (VM a 192.0.2.(2i-1) -> VM b 192.0.2.2i), one stream each, all at once; vifsec mode %s; %d CPUs\n",
		dur, mode, runtime.NumCPU())
	fmt.Printf("# cores: CPU time / wall time (1 = one CPU); gw cores = the forwarding process (vifsecd, wireguard-go), n/a where the kernel forwards; softirq and busy are machine-wide\n")
	failed := 0
	for _, c := range scaleCases {
		progress(fmt.Sprintf("scale %s: setting up %d pairs", c, maxN))
		s, err := bn.scaleSetup(c, as)
		if err == nil {
			fmt.Printf("# %s: %s\n", c, s.note)
			for _, vm := range as {
				if err = bn.reach(vm.NS, l.VM(vm.Tenant, "b").IP4); err != nil {
					break
				}
			}
		}
		if err != nil {
			failed++
			fmt.Printf("scale %s error=%q\n", c, err.Error())
		} else {
			for _, n := range counts {
				if ctx.Err() != nil {
					break
				}
				progress(fmt.Sprintf("scale %s: %d pairs", c, n))
				row := bn.scaleRun(s, as[:n])
				if row.err != nil {
					failed++
					fmt.Printf("scale %s pairs=%d error=%q\n", c, n, row.err.Error())
					continue
				}
				gw := "gw_a_cores=n/a gw_b_cores=n/a"
				if len(row.cores) == 2 {
					gw = fmt.Sprintf("gw_a_cores=%.2f gw_b_cores=%.2f", row.cores[0], row.cores[1])
				}
				fmt.Printf("scale %s pairs=%d gbps=%.3f min_pair_gbps=%.3f retransmits=%d ofo=%d reorder=%d %s softirq_cores=%.2f busy_cores=%.2f\n",
					c, n, row.gbps, row.minGbps, row.retrans, row.ofo, row.reord, gw, row.softirq, row.busy)
			}
		}
		if s != nil && s.stop != nil {
			if serr := s.stop(); serr != nil && ctx.Err() == nil {
				failed++
				fmt.Printf("scale %s teardown error=%q\n", c, serr.Error())
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d measurements failed", failed)
	}
	return nil
}

// scaleSetup sets up case c's gateways for the pairs of as (VMs on
// gateway a).
func (bn *bench) scaleSetup(c string, as []*lab.VM) (*scaleSetup, error) {
	ctx := bn.ctx
	switch c {
	case "plain":
		var undo []func() error
		s := &scaleSetup{note: "Linux bridge in each gateway (all VM veths and the uplink, untagged), no vifsec"}
		s.stop = func() error {
			var first error
			for _, u := range undo {
				if err := u(); err != nil && first == nil {
					first = err
				}
			}
			return first
		}
		for _, gw := range bn.l.Gateways {
			if err := lab.RemoveGuards(ctx, gw); err != nil {
				return s, err
			}
			devs := []string{gw.Uplink}
			for _, vm := range gw.VMs {
				devs = append(devs, vm.Dev)
			}
			u, err := lab.BridgeGateway(ctx, gw, "br0", devs...)
			if err != nil {
				return s, err
			}
			undo = append(undo, u)
		}
		s.check = func(int) error { return nil }
		return s, nil
	case "none", "aes128-gcm":
		p := lab.BenchPolicy{Action: "ipsec", Enc: c, Mode: bn.mode}
		note := fmt.Sprintf("vifsecd ESP %s, %s mode, each pair its own tenant (VLAN) and SAs", c, bn.mode)
		if c == "none" {
			p = lab.BenchPolicy{Action: "none", Mode: bn.mode}
			note = "vifsecd, SPs --action none (bump in the wire), each pair its own tenant (VLAN)"
		}
		ds, pids, err := bn.startVifsecd("scale-"+c, as, p, nil)
		s := &scaleSetup{note: note, pids: pids}
		s.stop = func() error {
			var first error
			for _, d := range ds {
				if err := d.Stop(); err != nil && first == nil && ctx.Err() == nil {
					first = fmt.Errorf("vifsecd on gateway %s: unclean exit: %v", d.GW.Name, err)
				}
				if bn.keep != "" {
					copyFile(d.Log, filepath.Join(bn.keep, "vifsecd-scale-"+c+"-"+d.GW.Name+".log"))
				}
			}
			return first
		}
		if err != nil {
			return s, err
		}
		s.stats = func() (uint64, error) {
			out, err := ds[0].CLI(ctx, "--format", "json", "stats")
			if err != nil {
				return 0, err
			}
			var all []lab.VMStats
			if err := json.Unmarshal([]byte(out), &all); err != nil {
				return 0, fmt.Errorf("vifsec stats: %w", err)
			}
			var n uint64
			for _, st := range all {
				if c == "none" {
					n += st.BytesOut
					continue
				}
				for _, sa := range st.SAs {
					if sa.Direction == "out" {
						n += sa.Bytes
					}
				}
			}
			return n, nil
		}
		return s, nil
	case "wireguard-go":
		w, err := lab.StartWireGuard(ctx, bn.l, bn.wgBin, filepath.Join(bn.tmp, "scale-wireguard"), wgMTU, as)
		s := &scaleSetup{note: fmt.Sprintf("wireguard-go in each gateway (routed: proxy ARP + /32 routes; TUN MTU %d), one peer, the pairs' /32s as allowed IPs", wgMTU)}
		if w != nil {
			s.stop = func() error {
				if bn.keep != "" {
					for _, l := range w.Logs() {
						copyFile(l, filepath.Join(bn.keep, "scale-"+filepath.Base(l)))
					}
				}
				return w.Close()
			}
		}
		if err != nil {
			return s, err
		}
		pids := w.PIDs()
		s.pids = []int{pids["a"], pids["b"]}
		s.stats = func() (uint64, error) { return w.TxBytes(ctx, bn.l.Gateways[0]) }
		return s, nil
	}
	return nil, fmt.Errorf("no scale case %q", c)
}

// scaleRun runs one iperf3 stream per pair of as, all at once.
func (bn *bench) scaleRun(s *scaleSetup, as []*lab.VM) (row scaleRow) {
	ctx := bn.ctx
	var recv, send []string
	for _, vm := range as {
		send = append(send, vm.NS)
		recv = append(recv, bn.l.VM(vm.Tenant, "b").NS)
	}
	bn.settle()
	ofo0, err := tcpExtSum(ctx, recv, "TCPOFOQueue")
	if err != nil {
		row.err = err
		return row
	}
	reord0, err := tcpExtSum(ctx, send, "TCPSACKReorder", "TCPTSReorder")
	if err != nil {
		row.err = err
		return row
	}
	var bytes0 uint64
	if s.stats != nil {
		if bytes0, row.err = s.stats(); row.err != nil {
			return row
		}
	}
	st0, err := readProcStat()
	if err != nil {
		row.err = err
		return row
	}
	m := startCPU(s.pids)
	res := make([]lab.IperfResult, len(as))
	errs := make([]error, len(as))
	var wg sync.WaitGroup
	for i, vm := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := bn.l.VM(vm.Tenant, "b")
			res[i], errs[i] = lab.Iperf3(ctx, b.NS, vm.NS, vm.IP4, b.IP4, bn.dur)
		}()
	}
	wg.Wait()
	st1, _ := readProcStat()
	row.cores = m.cores()
	wall := time.Since(m.start).Seconds()
	row.softirq = float64(st1.softirq-st0.softirq) / lab.ClockTicks / wall
	row.busy = float64(st1.busy-st0.busy) / lab.ClockTicks / wall
	for i, r := range res {
		if errs[i] != nil {
			row.err = fmt.Errorf("pair %s: %w", as[i].Tenant, errs[i])
			return row
		}
		row.gbps += r.Gbps
		row.retrans += int64(r.Retransmits)
		if i == 0 || r.Gbps < row.minGbps {
			row.minGbps = r.Gbps
		}
	}
	ofo1, err := tcpExtSum(ctx, recv, "TCPOFOQueue")
	if err != nil {
		row.err = err
		return row
	}
	reord1, err := tcpExtSum(ctx, send, "TCPSACKReorder", "TCPTSReorder")
	if err != nil {
		row.err = err
		return row
	}
	row.ofo, row.reord = ofo1-ofo0, reord1-reord0
	if s.stats != nil {
		bytes1, err := s.stats()
		if err != nil {
			row.err = err
			return row
		}
		// The case's path carried the traffic: at least half of what
		// iperf3 counted went through vifsec's SAs (VMs) or the tunnel.
		if got := float64(bytes1-bytes0) * 8 / 1e9 / bn.dur.Seconds(); got < row.gbps/2 {
			row.err = fmt.Errorf("gateway a's vifsecd or wireguard-go carried %.2f Gbit/s, iperf3 %.2f: traffic bypassed it", got, row.gbps)
		}
	}
	return row
}

// tcpExtSum sums TcpExt counters of /proc/net/netstat over namespaces.
func tcpExtSum(ctx context.Context, nss []string, names ...string) (int64, error) {
	var sum int64
	for _, ns := range nss {
		out, err := lab.Exec(ctx, ns, "cat", "/proc/net/netstat")
		if err != nil {
			return 0, fmt.Errorf("/proc/net/netstat in %s: %v: %s", ns, err, out)
		}
		lines := strings.Split(string(out), "\n")
		found := 0
		for i := 0; i+1 < len(lines); i++ {
			if !strings.HasPrefix(lines[i], "TcpExt:") || !strings.HasPrefix(lines[i+1], "TcpExt:") {
				continue
			}
			keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			for k := 1; k < len(keys) && k < len(vals); k++ {
				for _, n := range names {
					if keys[k] == n {
						v, err := strconv.ParseInt(vals[k], 10, 64)
						if err != nil {
							return 0, fmt.Errorf("/proc/net/netstat in %s: %s=%q", ns, n, vals[k])
						}
						sum += v
						found++
					}
				}
			}
			break
		}
		if found != len(names) {
			return 0, fmt.Errorf("/proc/net/netstat in %s: found %d of TcpExt %s", ns, found, strings.Join(names, ", "))
		}
	}
	return sum, nil
}

// procStat is the machine's CPU time in /proc/stat's first line, in clock
// ticks: busy (all but idle and iowait) and softirq.
type procStat struct{ busy, softirq int64 }

func readProcStat() (procStat, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return procStat{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return procStat{}, fmt.Errorf("malformed /proc/stat: %q", line)
	}
	var s procStat
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("malformed /proc/stat: %q", line)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// guest time is already in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		s.busy += n
		if i == 6 {
			s.softirq = n
		}
	}
	return s, nil
}
