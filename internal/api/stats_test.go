package api

import (
	"context"
	wire "github.com/vifsec/vifsec/api"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/store/storetest"
)

// TestStatsDataPathCounters: counters the data path increments — a VM's
// IKE and neighbour counters, the uplink's and the overlay's — show in
// GET /v2/stats and GET /v2/stats/uplink under their JSON names; the
// older fields stay.
func TestStatsDataPathCounters(t *testing.T) {
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(d, nil, "test")}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := wire.NewClient(sock)
	t.Cleanup(c.Close)
	ctx := context.Background()

	// No data path yet: every uplink counter is there, at zero.
	u, err := c.UplinkStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.FramesIn != 0 || len(u.Drops) != 2 || len(u.OverlayDrops) != 6 {
		t.Fatalf("uplink stats with no data path: %+v", u)
	}

	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachVM(ctx, wire.VMAttachRequest{VM: "vm1", Tenant: "t1", Dev: "tap0", MAC: "52:54:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	vc := d.Snapshot().VMs[0].Counters
	vc.PacketsIn.Add(1)
	vc.IKEIn.Add(3)
	vc.IKEOut.Add(4)
	vc.NeighRequests.Add(5)
	vc.NeighLearned.Add(6)
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

	var raw []map[string]any
	if err := c.Do(ctx, http.MethodGet, "/v2/stats", nil, &raw); err != nil || len(raw) != 1 {
		t.Fatalf("GET /v2/stats: %v %v", raw, err)
	}
	for k, want := range map[string]float64{"packets_in": 1, "ike_in": 3, "ike_out": 4, "neighbor_requests": 5, "neighbors_learned": 6} {
		if raw[0][k] != want {
			t.Errorf("GET /v2/stats: %q = %v, want %v", k, raw[0][k], want)
		}
	}
	for _, k := range []string{"vm", "tenant", "packets_out", "bytes_in", "bytes_out", "drops", "sas"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("GET /v2/stats: %q missing", k)
		}
	}

	var rawUp map[string]any
	if err := c.Do(ctx, http.MethodGet, "/v2/stats/uplink", nil, &rawUp); err != nil {
		t.Fatal(err)
	}
	wantUp := map[string]any{"frames_in": 100.0, "tx_errors": 0.0,
		"drops": map[string]any{"unknown-destination": 7.0, "malformed": 8.0},
		"overlay_drops": map[string]any{"no-fdb-entry": 11.0, "no-neighbor": 12.0, "encap-error": 13.0,
			"decap-error": 14.0, "underlay-no-sa": 15.0, "unprotected": 16.0},
		"udp_gso": map[string]any{"trains_sent": 17.0, "segments_sent": 18.0, "trains_received": 19.0, "segments_received": 20.0}}
	if !reflect.DeepEqual(rawUp, wantUp) {
		t.Errorf("GET /v2/stats/uplink = %v\nwant %v", rawUp, wantUp)
	}
	if u, err = c.UplinkStats(ctx); err != nil || u.FramesIn != 100 || u.OverlayDrops["unprotected"] != 16 {
		t.Errorf("UplinkStats() = %+v, %v", u, err)
	}
}
