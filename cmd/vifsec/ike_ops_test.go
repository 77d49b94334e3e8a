package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/api"
	apiserver "github.com/vifsec/vifsec/internal/api"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
)

// The policy timers and `policy rekey` (ext), through the CLI against an
// in-process API server.

type cliRig struct {
	t    *testing.T
	d    *daemon.Daemon
	st   *storetest.Memory
	sock string
}

func newCLIRig(t *testing.T) *cliRig {
	t.Helper()
	st := storetest.NewMemory()
	d, err := daemon.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: apiserver.NewHandler(d, nil, "test")}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &cliRig{t: t, d: d, st: st, sock: sock}
}

// vifsec runs the CLI with stdin; it returns the exit status, stdout and
// stderr.
func (r *cliRig) vifsec(stdin string, args ...string) (int, string, string) {
	r.t.Helper()
	in, err := parseArgs(verbTable(), args)
	if err != nil {
		return exitUsage, "", err.Error()
	}
	c := api.NewClient(r.sock)
	defer c.Close()
	var stdout, stderr bytes.Buffer
	code := in.verb.run(&cli{c: c, ctx: context.Background(), stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, format: in.format}, in)
	return code, stdout.String(), stderr.String()
}

func (r *cliRig) ok(stdin string, args ...string) string {
	r.t.Helper()
	code, out, errOut := r.vifsec(stdin, args...)
	if code != exitOK {
		r.t.Fatalf("vifsec %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestCLIPolicyTimers(t *testing.T) {
	r := newCLIRig(t)
	r.ok("", "tenant", "add", "--tenant", "t1")
	r.ok("a pre-shared key of some length\n", "policy", "create", "--tenant", "t1", "--name", "p1",
		"--local-ip-subnets", "192.0.2.1/32", "--remote-ip-subnets", "192.0.2.2/32", "--remote-address", "192.0.2.2",
		"--ike-lifetime", "30m", "--esp-lifetime=10s", "--dpd-interval", "30s", "--dpd-action", "clear")
	show := func() api.Policy {
		t.Helper()
		var ps []api.Policy
		if err := json.Unmarshal([]byte(r.ok("", "--format", "json", "policy", "show", "--tenant", "t1")), &ps); err != nil || len(ps) != 1 {
			t.Fatalf("policy show: %v %+v", err, ps)
		}
		return ps[0]
	}
	if p := show(); p.IKELifetime != "30m" || p.ESPLifetime != "10s" || p.DPDInterval != "30s" || p.DPDAction != "clear" {
		t.Errorf("shown %+v", p)
	}
	table := r.ok("", "policy", "show")
	for _, col := range []string{"IKE-Lifetime", "ESP-Lifetime", "DPD-Interval", "DPD-Action", "30m", "clear"} {
		if !strings.Contains(table, col) {
			t.Errorf("policy show table lacks %q:\n%s", col, table)
		}
	}
	// A refusal names the flag, exits 1, and changes nothing.
	before := show()
	for _, args := range [][]string{
		{"--esp-lifetime", "9s"},
		{"--ike-lifetime", "tomorrow"},
		{"--dpd-interval", "10ms"},
		{"--dpd-action", "hold"},
	} {
		code, _, errOut := r.vifsec("", append([]string{"policy", "modify", "--tenant", "t1", "--name", "p1"}, args...)...)
		if code != exitRejected || !strings.Contains(errOut, args[0]) {
			t.Errorf("modify %v: exit %d, %q; want 1 naming %s", args, code, errOut, args[0])
		}
	}
	if after := show(); after.IKELifetime != before.IKELifetime || after.ESPLifetime != before.ESPLifetime || after.DPDInterval != before.DPDInterval || after.DPDAction != before.DPDAction {
		t.Errorf("a refused modify changed %+v to %+v", before, after)
	}
	// An empty value resets to the default.
	r.ok("", "policy", "modify", "--tenant", "t1", "--name", "p1", "--ike-lifetime=", "--dpd-action=", "--dpd-interval", "off")
	if p := show(); p.IKELifetime != "4h" || p.DPDInterval != "off" || p.DPDAction != "restart" || p.ESPLifetime != "10s" {
		t.Errorf("after reset %+v", p)
	}
}

func TestCLIPolicyRekey(t *testing.T) {
	r := newCLIRig(t)
	r.ok("", "tenant", "add", "--tenant", "t1")
	r.ok("a pre-shared key of some length\n", "policy", "create", "--tenant", "t1", "--name", "p1",
		"--local-ip-subnets", "192.0.2.1/32", "--remote-ip-subnets", "192.0.2.2/32", "--remote-address", "192.0.2.2")
	var asked []bool
	r.d.SetIKERekey(func(_, _ string, ike bool) int { asked = append(asked, ike); return 1 })
	if out := r.ok("", "policy", "rekey", "--tenant", "t1", "--name", "p1"); !strings.Contains(out, "rekeying 1 Child SA of policy p1") {
		t.Errorf("rekey said %q", out)
	}
	if out := r.ok("", "--format", "json", "policy", "rekey", "-vserver", "t1", "--name", "p1", "--ike"); !strings.Contains(out, `"rekeyed": 1`) {
		t.Errorf("rekey --ike said %q", out)
	}
	if len(asked) != 2 || asked[0] || !asked[1] {
		t.Errorf("engine asked %v, want child then IKE", asked)
	}
	if code, _, errOut := r.vifsec("", "policy", "rekey", "--tenant", "t1", "--name", "nosuch"); code != exitNotFound || !strings.Contains(errOut, "--name") {
		t.Errorf("unknown policy: exit %d, %q", code, errOut)
	}
	if code, _, _ := r.vifsec("", "policy", "rekey", "--tenant", "t1"); code != exitUsage {
		t.Errorf("missing --name: exit %d, want 2", code)
	}
}

// TestShowIKESAChildRefused: an IKE SA whose Child SA the peer refused
// stands; show-ikesa lists it as ESTABLISHED and says, under the table
// and in JSON (child_sa_error), why it has no Child SA.
func TestShowIKESAChildRefused(t *testing.T) {
	r := newCLIRig(t)
	r.d.SetIKEReport(func() daemon.IKEReport {
		return daemon.IKEReport{IKESAs: []daemon.IKESA{
			{Tenant: "t1", Policy: "pol1", State: "ESTABLISHED", InitiatorSPI: 0x1122334455667788, ChildError: "TS_UNACCEPTABLE"},
			{Tenant: "t1", Policy: "pol2", State: "ESTABLISHED", InitiatorSPI: 0x99, Children: 1},
		}}
	})
	out := r.ok("", "show-ikesa")
	if !strings.Contains(out, "Child-SA-Refused") || !strings.Contains(lineWith(t, out, "t1 ", "Child-SA-Refused"), "1122334455667788  TS_UNACCEPTABLE") {
		t.Errorf("show-ikesa does not say why pol1 has no Child SA:\n%s", out)
	}
	if strings.Contains(out[strings.Index(out, "Child-SA-Refused"):], "pol2") {
		t.Errorf("pol2 (its Child SA up) listed as refused:\n%s", out)
	}
	var rows []api.IKESA
	if err := json.Unmarshal([]byte(r.ok("", "--format", "json", "show-ikesa")), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("show-ikesa json: %v %+v", err, rows)
	}
	if rows[0].ChildSAError != "TS_UNACCEPTABLE" || rows[1].ChildSAError != "" {
		t.Errorf("child_sa_error %q, %q", rows[0].ChildSAError, rows[1].ChildSAError)
	}
}
