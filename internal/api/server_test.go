package api

import (
	"context"
	"errors"
	wire "github.com/vifsec/vifsec/api"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// serve runs the API on a temporary unix socket and returns a client.
func serve(t *testing.T) *wire.Client {
	c, _ := serveDaemon(t)
	return c
}

func TestAPIRoundTrip(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1", VNI: "5001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachVM(ctx, wire.VMAttachRequest{VM: "vm1", Tenant: "t1", Dev: "tap0", MAC: "52:54:00:AB:CD:EF", VLAN: "10", IP: []string{"2001:DB8:1::121"}}); err != nil {
		t.Fatal(err)
	}
	a, err := c.AddSA(ctx, wire.SAAddRequest(seedSARequest()))
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
	if s.SPI != 0x1000 || s.ReplayWindow != 1024 || s.EncryptionKeyBytes != 24 || s.IntegrityKeyBytes != 20 || s.MAC != "52:54:00:ab:cd:ef" || s.VLAN != 10 || s.State != "idle" {
		t.Errorf("listed SA %+v", s)
	}
	_, err = c.AddSP(ctx, wire.SPAddRequest{VM: "vm1", SPSource: "2001:db8:1::/64", SPDestination: "2002:db8:1::/64",
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
	err = c.Do(ctx, http.MethodDelete, "/v2/sa", nil, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Errorf("DELETE /v2/sa without all: %v", err)
	}
	// Unknown fields are refused, not ignored.
	err = c.Do(ctx, http.MethodPost, "/v2/tenants", map[string]string{"tenant": "t2", "vnii": "1"}, nil)
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
	if _, err := c.ModifyConfig(ctx, wire.ConfigModifyRequest{IsEnabled: "maybe"}); err == nil || !strings.Contains(err.Error(), "--is-enabled") {
		t.Errorf("ModifyConfig(maybe) = %v", err)
	}
	u, err := c.Uplink(ctx)
	if err != nil || u != nil {
		t.Errorf("Uplink before set = %v, %v; want nil", u, err)
	}
}

func TestClientUnreachable(t *testing.T) {
	c := wire.NewClient(filepath.Join(t.TempDir(), "absent.sock"))
	_, err := c.Config(context.Background())
	var ue *wire.UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want UnreachableError", err)
	}
}

func TestAPIFDB(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1", VNI: "5001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t2", VNI: "5002"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetUplink(ctx, wire.UplinkSetRequest{Dev: "eth0", Overlay: "vxlan", VXLANLocal: "2001:db8::1"}); err != nil {
		t.Fatalf("uplink vxlan: %v", err)
	}
	if u, err := c.Uplink(ctx); err != nil || u == nil || u.Overlay != "vxlan" || u.VXLANPort != 4789 || u.VXLANLocal != "2001:db8::1" {
		t.Errorf("Uplink = %+v, %v", u, err)
	}
	for _, r := range []FDBAddRequest{
		{Tenant: "t2", MAC: "52:54:00:00:00:02", Remote: "192.0.2.2"},
		{Tenant: "t1", MAC: "52:54:00:AB:CD:01", Remote: "2001:DB8::2"},
	} {
		if a, err := c.AddFDB(ctx, wire.FDBAddRequest(r)); err != nil || len(a.Warnings) != 0 {
			t.Fatalf("AddFDB(%+v) = %+v, %v", r, a, err)
		}
	}
	all, err := c.FDB(ctx, "")
	want := []FDBEntry{{Tenant: "t1", MAC: "52:54:00:ab:cd:01", Remote: "2001:db8::2"}, {Tenant: "t2", MAC: "52:54:00:00:00:02", Remote: "192.0.2.2"}}
	if err != nil || !reflect.DeepEqual(all, want) {
		t.Errorf("FDB() = %+v, %v; want %+v", all, err, want)
	}
	if got, err := c.FDB(ctx, "t2"); err != nil || !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("FDB(t2) = %+v, %v", got, err)
	}
	var ae *Error
	if _, err := c.FDB(ctx, "nosuch"); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Message, "--tenant") {
		t.Errorf("FDB(nosuch) = %v, want 404 naming --tenant", err)
	}
	refusals := []struct {
		req    FDBAddRequest
		status int
		code   string
		flag   string
	}{
		{FDBAddRequest{Tenant: "nosuch", MAC: "52:54:00:00:00:09", Remote: "192.0.2.9"}, 404, "not_found", "--tenant"},
		{FDBAddRequest{Tenant: "t1", MAC: "52:54:00:ab:cd:01", Remote: "192.0.2.9"}, 409, "exists", "--mac"},
		{FDBAddRequest{Tenant: "t1", MAC: "52:54:00:00:09", Remote: "192.0.2.9"}, 400, "invalid", "--mac"},
		{FDBAddRequest{Tenant: "t1", MAC: "01:00:5e:00:00:01", Remote: "192.0.2.9"}, 400, "invalid", "--mac"},
		{FDBAddRequest{Tenant: "t1", MAC: "52:54:00:00:00:09", Remote: "ff02::1"}, 400, "invalid", "--remote"},
		{FDBAddRequest{Tenant: "t1", MAC: "52:54:00:00:00:09", Remote: "192.0.2.0/24"}, 400, "invalid", "--remote"},
		{FDBAddRequest{Tenant: "t1", MAC: "52:54:00:00:00:09"}, 400, "invalid", "--remote"},
	}
	for _, tt := range refusals {
		_, err := c.AddFDB(ctx, wire.FDBAddRequest(tt.req))
		if !errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.code || !strings.Contains(ae.Message, tt.flag) {
			t.Errorf("AddFDB(%+v) = %v, want %d %s naming %s", tt.req, err, tt.status, tt.code, tt.flag)
		}
	}
	if _, err := c.RemoveTenant(ctx, "t2"); !errors.As(err, &ae) || ae.Code != "in_use" || !strings.Contains(ae.Message, "52:54:00:00:00:02") {
		t.Errorf("RemoveTenant(t2) = %v, want in_use naming the MAC", err)
	}
	if _, err := c.RemoveFDB(ctx, "t1", "52:54:00:00:00:09"); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Message, "--mac") {
		t.Errorf("RemoveFDB(absent) = %v", err)
	}
	if _, err := c.RemoveFDB(ctx, "t1", ""); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "--mac") {
		t.Errorf("RemoveFDB(no mac) = %v", err)
	}
	if all2, _ := c.FDB(ctx, ""); !reflect.DeepEqual(all2, want) {
		t.Errorf("refusals changed the FDB: %+v", all2)
	}
	r, err := c.RemoveFDB(ctx, "t1", "52:54:00:AB:CD:01")
	if err != nil || !reflect.DeepEqual(r.Removed, []string{"t1/52:54:00:ab:cd:01"}) {
		t.Errorf("RemoveFDB = %+v, %v", r, err)
	}
	if got, err := c.FDB(ctx, "t1"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("FDB(t1) after remove = %#v, %v; want []", got, err)
	}
}

