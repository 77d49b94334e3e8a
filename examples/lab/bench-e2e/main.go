//go:build linux

// Command bench-e2e measures vifsec end to end on the namespace lab: iperf3
// TCP from tenant acme's VM on gateway a to its VM on gateway b. The guests
// run as the lab leaves them: eth0 MTU 1500 with TSO, GSO and checksum
// offload on, so they hand the host TSO super-frames (vifsecd reads them
// with PACKET_VNET_HDR and segments them before ESP). The cases:
//
//  1. plain: no vifsec; a Linux bridge in each gateway joins the VM's host
//     end with the uplink (the same veths and guest settings as below);
//  2. none: vifsecd on both gateways, SPs with --action none (bump in the wire);
//  3. aes128-gcm: vifsecd ESP, AES-GCM-128;
//     aes128-gcm-tso-off: (3) with `ethtool -K eth0 tso off gso off tx off`
//     in both VMs for the run (restored after): the guests hand over
//     MTU-sized, checksummed frames, and vifsecd handles each on its own;
//     aes128-gcm-udp: (3) with the SAs added with --encapsulation udp: ESP
//     in UDP to port 4500, which vifsecd sends toward its virtio-net uplink
//     as one UDP GSO super-frame per guest TSO super-frame (the kernel
//     segments it on an uplink without tx-udp-segmentation, as the lab's;
//     with --uplink-offloads it crosses the veth whole and the receiving
//     vifsecd cuts it);
//     aes128-gcm-udp-tso-off: aes128-gcm-udp with the guests' offloads off
//     as in aes128-gcm-tso-off: each MTU-sized frame leaves as its own
//     datagram, no train;
//     aes128-gcm-gro-off: (3) with vifsecd --gro=false: decrypted segments
//     reach the guest one by one instead of coalesced;
//  4. chacha20-poly1305: vifsecd ESP, ChaCha20-Poly1305;
//  5. strongswan: no vifsec; the bridges of (1), and a strongSwan charon with
//     kernel-libipsec (userspace ESP over TUN) in each VM namespace, IKEv2
//     PSK, tunnel mode, aes128gcm16. strongSwan 5.9.8's libipsec always
//     negotiates ESP-in-UDP (port 4500), so this is UDP-encapsulated ESP.
//     The TUN's MTU is the guest's eth0 MTU less that overhead, capped at
//     the 1400 libipsec reads with; TUN has no TSO, so the inner TCP runs
//     MTU-sized segments whatever eth0 offers.
//     Charon loads CharonPlugins (strongswan_linux.go), in which the portable-C aes
//     and gcm plugins win over openssl;
//  6. strongswan-openssl: (5) with openssl (AES-NI) first, the strongSwan
//     an operator who cares about speed would run;
//  7. wireguard-go: no vifsec; wireguard-go (pinned, built by make into
//     bin/wireguard-go/, --wireguard-go to override) on a TUN in each
//     gateway, keyed by wg, one peer over the uplink's IPv4 underlay
//     addresses. The gateways route rather than bridge: each answers ARP
//     for the remote VM (proxy_arp) and routes its /32 into the TUN, so
//     the VMs keep eth0 as in the other cases (MTU 1500, offloads on) and
//     learn the path MTU (TUN MTU 1440: 1500 less WireGuard's 60 over
//     IPv4) from the gateway's ICMP, where vifsec clamps the MSS.
//     wireguard-go offers the kernel TSO/GRO on its TUN. It runs last:
//     it changes the VMs' neighbour entries (flushed again after).
//
// It prints one line per case and the ratios, then vifsecd's resident
// memory with 0 and with 100 attached VMs:
//
//	e2e aes128-gcm gbps=1.23 ...
//	e2e ratio esp_over_none=0.8 esp_over_wireguard=R esp_over_strongswan=25
//	e2e ratio esp_udp_over_none=R esp_udp_over_wireguard=R esp_udp_over_esp=R
//	e2e ratio tso_on_over_off=1.6
//	e2e ratio tso_on_over_off_udp=R
//	e2e ratio gro_on_over_off=R
//	e2e rss vms=100 rss_kib=N
//
// A ratio needs both of its cases in --cases; it prints n/a when one failed.
//
// `make bench-e2e` runs it (root, after make build). Everything it creates
// (namespaces, daemons, charons, iperf3) is removed on exit, also on
// failure and Ctrl-C.
//
// With --scale (`make bench-scale`, scale.go) it runs N VM pairs at once
// instead, on the same lab builder and gateway set-ups.
//
//	bench-e2e [--time 10s] [--mode tunnel|transport] [--cases LIST] [--vms 100] [--profile DIR] [--keep-logs DIR] [--wireguard-go PATH] [--uplink-offloads] [--uplink-qdisc QDISC]
//	bench-e2e --scale [--pairs 1,2,4] [--time 10s] [--mode tunnel|transport] [--wireguard-go PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vifsec/vifsec/examples/lab"
)

// allCases in the order they are reported.
var allCases = []string{"plain", "none", "aes128-gcm", "aes128-gcm-udp", "aes128-gcm-tso-off", "aes128-gcm-udp-tso-off", "aes128-gcm-gro-off", "aes128-gcm-vxlan", "chacha20-poly1305", "strongswan", "strongswan-openssl", "wireguard-go"}

// vifsecCases run on vifsecd (or, with --engine, datapath.Engine).
var vifsecCases = []string{"none", "aes128-gcm", "aes128-gcm-udp", "aes128-gcm-tso-off", "aes128-gcm-udp-tso-off", "aes128-gcm-gro-off", "aes128-gcm-vxlan", "chacha20-poly1305"}

