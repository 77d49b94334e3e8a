package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Helpers of the end-to-end benchmark (examples/lab/bench-e2e): a Linux
// bridge as the no-vifsec baseline, vifsec configured per cipher and
// action, iperf3 between VMs, and the daemon's memory and CPU from /proc.

// BenchPolicy is what ConfigureBench installs for one VM.
type BenchPolicy struct {
	Action string // "none" (bump in the wire) or "ipsec"
	Enc    string // with ipsec: aes128-gcm, aes256-gcm or chacha20-poly1305
	Mode   string // transport or tunnel
	VXLAN  bool   // over the VXLAN underlay (the uplinks need AddUnderlay)
	// Encap is the SAs' --encapsulation: "" or none (ESP, IP protocol
	// 50), udp (ESP in UDP to 4500, which vifsecd sends as UDP GSO trains).
	Encap string
}

// benchKeyLen is the AEAD key length with its 4-byte salt (RFC 4106, RFC 7634).
var benchKeyLen = map[string]int{"aes128-gcm": 20, "aes256-gcm": 36, "chacha20-poly1305": 36}

// benchKey is a fixed key for alg, different per SPI.
func benchKey(alg string, spi uint32) (string, error) {
	n, ok := benchKeyLen[alg]
	if !ok {
		return "", fmt.Errorf("bench: --encryption-algorithm %q: use aes128-gcm, aes256-gcm or chacha20-poly1305", alg)
	}
	var b strings.Builder
	b.WriteString("0x")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%02x", byte(i*29+7)^byte(spi>>8)^byte(spi))
	}
	return b.String(), nil
}

// ConfigureBench tells gateway d's vifsecd, through the CLI, to protect
// (ipsec) or pass (none) all traffic of vm with the VM of its tenant on
// the other gateway, IPv6 and IPv4, printing each command to w (nil: quiet).
// It is lab.Configure without the demo's exceptions and with the cipher
// and action as parameters.
func ConfigureBench(ctx context.Context, l *Lab, d *Daemon, vm *VM, p BenchPolicy, w io.Writer) error {
	return ConfigureBenchVMs(ctx, l, d, []*VM{vm}, p, w)
}

// ConfigureBenchVMs is ConfigureBench for several VMs of d's gateway,
// each of its own tenant; SA and SP names carry the tenant's name.
func ConfigureBenchVMs(ctx context.Context, l *Lab, d *Daemon, vms []*VM, p BenchPolicy, w io.Writer) error {
	say := func(args ...string) error {
		if w != nil {
			fmt.Fprintf(w, "    $ vifsec %s\n", strings.Join(args, " "))
		}
		_, err := d.CLI(ctx, args...)
		return err
	}
	if p.Action != "none" && p.Action != "ipsec" {
		return fmt.Errorf("bench: action %q: use none or ipsec", p.Action)
	}
	gw := d.GW
	uplink := []string{"uplink", "set", "--dev", gw.Uplink}
	if p.VXLAN {
		uplink = append(uplink, "--overlay", "vxlan", "--vxlan-local", UnderlayAddr(gw.Name).String())
	}
	if err := say(uplink...); err != nil {
		return err
	}
	for _, vm := range vms {
		if err := configureBenchVM(l, vm, p, say); err != nil {
			return err
		}
	}
	return nil
}

