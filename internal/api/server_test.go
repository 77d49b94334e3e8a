package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
)

// serve runs the API on a temporary unix socket and returns a client.
func serve(t *testing.T) *Client {
	t.Helper()
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
	c := NewClient(sock)
	t.Cleanup(c.Close)
	return c
}

func TestAPIRoundTrip(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	if _, err := c.AddTenant(ctx, TenantAddRequest{Tenant: "t1", VNI: "5001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachVM(ctx, VMAttachRequest{VM: "vm1", Tenant: "t1", Dev: "tap0", MAC: "52:54:00:AB:CD:EF", VLAN: "10", IP: []string{"2001:DB8:1::121"}}); err != nil {
		t.Fatal(err)
	}
	a, err := c.AddSA(ctx, seedSARequest())
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "deprecated") {
		t.Errorf("warnings %q", a.Warnings)
	}
	sas, err := c.SAs(ctx)
	if err != nil || len(sas) != 1 {
		t.Fatalf("SAs = %v, %v", sas, err)
	}
	s := sas[0]
	if s.SPI != "0x1000" || s.EncryptionKeyBytes != 24 || s.IntegrityKeyBytes != 20 || s.MAC != "52:54:00:ab:cd:ef" || s.VLAN != 10 || s.State != "idle" {
		t.Errorf("listed SA %+v", s)
	}
	_, err = c.AddSP(ctx, SPAddRequest{VM: "vm1", SPSource: "2001:db8:1::/64", SPDestination: "2002:db8:1::/64",
		SourcePort: "23", DestinationPort: "25", UpperLayerProtocol: "tcp", FlowDirection: "out",
		Action: "ipsec", SPMode: "tunnel", SAName: "sa_2", SPName: "sp1"})
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "invalid" || !strings.Contains(ae.Message, "--sp-mode tunnel") || !strings.Contains(ae.Message, "--sa-mode transport") {
		t.Errorf("SP mode mismatch: %v", err)
	}
	_, err = c.RemoveSA(ctx, "nosuch")
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != "not_found" {
		t.Errorf("remove unknown SA: %#v", err)
	}
	// DELETE of a whole collection needs ?all=true.
	err = c.Do(ctx, http.MethodDelete, "/v1/sa", nil, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Errorf("DELETE /v1/sa without all: %v", err)
	}
	// Unknown fields are refused, not ignored.
	err = c.Do(ctx, http.MethodPost, "/v1/tenants", map[string]string{"tenant": "t2", "vnii": "1"}, nil)
	if !errors.As(err, &ae) || ae.Code != "bad_request" || !strings.Contains(ae.Message, "vnii") {
		t.Errorf("unknown field: %v", err)
	}
	r, err := c.RemoveAllSAs(ctx)
	if err != nil || len(r.Removed) != 1 {
		t.Errorf("RemoveAllSAs = %+v, %v", r, err)
	}
	cfg, err := c.Config(ctx)
	if err != nil || !cfg.IsEnabled {
		t.Errorf("Config = %+v, %v", cfg, err)
	}
	if _, err := c.ModifyConfig(ctx, ConfigModifyRequest{IsEnabled: "maybe"}); err == nil || !strings.Contains(err.Error(), "--is-enabled") {
		t.Errorf("ModifyConfig(maybe) = %v", err)
	}
	u, err := c.Uplink(ctx)
	if err != nil || u != nil {
		t.Errorf("Uplink before set = %v, %v; want nil", u, err)
	}
}

func TestClientUnreachable(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "absent.sock"))
	_, err := c.Config(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want UnreachableError", err)
	}
}
