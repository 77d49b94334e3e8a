//go:build linux

package vif

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vifsec/vifsec/internal/testutil"
)

// needEthtool skips when the ethtool command is missing, except in CI.
func needEthtool(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ethtool"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI needs ethtool to check Features against")
		}
		t.Skip("needs ethtool to check Features against")
	}
}

// ethtoolK reads `ethtool -k dev` in ns: each line "name: on|off" with
// ethtool's suffix ([fixed], [requested on|off]) as Feature.State
// writes it, keyed by the name ethtool prints.
func ethtoolK(t *testing.T, ns, dev string) map[string]string {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "ethtool", "-k", dev)
	states := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "Features for ") {
			continue
		}
		name, state, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !(strings.HasPrefix(state, "on") || strings.HasPrefix(state, "off")) {
			t.Fatalf("ethtool -k: unexpected line %q", line)
		}
		states[name] = state
	}
	if len(states) == 0 {
		t.Fatalf("ethtool -k %s: no features in\n%s", dev, out)
	}
	return states
}

// ethtoolGroups are `ethtool -k`'s legacy flags that cover several
// features, with the pattern of their members' names (ethtool's
// off_flag_def): "on" when any member is active.
var ethtoolGroups = map[string][2]string{
	"tx-checksumming":          {"tx-checksum-", ""},
	"scatter-gather":           {"tx-scatter-gather", ""},
	"tcp-segmentation-offload": {"tx-tcp", "-segmentation"},
}

// sameAsEthtool checks every feature Features reports against the
// state `ethtool -k` prints for it, under its own or its legacy name,
// and ethtool's multi-feature legacy flags against the members.
func sameAsEthtool(t *testing.T, fs FeatureSet, ethtool map[string]string) {
	t.Helper()
	seen := map[string]bool{}
	for name, state := range ethtool {
		if f, ok := fs.Lookup(name); ok {
			seen[f.Name] = true
			if f.State() != state {
				t.Errorf("%s: Features says %q, ethtool -k %q", name, f.State(), state)
			}
			continue
		}
		if pat, ok := ethtoolGroups[name]; ok {
			any, members := false, 0
			for _, f := range fs.Features {
				if strings.HasPrefix(f.Name, pat[0]) && strings.HasSuffix(f.Name, pat[1]) {
					members++
					any = any || f.Active
				}
			}
			want := "off"
			if any {
				want = "on"
			}
			if members == 0 || state != want {
				t.Errorf("%s: ethtool -k %q, Features has %d members, any on: %t", name, state, members, any)
			}
			continue
		}
		t.Logf("ethtool -k shows %q (%s), which Features does not know", name, state)
	}
	for _, f := range fs.Features {
		if !seen[f.Name] {
			t.Errorf("%s: Features reports it, ethtool -k does not", f)
		}
	}
}

func TestIntegrationFeatures(t *testing.T) {
	testutil.NeedRoot(t)
	needEthtool(t)
	ns := newNetns(t, "feat")
	// Both ends in ns, under names the daemon's namespace should not
	// have: reading them proves the socket was opened inside ns.
	dev := fmt.Sprintf("vfeat%d", os.Getpid()%100000)
	run(t, "ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", dev+"p")
	run(t, "ip", "-n", ns, "link", "set", dev, "up")

	read := func(what string) FeatureSet {
		t.Helper()
		fs, err := Features(dev, ns)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if fs.Dev != dev || fs.Netns != ns {
			t.Errorf("%s: FeatureSet for %s in %s, want %s in %s", what, fs.Dev, fs.Netns, dev, ns)
		}
		// The names the issue asks about are all there on Linux 5.x+.
		for _, name := range []string{"tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-generic-segmentation",
			"tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "rx-gro",
			"esp-hw-offload", "esp-tx-csum-hw-offload", "tx-esp-segmentation"} {
			if _, ok := fs.Lookup(name); !ok {
				t.Errorf("%s: no feature %s", what, name)
			}
		}
		sameAsEthtool(t, fs, ethtoolK(t, ns, dev))
		t.Logf("%s: %d features; %v", what, len(fs.Features), fs.Offloads())
		return fs
	}

	fs := read("veth defaults")
	if tso := fs.TSO(); !tso.All() {
		t.Errorf("veth defaults: %v, want on", tso)
	}
	if f, _ := fs.Lookup("tx-tcp-segmentation"); !f.Available || f.Fixed() {
		t.Errorf("veth defaults: %v, want switchable", f)
	}
	if esp := fs.ESP(); esp.Any() {
		t.Errorf("veth defaults: %v, want off: veth has no IPsec offload", esp)
	}

	run(t, "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off")
	fs = read("tso off")
	if tso := fs.TSO(); tso.Any() || len(tso.Features) != 2 {
		t.Errorf("tso off: %v, want both members off", tso)
	}
	for _, name := range []string{"tx-tcp-segmentation", "tx-tcp6-segmentation"} {
		if f, _ := fs.Lookup(name); f.Active || f.Requested || f.State() != "off" {
			t.Errorf("tso off: %v, want off and not requested", f)
		}
	}
	if gso := fs.GSO(); !gso.All() {
		t.Errorf("tso off: %v, want GSO still on", gso)
	}

	// TSO needs scatter-gather (netdev_fix_features): asking for TSO
	// without it leaves TSO requested but off.
	run(t, "ip", "netns", "exec", ns, "ethtool", "-K", dev, "sg", "off", "tso", "on")
	fs = read("tso on, sg off")
	if f, _ := fs.Lookup("tx-tcp-segmentation"); f.Active || !f.Requested || f.State() != "off [requested on]" {
		t.Errorf("tso on, sg off: %v, want off [requested on]", f)
	}

	run(t, "ip", "netns", "exec", ns, "ethtool", "-K", dev, "sg", "on")
	if tso := read("sg on again").TSO(); !tso.All() {
		t.Errorf("sg on again: %v, want the requested TSO on", tso)
	}
}

func TestIntegrationFeaturesErrors(t *testing.T) {
	testutil.NeedRoot(t)
	ns := newNetns(t, "feat")
	dev := fmt.Sprintf("vfeat%d", os.Getpid()%100000)
	run(t, "ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", dev+"p")

	if _, err := Features(dev, ns); err != nil {
		t.Fatalf("in its namespace: %v", err)
	}
	if _, err := os.Stat("/sys/class/net/" + dev); err == nil {
		t.Fatalf("the test's own namespace has a %s too", dev)
	}
	_, err := Features(dev, "")
	if err == nil || !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), "--dev "+dev+": ") {
		t.Errorf("outside its namespace: got %v, want ENODEV naming --dev %s", err, dev)
	}
	_, err = Features("nosuch0", ns)
	if want := "features --dev nosuch0 --netns " + ns + ": no such interface"; err == nil ||
		!errors.Is(err, unix.ENODEV) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("missing interface: got %v, want %q…", err, want)
	}
	missingNS := ns + "-gone"
	_, err = Features("lo", missingNS)
	if want := "features --dev lo --netns " + missingNS + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("missing namespace: got %v, want %q…", err, want)
	}
}
