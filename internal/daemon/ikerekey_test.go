package daemon

import (
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/store/storetest"
)

func TestRekeyPolicy(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	must2(t)(d.CreatePolicy(pskPolicy("p1")))
	if _, err := d.RekeyPolicy("t1", "p1", false); CodeOf(err) != CodeInternal || !strings.Contains(err.Error(), "IKE engine") {
		t.Errorf("without an engine: %v", err)
	}
	type call struct {
		tenant, name string
		ike          bool
	}
	var calls []call
	started := 1
	d.SetIKERekey(func(tn, name string, ike bool) int {
		calls = append(calls, call{tn, name, ike})
		return started
	})
	for _, ike := range []bool{false, true} {
		n, err := d.RekeyPolicy("t1", "p1", ike)
		if err != nil || n != 1 {
			t.Errorf("RekeyPolicy(ike=%v) = %d, %v", ike, n, err)
		}
	}
	if len(calls) != 2 || calls[0] != (call{"t1", "p1", false}) || calls[1] != (call{"t1", "p1", true}) {
		t.Errorf("engine calls %+v", calls)
	}
	started = 0
	if _, err := d.RekeyPolicy("t1", "p1", true); CodeOf(err) != CodeNotFound || !strings.Contains(err.Error(), "no established IKE SA") {
		t.Errorf("nothing to rekey: %v", err)
	}
	for _, tc := range []struct{ tenant, name, flag string }{{"t1", "nosuch", "--name"}, {"nosuch", "p1", "--tenant"}} {
		if _, err := d.RekeyPolicy(tc.tenant, tc.name, false); CodeOf(err) != CodeNotFound || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("RekeyPolicy(%s, %s) = %v, want not_found naming %s", tc.tenant, tc.name, err, tc.flag)
		}
	}
	must(t, d.SetEnabled(false))
	started = 1
	calls = nil
	if _, err := d.RekeyPolicy("t1", "p1", false); CodeOf(err) != CodeNotFound || !strings.Contains(err.Error(), "--is-enabled") || len(calls) != 0 {
		t.Errorf("IPsec disabled: %v (engine called %d times)", err, len(calls))
	}
}
