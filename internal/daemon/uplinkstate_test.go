package daemon

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/store/storetest"
)

// TestUplinkSetRefusesMissingDevice: with the data path's link check
// installed, `uplink set --dev eht1` (a typo) is refused naming --dev and
// changes nothing; an interface that exists is accepted.
func TestUplinkSetRefusesMissingDevice(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	must(t, d.SetUplink(Uplink{Dev: "eth1"}))
	d.SetLinkCheck(func(dev, netns string) error {
		if dev == "eth1" || dev == "eth2" {
			return nil
		}
		return errors.New("--dev " + dev + ": no such interface")
	})
	before, commits, gen := observe(d), st.Commits(), d.Generation()
	err := d.SetUplink(Uplink{Dev: "eht1"})
	if CodeOf(err) != CodeInvalid || !strings.Contains(err.Error(), "--dev eht1") {
		t.Fatalf("uplink set --dev eht1: %v, want invalid naming --dev", err)
	}
	if after := observe(d); !reflect.DeepEqual(before, after) || st.Commits() != commits || d.Generation() != gen {
		t.Fatalf("a refused uplink set changed the state")
	}
	must(t, d.SetUplink(Uplink{Dev: "eth2"}))
	if u, _ := d.Uplink(); u.Dev != "eth2" {
		t.Fatalf("uplink %q, want eth2", u.Dev)
	}
}

// TestUplinkStateRestoredPending: a stored uplink whose device is missing
// is restored (the NIC may appear later) and reported down with the data
// path's reason; up once the data path has it open.
func TestUplinkStateRestoredPending(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	must(t, d.SetUplink(Uplink{Dev: "eth9"}))
	if s := d.UplinkState(); s.Known {
		t.Fatalf("state %+v without a data path, want unknown", s)
	}
	d2, err := New(st, nil)
	if err != nil {
		t.Fatalf("restore with the uplink's device missing: %v", err)
	}
	up, reason := false, "describe --dev eth9: Link not found"
	d2.SetLinkCheck(func(string, string) error { return errors.New("no such interface") })
	d2.SetUplinkState(func() (bool, string) { return up, reason })
	if u, ok := d2.Uplink(); !ok || u.Dev != "eth9" {
		t.Fatalf("restored uplink %+v %v, want eth9", u, ok)
	}
	if s := d2.UplinkState(); !s.Known || s.Up || s.Reason != reason || s.String() != "down: "+reason {
		t.Fatalf("state %+v (%q), want down with the reason", s, s.String())
	}
	up = true
	if s := d2.UplinkState(); !s.Up || s.Reason != "" || s.String() != "up" {
		t.Fatalf("state %+v, want up", s)
	}
}