// tsoOff marks a case that runs its cipher with the guests' TSO, GSO and
// tx checksum offload off.
const tsoOff = "-tso-off"

// groOff marks a case whose vifsecd runs with --gro=false: no ingress
// coalescing of decrypted segments toward the guest.
const groOff = "-gro-off"

// overVXLAN marks a case run over the VXLAN underlay (ESP inside VXLAN).
const overVXLAN = "-vxlan"

// inUDP marks a case whose SAs have --encapsulation udp: ESP in UDP to
// 4500, which vifsecd sends toward its virtio-net uplink as UDP GSO trains.
const inUDP = "-udp"

// strongswan runs charon with CharonPlugins, where the aes and
// gcm plugins (portable C, no AES-NI) come before openssl and so do ESP's
// AES-GCM; strongswan-openssl puts openssl (AES-NI) first.
var swPlugins = map[string]string{
	"strongswan":         lab.CharonPlugins,
	"strongswan-openssl": "random nonce kdf openssl aes sha1 sha2 hmac gcm pem pkcs1 x509 revocation constraints pubkey kernel-libipsec kernel-netlink socket-default vici updown",
}

// Inner addresses of the strongSwan tunnel (RFC 5737): the VMs' own
// addresses are the IKE endpoints, these are the protected hosts, on lo.
var (
	swInnerA = netip.MustParseAddr("198.51.100.1")
	swInnerB = netip.MustParseAddr("203.0.113.1")
)

// swOverhead is the most ESP-in-UDP adds to an inner packet in tunnel
// mode with aes128gcm16 over IPv4: IPv4 20 + UDP 8 + ESP 8 + IV 8 + pad
// ≤3 + trailer 2 + ICV 16 = 65.
const swOverhead = 65

// swTunMaxMTU is the largest TUN MTU kernel-libipsec 5.9.8 works with: it
// reads the TUN with buffers of its built-in 1400 whatever `ip link` sets,
// so a larger MTU truncates full-sized packets and TCP stalls (measured:
// 1400 runs, 1408 carries nothing).
const swTunMaxMTU = 1400

// swTunMTU is libipsec's TUN MTU for VMs whose eth0 has MTU guestMTU:
// guestMTU less swOverhead, rounded down to a multiple of 16 so outer
// packets never fragment, and at most swTunMaxMTU (1400 for 1500, 1328
// for 1400).
func swTunMTU(guestMTU int) int { return min((guestMTU-swOverhead)&^15, swTunMaxMTU) }

type result struct {
	name string
	res  lab.IperfResult
	// vifsecd CPU during the run, percent of one core, per gateway.
	cpuA, cpuB float64
	// busy is how busy the machine was just before the run (percent of
	// all CPUs): anything else running skews the result.
	busy float64
	note string
	err  error
}

type bench struct {
	ctx     context.Context
	l       *lab.Lab
	bin     string
	tmp     string
	dur     time.Duration
	mode    string
	profile string
	keep    string
	engine  bool // in-process datapath.Engine instead of vifsecd
	wgBin   string
	idle    time.Duration
	a, b    *lab.VM
	// guestMTU is VM a's eth0 MTU as the lab left it.
	guestMTU int
}

