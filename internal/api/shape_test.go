package api

import (
	"context"
	"net/http"
	"testing"
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
		if err := c.Do(ctx, http.MethodGet, "/v1"+path, nil, out); err != nil {
			t.Fatal(err)
		}
	}
	var sa map[string]any
	get("/sa/sa_2", &sa)
	if sa["spi"] != "0x00001000" || sa["replay_window"] != 1024.0 {
		t.Errorf("SA: spi %v, replay_window %v; want \"0x00001000\", 1024", sa["spi"], sa["replay_window"])
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
	if v, ok := rows[0]["inbound_spi"]; !ok || v != nil {
		t.Errorf("ipsecsa inbound_spi %v, want null (no inbound SA)", v)
	}
}
