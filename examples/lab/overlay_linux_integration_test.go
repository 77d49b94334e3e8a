//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIntegrationVXLANGateways: two vifsec gateways over a VXLAN underlay.
// Each tenant's ESP rides inside VXLAN with the tenant's VNI; both tenants
// share addresses and SPIs and stay apart; tshark finds no ESP outside
// VXLAN and no clear IP outside the policy-none flow, and decrypts each
// tenant's ESP with that tenant's keys alone.
func TestIntegrationVXLANGateways(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	l, err := Build(ctx, fmt.Sprintf("vx%d", os.Getpid()%10000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := l.AddUnderlay(ctx); err != nil {
		t.Fatal(err)
	}
	var sas []SAEntry
	var ds []*Daemon
	for _, gw := range l.Gateways {
		d, err := StartDaemon(ctx, bin, gw, filepath.Join(t.TempDir(), gw.Name))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
		t.Cleanup(func() {
			d.Stop()
			if t.Failed() {
				log, _ := os.ReadFile(d.Log)
				t.Logf("vifsecd %s log:\n%s", d.GW.Name, log)
			}
		})
		s, err := ConfigureWith(ctx, l, d, "transport", nil, true)
		if err != nil {
			t.Fatal(err)
		}
		sas = append(sas, s...)
	}
	// The effective MTU each VM is told: uplink 1500, less VXLAN over IPv4
	// (50) and transport-mode AES-GCM ESP (8 header + 8 IV + 3 pad + 2 +
	// 16 ICV = 37).
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
		if v.MTU != 1500-50-37 {
			t.Errorf("vm %s: effective MTU %d, want %d", v.Name, v.MTU, 1500-50-37)
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
	l, err := Build(ctx, fmt.Sprintf("vk%d", os.Getpid()%10000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := l.AddUnderlay(ctx); err != nil {
		t.Fatal(err)
	}
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
	d, err := StartDaemon(ctx, bin, gwa, filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			log, _ := os.ReadFile(d.Log)
			t.Logf("vifsecd log:\n%s", log)
		}
	})
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
