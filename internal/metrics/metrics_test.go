package metrics

import (
	"github.com/vifsec/vifsec/drop"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
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
	s.Stats.Drops[drop.Replay].Add(2)
	vc := d.Snapshot().VMs[0].Counters
	vc.PacketsOut.Add(9)
	vc.Drop(drop.SpoofedSource)
	vc.IKEIn.Add(3)
	vc.IKEOut.Add(4)
	vc.NeighRequests.Add(2)
	vc.NeighLearned.Add(1)
	// The uplink's and the overlay's counters, through the engine's reader
	// as vifsecd wires it.
	e := datapath.New(d.SADB(), nil)
	t.Cleanup(e.Close)
	d.SetUplinkCounters(e.UplinkCounts)
	e.UplinkRx.Frames.Add(100)
	e.UplinkRx.UnknownDest.Add(7)
	e.UplinkRx.Malformed.Add(8)
	e.OverlayStats.NoRemote.Add(11)
	e.OverlayStats.NoNeighbor.Add(12)
	e.OverlayStats.EncapErrors.Add(13)
	e.OverlayStats.DecapErrors.Add(14)
	e.OverlayStats.UnderlayNoSA.Add(15)
	e.OverlayStats.Unprotected.Add(16)
	e.GSOStats.TrainsSent.Add(17)
	e.GSOStats.SegmentsSent.Add(18)
	e.GSOStats.TrainsReceived.Add(19)
	e.GSOStats.SegmentsReceived.Add(20)

	// The IKE engine's limits, as internal/ikectl reports them.
	d.SetIKEStats(func() daemon.IKEStats {
		return daemon.IKEStats{HalfOpen: 40, HalfOpenByTenant: map[string]int{"t1": 32, "gone": 8}, ReassemblyBytes: 4096,
			CookiesSent: 17, Drops: map[string]uint64{"half_open_per_source": 5, "reassembly_total": 2}}
	})

	c := NewCollector(d, d.SADB(), "v-test")
	want := `
# HELP vifsec_sa_packets_total Packets processed by an SA (sa: its name, or ike/POLICY summing an IKE policy's Child SAs).
# TYPE vifsec_sa_packets_total counter
vifsec_sa_packets_total{direction="",sa="s1",tenant="t1",vm="vm1"} 5
# HELP vifsec_sa_drops_total Packets dropped against an SA, by reason (only reasons seen are exported).
# TYPE vifsec_sa_drops_total counter
vifsec_sa_drops_total{direction="",reason="replay",sa="s1",tenant="t1",vm="vm1"} 2
# HELP vifsec_vm_packets_total Packets of a VM, by direction seen from the VM (out: sent by it).
# TYPE vifsec_vm_packets_total counter
vifsec_vm_packets_total{direction="in",tenant="t1",vm="vm1"} 0
vifsec_vm_packets_total{direction="out",tenant="t1",vm="vm1"} 9
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "vifsec_sa_packets_total", "vifsec_sa_drops_total", "vifsec_vm_packets_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP vifsec_vm_ike_datagrams_total IKE datagrams on a VM's behalf: in, taken from the wire for vifsecd's IKE instead of the VM; out, sent by it (NAT keepalives included).
# TYPE vifsec_vm_ike_datagrams_total counter
vifsec_vm_ike_datagrams_total{direction="in",tenant="t1",vm="vm1"} 3
vifsec_vm_ike_datagrams_total{direction="out",tenant="t1",vm="vm1"} 4
# HELP vifsec_vm_neighbor_requests_total ARP requests and IPv6 Neighbor Solicitations sent on a VM's behalf to resolve an IKE peer's next hop.
# TYPE vifsec_vm_neighbor_requests_total counter
vifsec_vm_neighbor_requests_total{tenant="t1",vm="vm1"} 2
# HELP vifsec_vm_neighbors_learned_total Next hops of a VM's IKE peers learned from answers or from the VM's own frames.
# TYPE vifsec_vm_neighbors_learned_total counter
vifsec_vm_neighbors_learned_total{tenant="t1",vm="vm1"} 1
# HELP vifsec_uplink_received_frames_total Frames received on the uplink (super-frames the kernel coalesced not counted).
# TYPE vifsec_uplink_received_frames_total counter
vifsec_uplink_received_frames_total 100
# HELP vifsec_uplink_drops_total Frames from the uplink dropped before reaching any VM, by reason.
# TYPE vifsec_uplink_drops_total counter
vifsec_uplink_drops_total{reason="malformed"} 8
vifsec_uplink_drops_total{reason="unknown-destination"} 7
# HELP vifsec_uplink_tx_errors_total Frames the uplink port did not take; restarts at 0 when the uplink port is reopened.
# TYPE vifsec_uplink_tx_errors_total counter
vifsec_uplink_tx_errors_total 0
# HELP vifsec_overlay_drops_total Frames the VXLAN overlay dropped, by reason.
# TYPE vifsec_overlay_drops_total counter
vifsec_overlay_drops_total{reason="decap-error"} 14
vifsec_overlay_drops_total{reason="encap-error"} 13
vifsec_overlay_drops_total{reason="no-fdb-entry"} 11
vifsec_overlay_drops_total{reason="no-neighbor"} 12
vifsec_overlay_drops_total{reason="underlay-no-sa"} 15
vifsec_overlay_drops_total{reason="unprotected"} 16
# HELP vifsec_uplink_udp_gso_trains_total UDP GSO super-frames: out, sent to the uplink joined from the ESP-in-UDP or VXLAN datagrams of one guest TSO super-frame; in, received whole from the uplink and cut by vifsecd.
# TYPE vifsec_uplink_udp_gso_trains_total counter
vifsec_uplink_udp_gso_trains_total{direction="in"} 19
vifsec_uplink_udp_gso_trains_total{direction="out"} 17
# HELP vifsec_uplink_udp_gso_segments_total Datagrams carried in UDP GSO super-frames, by direction (out, in).
# TYPE vifsec_uplink_udp_gso_segments_total counter
vifsec_uplink_udp_gso_segments_total{direction="in"} 20
vifsec_uplink_udp_gso_segments_total{direction="out"} 18
`), "vifsec_vm_ike_datagrams_total", "vifsec_vm_neighbor_requests_total", "vifsec_vm_neighbors_learned_total",
		"vifsec_uplink_received_frames_total", "vifsec_uplink_drops_total", "vifsec_uplink_tx_errors_total", "vifsec_overlay_drops_total",
		"vifsec_uplink_udp_gso_trains_total", "vifsec_uplink_udp_gso_segments_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP vifsec_ike_half_open_sas Half-open IKE SAs: IKE_SA_INIT answered, IKE_AUTH not done.
