//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/datapath"
)

// TestIntegrationVXLANGateways: two vifsec gateways over a VXLAN underlay.
// Each tenant's ESP rides inside VXLAN with the tenant's VNI; both tenants
// share addresses and SPIs and stay apart; tshark finds no ESP outside
// VXLAN and no clear IP outside the policy-none flow, and decrypts each
// tenant's ESP with that tenant's keys alone.
func TestIntegrationVXLANGateways(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4-underlay", true: "ipv6-underlay"}[v6], func(t *testing.T) { testVXLANGateways(t, v6) })
	}
}

func testVXLANGateways(t *testing.T, v6 bool) {
	bin := needDemoTools(t)
	ctx := context.Background()
	ipv := map[bool]int{false: 4, true: 6}[v6]
	l, ds, sas := startLabWith(t, bin, fmt.Sprintf("vx%d%d", os.Getpid()%10000, ipv), "transport", ipv)
	// The effective MTU each VM is told: uplink 1500, less VXLAN over IPv4
	// (50) or IPv6 (70) and transport-mode AES-GCM ESP (8 header + 8 IV + 3
	// pad + 2 + 16 ICV = 37).
	wantMTU := 1500 - 50 - 37
	if v6 {
		wantMTU = 1500 - 70 - 37
	}
	out, err := ds[0].CLI(ctx, "--format", "json", "vm", "list")
	if err != nil {
		t.Fatal(err)
	}
	var vms []struct {
		Name string
		MTU  int
	}
	if err := json.Unmarshal([]byte(out), &vms); err != nil {
		t.Fatal(err)
	}
	for _, v := range vms {
		if v.MTU != wantMTU {
			t.Errorf("vm %s: effective MTU %d, want %d", v.Name, v.MTU, wantMTU)
		}
	}
	caps, files := startCaptures(t, l)
	flows := Traffic(ctx, l)
	for _, c := range caps {
		c.Stop()
	}
	for _, f := range flows {
		if f.Got != f.Want {
			t.Errorf("%s %s to %s: got through=%v, want %v (%s)", f.Tenant, f.Kind, f.Dst, f.Got, f.Want, f.Err)
		}
	}
	// The first frames toward each VTEP waited for its MAC, if they had
	// to: none was lost.
	for _, d := range ds {
		if n := uplinkDrops(t, d)["overlay no-neighbor"]; n != 0 {
			t.Errorf("gateway %s lost %d frames for want of the remote VTEP's MAC", d.GW.Name, n)
		}
	}
	w, err := AnalyzeWith(ctx, files, sas, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wire: %d frames, %d in VXLAN, ESP %v", w.Frames, w.VXLAN, w.ESP)
	if w.ESPOutsideVXLAN > 0 {
		t.Errorf("%d ESP frames outside VXLAN", w.ESPOutsideVXLAN)
	}
	if len(w.Leaks) > 0 {
		t.Errorf("clear IP on the wire outside the 'none' policy: %v", w.Leaks)
	}
	for _, tn := range Tenants {
		esp := w.ESPByTenant[tn.Name]
		if esp == 0 || w.Decrypted[tn.Name] != esp {
			t.Errorf("%s: tshark decrypted %d of %d ESP frames in VNI %d", tn.Name, w.Decrypted[tn.Name], esp, VNI(tn.Name))
		}
		if w.ESP[fmt.Sprintf("vni %d spi 0x00001000", VNI(tn.Name))] == 0 {
			t.Errorf("%s: no ESP SPI 0x1000 in VNI %d: %v", tn.Name, VNI(tn.Name), w.ESP)
		}
	}
}

// TestIntegrationVXLANKernelVTEP: the remote VTEP is the Linux kernel's
// vxlan device, a VXLAN implementation nobody here wrote, with a host
// address behind it. acme's VM (VNI 1000, no SPs: clear) pings that host:
// ARP is replicated to the remote VTEP, the kernel decapsulates and
// answers, and vifsec delivers the answers to the VM by VNI.
func TestIntegrationVXLANKernelVTEP(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	l := buildLab(t, fmt.Sprintf("vk%d", os.Getpid()%10000), 4)
	gwa, gwb := l.Gateways[0], l.Gateways[1]
	// Gateway b is not vifsec here: its namespace holds the kernel VTEP.
	for _, args := range [][]string{
		{"ip", "-n", gwb.NS, "link", "add", "vx0", "type", "vxlan", "id", fmt.Sprint(VNI("acme")), "local", UnderlayAddr("b").String(),
			"remote", UnderlayAddr("a").String(), "dstport", "4789", "dev", gwb.Uplink},
		{"ip", "-n", gwb.NS, "addr", "add", "192.0.2.2/24", "dev", "vx0"},
		{"ip", "-n", gwb.NS, "link", "set", "vx0", "up"},
	} {
		if err := run(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	vx, err := Exec(ctx, gwb.NS, "cat", "/sys/class/net/vx0/address")
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, gwa)
	vm := l.VM("acme", "a")
	for _, args := range [][]string{
		{"uplink", "set", "--dev", gwa.Uplink, "--overlay", "vxlan", "--vxlan-local", UnderlayAddr("a").String()},
		{"tenant", "add", "--tenant", "acme", "--vni", fmt.Sprint(VNI("acme"))},
		{"vm", "attach", "--vm", vm.Name, "--tenant", "acme", "--dev", vm.Dev, "--mac", vm.MAC, "--vlan", fmt.Sprint(vm.VLAN)},
		{"overlay", "fdb", "add", "--tenant", "acme", "--mac", strings.TrimSpace(string(vx)), "--remote", UnderlayAddr("b").String()},
	} {
		if _, err := d.CLI(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	out, err := Exec(ctx, vm.NS, "ping", "-c", "3", "-i", "0.3", "-W", "2", "192.0.2.2")
	if err != nil {
		t.Fatalf("ping the host behind the kernel VTEP: %v\n%s", err, out)
	}
	// The kernel learned the VM's MAC behind our VTEP from our VXLAN.
	fdb, _ := Exec(ctx, gwb.NS, "bridge", "fdb", "show", "dev", "vx0")
	if !strings.Contains(string(fdb), vm.MAC) || !strings.Contains(string(fdb), UnderlayAddr("a").String()) {
		t.Errorf("kernel VTEP did not learn %s behind %s:\n%s", vm.MAC, UnderlayAddr("a"), fdb)
	}
}

// TestIntegrationVXLANProtectUnderlay: `--protect underlay` puts each
// tenant's VXLAN inside ESP between the two VTEPs, one SA pair per tenant
// and remote host. The VMs have no SAs of their own: the wire must show
// only ESP between the VTEP addresses (and ARP for them), and tshark,
// given the underlay keys, must find VXLAN of the right VNI inside every
// ESP frame. acme's SPIs are chosen by vifsec (--sa-spi auto: random, so
// ECMP hashing on the SPI spreads).
func TestIntegrationVXLANProtectUnderlay(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	l := buildLab(t, fmt.Sprintf("vp%d", os.Getpid()%10000), 4)
	ds := map[string]*Daemon{}
	for _, gw := range l.Gateways {
		ds[gw.Name] = startDaemon(t, bin, gw)
	}
	cli := func(gw string, args ...string) string {
		t.Helper()
		out, err := ds[gw].CLI(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, gw := range l.Gateways {
		other := map[string]string{"a": "b", "b": "a"}[gw.Name]
		cli(gw.Name, "uplink", "set", "--dev", gw.Uplink, "--overlay", "vxlan", "--vxlan-local", UnderlayAddr(gw.Name).String(), "--protect", "underlay")
		for _, vm := range gw.VMs {
			peer := l.VM(vm.Tenant, other)
			cli(gw.Name, "tenant", "add", "--tenant", vm.Tenant, "--vni", fmt.Sprint(VNI(vm.Tenant)))
			cli(gw.Name, "vm", "attach", "--vm", vm.Name, "--tenant", vm.Tenant, "--dev", vm.Dev, "--mac", vm.MAC, "--vlan", fmt.Sprint(vm.VLAN))
			cli(gw.Name, "overlay", "fdb", "add", "--tenant", vm.Tenant, "--mac", peer.MAC, "--remote", UnderlayAddr(other).String())
		}
	}
	// Underlay SAs: per tenant, a→b and b→a. acme's SPIs are picked by
	// gateway a (auto) and given to b; globex's are fixed.
	type usa struct {
		tenant, from, to string
		spi              string
		key              string
	}
	spiOf := func(gw, name string) string {
		var rows []struct {
			Name string `json:"name"`
			SPI  string `json:"spi"`
		}
		if err := json.Unmarshal([]byte(cli(gw, "--format", "json", "sa", "list")), &rows); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Name == name {
				return r.SPI
			}
		}
		t.Fatalf("gateway %s has no SA %s", gw, name)
		return ""
	}
	var sas []usa
	for _, tn := range []string{"acme", "globex"} {
		for _, dir := range [][2]string{{"a", "b"}, {"b", "a"}} {
			name := fmt.Sprintf("%s-%s%s", tn, dir[0], dir[1])
			key := demoKey(tn+"-underlay", uint32(len(name)+int(dir[0][0])))
			spi := map[string]string{"globex-ab": "0x6000", "globex-ba": "0x6001"}[name]
			if spi == "" {
				spi = "auto"
			}
			// The sender adds it first; its SPI (maybe chosen) goes to the receiver.
			for i, gw := range []string{dir[0], dir[1]} {
				cli(gw, "sa", "add", "--tenant", tn, "--sa-source", UnderlayAddr(dir[0]).String(), "--sa-destination", UnderlayAddr(dir[1]).String(),
					"--sa-mode", "transport", "--sa-spi", spi, "--encryption-algorithm", "aes128-gcm", "--encryption-key", key,
					"--integrity-algorithm", "none", "--sa-name", name)
				if i == 0 {
					spi = spiOf(gw, name)
				}
			}
			sas = append(sas, usa{tenant: tn, from: dir[0], to: dir[1], spi: spi, key: key})
		}
	}
	caps, files := startCaptures(t, l)
	for _, tn := range Tenants {
		a, b := l.VM(tn.Name, "a"), l.VM(tn.Name, "b")
		for _, dst := range []netip.Addr{b.IP6, b.IP4} {
			if out, err := Exec(ctx, a.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", dst.String()); err != nil {
				t.Errorf("%s: ping %s: %v\n%s", tn.Name, dst, err, out)
			}
			if err := TCPEcho(a.NS, b.NS, dst, 0, 64<<10); err != nil {
				t.Errorf("%s: tcp %s: %v", tn.Name, dst, err)
			}
		}
	}
	for _, c := range caps {
		c.Stop()
	}
	// tshark with the underlay keys: every IP frame is ESP between the
	// VTEPs, and each decrypts to VXLAN of its tenant's VNI.
	args := []string{"-n", "-o", "esp.enable_encryption_decode:TRUE", "-T", "fields", "-E", "separator=|",
		"-e", "ip.src", "-e", "ip.proto", "-e", "esp.spi", "-e", "vxlan.vni", "-e", "arp.opcode"}
	for _, s := range sas {
		args = append(args, "-o", fmt.Sprintf(`uat:esp_sa:"IPv4","%s","%s","0x%08s","AES-GCM with 16 octet ICV [RFC4106]","%s","NULL",""`,
			UnderlayAddr(s.from), UnderlayAddr(s.to), strings.TrimPrefix(s.spi, "0x"), s.key))
	}
	spiTenant := map[string]string{}
	for _, s := range sas {
		v := strings.TrimPrefix(s.spi, "0x")
		spiTenant["0x"+strings.Repeat("0", 8-len(v))+v] = s.tenant
	}
	esp := 0
	for _, f := range files {
		out, err := exec.CommandContext(ctx, "tshark", append([]string{"-r", f}, args...)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			x := strings.Split(line, "|")
			if len(x) < 5 || x[4] != "" || line == "" {
				continue // ARP
			}
			src, proto, spi, vni := x[0], x[1], x[2], x[3]
			if !strings.HasPrefix(proto, "50") || (src != UnderlayAddr("a").String() && src != UnderlayAddr("b").String() && !strings.HasPrefix(src, "203.0.113.")) {
				t.Errorf("not underlay ESP on the wire: %s", line)
				continue
			}
			esp++
			tn := spiTenant[strings.Split(spi, ",")[0]]
			if tn == "" || vni != fmt.Sprint(VNI(tn)) {
				t.Errorf("ESP SPI %s (tenant %q) decrypts to VNI %q, want %d", spi, tn, vni, VNI(tn))
			}
		}
	}
	if esp == 0 {
		t.Fatal("no underlay ESP on the wire")
	}
	t.Logf("%d underlay ESP frames, every one VXLAN of its tenant's VNI inside; SAs %v", esp, sas)
}

// TestIntegrationVXLANHoldsFramesForVTEP: a VM's frames toward a remote
// VTEP whose underlay MAC the host cannot resolve yet wait for it instead
// of being lost. Over an IPv6 underlay, gateway b's VTEP address is
// missing while acme-a sends three UDP datagrams to acme-b (the guest knows
// acme-b's MAC, so they are its first frames); once vifsecd has encrypted
// them, the address appears, the kernel resolves it, and all three reach
// acme-b, with no no-neighbor drop on gateway a.
func TestIntegrationVXLANHoldsFramesForVTEP(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	l := buildLab(t, fmt.Sprintf("vh%d", os.Getpid()%10000), 6)
	gwb := l.Gateways[1]
	vtepB := l.vtep("b").String() + "/64"
	if err := run(ctx, "ip", "-n", gwb.NS, "addr", "del", vtepB, "dev", gwb.Uplink); err != nil {
		t.Fatal(err)
	}
	var ds []*Daemon
	for _, gw := range l.Gateways {
		d := startDaemon(t, bin, gw)
		if _, err := ConfigureWith(ctx, l, d, "transport", nil, true); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	a, b := l.VM("acme", "a"), l.VM("acme", "b")
	if err := run(ctx, "ip", "-n", a.NS, "neigh", "replace", b.IP6.String(), "lladdr", b.MAC, "dev", "eth0", "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	var srv net.PacketConn
	if err := InNS(b.NS, func() (err error) {
		srv, err = net.ListenPacket("udp", netip.AddrPortFrom(b.IP6, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	outSPI := func() uint64 {
		t.Helper()
		s, err := BenchStats(ctx, ds[0], a.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, sa := range s.SAs {
			if sa.Name == "acme-out6" {
				return sa.Packets
			}
		}
		t.Fatalf("no SA acme-out6 in the stats of %s: %+v", a.Name, s)
		return 0
	}
	before := outSPI()
	var c net.Conn
	if err := InNS(a.NS, func() (err error) {
		c, err = net.Dial("udp", srv.LocalAddr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 3
	for i := range n {
		if _, err := fmt.Fprintf(c, "first-%d", i); err != nil {
			t.Fatal(err)
		}
	}
	// vifsecd has taken and encrypted them while b's VTEP is unresolvable.
	for deadline := time.Now().Add(10 * time.Second); outSPI() < before+n; {
		if time.Now().After(deadline) {
			t.Fatalf("gateway a encrypted %d of the %d datagrams", outSPI()-before, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := run(ctx, "ip", "-n", gwb.NS, "addr", "add", vtepB, "dev", gwb.Uplink, "nodad"); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	buf := make([]byte, 64)
	// The kernel probes a next hop once a second: the frames leave
	// within about that, well inside their wait.
	srv.SetReadDeadline(time.Now().Add(datapath.NeighborHoldTime + 2*time.Second))
	for len(got) < n {
		k, _, err := srv.ReadFrom(buf)
		if err != nil {
			break
		}
		got[string(buf[:k])] = true
	}
	if drops := uplinkDrops(t, ds[0]); len(got) != n || drops["overlay no-neighbor"] != 0 {
		neigh, _ := Exec(ctx, l.Gateways[0].NS, "ip", "-6", "neigh", "show", "dev", l.Gateways[0].Uplink)
		t.Fatalf("acme-b received %d of the %d datagrams sent while b's VTEP was unresolved (%v); gateway a's overlay drops %v; a's neighbours:\n%s",
			len(got), n, got, drops, neigh)
	}
}
