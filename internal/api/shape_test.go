package api

import (
	"context"
	"errors"
	"net/http"
	"testing"

	wire "github.com/vifsec/vifsec/api"
)

// TestJSONShapes: what scripts parse. SPIs are one format ("0x%08x", null
// for none), ports numbers or null for any, the replay window the one in
// force rather than 0.
func TestJSONShapes(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	seedObjects(t, c)
	get := func(path string, out any) {
		t.Helper()
		if err := c.Do(ctx, http.MethodGet, "/v2"+path, nil, out); err != nil {
			t.Fatal(err)
		}
	}
	var sa map[string]any
	get("/sa/sa_2", &sa)
	if sa["spi"] != "0x00001000" || sa["replay_window"] != 1024.0 {
		t.Errorf("SA: spi %v, replay_window %v; want \"0x00001000\", 1024", sa["spi"], sa["replay_window"])
	}
	if v, ok := sa["direction"]; !ok || v != "out" {
		t.Errorf("SA direction %v, want out", v)
	}
	var sp map[string]any
	get("/sp/sp1", &sp)
	if v, ok := sp["source_port"]; !ok || v != nil || sp["destination_port"] != nil {
		t.Errorf("SP any ports: %v %v, want null", sp["source_port"], sp["destination_port"])
	}
	var stats []struct {
		SAs []map[string]any `json:"sas"`
	}
	get("/stats", &stats)
	if len(stats) != 1 || len(stats[0].SAs) != 1 || stats[0].SAs[0]["spi"] != "0x00001000" {
		t.Errorf("stats: %+v", stats)
	}
	var rows []map[string]any
	get("/ipsecsa", &rows)
	if len(rows) != 1 || rows[0]["outbound_spi"] != "0x00001000" {
		t.Fatalf("ipsecsa: %+v", rows)
	}
	if v, ok := rows[0]["vm"]; !ok || v != "vm1" {
		t.Errorf("ipsecsa vm %v", v)
	}
	if v, ok := rows[0]["inbound_spi"]; !ok || v != nil {
		t.Errorf("ipsecsa inbound_spi %v, want null (no inbound SA)", v)
	}
}

// TestJSONNulls: a field without a value is null, not "" (an underlay SA
// has no VM; an SA no SP uses has no direction).
func TestJSONNulls(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1", VNI: "5001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddSA(ctx, wire.SAAddRequest{Tenant: "t1", SAName: "u1", SASource: "192.0.2.1", SADestination: "192.0.2.2",
		SAMode: "tunnel", SASPI: "0x2000", EncryptionAlgorithm: "aes128-gcm",
		EncryptionKey: "0x000102030405060708090a0b0c0d0e0f10111213", IntegrityAlgorithm: "none"}); err != nil {
		t.Fatal(err)
	}
	var sa map[string]any
	if err := c.Do(ctx, http.MethodGet, "/v2/sa/u1", nil, &sa); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"vm", "direction"} {
		if v, ok := sa[k]; !ok || v != nil {
			t.Errorf("underlay SA %s = %#v, want null", k, v)
		}
	}
	var rows []map[string]any
	if err := c.Do(ctx, http.MethodGet, "/v2/ipsecsa", nil, &rows); err != nil || len(rows) != 1 {
		t.Fatalf("ipsecsa %v %v", rows, err)
	}
	if v, ok := rows[0]["vm"]; !ok || v != nil {
		t.Errorf("ipsecsa underlay vm = %#v, want null", v)
	}
}

// TestAPIVersion: the shapes above are API v2; /v1, which had others, is
// refused rather than answered in the new shapes.
func TestAPIVersion(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	v, err := c.Version(ctx)
	if err != nil || v.API != "v2" {
		t.Errorf("version %+v, %v; want api v2", v, err)
	}
	var out any
	err = c.Do(ctx, http.MethodGet, "/v1/sa", nil, &out)
	var ae *wire.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("GET /v1/sa: %v, want 404", err)
	}
}