func TestAPIUnderlay(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	var ae *Error
	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1", VNI: "5001"}); err != nil {
		t.Fatal(err)
	}
	// --protect underlay needs --overlay vxlan.
	_, err := c.SetUplink(ctx, wire.UplinkSetRequest{Dev: "eth0", Protect: "underlay"})
	if !errors.As(err, &ae) || ae.Code != "invalid" || !strings.Contains(ae.Message, "--protect underlay") || !strings.Contains(ae.Message, "--overlay vxlan") {
		t.Errorf("protect without vxlan: %v", err)
	}
	_, err = c.SetUplink(ctx, wire.UplinkSetRequest{Dev: "eth0", Overlay: "vxlan", VXLANLocal: "192.0.2.1", Protect: "esp"})
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "--protect:") {
		t.Errorf("bad protect: %v", err)
	}
	if _, err := c.SetUplink(ctx, wire.UplinkSetRequest{Dev: "eth0", Overlay: "vxlan", VXLANLocal: "192.0.2.1", Protect: "underlay"}); err != nil {
		t.Fatal(err)
	}
	u, err := c.Uplink(ctx)
	if err != nil || u == nil || u.Protect != "underlay" {
		t.Errorf("uplink %+v, %v", u, err)
	}

	req := SAAddRequest{Tenant: "t1", SAName: "u1", SASource: "192.0.2.1", SADestination: "192.0.2.2",
		SAMode: "tunnel", SASPI: "auto", EncryptionAlgorithm: "aes128-gcm",
		EncryptionKey: "0x000102030405060708090a0b0c0d0e0f10111213", IntegrityAlgorithm: "none"}
	a, err := c.AddSA(ctx, wire.SAAddRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "chosen for u1") {
		t.Errorf("warnings %q, want the chosen SPI", a.Warnings)
	}
	sas, err := c.SAs(ctx)
	if err != nil || len(sas) != 1 {
		t.Fatalf("SAs = %v, %v", sas, err)
	}
	s := sas[0]
	if s.VM != "" || s.Tenant != "t1" || s.MAC != "00:00:00:00:00:00" || s.VLAN != 0 || s.Direction != "out" || s.State != "installed" ||
		!strings.Contains(a.Warnings[0], "SPI "+s.SPI.String()) {
		t.Errorf("listed underlay SA %+v (warning %q)", s, a.Warnings[0])
	}
	// The same explicit SPI is refused, naming --sa-spi.
	req.SAName, req.SASPI = "u2", s.SPI.String()
	_, err = c.AddSA(ctx, wire.SAAddRequest(req))
	if !errors.As(err, &ae) || ae.Code != "exists" || !strings.Contains(ae.Message, "--sa-spi") {
		t.Errorf("duplicate underlay SPI: %v", err)
	}
	req.SASPI = "0x0"
	_, err = c.AddSA(ctx, wire.SAAddRequest(req))
	if !errors.As(err, &ae) || ae.Code != "invalid" || !strings.Contains(ae.Message, "--sa-spi") {
		t.Errorf("SPI 0x0: %v", err)
	}
	req.SASPI, req.VM = "0x2000", "vm1"
	_, err = c.AddSA(ctx, wire.SAAddRequest(req))
	if !errors.As(err, &ae) || ae.Code != "invalid" || !strings.Contains(ae.Message, "--vm/--tenant") {
		t.Errorf("both --vm and --tenant: %v", err)
	}
	req.VM, req.Tenant = "", "nosuch"
	_, err = c.AddSA(ctx, wire.SAAddRequest(req))
	if !errors.As(err, &ae) || ae.Code != "not_found" || !strings.Contains(ae.Message, "--tenant") {
		t.Errorf("unknown tenant: %v", err)
	}
	rows, err := c.IPsecSAs(ctx, "t1")
	if err != nil || len(rows) != 1 || rows[0].Policy != "underlay" || rows[0].VM != "" || rows[0].LocalAddress != "192.0.2.1" || rows[0].State != "INSTALLED" {
		t.Errorf("show-ipsecsa %+v, %v", rows, err)
	}
	_, err = c.RemoveTenant(ctx, "t1")
	if !errors.As(err, &ae) || ae.Code != "in_use" || !strings.Contains(ae.Message, "u1") {
		t.Errorf("remove tenant with underlay SA: %v", err)
	}
	if _, err := c.RemoveSA(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveTenant(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
}
