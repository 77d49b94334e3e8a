//go:build linux

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/store"
)

const (
	seedEncKey   = "0x6970763672656164796c6f676f336465736362636f757432"
	seedIntegKey = "0x6970763672656164796c6f67736861316f757432"
)

// seed002SA is seed 002's `sa add` example, pasted.
var seed002SA = strings.Fields(`sa add
--sa-source 3ffe:501:ffff:0::a
--sa-destination 3ffe:501:ffff:0001:0000:0000:0000:0001
--sa-mode transport
--sa-spi 0x1000
--encryption-algorithm 3des-cbc
--encryption-key 0x6970763672656164796c6f676f336465736362636f757432
--integrity-algorithm hmac-sha1
--integrity-key 0x6970763672656164796c6f67736861316f757432
--sa-name sa1`)

func with(args []string, extra ...string) []string { return append(slices.Clone(args), extra...) }

func (e *env) base() {
	e.ok("tenant", "add", "--tenant", "t1", "--vni", "5001")
	e.ok("vm", "attach", "--vm", "vm1", "--tenant", "t1", "--dev", "tap1", "--mac", "52:54:00:AB:CD:01", "--vlan", "10", "--ip", "2001:DB8:1::121")
	e.ok("vm", "attach", "--vm=vm2", "--tenant=t1", "--dev=tap2", "--mac=52:54:00:AB:CD:02", "--vlan=10")
}