func configureBenchVM(l *Lab, vm *VM, p BenchPolicy, say func(args ...string) error) error {
	gw := vm.Gateway
	other := map[string]string{"a": "b", "b": "a"}[gw.Name]
	peer := l.VM(vm.Tenant, other)
	if peer == nil {
		return fmt.Errorf("bench: no %s VM on gateway %s", vm.Tenant, other)
	}
	tenantAdd := []string{"tenant", "add", "--tenant", vm.Tenant}
	if p.VXLAN {
		tenantAdd = append(tenantAdd, "--vni", fmt.Sprint(VNI(vm.Tenant)))
	}
	if err := say(tenantAdd...); err != nil {
		return err
	}
	if p.VXLAN {
		if err := say("overlay", "fdb", "add", "--tenant", vm.Tenant, "--mac", peer.MAC, "--remote", UnderlayAddr(other).String()); err != nil {
			return err
		}
	}
	if err := say("vm", "attach", "--vm", vm.Name, "--tenant", vm.Tenant, "--dev", vm.Dev, "--mac", vm.MAC,
		"--vlan", fmt.Sprint(vm.VLAN), "--ip", vm.IP6.String(), "--ip", vm.IP4.String()); err != nil {
		return err
	}
	for _, fam := range []struct {
		name          string
		local, remote netip.Addr
	}{{"6", vm.IP6, peer.IP6}, {"4", vm.IP4, peer.IP4}} {
		l := netip.PrefixFrom(fam.local, fam.local.BitLen()).String()
		r := netip.PrefixFrom(fam.remote, fam.remote.BitLen()).String()
		out := []string{"--sp-source", l, "--sp-destination", r, "--flow-direction", "out"}
		in := []string{"--sp-source", r, "--sp-destination", l, "--flow-direction", "in"}
		if p.Action == "ipsec" {
			// SPIs as in the demo: 0x1000/0x1001 from a to b, 0x2000/0x2001 back.
			base := map[string]uint32{"a": 0x1000, "b": 0x2000}
			inc := map[string]uint32{"6": 0, "4": 1}[fam.name]
			outSPI, inSPI := base[gw.Name]+inc, base[other]+inc
			for _, s := range []struct {
				name     string
				spi      uint32
				src, dst netip.Addr
			}{{"out", outSPI, fam.local, fam.remote}, {"in", inSPI, fam.remote, fam.local}} {
				key, err := benchKey(p.Enc, s.spi)
				if err != nil {
					return err
				}
				args := []string{"sa", "add", "--vm", vm.Name, "--sa-source", s.src.String(), "--sa-destination", s.dst.String(),
					"--sa-mode", p.Mode, "--sa-spi", fmt.Sprintf("0x%x", s.spi), "--encryption-algorithm", p.Enc,
					"--encryption-key", key, "--integrity-algorithm", "none", "--sa-name", "bench-" + vm.Tenant + "-" + s.name + fam.name}
				if p.Encap != "" {
					args = append(args, "--encapsulation", p.Encap)
				}
				if err := say(args...); err != nil {
					return err
				}
			}
			out = append(out, "--sa-name", "bench-"+vm.Tenant+"-out"+fam.name)
			in = append(in, "--sa-name", "bench-"+vm.Tenant+"-in"+fam.name)
		}
		for _, sp := range []struct {
			dir  string
			args []string
		}{{"out", out}, {"in", in}} {
			args := append([]string{"sp", "add", "--vm", vm.Name}, sp.args...)
			args = append(args, "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "any",
				"--action", p.Action, "--sp-mode", p.Mode, "--sp-name", "bench-sp-"+vm.Tenant+"-"+sp.dir+fam.name)
			if err := say(args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// VMStats is the part of one VM's `vifsec --format json stats` (api.Stats)
// the benchmark reads; decoding it here keeps the lab independent of the
// daemon's packages.
type VMStats struct {
	VM         string            `json:"vm"`
	PacketsIn  uint64            `json:"packets_in"`
	PacketsOut uint64            `json:"packets_out"`
	BytesIn    uint64            `json:"bytes_in"`
	BytesOut   uint64            `json:"bytes_out"`
	Drops      map[string]uint64 `json:"drops"`
	SAs        []struct {
		Name      string            `json:"name"`
		SPI       string            `json:"spi"`
		Direction string            `json:"direction"`
		Packets   uint64            `json:"packets"`
		Bytes     uint64            `json:"bytes"`
		Drops     map[string]uint64 `json:"drops"`
	} `json:"sas"`
}

// BenchStats returns the counters of one VM from `vifsec --format json stats`.
func BenchStats(ctx context.Context, d *Daemon, vm string) (*VMStats, error) {
	out, err := d.CLI(ctx, "--format", "json", "stats")
	if err != nil {
		return nil, err
	}
	var all []VMStats
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		return nil, fmt.Errorf("bench: vifsec stats: %w: %.200s", err, out)
	}
	for i := range all {
		if all[i].VM == vm {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("bench: vifsec stats has no VM %s", vm)
}

// BridgeGateway joins devs inside gateway gw's namespace with a Linux
// bridge named br (no STP: ports forward at once) and returns a function
// that removes it. It is the no-vifsec baseline of the same path.
func BridgeGateway(ctx context.Context, gw *Gateway, br string, devs ...string) (func() error, error) {
	if err := run(ctx, "ip", "-n", gw.NS, "link", "add", br, "type", "bridge", "stp_state", "0"); err != nil {
		return nil, err
	}
	del := func() error { return run(context.Background(), "ip", "-n", gw.NS, "link", "del", br) }
	for _, dev := range devs {
		if err := run(ctx, "ip", "-n", gw.NS, "link", "set", dev, "master", br); err != nil {
			del()
			return nil, err
		}
	}
	if err := run(ctx, "ip", "-n", gw.NS, "link", "set", br, "up"); err != nil {
		del()
		return nil, err
	}
	return del, nil
}

// IperfResult is one iperf3 TCP run.
type IperfResult struct {
	Gbps        float64 // received, as the receiver counted it
	SentGbps    float64
	Retransmits int
	CPUClient   float64 // iperf3's own host_total, percent of one core
	CPUServer   float64
}

// Iperf3 runs an iperf3 TCP test for dur from src in namespace cliNS to an
// iperf3 server on dst in namespace srvNS.
func Iperf3(ctx context.Context, srvNS, cliNS string, src, dst netip.Addr, dur time.Duration) (IperfResult, error) {
	var r IperfResult
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	srv := exec.CommandContext(sctx, "ip", "netns", "exec", srvNS, "iperf3", "-s", "-1", "-B", dst.String())
	var srvOut strings.Builder
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return r, fmt.Errorf("iperf3 server in %s: %w", srvNS, err)
	}
	srvDone := make(chan struct{})
	go func() { srv.Wait(); close(srvDone) }()
	defer func() { stop(); <-srvDone }()

	secs := strconv.Itoa(int(dur.Round(time.Second) / time.Second))
	var out []byte
	var err error
	for try := 0; ; try++ {
		// Until the server listens, the client gets "Connection refused".
		time.Sleep(200 * time.Millisecond)
		cctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
		out, err = exec.CommandContext(cctx, "ip", "netns", "exec", cliNS, "iperf3", "-c", dst.String(), "-B", src.String(),
			"-t", secs, "-J", "--connect-timeout", "3000").Output()
		cancel()
		if err == nil || try >= 10 || ctx.Err() != nil || !strings.Contains(string(out), "refused") {
			break
		}
	}
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				BPS         float64 `json:"bits_per_second"`
				Retransmits int     `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BPS float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			CPU struct {
				Host   float64 `json:"host_total"`
				Remote float64 `json:"remote_total"`
			} `json:"cpu_utilization_percent"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal(out, &j); jerr != nil {
		return r, fmt.Errorf("iperf3 %s -> %s: %v (%v): %.300s", src, dst, err, jerr, out)
	}
	if j.Error != "" || err != nil {
		return r, fmt.Errorf("iperf3 %s -> %s: %v: %s", src, dst, err, j.Error)
	}
	r.Gbps = j.End.SumReceived.BPS / 1e9
	r.SentGbps = j.End.SumSent.BPS / 1e9
	r.Retransmits = j.End.SumSent.Retransmits
	r.CPUClient, r.CPUServer = j.End.CPU.Host, j.End.CPU.Remote
	return r, nil
}

// DaemonPID finds d's vifsecd process: the one whose command line names
// d's socket (unique per daemon). StartDaemon runs it under `ip netns
// exec`, which execs in place, so this is the pid StartDaemon started.
func DaemonPID(d *Daemon) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "vifsecd" {
			continue
		}
		for _, a := range args {
			if a == d.Socket {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("bench: no vifsecd process with socket %s", d.Socket)
}

// ProcStatusKiB returns a "kB" field of /proc/PID/status, e.g. VmRSS.
func ProcStatusKiB(pid int, field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("bench: /proc/%d/status has no %s", pid, field)
}

// CPUTicks returns a process's user+system time in clock ticks
// (/proc/PID/stat fields 14 and 15, all threads).
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bench: malformed /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("bench: short /proc/PID/stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bench: malformed /proc/PID/stat times")
	}
	return u + st, nil
}

// ClockTicks is USER_HZ, the unit of CPUTicks (100 on every Linux ABI Go
// supports).
const ClockTicks = 100

// AttachMany creates n veth pairs (bvN, with peers bpN) in gateway gw's
// namespace and attaches each bvN to d as VM "benchvmN" of tenant
// "bench" (VLAN 300, its own MAC). The namespace's removal removes them.
func AttachMany(ctx context.Context, d *Daemon, n int) error {
	gw := d.GW
	var batch strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&batch, "link add bv%d type veth peer name bp%d\nlink set bv%d up\nlink set bp%d up\n", i, i, i, i)
	}
	cmd := exec.CommandContext(ctx, "ip", "-n", gw.NS, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: %d veth pairs in %s: %v: %s", n, gw.NS, err, out)
	}
	if _, err := d.CLI(ctx, "tenant", "add", "--tenant", "bench"); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if _, err := d.CLI(ctx, "vm", "attach", "--vm", fmt.Sprintf("benchvm%d", i), "--tenant", "bench",
			"--dev", fmt.Sprintf("bv%d", i), "--mac", fmt.Sprintf("52:54:00:be:%02x:%02x", i>>8, i&0xff), "--vlan", "300"); err != nil {
			return err
		}
	}
	return nil
}

