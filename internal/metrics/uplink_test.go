package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
)

// TestUplinkUp: vifsec_uplink_up is 1 while the data path has the
// configured uplink open, 0 while its device is missing, and absent
// without an uplink.
func TestUplinkUp(t *testing.T) {
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	up := false
	d.SetUplinkState(func() (bool, string) { return up, "describe --dev eth1: Link not found" })
	c := NewCollector(d, d.SADB(), "v-test")
	if n := testutil.CollectAndCount(c, "vifsec_uplink_up"); n != 0 {
		t.Fatalf("without an uplink: %d series, want none", n)
	}
	if err := d.SetUplink(daemon.Uplink{Dev: "eth1"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"0", "1"} {
		up = v == "1"
		if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP vifsec_uplink_up 1 if the configured uplink's port is open, 0 if not (device missing, down or gone); absent without an uplink.
# TYPE vifsec_uplink_up gauge
vifsec_uplink_up{dev="eth1"} `+v+"\n"), "vifsec_uplink_up"); err != nil {
			t.Errorf("up=%v: %v", up, err)
		}
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
