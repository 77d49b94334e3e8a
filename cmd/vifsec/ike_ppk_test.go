package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/api"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store"
)

// Post-quantum preshared keys (RFC 8784) through the CLI: read like the
// PSK (the line after it on stdin), stored, never shown, refused input
// changing nothing.

func TestReadPSKThenPPKFromStdin(t *testing.T) {
	c := &cli{stdin: strings.NewReader("the psk\r\nthe ppk\nthird\n"), stderr: &bytes.Buffer{}}
	psk, err := c.readPSK("t1", "p1")
	if err != nil || psk != "the psk" {
		t.Fatalf("readPSK = %q, %v", psk, err)
	}
	ppk, err := c.readPPK("t1", "p1", "id1")
	if err != nil || ppk != "the ppk" {
		t.Fatalf("readPPK = %q, %v; want the second line", ppk, err)
	}
	c = &cli{stdin: strings.NewReader("only the psk\n"), stderr: &bytes.Buffer{}}
	if _, err := c.readPSK("t1", "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.readPPK("t1", "p1", "id1"); err == nil || !strings.Contains(err.Error(), "post-quantum preshared key: none on stdin") {
		t.Errorf("readPPK without its line: %v", err)
	}
	c = &cli{stdin: strings.NewReader("psk\n" + strings.Repeat("k", maxPSKLine+1) + "\n"), stderr: &bytes.Buffer{}}
	c.readPSK("t1", "p1")
	if _, err := c.readPPK("t1", "p1", "id1"); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("readPPK of a long line: %v", err)
	}
}

// ppkOf returns the PPK the daemon hands the IKE engine for t1/p1.
func ppkOf(t *testing.T, d *daemon.Daemon) (ppk []byte, id string, required bool) {
	t.Helper()
	for _, pc := range d.IKEConfig().Policies {
		if pc.Policy.Name == "p1" {
			return pc.Policy.PPK, pc.Policy.PPKID, pc.Policy.PPKRequired
		}
	}
	t.Fatal("no policy p1 in IKEConfig")
	return nil, "", false
}

