package api

import (
	"context"
	"errors"
	wire "github.com/vifsec/vifsec/api"
	"net/http"
	"strings"
	"testing"
)

func TestAPIPutVM(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1"}); err != nil {
		t.Fatal(err)
	}
	const origin = "libvirt:8ad61ae1-0447-41a9-a1ed-d53ce317ff72"
	r := VMAttachRequest{VM: "web1-525400000001", Tenant: "t1", Dev: "vnet0", MAC: "52:54:00:00:00:01", VLAN: "100", Origin: origin}
	for _, dev := range []string{"vnet0", "vnet0", "vnet5"} {
		r.Dev = dev
		if _, err := c.PutVM(ctx, wire.VMAttachRequest(r)); err != nil {
			t.Fatalf("PUT on %s: %v", dev, err)
		}
		vms, err := c.VMs(ctx)
		if err != nil || len(vms) != 1 || vms[0].Dev != dev || vms[0].Origin != origin || vms[0].VLAN != 100 {
			t.Fatalf("after PUT on %s: %+v %v", dev, vms, err)
		}
	}
	for _, tc := range []struct {
		name   string
		edit   func(*VMAttachRequest)
		status int
		want   string
	}{
		{"vlan differs", func(r *VMAttachRequest) { r.VLAN = "101" }, http.StatusConflict, "--vlan 100"},
		{"origin differs", func(r *VMAttachRequest) { r.Origin = "" }, http.StatusConflict, "not by an operator"},
		{"bad origin", func(r *VMAttachRequest) { r.Origin = "libvirt:a b" }, http.StatusBadRequest, "origin:"},
		{"bad mac", func(r *VMAttachRequest) { r.MAC = "nope" }, http.StatusBadRequest, "--mac"},
	} {
		q := r
		tc.edit(&q)
		_, err := c.PutVM(ctx, wire.VMAttachRequest(q))
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("%s: %v; want status %d and %q", tc.name, err, tc.status, tc.want)
		}
	}
	// The path names the VM; a body naming another is refused.
	var out Added
	err := c.Do(ctx, http.MethodPut, "/v2/vms/other", r, &out)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, `the body names VM "web1-525400000001" but the path names "other"`) {
		t.Fatalf("mismatched name: %v", err)
	}
	// The operator's POST still refuses a taken name.
	if _, err := c.AttachVM(ctx, wire.VMAttachRequest(r)); err == nil {
		t.Fatal("POST of an attached VM accepted")
	}
}
