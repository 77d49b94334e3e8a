package metrics

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

func TestCollector(t *testing.T) {
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddTenant(tenant.Tenant{Name: "t1"}); err != nil {
		t.Fatal(err)
	}
	mac, _ := tenant.ParseMAC("52:54:00:00:00:01")
	if err := d.AttachVM(tenant.VM{Name: "vm1", Tenant: "t1", Dev: "tap0", MAC: mac}); err != nil {
		t.Fatal(err)
	}
	key, _ := sa.ParseKey("0x000102030405060708090a0b0c0d0e0f10111213")
	if _, err := d.AddSA("vm1", sa.Config{Name: "s1", SPI: 0x1000, Mode: sa.ModeTransport,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
		Enc: sa.EncAES128GCM, EncKey: key, Integ: sa.IntegNone}); err != nil {
		t.Fatal(err)
	}
	// The data path's side: atomic adds on counters it already holds.
	s := d.SADB().Get("s1")
	s.Stats.Packets.Add(5)
	s.Stats.Bytes.Add(500)
	s.Stats.Drops[sa.DropReplay].Add(2)
	vc := d.Snapshot().VMs[0].Counters
	vc.PacketsOut.Add(9)
	vc.Drop(sa.DropSpoofedSource)

	c := NewCollector(d, d.SADB(), "v-test")
	want := `
# HELP vifsec_sa_packets_total Packets processed by an SA.
# TYPE vifsec_sa_packets_total counter
vifsec_sa_packets_total{direction="",sa="s1",spi="0x1000",tenant="t1",vm="vm1"} 5
# HELP vifsec_sa_drops_total Packets dropped against an SA, by reason (only reasons seen are exported).
# TYPE vifsec_sa_drops_total counter
vifsec_sa_drops_total{reason="replay",sa="s1",spi="0x1000",tenant="t1",vm="vm1"} 2
# HELP vifsec_vm_packets_total Packets of a VM, by direction seen from the VM (out: sent by it).
# TYPE vifsec_vm_packets_total counter
vifsec_vm_packets_total{direction="in",tenant="t1",vm="vm1"} 0
vifsec_vm_packets_total{direction="out",tenant="t1",vm="vm1"} 9
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "vifsec_sa_packets_total", "vifsec_sa_drops_total", "vifsec_vm_packets_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "vifsec_vm_drops_total"); n != int(sa.NumDrops)-1 {
		t.Errorf("%d vm drop series, want one per reason (%d)", n, sa.NumDrops-1)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP vifsec_objects Configured objects by kind.
# TYPE vifsec_objects gauge
vifsec_objects{kind="sa"} 1
vifsec_objects{kind="sp"} 0
vifsec_objects{kind="tenant"} 1
vifsec_objects{kind="vm"} 1
`), "vifsec_objects"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if reg := NewRegistry(d, d.SADB(), "v"); reg == nil {
		t.Fatal("no registry")
	}
}
