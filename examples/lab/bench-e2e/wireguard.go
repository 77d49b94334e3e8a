//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vifsec/vifsec/examples/lab"
)

// wgMTU is the wireguard-go TUN's MTU: the uplink's 1500 less what
// WireGuard adds over an IPv4 underlay (IPv4 20 + UDP 8 + header 16 +
// tag 16 = 60). wg-quick's default of 1420 assumes an IPv6 underlay.
const wgMTU = 1440

// wireguardGo returns the wireguard-go binary to run: flagValue, or the
// one make bench-e2e installs under bin.
func wireguardGo(bin, flagValue string) (string, error) {
	p := flagValue
	if p == "" {
		p = filepath.Join(bin, "wireguard-go", "wireguard")
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("wireguard-go: %s missing: run make bench-e2e (it installs wireguard-go), or pass --wireguard-go PATH", p)
	}
	return p, nil
}

// cpuMeter measures the CPU of a set of processes over an interval, in
// cores (1.0 = one CPU busy all the time).
type cpuMeter struct {
	pids   []int
	before []int64
	start  time.Time
}

func startCPU(pids []int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: time.Now()}
	for _, pid := range pids {
		t, _ := lab.CPUTicks(pid)
		m.before = append(m.before, t)
	}
	return m
}

// cores returns each process's cores since startCPU.
func (m *cpuMeter) cores() []float64 {
	wall := time.Since(m.start).Seconds()
	var c []float64
	for i, pid := range m.pids {
		t, _ := lab.CPUTicks(pid)
		c = append(c, float64(t-m.before[i])/lab.ClockTicks/wall)
	}
	return c
}

// wireguard runs the wireguard-go case: the gateways route VM a's
// traffic to VM b through wireguard-go over the uplink.
func (bn *bench) wireguard() (r *result) {
	r = &result{name: "wireguard-go", note: fmt.Sprintf("wireguard-go (routed: proxy ARP + /32 routes in the gateways, TUN MTU %d) over the IPv4 underlay %s <-> %s", wgMTU, lab.UnderlayAddr("a"), lab.UnderlayAddr("b"))}
	progress("wireguard-go: wireguard-go on a TUN in each gateway, the gateways' kernels route")
	w, err := lab.StartWireGuard(bn.ctx, bn.l, bn.wgBin, filepath.Join(bn.tmp, "wireguard"), wgMTU, []*lab.VM{bn.a})
	defer func() {
		if w == nil {
			return
		}
		if bn.keep != "" {
			for _, l := range w.Logs() {
				copyFile(l, filepath.Join(bn.keep, filepath.Base(l)))
			}
		}
		if err := w.Close(); err != nil && r.err == nil && bn.ctx.Err() == nil {
			r.err = err
		}
	}()
	if err != nil {
		r.err = err
		return r
	}
	if r.err = bn.reach(bn.a.NS, bn.b.IP4); r.err != nil {
		return r
	}
	pids := w.PIDs()
	tx0, _ := w.TxBytes(bn.ctx, bn.a.Gateway)
	r.busy = bn.settle()
	m := startCPU([]int{pids["a"], pids["b"]})
	r.res, r.err = bn.iperf(r, bn.a.IP4, bn.b.IP4)
	c := m.cores()
	r.cpuA, r.cpuB = 100*c[0], 100*c[1]
	if r.err != nil {
		return r
	}
	tx, err := w.TxBytes(bn.ctx, bn.a.Gateway)
	if err != nil {
		r.err = err
		return r
	}
	got := float64(tx-tx0) * 8 / 1e9 / bn.dur.Seconds()
	r.note += fmt.Sprintf("; gw a wireguard-go sent %.2f Gbit/s", got)
	if got < r.res.Gbps/2 {
		r.err = fmt.Errorf("wireguard-go on gateway a sent %d bytes, iperf3 %.2f Gbit/s: traffic bypassed the tunnel", tx-tx0, r.res.Gbps)
	}
	return r
}