func TestCLIPolicyPPK(t *testing.T) {
	r := newCLIRig(t)
	r.ok("", "tenant", "add", "--tenant", "t1")
	const psk, ppk = "a pre-shared key of some length", "a post-quantum preshared key, 32 bytes or more"
	create := []string{"policy", "create", "--tenant", "t1", "--name", "p1",
		"--local-ip-subnets", "192.0.2.1/32", "--remote-ip-subnets", "192.0.2.2/32", "--remote-address", "192.0.2.2"}
	// Refused creates: nothing is made.
	for _, tt := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"no ppk line", psk + "\n", []string{"--ppk-id", "id1"}, "post-quantum preshared key: none on stdin"},
		{"bad required", psk + "\n" + ppk + "\n", []string{"--ppk-id", "id1", "--ppk-required", "yes"}, "--ppk-required"},
		{"required without ppk", psk + "\n", []string{"--ppk-required", "true"}, "--ppk-required"},
		{"id with a space", psk + "\n" + ppk + "\n", []string{"--ppk-id", "id 1"}, "--ppk-id"},
		{"ppk not text", psk + "\n" + "\x01\x02\n", []string{"--ppk-id", "id1"}, "post-quantum preshared key (--ppk-id): not accepted"},
	} {
		code, _, errOut := r.vifsec(tt.stdin, append(create, tt.args...)...)
		if code != exitRejected || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s: exit %d, %q; want 1 naming %s", tt.name, code, errOut, tt.want)
		}
		if strings.Contains(errOut, ppk) || strings.Contains(errOut, "\x01") {
			t.Errorf("%s: the error shows the key: %q", tt.name, errOut)
		}
	}
	if ps, _ := r.d.Policies("t1"); len(ps) != 0 {
		t.Fatalf("a refused create made %+v", ps)
	}
	out := r.ok(psk+"\n"+ppk+"\n", append(create, "--ppk-id", "id1", "--ppk-required", "true")...)
	if strings.Contains(out, ppk) {
		t.Errorf("create printed the PPK: %q", out)
	}
	show := func() api.Policy {
		t.Helper()
		var ps []api.Policy
		if err := json.Unmarshal([]byte(r.ok("", "--format", "json", "policy", "show", "--tenant", "t1")), &ps); err != nil || len(ps) != 1 {
			t.Fatalf("policy show: %v %+v", err, ps)
		}
		return ps[0]
	}
	if p := show(); p.PSK != "set" || p.PPK != "set" || p.PPKID != "id1" || !p.PPKRequired {
		t.Errorf("shown %+v", p)
	}
	js := r.ok("", "--format", "json", "policy", "show")
	table := r.ok("", "policy", "show")
	for _, s := range []string{js, table} {
		if strings.Contains(s, ppk) || strings.Contains(s, psk) {
			t.Errorf("policy show prints a key:\n%s", s)
		}
	}
	for _, col := range []string{"PPK-ID", "PPK-Required", "id1"} {
		if !strings.Contains(table, col) {
			t.Errorf("policy show table lacks %q:\n%s", col, table)
		}
	}
	if k, id, req := ppkOf(t, r.d); string(k) != ppk || id != "id1" || !req {
		t.Fatalf("IKEConfig PPK %q %q %v", k, id, req)
	}
	// Stored with the policy (the fleet store seals the whole record), and
	// restored by a daemon on the same store.
	rec := r.st.Get(store.KindPolicy, "t1/p1")
	if !bytes.Contains(rec, []byte(`"ppk_id":"id1"`)) || !bytes.Contains(rec, []byte(`"ppk_required":true`)) {
		t.Errorf("stored record lacks the PPK's identity: %s", rec)
	}
	d2, err := daemon.New(r.st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k, id, req := ppkOf(t, d2); string(k) != ppk || id != "id1" || !req {
		t.Errorf("restored PPK %q %q %v", k, id, req)
	}
	// Refused modifies change nothing.
	commits := r.st.Commits()
	for _, tt := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"new id without its key", "", []string{"--ppk-id", "id2"}, "post-quantum preshared key: none on stdin"},
		{"bad required", "", []string{"--ppk-required", "maybe"}, "--ppk-required"},
		{"id too long", ppk + "\n", []string{"--ppk-id", strings.Repeat("i", 256)}, "--ppk-id"},
		{"psk then no ppk", psk + "\n", []string{"--auth-method", "PSK", "--ppk-id", "id2"}, "post-quantum preshared key: none on stdin"},
		{"required after removal", "", []string{"--ppk-id=", "--ppk-required", "true"}, "--ppk-required"},
	} {
		code, _, errOut := r.vifsec(tt.stdin, append([]string{"policy", "modify", "--tenant", "t1", "--name", "p1"}, tt.args...)...)
		if code != exitRejected || !strings.Contains(errOut, tt.want) {
			t.Errorf("modify %s: exit %d, %q; want 1 naming %s", tt.name, code, errOut, tt.want)
		}
	}
	if k, id, req := ppkOf(t, r.d); string(k) != ppk || id != "id1" || !req || r.st.Commits() != commits {
		t.Errorf("a refused modify changed the PPK to %q %q %v (%d commits)", k, id, req, r.st.Commits()-commits)
	}
	// A new PSK and PPK: PSK line first.
	r.ok("new psk of some length\nnew ppk of 32 bytes or more, really\n", "policy", "modify", "--tenant", "t1", "--name", "p1", "--auth-method", "PSK", "--ppk-id", "id2", "--ppk-required", "false")
	if k, id, req := ppkOf(t, r.d); string(k) != "new ppk of 32 bytes or more, really" || id != "id2" || req {
		t.Errorf("after modify PPK %q %q %v", k, id, req)
	}
	// A short PPK is accepted with a warning.
	code, _, errOut := r.vifsec("short\n", "policy", "modify", "--tenant", "t1", "--name", "p1", "--ppk-id", "id3")
	if code != exitOK || !strings.Contains(errOut, "256 bits") {
		t.Errorf("short PPK: exit %d, %q; want a warning", code, errOut)
	}
	// An empty --ppk-id removes it; required resets.
	r.ok("", "policy", "modify", "--tenant", "t1", "--name", "p1", "--ppk-id=")
	if p := show(); p.PPK != "" || p.PPKID != "" || p.PPKRequired || p.PSK != "set" {
		t.Errorf("after removal %+v", p)
	}
	if k, _, _ := ppkOf(t, r.d); k != nil {
		t.Errorf("PPK still given to IKE after removal")
	}
}

// --esp-proposals takes keN_ after a PFS group (RFC 9370 additional key
// exchanges in IKE_FOLLOWUP_KE); without a group it is refused, naming
// the flag, and nothing changes.
func TestCLIESPProposalsAddKE(t *testing.T) {
	r := newCLIRig(t)
	r.ok("", "tenant", "add", "--tenant", "t1")
	create := []string{"policy", "create", "--tenant", "t1", "--name", "p1",
		"--local-ip-subnets", "192.0.2.1/32", "--remote-ip-subnets", "192.0.2.2/32"}
	code, _, errOut := r.vifsec("a pre-shared key of some length\n", append(create, "--esp-proposals", "aes256gcm16-ke1_mlkem768")...)
	if code != exitRejected || !strings.Contains(errOut, "--esp-proposals") || !strings.Contains(errOut, "PFS group") {
		t.Errorf("keN_ without a PFS group: exit %d, %q", code, errOut)
	}
	if ps, _ := r.d.Policies("t1"); len(ps) != 0 {
		t.Fatalf("a refused create made %+v", ps)
	}
	r.ok("a pre-shared key of some length\n", append(create, "--esp-proposals", "aes256gcm16-x25519-ke1_mlkem768,aes256gcm16-x25519-ke1_none",
		"--ike-proposals", "aes256gcm16-prfsha384-x25519-ke1_mlkem768")...)
	ps, _ := r.d.Policies("t1")
	if len(ps) != 1 || len(ps[0].Policy.ESPProposals) != 2 || ps[0].Policy.ESPProposals[0] != "aes256gcm16-x25519-ke1_mlkem768" {
		t.Errorf("stored %+v", ps)
	}
}