func main() {
	dur := flag.Duration("time", 10*time.Second, "iperf3 duration per case")
	mode := flag.String("mode", "tunnel", "IPsec mode of vifsec's SAs: tunnel (as strongSwan's) or transport")
	cases := flag.String("cases", strings.Join(allCases, ","), "comma-separated cases to run: "+strings.Join(allCases, ","))
	vms := flag.Int("vms", 100, "VMs to attach for the RSS measurement (0: skip it)")
	profile := flag.String("profile", "", "after the aes128-gcm and aes128-gcm-udp runs, run each again under perf record -a -g and write perf data and reports into this directory")
	keep := flag.String("keep-logs", "", "copy daemon and charon logs into this directory")
	waitIdle := flag.Duration("wait-idle", 30*time.Second, "before each case, wait up to this long for the machine to be under 25% busy (other processes skew results)")
	wgBin := flag.String("wireguard-go", "", "wireguard-go binary for the wireguard-go case (default: bin/wireguard-go/wireguard, as make bench-e2e builds it)")
	scale := flag.Bool("scale", false, "instead of the cases above: 1, 2, 4, … VM pairs (up to the CPUs, or --pairs), one iperf3 stream each, for plain, none, aes128-gcm and wireguard-go")
	pairs := flag.String("pairs", "", "with --scale: comma-separated pair counts (default 1, 2, 4, … up to runtime.NumCPU())")
	uplinkOff := flag.Bool("uplink-offloads", false, "turn on tx checksum offload, TSO, GSO and tx-udp-segmentation on both uplink veths for every case (the lab leaves them off, so the kernel segments and checksums whatever crosses them): UDP GSO super-frames then cross the veth whole")
	uplinkQdisc := flag.String("uplink-qdisc", "", "put this root qdisc (as tc names it, e.g. pfifo_fast, a NIC's default) on both uplink veths for every case, where the lab's veths have noqueue: vifsecd's uplink writes then pass it as on a NIC")
	engine := flag.Bool("engine", false, "run cases none/aes128-gcm/chacha20-poly1305 with vifsec's data path engine inside this process (no vifsecd); with --profile, also a runtime/pprof CPU profile")
	flag.Parse()
	if *mode != "tunnel" && *mode != "transport" {
		fmt.Fprintf(os.Stderr, "--mode: %q is not a mode; use tunnel or transport\n", *mode)
		os.Exit(2)
	}
	want := map[string]bool{}
	for _, c := range strings.Split(*cases, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !contains(allCases, c) {
			fmt.Fprintf(os.Stderr, "--cases: %q is not a case; use %s\n", c, strings.Join(allCases, ","))
			os.Exit(2)
		}
		want[c] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *scale {
		if err := runScale(ctx, *pairs, *dur, *mode, *wgBin, *waitIdle, *keep); err != nil {
			fmt.Fprintf(os.Stderr, "bench-e2e --scale: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, want, *dur, *mode, *vms, *profile, *keep, *engine, *waitIdle, *wgBin, *uplinkOff, *uplinkQdisc); err != nil {
		fmt.Fprintf(os.Stderr, "bench-e2e: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, want map[string]bool, dur time.Duration, mode string, vms int, profile, keep string, engine bool, waitIdle time.Duration, wgBin string, uplinkOffloads bool, uplinkQdisc string) (err error) {
	if err := preflight(want, profile); err != nil {
		return err
	}
	bin, err := lab.Binaries()
	if err != nil {
		return err
	}
	if want["wireguard-go"] {
		if wgBin, err = wireguardGo(bin, wgBin); err != nil {
			return err
		}
	}
	vifsecd := false
	for _, c := range vifsecCases {
		vifsecd = vifsecd || (want[c] && !engine)
	}
	if vifsecd || vms > 0 {
		for _, b := range []string{"vifsecd", "vifsec"} {
			if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
				return fmt.Errorf("%s missing: run make build", filepath.Join(bin, b))
			}
		}
	}
	tmp, err := os.MkdirTemp("", "vifsec-bench-e2e-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	progress("lab: 2 gateways, acme+globex VMs (eth0 as the lab leaves it: MTU 1500, tx/tso/gso on), uplink veth")
	l, err := lab.Build(ctx, fmt.Sprintf("be%d", os.Getpid()%10000))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
		progress("teardown: namespaces removed")
	}()
	uplinks := "uplink veth tx/tso/gso off (as the lab leaves it)"
	if uplinkOffloads {
		uplinks = "uplink veth tx/tso/gso/tx-udp-segmentation on (--uplink-offloads)"
		for _, gw := range l.Gateways {
			if out, err := lab.Exec(ctx, gw.NS, "ethtool", "-K", gw.Uplink, "tx", "on", "tso", "on", "gso", "on", "tx-udp-segmentation", "on"); err != nil {
				return fmt.Errorf("--uplink-offloads: ethtool -K %s in %s: %v\n%s", gw.Uplink, gw.NS, err, out)
			}
		}
	}
	if uplinkQdisc != "" {
		uplinks += "; uplink root qdisc " + uplinkQdisc + " (--uplink-qdisc)"
		for _, gw := range l.Gateways {
			if out, err := lab.Exec(ctx, gw.NS, "tc", "qdisc", "replace", "dev", gw.Uplink, "root", uplinkQdisc); err != nil {
				return fmt.Errorf("--uplink-qdisc %s: tc qdisc replace dev %s root %s in %s: %v\n%s", uplinkQdisc, gw.Uplink, uplinkQdisc, gw.NS, err, out)
			}
		}
	}
	bn := &bench{ctx: ctx, l: l, bin: bin, tmp: tmp, dur: dur, mode: mode, profile: profile, keep: keep, engine: engine, idle: waitIdle, wgBin: wgBin,
		a: l.VM("acme", "a"), b: l.VM("acme", "b")}
	// What the guests run with, checked rather than assumed: every case
	// but the -tso-off ones runs with it.
	var guests []string
	for _, vm := range []*lab.VM{bn.a, bn.b} {
		mtu, err := lab.LinkMTU(ctx, vm.NS, "eth0")
		if err != nil {
			return err
		}
		off, err := lab.Offloads(ctx, vm.NS, "eth0")
		if err != nil {
			return err
		}
		if vm == bn.a {
			bn.guestMTU = mtu
		}
		guests = append(guests, fmt.Sprintf("%s eth0 mtu %d %s", vm.Name, mtu, lab.FormatOffloads(off)))
	}

	results := map[string]*result{}
	// The bridge cases first, then vifsec on the same veths without bridges.
	if want["plain"] || want["strongswan"] || want["strongswan-openssl"] {
		if err := bn.bridged(want, results); err != nil {
			return err
		}
	}
	for _, c := range vifsecCases {
		switch {
		case want[c] && engine:
			results[c] = bn.vifsecEngine(c)
		case want[c]:
			results[c] = bn.vifsec(c)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// Last: it routes, and leaves the VMs' neighbour caches flushed.
	if want["wireguard-go"] {
		results["wireguard-go"] = bn.wireguard()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	var rss0, rssN, threads int
	var rssErr error
	if vms > 0 {
		rss0, rssN, threads, rssErr = bn.rss(vms)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	fmt.Printf("# iperf3 TCP %s, acme VM a %s -> VM b %s (IPv4), one stream; vifsec mode %s; %d CPUs\n",
		dur, bn.a.IP4, bn.b.IP4, mode, runtime.NumCPU())
	fmt.Printf("# guests: %s (the %s cases: tx tso gso off for the run); %s\n", strings.Join(guests, "; "), tsoOff, uplinks)
	if engine {
		fmt.Printf("# --engine: vifsec cases ran datapath.Engine inside bench-e2e, not vifsecd (vifsecd_cpu_a is both gateways' engines)\n")
	}
	failed := 0
	for _, c := range allCases {
		r := results[c]
		if r == nil {
			continue
		}
		if r.err != nil {
			failed++
			fmt.Printf("e2e %s error=%q\n", c, r.err.Error())
			continue
		}
		line := fmt.Sprintf("e2e %s gbps=%.3f retransmits=%d busy_before=%.0f%%", c, r.res.Gbps, r.res.Retransmits, r.busy)
		if r.cpuA > 0 || r.cpuB > 0 {
			proc := "vifsecd"
			if c == "wireguard-go" {
				proc = "wireguard_go"
			}
			line += fmt.Sprintf(" %s_cpu_a=%.0f%% %s_cpu_b=%.0f%%", proc, r.cpuA, proc, r.cpuB)
		}
		fmt.Printf("%s   # %s\n", line, r.note)
	}
	ratio := func(n, d string) string {
		rn, rd := results[n], results[d]
		if rn == nil || rd == nil || rn.err != nil || rd.err != nil || rd.res.Gbps == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.3g", rn.res.Gbps/rd.res.Gbps)
	}
	fmt.Printf("e2e ratio esp_over_none=%s esp_over_wireguard=%s esp_over_strongswan=%s esp_over_strongswan_openssl=%s\n",
		ratio("aes128-gcm", "none"), ratio("aes128-gcm", "wireguard-go"), ratio("aes128-gcm", "strongswan"), ratio("aes128-gcm", "strongswan-openssl"))
	if want["aes128-gcm"+inUDP] {
		fmt.Printf("e2e ratio esp_udp_over_none=%s esp_udp_over_wireguard=%s esp_udp_over_esp=%s\n",
			ratio("aes128-gcm"+inUDP, "none"), ratio("aes128-gcm"+inUDP, "wireguard-go"), ratio("aes128-gcm"+inUDP, "aes128-gcm"))
	}
	if r := results["aes128-gcm"]; r != nil && r.err == nil {
		x20 := func(c string) string {
			s := results[c]
			if s == nil || s.err != nil {
				return "n/a"
			}
			return verdict(r.res.Gbps >= 20*s.res.Gbps)
		}
		fmt.Printf("# goals for aes128-gcm: >= 1 Gbit/s: %s; >= 20x strongswan: %s (>= 20x strongswan-openssl: %s)\n",
			verdict(r.res.Gbps >= 1), x20("strongswan"), x20("strongswan-openssl"))
	}
	if want["aes128-gcm"] || want["aes128-gcm"+tsoOff] {
		tso := ratio("aes128-gcm", "aes128-gcm"+tsoOff)
		fmt.Printf("e2e ratio tso_on_over_off=%s\n", tso)
		goal := "n/a"
		if tso != "n/a" {
			goal = verdict(results["aes128-gcm"].res.Gbps >= 1.5*results["aes128-gcm"+tsoOff].res.Gbps)
		}
		fmt.Printf("# goal for guest TSO: aes128-gcm with guest tso/gso/tx on >= 1.5x off: %s\n", goal)
		if want["aes128-gcm"+inUDP] && want["aes128-gcm"+inUDP+tsoOff] {
			fmt.Printf("e2e ratio tso_on_over_off_udp=%s\n", ratio("aes128-gcm"+inUDP, "aes128-gcm"+inUDP+tsoOff))
		}
		// Ingress coalescing (vifsecd --gro) on vs off.
		if want["aes128-gcm"] && want["aes128-gcm"+groOff] {
			fmt.Printf("e2e ratio gro_on_over_off=%s\n", ratio("aes128-gcm", "aes128-gcm"+groOff))
		}
		if want["aes128-gcm"] && want["aes128-gcm"+overVXLAN] {
			fmt.Printf("e2e ratio vxlan_esp_over_esp=%s\n", ratio("aes128-gcm"+overVXLAN, "aes128-gcm"))
		}
	}
	if vms > 0 {
		if rssErr != nil {
			failed++
			fmt.Printf("e2e rss error=%q\n", rssErr.Error())
		} else {
			fmt.Printf("e2e rss vms=0 rss_kib=%d\n", rss0)
			fmt.Printf("e2e rss vms=%d rss_kib=%d   # %d threads; %.1f KiB per VM\n", vms, rssN, threads, float64(rssN-rss0)/float64(vms))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d measurements failed", failed)
	}
	return nil
}

// bridged runs the cases that join the gateways with Linux bridges.
func (bn *bench) bridged(want map[string]bool, results map[string]*result) error {
	var unbridge []func() error
	defer func() {
		for _, u := range unbridge {
			u()
		}
	}()
	for _, vm := range []*lab.VM{bn.a, bn.b} {
		if err := lab.RemoveGuards(bn.ctx, vm.Gateway); err != nil {
			return err
		}
		u, err := lab.BridgeGateway(bn.ctx, vm.Gateway, "br0", vm.Dev, vm.Gateway.Uplink)
		if err != nil {
			return err
		}
		unbridge = append(unbridge, u)
	}
	if want["plain"] {
		progress("(1) plain: Linux bridge in each gateway, no vifsec")
		r := &result{name: "plain", note: "no vifsec: VM veth -> bridge(gw a) -> uplink veth -> bridge(gw b) -> VM veth"}
		if r.err = bn.reach(bn.a.NS, bn.b.IP4); r.err == nil {
			r.busy = bn.settle()
			r.res, r.err = bn.iperf(r, bn.a.IP4, bn.b.IP4)
		}
		results["plain"] = r
	}
	if bn.ctx.Err() != nil {
		return bn.ctx.Err()
	}
	for _, c := range []string{"strongswan", "strongswan-openssl"} {
		if want[c] && bn.ctx.Err() == nil {
			progress(fmt.Sprintf("(5) %s: charon + kernel-libipsec in each VM namespace, over the bridges", c))
			results[c] = bn.strongswan(c)
		}
	}
	return bn.ctx.Err()
}

func (bn *bench) strongswan(name string) *result {
	c := name
	r := &result{name: c}
	plugins := swPlugins[c]
	ctx := bn.ctx
	inner := []struct {
		vm   *lab.VM
		addr netip.Addr
	}{{bn.a, swInnerA}, {bn.b, swInnerB}}
	for _, in := range inner {
		pfx := netip.PrefixFrom(in.addr, 32).String()
		if out, err := lab.Exec(ctx, in.vm.NS, "ip", "addr", "add", pfx, "dev", "lo"); err != nil {
			r.err = fmt.Errorf("inner address %s in %s: %v: %s", pfx, in.vm.NS, err, out)
			return r
		}
		defer lab.Exec(context.Background(), in.vm.NS, "ip", "addr", "del", pfx, "dev", "lo")
	}
	tunMTU := swTunMTU(bn.guestMTU)
	var charons []*lab.Charon
	defer func() {
		for _, c := range charons {
			if bn.keep != "" {
				copyFile(c.Log, filepath.Join(bn.keep, name+"-"+c.Cfg.NS+".log"))
			}
			c.Stop()
		}
	}()
	for i, in := range inner {
		peer := inner[1-i]
		c, err := lab.StartCharon(ctx, lab.CharonConfig{
			NS: in.vm.NS, Dir: filepath.Join(bn.tmp, "charon-"+in.vm.Name),
			Local: in.vm.IP4, Remote: peer.vm.IP4, PSK: "vifsec-bench-e2e-psk",
			LocalTS:      []netip.Prefix{netip.PrefixFrom(in.addr, 32)},
			RemoteTS:     []netip.Prefix{netip.PrefixFrom(peer.addr, 32)},
			IKEProposals: "aes128gcm16-prfsha256-modp2048", ESPProposals: "aes128gcm16", Mode: "tunnel",
			MTU: tunMTU, Plugins: plugins,
		})
		if err != nil {
			r.err = err
			return r
		}
		charons = append(charons, c)
	}
	if r.err = charons[0].Initiate(ctx); r.err != nil {
		return r
	}
	if r.err = bn.reach(bn.a.NS, swInnerB); r.err != nil {
		return r
	}
	r.busy = bn.settle()
	r.res, r.err = lab.Iperf3(ctx, bn.b.NS, bn.a.NS, swInnerA, swInnerB, bn.dur)
	sas, _ := charons[0].ListSAs(ctx)
	encap := "ESP"
	if strings.Contains(sas, "in-UDP") {
		encap = "ESP-in-UDP (NAT-T, port 4500)"
	}
	impl := "aes+gcm plugins (C, no AES-NI) as in CharonPlugins"
	if c == "strongswan-openssl" {
		impl = "openssl plugin first (AES-NI)"
	}
	r.note = fmt.Sprintf("strongSwan 5.9.8 kernel-libipsec, tunnel, aes128gcm16 by %s, %s; %s -> %s over the bridges of (1), TUN MTU %d (eth0 %d less ESP-in-UDP %d, at most %d)",
		impl, encap, swInnerA, swInnerB, tunMTU, bn.guestMTU, swOverhead, swTunMaxMTU)
	if r.err == nil && !strings.Contains(sas, "INSTALLED") {
		r.err = fmt.Errorf("child SA not installed after the run:\n%s", sas)
	}
	return r
}

// vifsec runs one vifsec case on fresh daemons.
func (bn *bench) vifsec(c string) (r *result) {
	ctx := bn.ctx
	enc, noTSO := strings.CutSuffix(c, tsoOff)
	enc, noGRO := strings.CutSuffix(enc, groOff)
	enc, viaVXLAN := strings.CutSuffix(enc, overVXLAN)
	enc, viaUDP := strings.CutSuffix(enc, inUDP)
	var daemonFlags []string
	p := lab.BenchPolicy{Action: "ipsec", Enc: enc, Mode: bn.mode}
	r = &result{name: c, note: fmt.Sprintf("vifsecd ESP %s, %s mode", enc, bn.mode)}
	if viaUDP {
		p.Encap = "udp"
		r.note += ", --encapsulation udp (UDP GSO trains)"
	}
	if noTSO {
		r.note += ", guests tso/gso/tx off"
	}
	if noGRO {
		daemonFlags = append(daemonFlags, "--gro=false")
		r.note += ", vifsecd --gro=false"
	}
	if viaVXLAN {
		p.VXLAN = true
		r.note += ", inside VXLAN (IPv4 underlay)"
		if err := bn.l.AddUnderlay(ctx); err != nil {
			r.err = err
			return r
		}
		defer bn.l.RemoveUnderlay(ctx)
	}
	if c == "none" {
		p = lab.BenchPolicy{Action: "none", Mode: bn.mode}
		r.note = "vifsecd, SPs --action none (bump in the wire)"
	}
	progress(fmt.Sprintf("vifsec %s: vifsecd on both gateways", c))
	var ds []*lab.Daemon
	defer func() {
		for _, d := range ds {
			if err := d.Stop(); err != nil && r.err == nil && ctx.Err() == nil {
				r.err = fmt.Errorf("vifsecd on gateway %s: unclean exit: %v", d.GW.Name, err)
			}
			if bn.keep != "" {
				copyFile(d.Log, filepath.Join(bn.keep, "vifsecd-"+c+"-"+d.GW.Name+".log"))
			}
		}
	}()
	var pids []int
	ds, pids, r.err = bn.startVifsecd(c, []*lab.VM{bn.a}, p, daemonFlags)
	if r.err != nil {
		return r
	}
	if r.err = bn.reach(bn.a.NS, bn.b.IP4); r.err != nil {
		return r
	}
	if noTSO {
		restore, err := bn.guestOffloadsOff()
		if err != nil {
			r.err = err
			return r
		}
		defer func() {
			if err := restore(); err != nil && r.err == nil {
				r.err = err
			}
		}()
	}
	r.busy = bn.settle()
	var before [2]int64
	for i, pid := range pids {
		before[i], _ = lab.CPUTicks(pid)
	}
	start := time.Now()
	r.res, r.err = bn.iperf(r, bn.a.IP4, bn.b.IP4)
	wall := time.Since(start).Seconds()
	for i, pid := range pids {
		after, _ := lab.CPUTicks(pid)
		pct := 100 * float64(after-before[i]) / lab.ClockTicks / wall
		if i == 0 {
			r.cpuA = pct
		} else {
			r.cpuB = pct
		}
	}
	if r.err != nil {
		return r
	}
	// The bytes went through vifsec's SAs (or, for none, through the VM).
	st, err := lab.BenchStats(ctx, ds[0], bn.a.Name)
	if err != nil {
		r.err = err
		return r
	}
	if c == "none" {
		if st.PacketsOut == 0 {
			r.err = fmt.Errorf("vifsec stats on gateway a: VM %s sent no packets: traffic bypassed vifsec", bn.a.Name)
		}
		for _, s := range st.SAs {
			if s.Packets > 0 {
				r.err = fmt.Errorf("vifsec stats on gateway a: SA %s has %d packets with action none", s.Name, s.Packets)
			}
		}
	} else {
		var espOut uint64
		for _, s := range st.SAs {
			if s.Direction == "out" {
				espOut += s.Bytes
			}
		}
		got := float64(espOut) * 8 / 1e9 / bn.dur.Seconds()
		r.note += fmt.Sprintf("; gw a out SAs carried %.2f Gbit/s", got)
		if got < r.res.Gbps/2 {
			r.err = fmt.Errorf("vifsec stats on gateway a: out SAs carried %d bytes, iperf3 %.2f Gbit/s: traffic bypassed ESP", espOut, r.res.Gbps)
		}
	}
	r.note += drops("a", st)
	if stB, err := lab.BenchStats(ctx, ds[1], bn.b.Name); err == nil {
		r.note += drops("b", stB)
	}
	if bn.profile != "" && (c == "aes128-gcm" || c == "aes128-gcm-udp") && r.err == nil {
		if err := bn.perf(c, "vifsecd"); err != nil {
			progress("profile: " + err.Error())
		}
	}
	return r
}

// startVifsecd starts vifsecd on both gateways for case c and configures
// each of vms (on gateway a) and its tenant's VM on gateway b with p. It
// returns the daemons (a, b; stop them also on error) and their pids.
func (bn *bench) startVifsecd(c string, vms []*lab.VM, p lab.BenchPolicy, flags []string) (ds []*lab.Daemon, pids []int, err error) {
	for _, gw := range bn.l.Gateways {
		d, err := lab.StartDaemon(bn.ctx, bn.bin, gw, filepath.Join(bn.tmp, c, gw.Name), flags...)
		if err != nil {
			return ds, nil, err
		}
		ds = append(ds, d)
		var mine []*lab.VM
		for _, vm := range vms {
			if gw != vm.Gateway {
				vm = bn.l.VM(vm.Tenant, gw.Name)
			}
			mine = append(mine, vm)
		}
		if err := lab.ConfigureBenchVMs(bn.ctx, bn.l, d, mine, p, nil); err != nil {
			return ds, nil, err
		}
		pid, err := lab.DaemonPID(d)
		if err != nil {
			return ds, nil, err
		}
		pids = append(pids, pid)
	}
	return ds, pids, nil
}

// vifsecEngine runs one vifsec case with both gateways' data paths as
// datapath.Engines in this process.
func (bn *bench) vifsecEngine(c string) (r *result) {
	if base, _ := strings.CutSuffix(c, tsoOff); strings.HasSuffix(base, overVXLAN) || strings.HasSuffix(base, groOff) || strings.HasSuffix(base, inUDP) {
		return &result{name: c, err: fmt.Errorf("case %s runs with vifsecd only (not --engine)", c)}
	}
	enc, noTSO := strings.CutSuffix(c, tsoOff)
	p := lab.BenchPolicy{Action: "ipsec", Enc: enc, Mode: bn.mode}
	r = &result{name: c, note: fmt.Sprintf("in-process datapath.Engine ESP %s, %s mode", enc, bn.mode)}
	if noTSO {
		r.note += ", guests tso/gso/tx off"
	}
	if c == "none" {
		p = lab.BenchPolicy{Action: "none", Mode: bn.mode}
		r.note = "in-process datapath.Engine, SPs action none (bump in the wire)"
	}
	progress(fmt.Sprintf("vifsec %s: datapath.Engine for both gateways in this process", c))
	var es []*lab.BenchEngine
	defer func() {
		for _, e := range es {
			e.Close()
		}
	}()
	for _, vm := range []*lab.VM{bn.a, bn.b} {
		e, err := lab.StartBenchEngine(bn.l, vm, p)
		if err != nil {
			r.err = err
			return r
		}
		es = append(es, e)
	}
	if r.err = bn.reach(bn.a.NS, bn.b.IP4); r.err != nil {
		return r
	}
	if noTSO {
		restore, err := bn.guestOffloadsOff()
		if err != nil {
			r.err = err
			return r
		}
		defer func() {
			if err := restore(); err != nil && r.err == nil {
				r.err = err
			}
		}()
	}
	r.busy = bn.settle()
	pid := os.Getpid()
	before, _ := lab.CPUTicks(pid)
	pkts0, esp0 := es[0].Counters()
	start := time.Now()
	r.res, r.err = bn.iperf(r, bn.a.IP4, bn.b.IP4)
	wall := time.Since(start).Seconds()
	after, _ := lab.CPUTicks(pid)
	r.cpuA = 100 * float64(after-before) / lab.ClockTicks / wall
	if r.err != nil {
		return r
	}
	pkts, esp := es[0].Counters()
	if pkts == pkts0 {
		r.err = fmt.Errorf("engine a: VM %s sent no packets: traffic bypassed vifsec", bn.a.Name)
	} else if c != "none" {
		got := float64(esp-esp0) * 8 / 1e9 / bn.dur.Seconds()
		r.note += fmt.Sprintf("; gw a out SAs carried %.2f Gbit/s", got)
		if got < r.res.Gbps/2 {
			r.err = fmt.Errorf("engine a: out SAs carried %d bytes, iperf3 %.2f Gbit/s: traffic bypassed ESP", esp-esp0, r.res.Gbps)
		}
	}
	if bn.profile != "" && c == "aes128-gcm" && r.err == nil {
		if err := bn.pprof(c); err != nil {
			progress("profile: " + err.Error())
		}
		if err := bn.perf(c, filepath.Base(os.Args[0])); err != nil {
			progress("profile: " + err.Error())
		}
	}
	return r
}

// pprof runs the case's iperf3 again with a runtime/pprof CPU profile of
// this process (both engines).
func (bn *bench) pprof(c string) error {
	if err := os.MkdirAll(bn.profile, 0o755); err != nil {
		return err
	}
	file := filepath.Join(bn.profile, "engine-"+c+".pprof")
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	progress(fmt.Sprintf("profile: %s again with runtime/pprof -> %s", c, file))
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	res, err := lab.Iperf3(bn.ctx, bn.b.NS, bn.a.NS, bn.a.IP4, bn.b.IP4, bn.dur)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	progress(fmt.Sprintf("profile: under pprof %.3f Gbit/s; go tool pprof -top %s", res.Gbps, file))
	return nil
}

// perf runs the case's iperf3 again under system-wide perf record and
// writes reports: CPU by command, and the hottest symbols of comm (the
// data path's process), kernel included.
func (bn *bench) perf(c, comm string) error {
	ctx := bn.ctx
	if err := os.MkdirAll(bn.profile, 0o755); err != nil {
		return err
	}
	data := filepath.Join(bn.profile, "perf-"+comm+"-"+c+".data")
	secs := fmt.Sprint(int(bn.dur.Seconds()))
	progress(fmt.Sprintf("profile: %s again under perf record -a -g (%ss) -> %s", c, secs, data))
	rec := exec.CommandContext(ctx, "perf", "record", "-a", "-g", "-F", "499", "-o", data, "--", "sleep", secs)
	var recOut strings.Builder
	rec.Stdout, rec.Stderr = &recOut, &recOut
	if err := rec.Start(); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	res, err := lab.Iperf3(ctx, bn.b.NS, bn.a.NS, bn.a.IP4, bn.b.IP4, bn.dur)
	if werr := rec.Wait(); werr != nil {
		return fmt.Errorf("perf record: %v: %s", werr, recOut.String())
	}
	if err != nil {
		return err
	}
	reports := []struct {
		file string
		args []string
	}{
		{"by-comm.txt", []string{"--sort", "comm,dso"}},
		{"symbols.txt", []string{"--comm", comm, "--no-children", "--sort", "sym", "-g", "none"}},
		{"children.txt", []string{"--comm", comm, "--children", "--sort", "sym", "-g", "none"}},
		{"callers.txt", []string{"--comm", comm, "--no-children", "--sort", "sym", "-g", "caller,0.5,callee,function,percent"}},
		{"all-symbols.txt", []string{"--no-children", "--sort", "comm,sym", "-g", "none"}},
	}
	for _, rp := range reports {
		args := append([]string{"report", "-i", data, "--stdio", "--percent-limit", "0.5"}, rp.args...)
		out, err := exec.CommandContext(ctx, "perf", args...).Output()
		if err != nil {
			return fmt.Errorf("perf %s: %v", strings.Join(args, " "), err)
		}
		if err := os.WriteFile(filepath.Join(bn.profile, "perf-"+comm+"-"+c+"-"+rp.file), out, 0o644); err != nil {
			return err
		}
	}
	progress(fmt.Sprintf("profile: under perf %.3f Gbit/s; reports in %s", res.Gbps, bn.profile))
	return nil
}

// rss measures vifsecd's VmRSS on gateway a with its uplink set and no
// VMs, then with n VMs attached.
func (bn *bench) rss(n int) (rss0, rssN, threads int, err error) {
	ctx := bn.ctx
	gw := bn.a.Gateway
	progress(fmt.Sprintf("rss: vifsecd on gateway a, uplink set, 0 then %d VMs", n))
	d, err := lab.StartDaemon(ctx, bn.bin, gw, filepath.Join(bn.tmp, "rss"))
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		if serr := d.Stop(); serr != nil && err == nil && ctx.Err() == nil {
			err = fmt.Errorf("vifsecd: unclean exit: %v", serr)
		}
		if bn.keep != "" {
			copyFile(d.Log, filepath.Join(bn.keep, "vifsecd-rss.log"))
		}
	}()
	if _, err := d.CLI(ctx, "uplink", "set", "--dev", gw.Uplink); err != nil {
		return 0, 0, 0, err
	}
	pid, err := lab.DaemonPID(d)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return 0, 0, 0, err
	}
	if rss0, err = lab.ProcStatusKiB(pid, "VmRSS"); err != nil {
		return 0, 0, 0, err
	}
	if err := lab.AttachMany(ctx, d, n); err != nil {
		return 0, 0, 0, err
	}
	// Attach is asynchronous: give the workers time to open their ports
	// and touch their buffers.
	if err := sleep(ctx, 3*time.Second); err != nil {
		return 0, 0, 0, err
	}
	out, err := d.CLI(ctx, "vm", "list")
	if err != nil {
		return 0, 0, 0, err
	}
	if got := strings.Count(out, "benchvm"); got != n {
		return 0, 0, 0, fmt.Errorf("vifsec vm list shows %d of %d bench VMs", got, n)
	}
	if rssN, err = lab.ProcStatusKiB(pid, "VmRSS"); err != nil {
		return 0, 0, 0, err
	}
	threads, _ = lab.ProcStatusKiB(pid, "Threads")
	return rss0, rssN, threads, nil
}

// guestOffloadsOff runs `ethtool -K eth0 tso off gso off tx off` in both
// VMs and returns a function that puts back what they had.
func (bn *bench) guestOffloadsOff() (restore func() error, err error) {
	var undo []func() error
	restore = func() error {
		var errs []error
		for _, u := range undo {
			errs = append(errs, u())
		}
		return errors.Join(errs...)
	}
	for _, vm := range []*lab.VM{bn.a, bn.b} {
		u, err := lab.GuestOffloadsOff(bn.ctx, vm.NS, "eth0")
		if err != nil {
			restore()
			return nil, err
		}
		undo = append(undo, u)
	}
	return restore, nil
}

// iperf runs iperf3 from src in VM a to dst in VM b and adds to r's note
// the average frame VM a's eth0 sent meanwhile (above the MTU, the guest
// handed over TSO/GSO super-frames: a veth counts one as one packet) and
// iperf3's own CPU use at both ends.
func (bn *bench) iperf(r *result, src, dst netip.Addr) (lab.IperfResult, error) {
	p0, b0, cerr := lab.TxCounters(bn.ctx, bn.a.NS, "eth0")
	res, err := lab.Iperf3(bn.ctx, bn.b.NS, bn.a.NS, src, dst, bn.dur)
	p1, b1, cerr1 := lab.TxCounters(bn.ctx, bn.a.NS, "eth0")
	if cerr == nil && cerr1 == nil && p1 > p0 {
		r.note += fmt.Sprintf("; VM a eth0 sent %d frames of %d bytes on average", p1-p0, (b1-b0)/(p1-p0))
	}
	if err == nil {
		r.note += fmt.Sprintf("; iperf3 cpu sender %.0f%% receiver %.0f%%", res.CPUClient, res.CPUServer)
	}
	return res, err
}

// drops formats the non-zero drop counters of a VM's and its SAs' stats
// on gateway gw, "" if there are none.
func drops(gw string, st *lab.VMStats) string {
	var d []string
	for k, v := range st.Drops {
		if v > 0 {
			d = append(d, fmt.Sprintf("%s=%d", k, v))
		}
	}
	for _, s := range st.SAs {
		for k, v := range s.Drops {
			if v > 0 {
				d = append(d, fmt.Sprintf("%s/%s=%d", s.Name, k, v))
			}
		}
	}
	if len(d) == 0 {
		return ""
	}
	sort.Strings(d)
	return "; drops on gw " + gw + ": " + strings.Join(d, " ")
}

// settle waits, up to bn.idle, for the machine to be under 25% busy and
// returns how busy it was in the last second.
func (bn *bench) settle() float64 {
	deadline := time.Now().Add(bn.idle)
	for {
		busy, err := lab.CPUBusy(bn.ctx, time.Second)
		if err != nil || busy < 25 || time.Now().After(deadline) {
			return busy
		}
	}
}

// reach waits until ns can ping dst (attach and ARP settle), up to 10 s.
func (bn *bench) reach(ns string, dst netip.Addr) error {
	var out []byte
	var err error
	for i := 0; i < 10; i++ {
		out, err = lab.Exec(bn.ctx, ns, "ping", "-c", "1", "-W", "1", dst.String())
		if err == nil || bn.ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%s cannot reach %s: %v: %s", ns, dst, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func preflight(want map[string]bool, profile string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	tools := []string{"ip", "ethtool", "ping", "iperf3"}
	if want["strongswan"] || want["strongswan-openssl"] {
		tools = append(tools, "swanctl", "nsenter", "unshare", lab.CharonPath)
	}
	if profile != "" {
		tools = append(tools, "perf")
	}
	if want["wireguard-go"] {
		tools = append(tools, "wg")
	}
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run make deps", strings.Join(missing, ", "))
	}
	return nil
}

func progress(s string) { fmt.Fprintf(os.Stderr, "bench-e2e: %s\n", s) }

func verdict(ok bool) string { return map[bool]string{true: "met", false: "NOT met"}[ok] }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func copyFile(src, dst string) {
	b, err := os.ReadFile(src)
	if err == nil {
		os.MkdirAll(filepath.Dir(dst), 0o755)
		os.WriteFile(dst, b, 0o644)
	}
}
