//go:build linux

package lab

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vifsec/vifsec/internal/store/etcd/etcdtest"
	"github.com/vifsec/vifsec/sa"
)

// TestIntegrationFleet runs three vifsecd "hosts" (a, b, c) in their own
// namespaces on a three-member etcd cluster (Debian's etcd-server): desired
// state written through host a's CLI takes effect on hosts b and c (ESP
// checked on the wire by tshark); one member lost changes nothing; all
// members lost keeps traffic flowing and refuses changes until they
// return; a restarted vifsecd converges with nothing lost and its SAs
// continue their sequence numbers; a VM moved from b to a keeps working
// (the interruption is measured); a snapshot of etcd holds no key in
// clear.
func TestIntegrationFleet(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	f := newFleetT(t, fmt.Sprintf("vf%d", os.Getpid()%1000), "5a")
	l, ec, web, db, ds := f.l, f.ec, f.web, f.db, f.ds
	start := func(gw *Gateway) *Daemon { return f.start(t, bin, gw) }
	for _, gw := range l.Gateways {
		start(gw)
	}
	A := ds["a"]
	cli := func(d *Daemon, args ...string) string {
		t.Helper()
		out, err := d.CLI(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// 1. Desired state through host a's CLI only.
	cli(A, "tenant", "add", "--tenant", "acme")
	for _, gw := range l.Gateways {
		cli(A, "--host", gw.Name, "uplink", "set", "--dev", gw.Uplink)
	}
	for _, vm := range []*VM{web, db} {
		h := vm.Gateway.Name
		cli(A, "--host", h, "vm", "attach", "--vm", vm.Name, "--tenant", vm.Tenant, "--dev", vm.Dev, "--mac", vm.MAC,
			"--vlan", fmt.Sprint(vm.VLAN), "--ip", vm.IP6.String(), "--ip", vm.IP4.String())
	}
	fleetWaitAttached(t, ds["b"], "web")
	fleetWaitAttached(t, ds["c"], "db")
	sas, err := ConfigureFleetVM(ctx, A, web, db, 0x1000, 0x2000, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A ping runs while host c is configured, so that the moment c's data
	// path uses its new inbound SA shows in its counters.
	pinging := make(chan struct{})
	go func() {
		defer close(pinging)
		Exec(ctx, web.NS, "ping", "-c", "150", "-i", "0.02", "-W", "1", db.IP6.String())
	}()
	s2, err := ConfigureFleetVM(ctx, A, db, web, 0x2000, 0x1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	sas = append(sas, s2...)
	var effect time.Duration
	for {
		if in, out := fleetSAPackets2(t, ds["c"], "db", "db-in6", "db-out6"); in > 0 && out > 0 {
			effect = time.Since(written)
			break
		}
		if time.Since(written) > 3*time.Second {
			t.Fatal("host c's data path did not use the SAs written through host a within 3s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("fleet: SA and SP written through host a in use by host c's data path %v after the CLI returned", effect.Round(time.Millisecond))
	if effect > time.Second {
		t.Errorf("took effect after %v, want within 1s", effect)
	}
	<-pinging

	caps, capFiles := startFleetCaptures(t, l, "b", "c")
	fleetTraffic(t, ctx, web, db)
	// libpcap hands tcpdump its packets in blocks that retire after a
	// second at the latest: a capture stopped sooner loses the last block.
	time.Sleep(1100 * time.Millisecond)
	for _, c := range caps {
		c.Stop()
	}
	w, err := Analyze(ctx, capFiles, sas)
	if err != nil {
		t.Fatal(err)
	}
	if w.ESPByTenant["acme"] == 0 || w.Decrypted["acme"] != w.ESPByTenant["acme"] {
		t.Errorf("ESP on the wire: %d frames, tshark decrypted %d with the keys written through host a", w.ESPByTenant["acme"], w.Decrypted["acme"])
	}
	if len(w.Leaks) > 0 {
		t.Errorf("clear IP on the wire: %v", w.Leaks)
	}

	// 2. Fleet status, from any host.
	st := fleetStatus(t, ds["c"])
	got := map[string]string{}
	for _, h := range st.Hosts {
		var vms []string
		for _, v := range h.VMs {
			vms = append(vms, fmt.Sprintf("%s:%d", v.Name, v.SAs))
		}
		got[h.Host] = h.State + " " + strings.Join(vms, ",")
	}
	want := map[string]string{"a": "ok ", "b": "ok web:4", "c": "ok db:4"}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("fleet status of %s: %q, want %q (all: %v)", h, got[h], w, got)
		}
	}

	// 3. One etcd member killed: changes still go through.
	ec.Members[0].Kill()
	fleetRetry(t, 5*time.Second, func() error {
		_, err := A.CLI(ctx, "--host", "c", "sp", "add", "--vm", "db", "--sp-source", "2001:db8:1::/64", "--sp-destination", "2001:db8:9::/64",
			"--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "any", "--flow-direction", "out",
			"--action", "discard", "--sp-mode", "transport", "--sp-name", "db-deny9")
		return err
	})
	fleetRetry(t, 2*time.Second, func() error {
		if !strings.Contains(cli(ds["c"], "sp", "list"), "db-deny9") {
			return fmt.Errorf("host c does not list db-deny9")
		}
		return nil
	})
	fleetTraffic(t, ctx, web, db)

	// 4. Every member stopped: traffic keeps flowing on the last state,
	// the hosts say degraded, changes are refused, and resume after.
	for _, m := range ec.Members[1:] {
		m.Kill()
	}
	fleetRetry(t, 10*time.Second, func() error {
		if s := fleetStatus(t, A); s.Store != "degraded" {
			return fmt.Errorf("host a says the store is %s", s.Store)
		}
		return nil
	})
	fleetTraffic(t, ctx, web, db)
	t0 := time.Now()
	out, err := A.CLI(ctx, "tenant", "add", "--tenant", "initech")
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("write without etcd: %v %s", err, out)
	}
	t.Logf("fleet: a write without etcd was refused after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	for _, m := range ec.Members {
		if err := m.Restart(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := ec.WaitReady(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	fleetRetry(t, 10*time.Second, func() error {
		_, err := A.CLI(ctx, "tenant", "add", "--tenant", "initech")
		return err
	})
	fleetRetry(t, 5*time.Second, func() error {
		if !strings.Contains(cli(ds["c"], "tenant", "list"), "initech") {
			return fmt.Errorf("host c does not list tenant initech")
		}
		return nil
	})
	fleetTraffic(t, ctx, web, db)

	// 5. Restart of host c's vifsecd: the same state, and its SAs go on
	// above the sequence numbers they had sent (no replays at host b).
	before := fleetStateOf(t, ds["c"])
	replaysBefore := fleetSADrops(t, ds["b"], "web", "web-in6", "replay")
	if err := ds["c"].Stop(); err != nil {
		t.Fatal(err)
	}
	start(l.Gateway("c"))
	fleetWaitAttached(t, ds["c"], "db")
	if after := fleetStateOf(t, ds["c"]); after != before {
		t.Errorf("host c after a restart:\n%s\nbefore:\n%s", after, before)
	}
	if out, err := Exec(ctx, web.NS, "ping", "-c", "3", "-i", "0.2", "-W", "1", db.IP6.String()); err != nil {
		t.Errorf("ping right after host c restarted: %v %s", err, out)
	}
	if r := fleetSADrops(t, ds["b"], "web", "web-in6", "replay"); r != replaysBefore {
		t.Errorf("host b dropped %d packets of host c as replays after c restarted", r-replaysBefore)
	}

	// 6. VM web moves from host b to host a, as a live migration: the
	// VM's interface is plugged into a, and the binding moves in the
	// store (run on b, the source, so its SAs' sequence numbers go
	// along).
	// Re-plugging a veth drops the guest's carrier for a moment, which
	// makes its kernel flush its neighbour cache (a migrated guest keeps
	// its NIC up and announces itself): static neighbour entries keep
	// that out of the measured interruption.
	for _, p := range [][2]*VM{{web, db}, {db, web}} {
		for _, a := range []string{p[1].IP6.String(), p[1].IP4.String()} {
			if out, err := Exec(ctx, p[0].NS, "ip", "neigh", "replace", a, "lladdr", p[1].MAC, "nud", "permanent", "dev", "eth0"); err != nil {
				t.Fatalf("static neighbour: %v %s", err, out)
			}
		}
	}
	probe, err := StartProbe(web, db, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	fleetRetry(t, 3*time.Second, func() error {
		if probe.Replies() < 5 {
			return fmt.Errorf("probe has %d echoes", probe.Replies())
		}
		return nil
	})
	replaysAtC := fleetSADrops(t, ds["c"], "db", "db-in6", "replay")
	// As in a live migration, the VM's interface exists on the
	// destination when the binding moves (qemu's incoming side made it).
	moved := time.Now()
	if err := l.Migrate(ctx, web, l.Gateway("a")); err != nil {
		t.Fatal(err)
	}
	plugged := time.Now()
	cli(ds["b"], "vm", "move", "--vm", "web", "--to-host", "a")
	bound := time.Now()
	fleetWaitAttached(t, A, "web")
	fleetRetry(t, 5*time.Second, func() error {
		if n := probe.Replies(); n == 0 || fleetSAPackets(t, A, "web", "web-in6") == 0 {
			return fmt.Errorf("no traffic through host a yet")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	sent, echoes, gap := probe.Stop(moved)
	t.Logf("fleet: VM move b→a: longest interruption %v (probe every 5ms: %d sent, %d echoed); interface re-plugged in %v, binding moved %v later, first echo through a %v after that",
		gap.Round(time.Millisecond), sent, echoes, plugged.Sub(moved).Round(time.Millisecond), bound.Sub(plugged).Round(time.Millisecond), probe.FirstAfter(bound).Sub(bound).Round(time.Millisecond))
	fmt.Printf("fleet move interruption_ms=%d\n", gap.Milliseconds())
	if gap > 3*time.Second {
		t.Errorf("the move interrupted traffic for %v", gap)
	}
	if strings.Contains(cli(ds["b"], "vm", "list"), "web") {
		t.Error("host b still has VM web")
	}
	if n := strings.Count(cli(A, "sa", "list"), "\nweb-"); n != 4 {
		t.Errorf("host a has %d of web's SAs, want 4", n)
	}
	fleetTraffic(t, ctx, web, db)
	if r := fleetSADrops(t, ds["c"], "db", "db-in6", "replay"); r != replaysAtC {
		t.Errorf("host c dropped %d of web's packets as replays after the move", r-replaysAtC)
	}

	// 7. A snapshot of etcd's data holds no SA key in clear.
	snap := etcdSnapshot(t, ec)
	if !bytes.Contains(snap, []byte("/vifsec/hosts/a/sa/web-out6")) {
		t.Fatal("the snapshot does not hold vifsec's records")
	}
	for _, s := range sas {
		raw, _ := sa.ParseKey(s.Key)
		for _, form := range [][]byte{raw, []byte(strings.TrimPrefix(s.Key, "0x")), []byte(base64.StdEncoding.EncodeToString(raw)),
			[]byte(hex.EncodeToString(raw[:8]))} {
			if bytes.Contains(snap, form) {
				t.Errorf("etcd snapshot holds SA key 0x%x (SPI 0x%x) in clear", raw, s.SPI)
			}
		}
	}
}

func fleetWaitAttached(t *testing.T, d *Daemon, vm string) {
	t.Helper()
	fleetRetry(t, 5*time.Second, func() error {
		out, err := d.CLI(context.Background(), "--format", "json", "vm", "list")
		if err != nil {
			return err
		}
		var vms []struct{ Name, VIF string }
		json.Unmarshal([]byte(out), &vms)
		for _, v := range vms {
			if v.Name == vm && v.VIF == "attached" {
				return nil
			}
		}
		return fmt.Errorf("host %s: VM %s not attached: %s", d.GW.Name, vm, out)
	})
}

func fleetRetry(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type fleetStatsRow struct {
	VM  string `json:"vm"`
	SAs []struct {
		Name    string            `json:"name"`
		Packets uint64            `json:"packets"`
		Drops   map[string]uint64 `json:"drops"`
	} `json:"sas"`
}

func fleetSAStats(t *testing.T, d *Daemon, vm, name string) (uint64, map[string]uint64) {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "stats", "--vm", vm)
	if err != nil {
		t.Fatal(err)
	}
	var rows []fleetStatsRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	for _, r := range rows {
		for _, s := range r.SAs {
			if s.Name == name {
				return s.Packets, s.Drops
			}
		}
	}
	return 0, nil
}

// fleetSAPackets2 reads the packets of two SAs of vm with one request.
func fleetSAPackets2(t *testing.T, d *Daemon, vm, a, b string) (uint64, uint64) {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "stats", "--vm", vm)
	if err != nil {
		t.Fatal(err)
	}
	var rows []fleetStatsRow
	json.Unmarshal([]byte(out), &rows)
	var pa, pb uint64
	for _, r := range rows {
		for _, s := range r.SAs {
			switch s.Name {
			case a:
				pa = s.Packets
			case b:
				pb = s.Packets
			}
		}
	}
	return pa, pb
}

func fleetSAPackets(t *testing.T, d *Daemon, vm, name string) uint64 {
	p, _ := fleetSAStats(t, d, vm, name)
	return p
}

func fleetSADrops(t *testing.T, d *Daemon, vm, name, reason string) uint64 {
	_, drops := fleetSAStats(t, d, vm, name)
	return drops[reason]
}

// fleetTraffic: ping (both families) and a TCP echo from src to dst.
func fleetTraffic(t *testing.T, ctx context.Context, src, dst *VM) {
	t.Helper()
	for _, a := range []string{dst.IP6.String(), dst.IP4.String()} {
		if out, err := Exec(ctx, src.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", a); err != nil {
			t.Errorf("ping %s → %s: %v %s", src.Name, a, err, out)
		}
	}
	if err := TCPEcho(src.NS, dst.NS, dst.IP6, 0, 64<<10); err != nil {
		t.Errorf("TCP %s → %s: %v", src.Name, dst.Name, err)
	}
}

type fleetStatusDoc struct {
	Self  string `json:"self"`
	Store string `json:"store"`
	Hosts []struct {
		Host  string `json:"host"`
		State string `json:"state"`
		VMs   []struct {
			Name string `json:"name"`
			SAs  int    `json:"sas"`
		} `json:"vms"`
	} `json:"hosts"`
}

func fleetStatus(t *testing.T, d *Daemon) fleetStatusDoc {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "fleet", "status")
	if err != nil {
		t.Fatal(err)
	}
	var s fleetStatusDoc
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("fleet status: %v\n%s", err, out)
	}
	return s
}

// fleetStateOf is what a host shows of its desired state.
func fleetStateOf(t *testing.T, d *Daemon) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"tenant", "list"}, {"uplink", "show"}, {"sa", "list"}, {"sp", "list"}, {"--format", "json", "vm", "list"}} {
		out, err := d.CLI(context.Background(), args...)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(out)
	}
	return b.String()
}

func startFleetCaptures(t *testing.T, l *FleetLab, gws ...string) ([]*Capture, []string) {
	t.Helper()
	var caps []*Capture
	var files []string
	for _, g := range gws {
		f := filepath.Join(t.TempDir(), "wire-"+g+".pcap")
		c, err := StartCapture(context.Background(), l.Gateway(g), f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Stop)
		caps, files = append(caps, c), append(files, f)
	}
	return caps, files
}

// etcdSnapshot returns a snapshot of the cluster's data (what `etcdctl
// snapshot save` writes).
func etcdSnapshot(t *testing.T, ec *etcdtest.Cluster) []byte {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: ec.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fleetT is what the fleet tests share: a three-member etcd cluster, the
// fleet lab with hosts a, b, c and VMs web (on b) and db (on c) of tenant
// acme, the members reachable at 127.0.0.1 in every host's namespace, a
// KEK file, and the hosts' vifsecd (started by start, stopped at the end).
type fleetT struct {
	ctx     context.Context
	dir     string
	kek     string
	ec      *etcdtest.Cluster
	l       *FleetLab
	web, db *VM
	ds      map[string]*Daemon // by host; start replaces a host's entry
}

// newFleetT builds the fleet setup with namespace names starting with
// prefix and a KEK made of the hex byte kekByte repeated. It fails (or
// skips, outside CI) without etcd-server.
func newFleetT(t *testing.T, prefix, kekByte string) *fleetT {
	t.Helper()
	if !etcdtest.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs %s (apt-get install etcd-server)", etcdtest.Binary())
		}
		t.Skipf("needs %s (apt-get install etcd-server)", etcdtest.Binary())
	}
	f := &fleetT{ctx: context.Background(), dir: t.TempDir(), ds: map[string]*Daemon{}}
	var err error
	if f.ec, err = etcdtest.Start(f.ctx, filepath.Join(f.dir, "etcd"), etcdtest.Options{Members: 3}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.ec.Close)
	f.kek = filepath.Join(f.dir, "kek")
	if err := os.WriteFile(f.kek, []byte(strings.Repeat(kekByte, 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f.l, err = BuildFleet(f.ctx, prefix, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.l.Close(); err != nil {
			t.Error(err)
		}
	})
	if f.web, err = f.l.AddVM(f.ctx, "web", "acme", f.l.Gateway("b"), "52:54:00:01:0b:01", 100, IP6A, IP4A); err != nil {
		t.Fatal(err)
	}
	if f.db, err = f.l.AddVM(f.ctx, "db", "acme", f.l.Gateway("c"), "52:54:00:01:0c:01", 100, IP6B, IP4B); err != nil {
		t.Fatal(err)
	}
	// The gateways' vifsecd reach the members at 127.0.0.1 of their
	// own namespace.
	var ports []int
	for _, ep := range f.ec.Endpoints() {
		var p int
		fmt.Sscanf(ep[strings.LastIndexByte(ep, ':')+1:], "%d", &p)
		ports = append(ports, p)
	}
	for _, gw := range f.l.Gateways {
		stop, err := ForwardLoopback(f.ctx, gw.NS, ports)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	t.Cleanup(func() {
		for _, name := range slices.Sorted(maps.Keys(f.ds)) {
			d := f.ds[name]
			if err := d.Stop(); err != nil {
				t.Errorf("vifsecd %s: %v", name, err)
			}
			if t.Failed() {
				log, _ := os.ReadFile(d.Log)
				t.Logf("vifsecd %s log:\n%s", name, log)
			}
		}
	})
	return f
}

// start starts host gw's vifsecd on the fleet store.
func (f *fleetT) start(t *testing.T, bin string, gw *Gateway) *Daemon {
	t.Helper()
	d, err := StartDaemon(f.ctx, bin, gw, filepath.Join(f.dir, "host-"+gw.Name),
		"--store", f.ec.URL("/vifsec"), "--host-id", gw.Name, "--kek-file", f.kek, "--libvirt", "off")
	if err != nil {
		t.Fatal(err)
	}
	f.ds[gw.Name] = d
	return d
}
