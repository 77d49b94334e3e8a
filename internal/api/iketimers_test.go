package api

import (
	"context"
	"encoding/json"
	"errors"
	wire "github.com/vifsec/vifsec/api"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/internal/testutil"
)

// serveDaemon is serve with the daemon at hand.
func serveDaemon(t *testing.T) (*wire.Client, *daemon.Daemon) {
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
	c := wire.NewClient(sock)
	t.Cleanup(c.Close)
	return c, d
}

func TestAPIPolicyTimers(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	must := func(_ Added, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1"}))
	must(c.CreatePolicy(ctx, wire.PolicyCreateRequest{Tenant: "t1", Name: "p1", LocalIPSubnets: List{"192.0.2.1/32"},
		RemoteIPSubnets: List{"192.0.2.2/32"}, RemoteAddress: "192.0.2.2", PSK: apiPSK,
		IKELifetime: "20m", ESPLifetime: "90", DPDInterval: "30s", DPDAction: "CLEAR"}))
	// A respond-only policy with no timers: defaults, DPD action clear.
	must(c.CreatePolicy(ctx, wire.PolicyCreateRequest{Tenant: "t1", Name: "p2", LocalIPSubnets: List{"192.0.2.1/32"},
		RemoteIPSubnets: List{"192.0.2.0/24"}, PSK: apiPSK}))
	timers := func(name string) [4]string {
		t.Helper()
		ps, err := c.Policies(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Name == name {
				return [4]string{p.IKELifetime, p.ESPLifetime, p.DPDInterval, p.DPDAction}
			}
		}
		t.Fatalf("no policy %s", name)
		return [4]string{}
	}
	if got, want := timers("p1"), [4]string{"20m", "1m30s", "30s", "clear"}; got != want {
		t.Errorf("p1 timers %q, want %q", got, want)
	}
	if got, want := timers("p2"), [4]string{"4h", "1h", "off", "clear"}; got != want {
		t.Errorf("p2 timers %q, want %q", got, want)
	}
	// Modify: "" resets to the default, absent keeps.
	empty, restart, short, off := "", "restart", Value("15s"), Value("off")
	must(c.ModifyPolicy(ctx, "t1", "p1", wire.PolicyModifyRequest{IKELifetime: &short, DPDInterval: &off, DPDAction: &empty}))
	if got, want := timers("p1"), [4]string{"15s", "1m30s", "off", "restart"}; got != want {
		t.Errorf("p1 after modify %q, want %q", got, want)
	}
	// Refusals name the flag and change nothing.
	var ae *Error
	for _, tc := range []struct {
		req  PolicyModifyRequest
		flag string
	}{
		{PolicyModifyRequest{ESPLifetime: ptr(Value("5s"))}, "--esp-lifetime 5s"},
		{PolicyModifyRequest{ESPLifetime: ptr(Value("soon"))}, "--esp-lifetime"},
		{PolicyModifyRequest{DPDInterval: ptr(Value("100ms"))}, "--dpd-interval"},
		{PolicyModifyRequest{DPDAction: ptr("hold")}, "--dpd-action"},
		{PolicyModifyRequest{RemoteAddress: &empty, DPDAction: &restart}, "--dpd-action restart"},
	} {
		policies := func() []wire.Policy { ps, _ := c.Policies(ctx, "t1"); return ps }
		err := testutil.Refused(t, policies, func() error {
			_, err := c.ModifyPolicy(ctx, "t1", "p1", wire.PolicyModifyRequest(tc.req))
			return err
		})
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, tc.flag) {
			t.Errorf("%+v: %v, want 400 naming %s", tc.req, err, tc.flag)
		}
	}
	_, err := c.CreatePolicy(ctx, wire.PolicyCreateRequest{Tenant: "t1", Name: "p3", LocalIPSubnets: List{"192.0.2.1/32"},
		RemoteIPSubnets: List{"192.0.2.2/32"}, PSK: apiPSK, IKELifetime: "1d", DPDAction: "sometimes"})
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "--ike-lifetime") || !strings.Contains(ae.Message, "--dpd-action") {
		t.Errorf("bad create: %v", err)
	}
	// JSON numbers are seconds.
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodPatch, "/v2/policies/t1/p2", map[string]any{"esp_lifetime": 600}, &raw); err != nil {
		t.Fatal(err)
	}
	if got := timers("p2")[1]; got != "10m" {
		t.Errorf("esp_lifetime 600 listed as %q", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestAPIPolicyRekey(t *testing.T) {
	c, d := serveDaemon(t)
	ctx := context.Background()
	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePolicy(ctx, wire.PolicyCreateRequest{Tenant: "t1", Name: "p1", LocalIPSubnets: List{"192.0.2.1/32"},
		RemoteIPSubnets: List{"192.0.2.2/32"}, RemoteAddress: "192.0.2.2", PSK: apiPSK}); err != nil {
		t.Fatal(err)
	}
	var gotIKE []bool
	started := 2
	d.SetIKERekey(func(tn, name string, ike bool) int {
		if tn != "t1" || name != "p1" {
			t.Errorf("engine asked to rekey %s/%s", tn, name)
		}
		gotIKE = append(gotIKE, ike)
		return started
	})
	r, err := c.RekeyPolicy(ctx, "t1", "p1", false)
	if err != nil || r.Rekeyed != 2 {
		t.Fatalf("RekeyPolicy = %+v, %v", r, err)
	}
	started = 1
	if r, err = c.RekeyPolicy(ctx, "t1", "p1", true); err != nil || r.Rekeyed != 1 {
		t.Fatalf("RekeyPolicy --ike = %+v, %v", r, err)
	}
	if !reflect.DeepEqual(gotIKE, []bool{false, true}) {
		t.Errorf("engine calls %v", gotIKE)
	}
	var ae *Error
	started = 0
	if _, err := c.RekeyPolicy(ctx, "t1", "p1", false); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Message, "show-ikesa") {
		t.Errorf("nothing to rekey: %v", err)
	}
	if _, err := c.RekeyPolicy(ctx, "t1", "nosuch", false); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Message, "--name") {
		t.Errorf("unknown policy: %v", err)
	}
	// The body is checked like every other.
	if err := c.Do(ctx, http.MethodPost, "/v2/policies/t1/p1/rekey", map[string]any{"ike_sa": true}, nil); !errors.As(err, &ae) || ae.Code != "bad_request" {
		t.Errorf("unknown field: %v", err)
	}
}