// CPUBusy samples /proc/stat over d and returns how busy the machine's
// CPUs were, in percent of all of them: a benchmark on a shared machine
// says so when something else is running.
func CPUBusy(ctx context.Context, d time.Duration) (float64, error) {
	read := func() (busy, total uint64, err error) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0, err
		}
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			return 0, 0, errors.New("bench: malformed /proc/stat")
		}
		for i, s := range f[1:] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, 0, err
			}
			total += v
			if i != 3 && i != 4 { // idle, iowait
				busy += v
			}
		}
		return busy, total, nil
	}
	b0, t0, err := read()
	if err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	b1, t1, err := read()
	if err != nil {
		return 0, err
	}
	if t1 == t0 {
		return 0, nil
	}
	return 100 * float64(b1-b0) / float64(t1-t0), nil
}

// GuestOffloads are the features a guest hands the host super-frames and
// partial checksums with, by ethtool's short (-K) and long (-k) names, in
// the order ethtool -K takes them.
var GuestOffloads = []struct{ Short, Long string }{
	{"tx", "tx-checksumming"},
	{"tso", "tcp-segmentation-offload"},
	{"gso", "generic-segmentation-offload"},
}

// Offloads returns the state of each of GuestOffloads on dev in namespace
// ns, by short name, as `ethtool -k` reports it.
func Offloads(ctx context.Context, ns, dev string) (map[string]bool, error) {
	out, err := Exec(ctx, ns, "ethtool", "-k", dev)
	if err != nil {
		return nil, fmt.Errorf("bench: ethtool -k %s in %s: %v: %s", dev, ns, err, strings.TrimSpace(string(out)))
	}
	on := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		for _, f := range GuestOffloads {
			if name == f.Long {
				// "on", "off", "on [fixed]", "off [requested on]".
				on[f.Short] = strings.HasPrefix(strings.TrimSpace(v), "on")
			}
		}
	}
	for _, f := range GuestOffloads {
		if _, ok := on[f.Short]; !ok {
			return nil, fmt.Errorf("bench: ethtool -k %s in %s: no %s", dev, ns, f.Long)
		}
	}
	return on, nil
}