# TYPE vifsec_ike_half_open_sas gauge
vifsec_ike_half_open_sas 40
# HELP vifsec_ike_tenant_half_open_sas Half-open IKE SAs counted against a tenant's limit (one that any of several tenants' policies could answer counts for each).
# TYPE vifsec_ike_tenant_half_open_sas gauge
vifsec_ike_tenant_half_open_sas{tenant="t1"} 32
# HELP vifsec_ike_reassembly_bytes Memory held by the reassembly of IKE fragments (RFC 7383), all IKE SAs.
# TYPE vifsec_ike_reassembly_bytes gauge
vifsec_ike_reassembly_bytes 4096
# HELP vifsec_ike_cookies_sent_total IKE_SA_INIT requests answered with a COOKIE (RFC 7296 section 2.6).
# TYPE vifsec_ike_cookies_sent_total counter
vifsec_ike_cookies_sent_total 17
`), "vifsec_ike_half_open_sas", "vifsec_ike_tenant_half_open_sas", "vifsec_ike_reassembly_bytes", "vifsec_ike_cookies_sent_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "vifsec_ike_limit_drops_total"); n != int(ike.NumLimits)-1 {
		t.Errorf("%d IKE limit drop series, want one per limit (%d)", n, ike.NumLimits-1)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP vifsec_ike_limit_drops_total IKE datagrams or fragments dropped by a limit against exhaustion, by limit.
# TYPE vifsec_ike_limit_drops_total counter
vifsec_ike_limit_drops_total{limit="fragment_not_negotiated"} 0
vifsec_ike_limit_drops_total{limit="half_open_exchange"} 0
vifsec_ike_limit_drops_total{limit="half_open_per_source"} 5
vifsec_ike_limit_drops_total{limit="half_open_per_tenant"} 0
vifsec_ike_limit_drops_total{limit="half_open_total"} 0
vifsec_ike_limit_drops_total{limit="init_request_size"} 0
vifsec_ike_limit_drops_total{limit="reassembly_per_sa"} 0
vifsec_ike_limit_drops_total{limit="reassembly_total"} 2
`), "vifsec_ike_limit_drops_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "vifsec_vm_drops_total"); n != int(drop.NumCounted)-1 {
		t.Errorf("%d vm drop series, want one per reason (%d)", n, drop.NumCounted-1)
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
	// The whole exposition, as /metrics serves it, passes the same lint
	// (promtool check metrics).
	if problems, err := testutil.GatherAndLint(NewRegistry(d, d.SADB(), "v")); err != nil || len(problems) > 0 {
		t.Errorf("registry lint: %v %v", problems, err)
	}
}

// TestCollectorNoDataPath: before the data path reports, the uplink and
// overlay series exist with value 0 (a scrape sees every name at once).
func TestCollectorNoDataPath(t *testing.T) {
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCollector(d, d.SADB(), "v-test")
	for name, n := range map[string]int{"vifsec_uplink_received_frames_total": 1, "vifsec_uplink_tx_errors_total": 1,
		"vifsec_uplink_drops_total": 2, "vifsec_overlay_drops_total": 6, "vifsec_vm_ike_datagrams_total": 0,
		"vifsec_ike_half_open_sas": 1, "vifsec_ike_limit_drops_total": int(ike.NumLimits) - 1} {
		if got := testutil.CollectAndCount(c, name); got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP vifsec_uplink_tx_errors_total Frames the uplink port did not take; restarts at 0 when the uplink port is reopened.
# TYPE vifsec_uplink_tx_errors_total counter
vifsec_uplink_tx_errors_total 0
`), "vifsec_uplink_tx_errors_total"); err != nil {
		t.Error(err)
	}
}