func TestIntegrationSeedsAndRefusals(t *testing.T) {
	e := newEnv(t)
	d := e.start()
	e.base()

	// Seed 001 sa add, verbatim plus --vm: accepted, with a deprecation warning.
	r := e.ok(with(seed001SA)...)
	if !strings.Contains(r.stderr, "3des-cbc is deprecated") {
		t.Errorf("no deprecation warning on stderr: %q", r.stderr)
	}
	// Seed 002 sa add plus --vm, same SPI 0x1000 on another VM: accepted.
	e.ok(with(seed002SA, "--vm", "vm2")...)
	// Seed 000/001 SP (plus --vm): refused, its prefix is not IPv6; the
	// message says what a valid one looks like.
	r = e.cli(seed000SP...)
	if r.code != exitRejected || !strings.Contains(r.stderr, "--sp-source") || !strings.Contains(r.stderr, "2001:db8:1::/48") {
		t.Errorf("seed 000 SP: exit %d, stderr %q; want 1 suggesting 2001:db8:1::/48", r.code, r.stderr)
	}
	// Seed 002 SP plus --vm (sa1 is vm2's), as `sp add` and as `add`.
	seed002vm2 := append([]string{"--vm", "vm2"}, seed002SP[3:]...)
	e.ok(append([]string{"sp", "add"}, seed002vm2...)...)
	e.ok("sp", "remove", "--sp-name", "sp1")
	e.ok(append([]string{"add"}, seed002vm2...)...)
	e.ok("add", "--vm", "vm1", "--sp-source", "2001:DB8:1::/64", "--sp-destination", "2002:db8:1::/64",
		"--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "any",
		"--flow-direction", "out", "--action", "ipsec", "--sp-mode", "transport", "--sa-name", "sa_2", "--sp-name", "sp_2")
	// The uplink must exist (vifsecd checks): lo is on every host, and
	// this test's vifsecd sends nothing on it.
	e.ok("uplink", "set", "--dev", "lo")
	// Static VXLAN forwarding entries (ext).
	e.ok("overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:AB:CD:31", "--remote", "2001:DB8:FF::31")
	e.ok("overlay", "fdb", "add", "--tenant=t1", "--mac=52:54:00:ab:cd:32", "--remote=192.0.2.32")

	before := e.snapshot()
	refusals := []struct {
		name string
		args []string
		flag string
	}{
		{"spi without 0x", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "4096", "--encryption-algorithm", "aes128-gcm", "--encryption-key", "0x000102030405060708090a0b0c0d0e0f10111213", "--integrity-algorithm", "none", "--sa-name", "x"}, "--sa-spi"},
		{"reserved spi", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "0xff", "--encryption-algorithm", "aes128-gcm", "--encryption-key", "0x000102030405060708090a0b0c0d0e0f10111213", "--integrity-algorithm", "none", "--sa-name", "x"}, "--sa-spi"},
		{"spi taken on vm", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "0x1000", "--encryption-algorithm", "null", "--integrity-algorithm", "hmac-sha1", "--integrity-key", seedIntegKey, "--sa-name", "x"}, "--sa-spi"},
		{"short key", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "0x2000", "--encryption-algorithm", "aes256-cbc", "--encryption-key", "0x00", "--integrity-algorithm", "hmac-sha2-256", "--integrity-key", "0x00", "--sa-name", "x"}, "--encryption-key"},
		{"aead with hmac", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "0x2000", "--encryption-algorithm", "aes128-gcm", "--encryption-key", "0x000102030405060708090a0b0c0d0e0f10111213", "--integrity-algorithm", "hmac-sha1", "--integrity-key", seedIntegKey, "--sa-name", "x"}, "--integrity-algorithm"},
		{"null integrity", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "0x2000", "--encryption-algorithm", "null", "--integrity-algorithm", "none", "--sa-name", "x"}, "--integrity-algorithm"},
		{"unknown vm", []string{"sa", "add", "--vm", "nosuch", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "0x3000", "--encryption-algorithm", "null", "--integrity-algorithm", "hmac-sha1", "--integrity-key", seedIntegKey, "--sa-name", "x"}, "--vm"},
		{"bad mode", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2", "--sa-mode", "tunel", "--sa-spi", "0x2000", "--encryption-algorithm", "null", "--integrity-algorithm", "hmac-sha1", "--integrity-key", seedIntegKey, "--sa-name", "x"}, "--sa-mode"},
		{"port range", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/64", "--sp-destination", "2001:db8:1::/64", "--source-port", "65536", "--destination-port", "any", "--upper-layer-protocol", "tcp", "--flow-direction", "out", "--action", "none", "--sp-mode", "transport", "--sp-name", "x"}, "--source-port"},
		{"prefix length", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/129", "--sp-destination", "2001:db8:1::/64", "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "tcp", "--flow-direction", "out", "--action", "none", "--sp-mode", "transport", "--sp-name", "x"}, "--sp-source"},
		{"direction", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/64", "--sp-destination", "2001:db8:1::/64", "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "tcp", "--flow-direction", "both", "--action", "none", "--sp-mode", "transport", "--sp-name", "x"}, "--flow-direction"},
		{"action", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/64", "--sp-destination", "2001:db8:1::/64", "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "tcp", "--flow-direction", "in", "--action", "allow", "--sp-mode", "transport", "--sp-name", "x"}, "--action"},
		{"sa of other vm", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/64", "--sp-destination", "2001:db8:1::/64", "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "tcp", "--flow-direction", "in", "--action", "ipsec", "--sp-mode", "transport", "--sa-name", "sa1", "--sp-name", "x"}, "--sa-name"},
		{"sp mode differs from sa", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/64", "--sp-destination", "2001:db8:1::/64", "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "tcp", "--flow-direction", "in", "--action", "ipsec", "--sp-mode", "tunnel", "--sa-name", "sa_2", "--sp-name", "x"}, "--sp-mode tunnel"},
		{"sp name taken", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/64", "--sp-destination", "2001:db8:1::/64", "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "tcp", "--flow-direction", "in", "--action", "discard", "--sp-mode", "transport", "--sp-name", "sp_2"}, "--sp-name"},
		{"sa in use", []string{"sa", "remove", "--sa-name", "sa_2"}, "sp_2"},
		{"sa remove unknown", []string{"sa", "remove", "--sa-name", "nosuch"}, "--sa-name"},
		{"vlan", []string{"vm", "attach", "--vm", "x", "--tenant", "t1", "--dev", "tapx", "--mac", "52:54:00:00:00:09", "--vlan", "4095"}, "--vlan"},
		{"mac", []string{"vm", "attach", "--vm", "x", "--tenant", "t1", "--dev", "tapx", "--mac", "52:54:00:00:00"}, "--mac"},
		{"multicast mac", []string{"vm", "attach", "--vm", "x", "--tenant", "t1", "--dev", "tapx", "--mac", "01:00:5e:00:00:01"}, "--mac"},
		{"vm identity taken", []string{"vm", "attach", "--vm", "x", "--tenant", "t1", "--dev", "tapx", "--mac", "52:54:00:ab:cd:01", "--vlan", "10"}, "--mac"},
		{"vm name", []string{"vm", "attach", "--vm", "a b", "--tenant", "t1", "--dev", "tapx", "--mac", "52:54:00:00:00:09"}, "--vm"},
		{"tenant in use", []string{"tenant", "remove", "--tenant", "t1"}, "--tenant"},
		{"vm in use", []string{"vm", "detach", "--vm", "vm1"}, "--vm"},
		{"is-enabled", []string{"config", "modify", "--is-enabled", "yes"}, "--is-enabled"},
		{"vni", []string{"tenant", "add", "--tenant", "t2", "--vni", "16777216"}, "--vni"},
		{"overlay", []string{"uplink", "set", "--dev", "eth1", "--overlay", "geneve"}, "--overlay"},
		{"sa not the vm's", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8:9::1", "--sa-destination", "2001:db8:9::2", "--sa-mode", "tunnel", "--sa-spi", "0x5000", "--encryption-algorithm", "aes128-gcm", "--encryption-key", "0x000102030405060708090a0b0c0d0e0f10111213", "--integrity-algorithm", "none", "--sa-name", "x"}, "--sa-destination 2001:db8:9::2"},
		{"replay window range", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8:1::121", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "0x5000", "--encryption-algorithm", "aes128-gcm", "--encryption-key", "0x000102030405060708090a0b0c0d0e0f10111213", "--integrity-algorithm", "none", "--sa-name", "x", "--replay-window", "100000"}, "--replay-window: \"100000\" is not a replay window size; use 32-4096"},
		{"replay window word", []string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8:1::121", "--sa-destination", "2001:db8::2", "--sa-mode", "transport", "--sa-spi", "0x5000", "--encryption-algorithm", "aes128-gcm", "--encryption-key", "0x000102030405060708090a0b0c0d0e0f10111213", "--integrity-algorithm", "none", "--sa-name", "x", "--replay-window", "abc"}, "--replay-window: \"abc\" is not a replay window size; use 32-4096"},
		{"port with protocol any", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/64", "--sp-destination", "2001:db8:1::/64", "--source-port", "any", "--destination-port", "443", "--upper-layer-protocol", "any", "--flow-direction", "out", "--action", "none", "--sp-mode", "transport", "--sp-name", "x"}, "--destination-port 443"},
		{"ip of another vm", []string{"vm", "attach", "--vm", "x", "--tenant", "t1", "--dev", "tapx", "--mac", "52:54:00:00:00:09", "--ip", "2001:db8:1::121"}, "--ip 2001:db8:1::121"},
		{"uplink device missing", []string{"uplink", "set", "--dev", "vifsec-eht1"}, "--dev vifsec-eht1"},
		{"uplink netns missing", []string{"uplink", "set", "--dev", "lo", "--netns", "vifsec-nosuch-ns"}, "--netns vifsec-nosuch-ns"},
		{"vxlan without local", []string{"uplink", "set", "--dev", "eth1", "--overlay", "vxlan"}, "--vxlan-local"},
		{"vxlan multicast local", []string{"uplink", "set", "--dev", "eth1", "--overlay", "vxlan", "--vxlan-local", "239.0.0.1"}, "--vxlan-local"},
		{"vxlan port 0", []string{"uplink", "set", "--dev", "eth1", "--overlay", "vxlan", "--vxlan-local", "192.0.2.1", "--vxlan-port", "0"}, "--vxlan-port"},
		{"fdb unknown tenant", []string{"overlay", "fdb", "add", "--tenant", "nosuch", "--mac", "52:54:00:ab:cd:33", "--remote", "192.0.2.33"}, "--tenant"},
		{"fdb bad mac", []string{"overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:ab:cd", "--remote", "192.0.2.33"}, "--mac"},
		{"fdb multicast mac", []string{"overlay", "fdb", "add", "--tenant", "t1", "--mac", "33:33:00:00:00:01", "--remote", "192.0.2.33"}, "--mac"},
		{"fdb multicast remote", []string{"overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:ab:cd:33", "--remote", "ff0e::1"}, "--remote"},
		{"fdb multicast remote v4", []string{"overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:ab:cd:33", "--remote", "239.1.2.3"}, "--remote"},
		{"fdb unspecified remote", []string{"overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:ab:cd:33", "--remote", "::"}, "--remote"},
		{"fdb duplicate", []string{"overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:ab:cd:31", "--remote", "2001:db8:ff::99"}, "--mac"},
		{"fdb remove unknown", []string{"overlay", "fdb", "remove", "--tenant", "t1", "--mac", "52:54:00:ab:cd:39"}, "--mac"},
		{"fdb list unknown tenant", []string{"overlay", "fdb", "list", "--tenant", "nosuch"}, "--tenant"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			r := e.cli(tt.args...)
			if !refused(r.code) {
				t.Errorf("exit %d, want 1, 4 or 5\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.flag) {
				t.Errorf("stderr %q does not name %s", r.stderr, tt.flag)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("state changed by a refused request:\nbefore %s\nafter %s", before, after)
			}
		})
	}

	// Usage errors exit 2, change nothing.
	for _, args := range [][]string{{"sa", "add", "--vm", "vm1"}, {"sa", "frob"}, {"overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:ab:cd:33"},
		{"overlay", "fdb"}, {"overlay", "fdb", "remove", "--tenant", "t1"}, {"overlay", "fdb", "list", "--remote", "192.0.2.1"}, {"sa", "list", "--bogus"}, {"sp", "remove", "--sa-name", "sp1"}, {"--format", "xml", "sa", "list"}} {
		if r := e.cli(args...); r.code != exitUsage || r.stderr == "" {
			t.Errorf("vifsec %v: exit %d, stderr %q; want 2 with a message", args, r.code, r.stderr)
		}
	}
	if e.snapshot() != before {
		t.Error("usage errors changed state")
	}

	// overlay fdb list (table and json), remove.
	if out := e.ok("overlay", "fdb", "list").stdout; !strings.Contains(out, "Tenant") || !strings.Contains(out, "Remote") ||
		!strings.Contains(out, "52:54:00:ab:cd:31") || !strings.Contains(out, "2001:db8:ff::31") || !strings.Contains(out, "192.0.2.32") {
		t.Errorf("overlay fdb list:\n%s", out)
	}
	var fdb []api.FDBEntry
	if err := json.Unmarshal([]byte(e.ok("--format", "json", "overlay", "fdb", "list", "--tenant", "t1").stdout), &fdb); err != nil {
		t.Fatal(err)
	}
	wantFDB := []api.FDBEntry{{Tenant: "t1", MAC: "52:54:00:ab:cd:31", Remote: "2001:db8:ff::31"}, {Tenant: "t1", MAC: "52:54:00:ab:cd:32", Remote: "192.0.2.32"}}
	if !slices.Equal(fdb, wantFDB) {
		t.Errorf("overlay fdb list --tenant t1: %+v, want %+v", fdb, wantFDB)
	}
	var rm0 api.Removed
	r = e.ok("--format", "json", "overlay", "fdb", "remove", "--tenant", "t1", "--mac", "52:54:00:AB:CD:31")
	if err := json.Unmarshal([]byte(r.stdout), &rm0); err != nil || !slices.Equal(rm0.Removed, []string{"t1/52:54:00:ab:cd:31"}) {
		t.Errorf("overlay fdb remove json: %s (%v)", r.stdout, err)
	}
	e.ok("overlay", "fdb", "remove", "--tenant", "t1", "--mac", "52:54:00:ab:cd:32")
	if out := e.ok("--format", "json", "overlay", "fdb", "list").stdout; strings.TrimSpace(out) != "[]" {
		t.Errorf("overlay fdb list after remove = %s", out)
	}
	e.ok("overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:ab:cd:31", "--remote", "2001:db8:ff::99")
	e.ok("overlay", "fdb", "remove", "--tenant", "t1", "--mac", "52:54:00:ab:cd:31")

	// Keys are never printed or logged.
	keyHex := []string{strings.TrimPrefix(seedEncKey, "0x"), strings.TrimPrefix(seedIntegKey, "0x"), "ipv6readylogo3descbcout2"}
	lists := e.ok("sa", "list").stdout + e.ok("--format", "json", "sa", "list").stdout + e.ok("show-ipsecsa").stdout + e.ok("--format", "json", "stats").stdout
	for _, k := range keyHex {
		if strings.Contains(lists, k) || strings.Contains(d.log.String(), k) {
			t.Errorf("key material %s printed or logged", k)
		}
	}
	var sas []api.SA
	if err := json.Unmarshal([]byte(e.ok("--format", "json", "sa", "list").stdout), &sas); err != nil {
		t.Fatal(err)
	}
	if len(sas) != 2 || sas[0].Name != "sa1" || sas[1].Name != "sa_2" || sas[1].EncryptionKeyBytes != 24 || sas[1].Source != "2001:db8:1::121" {
		t.Errorf("sa list: %+v", sas)
	}
	if out := e.ok("sa", "list").stdout; !strings.Contains(out, "3des-cbc (24-byte key)") || !strings.Contains(out, "hmac-sha1 (20-byte key)") {
		t.Errorf("sa list table lacks algorithm and key length:\n%s", out)
	}

	// ONTAP columns for manual SAs.
	out := e.ok("show-ipsecsa", "--tenant", "t1").stdout
	for _, col := range []string{"Tenant", "Policy", "Local-Address", "Remote-Address", "Inbound-SPI", "Outbound-SPI", "State", "00001000", "INSTALLED"} {
		if !strings.Contains(out, col) {
			t.Errorf("show-ipsecsa lacks %q:\n%s", col, out)
		}
	}

	// The global switch.
	if out := e.ok("config", "show").stdout; out != "IPsec Enabled: true\n" {
		t.Errorf("config show = %q", out)
	}
	e.ok("config", "modify", "--is-enabled", "false")
	if out := e.ok("config", "show").stdout; out != "IPsec Enabled: false\n" {
		t.Errorf("config show after modify = %q", out)
	}

	// Metrics.
	m := d.scrape()
	for _, want := range []string{
		`vifsec_build_info{goversion=`,
		`vifsec_ipsec_enabled 0`,
		`vifsec_sa_packets_total{direction="out",sa="sa_2",tenant="t1",vm="vm1"} 0`,
		`vifsec_vm_packets_total{direction="in",tenant="t1",vm="vm1"} 0`,
		`vifsec_vm_drops_total{reason="replay",tenant="t1",vm="vm2"} 0`,
		`vifsec_objects{kind="sa"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// --removeall removes every SA and says which SPs it left without one.
	r = e.ok("sa", "remove", "--removeall")
	for _, want := range []string{"Removed 2 SA(s): sa1, sa_2", "sp_2", "sp1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("removeall output lacks %q:\n%s", want, r.stdout)
		}
	}
	if out := e.ok("sa", "list", "--format", "json").stdout; strings.TrimSpace(out) != "[]" {
		t.Errorf("sa list after removeall = %s", out)
	}
	if out := e.ok("sp", "list").stdout; !strings.Contains(out, "sa_2 (missing)") {
		t.Errorf("sp list does not flag the missing SA:\n%s", out)
	}
	r = e.ok("remove", "--removeall", "--format", "json")
	var rm api.Removed
	if err := json.Unmarshal([]byte(r.stdout), &rm); err != nil || len(rm.Removed) != 2 {
		t.Errorf("remove --removeall json: %s (%v)", r.stdout, err)
	}

	// Files and socket are root-only.
	for _, p := range []string{filepath.Join(e.state, "state.db"), e.sock} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}

	if code := d.stop(); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0\n%s", code, d.log.String())
	}
	if _, err := os.Stat(e.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after SIGTERM: %v", err)
	}
	// Daemon gone: exit 3.
	if r := e.cli("sa", "list"); r.code != exitUnreachable || !strings.Contains(r.stderr, "cannot reach vifsecd") {
		t.Errorf("daemon stopped: exit %d, stderr %q; want 3", r.code, r.stderr)
	}
}

func TestIntegrationRestartPersistence(t *testing.T) {
	e := newEnv(t)
	d := e.start()
	e.base()
	e.ok("tenant", "add", "--tenant", "t2", "--default-action", "discard")
	e.ok(with(seed001SA)...)
	e.ok("sa", "add", "--vm", "vm2", "--sa-source", "2001:db8:2::1", "--sa-destination", "2001:db8:3::1", "--sa-mode", "tunnel",
		"--sa-spi", "0xABCDEF01", "--encryption-algorithm", "chacha20-poly1305",
		"--encryption-key", "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223",
		"--integrity-algorithm", "none", "--sa-name", "cc", "--esn", "--replay-window", "1024", "--lifetime-seconds", "3600")
	e.ok("add", "--vm", "vm1", "--sp-source", "2001:db8:1::/64", "--sp-destination", "2002:db8:1::/64", "--source-port", "23",
		"--destination-port", "25", "--upper-layer-protocol", "tcp", "--flow-direction", "out", "--action", "ipsec",
		"--sp-mode", "transport", "--sa-name", "sa_2", "--sp-name", "z1")
	e.ok("add", "--vm", "vm1", "--sp-source", "2001:db8:1::/64", "--sp-destination", "::/0", "--source-port", "any",
		"--destination-port", "135", "--upper-layer-protocol", "icmp6", "--flow-direction", "in", "--action", "discard",
		"--sp-mode", "transport", "--sp-name", "a2")
	e.ok("uplink", "set", "--dev", "lo", "--overlay", "vxlan", "--vxlan-local", "2001:db8:ff::1", "--protect", "underlay")
	e.ok(with(underlaySAArgs, "--tenant", "t2", "--sa-spi", "auto", "--sa-name", "u-auto", "--esn")...)
	e.ok(with(underlaySAArgs, "--tenant", "t1", "--sa-spi", "0x1000", "--sa-name", "u-fixed")...)
	e.ok("overlay", "fdb", "add", "--tenant", "t2", "--mac", "52:54:00:00:00:22", "--remote", "192.0.2.22")
	e.ok("overlay", "fdb", "add", "--tenant", "t1", "--mac", "52:54:00:00:00:12", "--remote", "2001:db8:ff::12")
	e.ok("config", "modify", "--is-enabled=false")
	if out := e.ok("uplink", "show").stdout; !strings.Contains(out, "Protect: underlay") || !strings.Contains(out, "Overlay: vxlan") || !strings.Contains(out, "VXLAN Local: 2001:db8:ff::1") || !strings.Contains(out, "VXLAN Port: 4789") {
		t.Errorf("uplink show:\n%s", out)
	}
	before := e.snapshot()

	// A second daemon on the same state directory refuses, clearly.
	d2 := e.spawn("--metrics", "off", "--socket", filepath.Join(e.dir, "other.sock"))
	if code := d2.wait(10 * time.Second); code != 1 || !strings.Contains(d2.log.String(), "in use by another vifsecd (pid") {
		t.Errorf("second daemon: exit %d, log %q; want 1 naming the running one", code, d2.log.String())
	}

	if code := d.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, d.log.String())
	}
	e.start()
	if after := e.snapshot(); after != before {
		t.Errorf("state differs after restart:\nbefore %s\nafter  %s", before, after)
	}
	// SPD order survives: z1 was added before a2.
	var sps []api.SP
	json.Unmarshal([]byte(e.ok("--format", "json", "sp", "list").stdout), &sps)
	if len(sps) != 2 || sps[0].Name != "z1" || sps[1].Name != "a2" {
		t.Errorf("SP order after restart: %+v", sps)
	}
}

// underlaySAArgs is an underlay SA between VTEPs 2001:db8:ff::1 (local)
// and 2001:db8:ff::2, without --tenant, --sa-spi and --sa-name.
var underlaySAArgs = []string{"sa", "add", "--sa-source", "2001:db8:ff::1", "--sa-destination", "2001:db8:ff::2",
	"--sa-mode", "tunnel", "--encryption-algorithm", "aes256-gcm",
	"--encryption-key", "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223", "--integrity-algorithm", "none"}

func TestIntegrationUnderlaySA(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.base()
	e.ok("tenant", "add", "--tenant", "t2", "--vni", "5002")

	// --protect underlay only with --overlay vxlan.
	for _, args := range [][]string{
		{"uplink", "set", "--dev", "eth0", "--protect", "underlay"},
		{"uplink", "set", "--dev", "eth0", "--overlay", "none", "--protect", "underlay"},
	} {
		r := e.cli(args...)
		if r.code != exitRejected || !strings.Contains(r.stderr, "--protect underlay") || !strings.Contains(r.stderr, "--overlay vxlan") {
			t.Errorf("vifsec %v: exit %d, stderr %q; want 1 naming --protect underlay and --overlay vxlan", args, r.code, r.stderr)
		}
	}
	if r := e.cli("uplink", "set", "--dev", "eth0", "--overlay", "vxlan", "--vxlan-local", "2001:db8:ff::1", "--protect", "esp"); r.code != exitRejected || !strings.Contains(r.stderr, "--protect") {
		t.Errorf("--protect esp: exit %d, stderr %q", r.code, r.stderr)
	}
	e.ok("uplink", "set", "--dev", "lo", "--overlay", "vxlan", "--vxlan-local", "2001:db8:ff::1", "--protect", "underlay")
	if out := e.ok("uplink", "show").stdout; !strings.Contains(out, "Protect: underlay") {
		t.Errorf("uplink show:\n%s", out)
	}

	// Exactly one of --vm and --tenant: usage error otherwise.
	for _, args := range [][]string{
		with(underlaySAArgs, "--sa-spi", "0x2000", "--sa-name", "x"),
		with(underlaySAArgs, "--vm", "vm1", "--tenant", "t1", "--sa-spi", "0x2000", "--sa-name", "x"),
	} {
		if r := e.cli(args...); r.code != exitUsage || !strings.Contains(r.stderr, "--vm or --tenant") {
			t.Errorf("vifsec %v: exit %d, stderr %q; want 2 naming --vm or --tenant", args, r.code, r.stderr)
		}
	}

	// --sa-spi auto: the chosen SPI is told on stderr and listed.
	r := e.ok(with(underlaySAArgs, "--tenant", "t1", "--sa-spi", "auto", "--sa-name", "u1")...)
	var spi uint32
	if _, err := fmt.Sscanf(r.stderr[strings.Index(r.stderr, "SPI 0x")+4:], "0x%x chosen for u1", &spi); err != nil || spi < 0x100 {
		t.Fatalf("sa add --sa-spi auto: stderr %q (%v)", r.stderr, err)
	}
	e.ok(with(underlaySAArgs, "--tenant", "t2", "--sa-spi", "0x2000", "--sa-name", "u2")...)
	// Same SPI on a VM's SA: another scope, accepted; auto for a VM too.
	// (vm2 has no --ip: any address is its own.)
	e.ok(with(underlaySAArgs, "--vm", "vm2", "--sa-spi", fmt.Sprintf("0x%x", spi), "--sa-name", "vmsa")...)
	if r := e.ok(with(underlaySAArgs, "--vm", "vm2", "--sa-spi", "auto", "--sa-name", "vmauto")...); !strings.Contains(r.stderr, "chosen for vmauto") {
		t.Errorf("vm auto SPI: stderr %q", r.stderr)
	}

	var sas []api.SA
	if err := json.Unmarshal([]byte(e.ok("--format", "json", "sa", "list").stdout), &sas); err != nil {
		t.Fatal(err)
	}
	byName := map[string]api.SA{}
	for _, s := range sas {
		byName[s.Name] = s
	}
	if u := byName["u1"]; u.VM != "" || u.Tenant != "t1" || u.SPI != api.SPI(spi) || u.MAC != "00:00:00:00:00:00" || u.Direction != "out" {
		t.Errorf("u1 listed as %+v", u)
	}
	if v := byName["vmsa"]; v.VM != "vm2" || v.Tenant != "t1" {
		t.Errorf("vmsa listed as %+v", v)
	}
	out := e.ok("sa", "list").stdout
	found := false
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "u1" && f[1] == "-" && f[2] == "t1" {
			found = true
		}
	}
	if !strings.Contains(out, "Tenant") || !found {
		t.Errorf("sa list table:\n%s", out)
	}
	if out := e.ok("show-ipsecsa", "--tenant", "t2").stdout; !strings.Contains(out, "underlay") || !strings.Contains(out, "00002000") {
		t.Errorf("show-ipsecsa:\n%s", out)
	}

	before := e.snapshot()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"underlay spi taken", with(underlaySAArgs, "--tenant", "t1", "--sa-spi", "0x2000", "--sa-name", "x"), "--sa-spi"},
		{"unknown tenant", with(underlaySAArgs, "--tenant", "nosuch", "--sa-spi", "auto", "--sa-name", "x"), "--tenant"},
		{"spi 0", with(underlaySAArgs, "--tenant", "t1", "--sa-spi", "0x0", "--sa-name", "x"), "--sa-spi"},
		{"bad spi", with(underlaySAArgs, "--tenant", "t1", "--sa-spi", "automatic", "--sa-name", "x"), "--sa-spi"},
		{"tenant with underlay sa", []string{"tenant", "remove", "--tenant", "t2"}, "u2"},
		{"sp on underlay sa", []string{"sp", "add", "--vm", "vm1", "--sp-source", "2001:db8::/64", "--sp-destination", "2001:db8:1::/64", "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "any", "--flow-direction", "out", "--action", "ipsec", "--sp-mode", "tunnel", "--sa-name", "u1", "--sp-name", "x"}, "underlay"},
	} {
		r := e.cli(tt.args...)
		if !refused(r.code) || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1, 4 or 5 naming %s", tt.name, r.code, r.stderr, tt.want)
		}
	}
	if after := e.snapshot(); after != before {
		t.Errorf("state changed by a refused request:\nbefore %s\nafter %s", before, after)
	}
	e.ok("sa", "remove", "--sa-name", "u2")
	e.ok("tenant", "remove", "--tenant", "t2")
}

// TestIntegrationKill9Durability kills vifsecd with SIGKILL while 1000
// concurrent sa add requests are in flight, restarts it, and checks that
// every acknowledged SA is there, complete, keys included, and that nothing
// else is (no half-written SA).
func TestIntegrationKill9Durability(t *testing.T) {
	e := newEnv(t)
	d := e.start()
	e.base()
	c := newClient(t, e.sock)

	const n = 1000
	reqs := make([]api.SAAddRequest, n)
	for i := range reqs {
		reqs[i] = api.SAAddRequest{
			VM: []string{"vm1", "vm2"}[i%2], SAName: fmt.Sprintf("sa%04d", i),
			SASource: "2001:db8:1::121", SADestination: fmt.Sprintf("2001:db8:9::%x", i+1), SAMode: "tunnel",
			SASPI: fmt.Sprintf("0x%08x", 0x10000+i), EncryptionAlgorithm: "aes256-gcm",
			EncryptionKey:      fmt.Sprintf("0x%072x", i+1),
			IntegrityAlgorithm: "none",
		}
	}
	var acked sync.Map
	var nAcked atomic.Int64
	killAt := int64(300)
	var wg sync.WaitGroup
	killed := make(chan struct{})
	var killOnce sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := make(chan struct{})
	for i := range reqs {
		wg.Go(func() {
			<-start
			_, err := c.AddSA(ctx, reqs[i])
			if err == nil {
				acked.Store(reqs[i].SAName, true)
				if nAcked.Add(1) >= killAt {
					killOnce.Do(func() { d.kill9(); close(killed) })
				}
				return
			}
			var ue *api.UnreachableError
			if !errors.As(err, &ue) {
				t.Errorf("%s: %v (want success or unreachable)", reqs[i].SAName, err)
			}
		})
	}
	close(start)
	select {
	case <-killed:
	case <-time.After(45 * time.Second):
		t.Fatalf("only %d of %d acknowledged in 45s", nAcked.Load(), n)
	}
	wg.Wait()
	ackedAtKill := nAcked.Load()
	if ackedAtKill >= n {
		t.Logf("all %d acknowledged before the kill landed; the test still checks durability", n)
	}

	d = e.start()
	var sas []api.SA
	if err := json.Unmarshal([]byte(e.ok("--format", "json", "sa", "list").stdout), &sas); err != nil {
		t.Fatal(err)
	}
	stored := map[string]api.SA{}
	for _, s := range sas {
		stored[s.Name] = s
	}
	lost := 0
	acked.Range(func(k, _ any) bool {
		if _, ok := stored[k.(string)]; !ok {
			lost++
		}
		return true
	})
	if lost > 0 {
		t.Errorf("%d acknowledged SAs lost by kill -9", lost)
	}
	byName := map[string]api.SAAddRequest{}
	for _, r := range reqs {
		byName[r.SAName] = r
	}
	for _, s := range sas {
		r, ok := byName[s.Name]
		if !ok || string(s.VM) != r.VM || s.Destination != r.SADestination || s.SPI.String() != r.SASPI || s.Mode != "tunnel" || s.EncryptionAlgorithm != "aes256-gcm" || s.EncryptionKeyBytes != 36 {
			t.Errorf("restored SA %+v does not match its request", s)
		}
	}
	t.Logf("%d acknowledged before kill -9, %d stored after restart", ackedAtKill, len(sas))

	// Keys too: stop the daemon, read the store directly.
	if code := d.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	st, err := store.OpenBolt(filepath.Join(e.state, "state.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	nSA := 0
	for _, rec := range recs {
		if rec.Kind != store.KindSA {
			continue
		}
		nSA++
		var v struct {
			EncKey string `json:"enc_key"`
		}
		if err := json.Unmarshal(rec.Value, &v); err != nil {
			t.Fatalf("record %s: %v", rec.Name, err)
		}
		key, _ := base64.StdEncoding.DecodeString(v.EncKey)
		if want := strings.TrimPrefix(byName[rec.Name].EncryptionKey, "0x"); fmt.Sprintf("%x", key) != want {
			t.Errorf("record %s: stored key differs from the request's", rec.Name)
		}
	}
	if nSA != len(sas) {
		t.Errorf("store holds %d SA records, the daemon listed %d", nSA, len(sas))
	}
}

func TestIntegrationConcurrentClients(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.base()
	const n = 24
	var wg sync.WaitGroup
	codes := make([]result, n)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			if i%3 == 2 {
				codes[i] = e.cli("--format", "json", "sa", "list")
				return
			}
			codes[i] = e.cli("sa", "add", "--vm", []string{"vm1", "vm2"}[i%2], "--sa-source", "2001:db8:1::121", "--sa-destination", "2001:db8::2",
				"--sa-mode", "transport", "--sa-spi", fmt.Sprintf("0x%x", 0x4000+i), "--encryption-algorithm", "aes128-gcm",
				"--encryption-key", "0x000102030405060708090a0b0c0d0e0f10111213", "--integrity-algorithm", "none",
				"--sa-name", fmt.Sprintf("c%02d", i))
		})
	}
	wg.Wait()
	for i, r := range codes {
		if r.code != 0 {
			t.Errorf("client %d: exit %d: %s", i, r.code, r.stderr)
		}
	}
	var sas []api.SA
	json.Unmarshal([]byte(e.ok("--format", "json", "sa", "list").stdout), &sas)
	if len(sas) != n-n/3 {
		t.Errorf("%d SAs, want %d", len(sas), n-n/3)
	}
	// The same name from two clients at once: exactly one wins.
	var wins atomic.Int32
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			r := e.cli("tenant", "add", "--tenant", "race")
			if r.code == 0 {
				wins.Add(1)
			} else if r.code != exitExists || !strings.Contains(r.stderr, "--tenant") {
				t.Errorf("loser: exit %d %q", r.code, r.stderr)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d clients added tenant race, want 1", wins.Load())
	}
}

// refused says code is the exit status of a refusal by the daemon: 1
// (invalid, in use...), 4 (not found) or 5 (exists); which one for which
// refusal is TestCLIErrorsForAutomation's.
func refused(code int) bool {
	return code == exitRejected || code == exitNotFound || code == exitExists
}