// SetOffloads sets GuestOffloads on dev in namespace ns to want (by short
// name; missing ones stay as they are) in one `ethtool -K` and checks
// that they took.
func SetOffloads(ctx context.Context, ns, dev string, want map[string]bool) error {
	args := []string{"ethtool", "-K", dev}
	for _, f := range GuestOffloads {
		if v, ok := want[f.Short]; ok {
			args = append(args, f.Short, map[bool]string{true: "on", false: "off"}[v])
		}
	}
	if out, err := Exec(ctx, ns, args...); err != nil {
		return fmt.Errorf("bench: %s in %s: %v: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	got, err := Offloads(ctx, ns, dev)
	if err != nil {
		return err
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("bench: %s in %s: %s is still %t", strings.Join(args, " "), ns, k, got[k])
		}
	}
	return nil
}

// GuestOffloadsOff runs `ethtool -K dev tso off gso off tx off` in
// namespace ns, so the guest hands over whole, checksummed frames no
// larger than its MTU, and returns a function that puts back the states
// the three had.
func GuestOffloadsOff(ctx context.Context, ns, dev string) (restore func() error, err error) {
	was, err := Offloads(ctx, ns, dev)
	if err != nil {
		return nil, err
	}
	if err := SetOffloads(ctx, ns, dev, map[string]bool{"tso": false, "gso": false, "tx": false}); err != nil {
		// Part of it may have taken.
		SetOffloads(context.Background(), ns, dev, was)
		return nil, err
	}
	return func() error { return SetOffloads(context.Background(), ns, dev, was) }, nil
}

// FormatOffloads prints GuestOffloads' states as ethtool -K would take
// them: "tx on tso on gso on".
func FormatOffloads(on map[string]bool) string {
	var parts []string
	for _, f := range GuestOffloads {
		parts = append(parts, f.Short, map[bool]string{true: "on", false: "off"}[on[f.Short]])
	}
	return strings.Join(parts, " ")
}

// LinkMTU returns dev's MTU in namespace ns.
func LinkMTU(ctx context.Context, ns, dev string) (int, error) {
	out, err := Exec(ctx, ns, "cat", "/sys/class/net/"+dev+"/mtu")
	if err != nil {
		return 0, fmt.Errorf("bench: MTU of %s in %s: %v: %s", dev, ns, err, strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

// TxCounters returns dev's transmitted packets and bytes in namespace ns.
// A veth counts a TSO/GSO super-frame as one packet, so bytes/packets
// above the MTU says the guest handed super-frames over.
func TxCounters(ctx context.Context, ns, dev string) (packets, bytes uint64, err error) {
	out, err := Exec(ctx, ns, "cat", "/sys/class/net/"+dev+"/statistics/tx_packets", "/sys/class/net/"+dev+"/statistics/tx_bytes")
	if err != nil {
		return 0, 0, fmt.Errorf("bench: tx counters of %s in %s: %v: %s", dev, ns, err, strings.TrimSpace(string(out)))
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("bench: tx counters of %s in %s: %q", dev, ns, out)
	}
	if packets, err = strconv.ParseUint(f[0], 10, 64); err == nil {
		bytes, err = strconv.ParseUint(f[1], 10, 64)
	}
	return packets, bytes, err
}

// UDPLoss is what an iperf3 UDP run at a fixed rate saw at the receiver.
type UDPLoss struct {
	Packets, Lost int
	OutOfOrder    int
}

// Iperf3UDP runs iperf3 over UDP at rate bits/s for dur from src in cliNS
// to a server on dst in srvNS (reverse: the server sends) and returns the
// receiver's packet and loss counts. during, if not nil, runs while the
// test is under way (rekeys, say); its error is returned.
func Iperf3UDP(ctx context.Context, srvNS, cliNS string, src, dst netip.Addr, rate int, dur time.Duration, reverse bool, during func() error) (UDPLoss, error) {
	var r UDPLoss
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	srv := exec.CommandContext(sctx, "ip", "netns", "exec", srvNS, "iperf3", "-s", "-1", "-B", dst.String())
	var srvOut strings.Builder
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return r, fmt.Errorf("iperf3 server in %s: %w", srvNS, err)
	}
	srvDone := make(chan struct{})
	go func() { srv.Wait(); close(srvDone) }()
	defer func() { stop(); <-srvDone }()
	time.Sleep(300 * time.Millisecond) // until the server listens
	args := []string{"netns", "exec", cliNS, "iperf3", "-c", dst.String(), "-B", src.String(), "-u", "-b", strconv.Itoa(rate),
		"-l", "1200", "-t", strconv.Itoa(int(dur.Round(time.Second) / time.Second)), "-J", "--connect-timeout", "3000"}
	if reverse {
		args = append(args, "-R")
	}
	cctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	cli := exec.CommandContext(cctx, "ip", args...)
	var out strings.Builder
	cli.Stdout = &out
	if err := cli.Start(); err != nil {
		return r, err
	}
	var duringErr error
	if during != nil {
		duringErr = during()
	}
	err := cli.Wait()
	var j struct {
		Error string `json:"error"`
		End   struct {
			Sum struct {
				Packets    int `json:"packets"`
				Lost       int `json:"lost_packets"`
				OutOfOrder int `json:"out_of_order"`
			} `json:"sum"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal([]byte(out.String()), &j); jerr != nil {
		return r, fmt.Errorf("iperf3 -u %s -> %s: %v (%v): %.300s", src, dst, err, jerr, out.String())
	}
	if j.Error != "" || err != nil {
		return r, fmt.Errorf("iperf3 -u %s -> %s: %v: %s", src, dst, err, j.Error)
	}
	r.Packets, r.Lost, r.OutOfOrder = j.End.Sum.Packets, j.End.Sum.Lost, j.End.Sum.OutOfOrder
	return r, duringErr
}

// RemoveGuards deletes the clsact qdisc, and with it the guard filter a
// stopped vifsecd leaves on purpose (a VM whose gateway is gone stays cut
// off), from each VM interface of gw: benchmark cases without vifsec
// that run after one need the VMs' veths to carry traffic again.
// Equivalent to: `tc qdisc del dev DEV clsact` where there is one.
func RemoveGuards(ctx context.Context, gw *Gateway) error {
	for _, vm := range gw.VMs {
		out, err := Exec(ctx, gw.NS, "tc", "qdisc", "show", "dev", vm.Dev)
		if err != nil {
			return fmt.Errorf("bench: tc qdisc show dev %s in %s: %v: %s", vm.Dev, gw.NS, err, strings.TrimSpace(string(out)))
		}
		if !strings.Contains(string(out), "clsact") {
			continue
		}
		if err := run(ctx, "ip", "netns", "exec", gw.NS, "tc", "qdisc", "del", "dev", vm.Dev, "clsact"); err != nil {
			return err
		}
	}
	return nil
}
