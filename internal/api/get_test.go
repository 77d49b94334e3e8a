package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	wire "github.com/vifsec/vifsec/api"
)

// seedObjects makes one of each named object: tenant t1, VM vm1, SA sa_2
// and SP sp1.
func seedObjects(t *testing.T, c *wire.Client) {
	t.Helper()
	ctx := context.Background()
	for _, f := range []func() (wire.Added, error){
		func() (wire.Added, error) { return c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1", VNI: "5001"}) },
		func() (wire.Added, error) {
			return c.AttachVM(ctx, wire.VMAttachRequest{VM: "vm1", Tenant: "t1", Dev: "tap0", MAC: "52:54:00:ab:cd:ef", VLAN: "10", IP: []string{"2001:db8:1::121"}})
		},
		func() (wire.Added, error) { return c.AddSA(ctx, wire.SAAddRequest(seedSARequest())) },
		func() (wire.Added, error) {
			return c.AddSP(ctx, wire.SPAddRequest{VM: "vm1", SPName: "sp1", SPSource: "2001:db8:1::121", SPDestination: "2001:db8:1::122",
				SourcePort: "any", DestinationPort: "any", UpperLayerProtocol: "any", FlowDirection: "out", Action: "ipsec", SPMode: "transport", SAName: "sa_2"})
		},
	} {
		if _, err := f(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGetOne(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	seedObjects(t, c)

	if tn, err := c.Tenant(ctx, "t1"); err != nil || tn.Name != "t1" || tn.VNI != 5001 {
		t.Errorf("Tenant = %+v, %v", tn, err)
	}
	if v, err := c.VM(ctx, "vm1"); err != nil || v.Name != "vm1" || v.MAC != "52:54:00:ab:cd:ef" {
		t.Errorf("VM = %+v, %v", v, err)
	}
	if s, err := c.SA(ctx, "sa_2"); err != nil || s.Name != "sa_2" || s.UsedBy[0] != "sp1" {
		t.Errorf("SA = %+v, %v", s, err)
	}
	if p, err := c.SP(ctx, "sp1"); err != nil || p.Name != "sp1" || p.SAName != "sa_2" {
		t.Errorf("SP = %+v, %v", p, err)
	}

	tests := []struct {
		name string
		get  func() error
		flag string
	}{
		{"tenant", func() error { _, err := c.Tenant(ctx, "nosuch"); return err }, "--tenant"},
		{"vm", func() error { _, err := c.VM(ctx, "nosuch"); return err }, "--vm"},
		{"sa", func() error { _, err := c.SA(ctx, "ike/t1/p/0x1-in"); return err }, "--sa-name"},
		{"sp", func() error { _, err := c.SP(ctx, "nosuch"); return err }, "--sp-name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.get()
			var ae *wire.Error
			if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != wire.CodeNotFound || !strings.Contains(ae.Message, tt.flag) {
				t.Fatalf("unknown name: %v, want 404 not_found naming %s", err, tt.flag)
			}
			if !errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrExists) || wire.ErrorCode(err) != "not_found" {
				t.Errorf("errors.Is/ErrorCode on %v", err)
			}
		})
	}
}

// TestErrorCodes: the client's errors are typed by their stable code.
func TestErrorCodes(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	seedObjects(t, c)
	_, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1", VNI: "5002"})
	if !errors.Is(err, wire.ErrExists) || wire.ErrorCode(err) != wire.CodeExists {
		t.Errorf("duplicate tenant: %v (code %q), want exists", err, wire.ErrorCode(err))
	}
	_, err = c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t2", VNI: "x"})
	if !errors.Is(err, wire.ErrInvalid) {
		t.Errorf("bad VNI: %v, want invalid", err)
	}
	_, err = c.RemoveSA(ctx, "sa_2")
	if !errors.Is(err, wire.ErrInUse) {
		t.Errorf("SA in use: %v, want in_use", err)
	}
	c.Close()
	u := wire.NewClient(t.TempDir() + "/absent.sock")
	_, err = u.SAs(ctx)
	if !errors.Is(err, wire.ErrUnreachable) || wire.ErrorCode(err) != wire.CodeUnreachable || errors.Is(err, wire.ErrNotFound) {
		t.Errorf("absent socket: %v (code %q), want unreachable", err, wire.ErrorCode(err))
	}
	if wire.ErrorCode(errors.New("x")) != "" {
		t.Error("ErrorCode of a foreign error is not empty")
	}
}
