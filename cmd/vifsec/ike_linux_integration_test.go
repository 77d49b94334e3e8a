//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/pkitest"
)

// cliIn runs the vifsec binary with stdin.
func (e *env) cliIn(stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, append([]string{"--socket", e.sock}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("vifsec %v: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

func (e *env) okIn(stdin string, args ...string) result {
	e.t.Helper()
	r := e.cliIn(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("vifsec %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// ikeSnapshot is every IKE configuration listing, as JSON (not
// show-ikesa: the engine's SAs come and go on their own).
func (e *env) ikeSnapshot() string {
	e.t.Helper()
	var b bytes.Buffer
	for _, v := range [][]string{{"policy", "show"}, {"certificate", "show"}, {"ca-certificate", "show"}, {"crl", "show"}} {
		b.WriteString(e.ok(append([]string{"--format", "json"}, v...)...).stdout)
	}
	return b.String()
}

// TestIntegrationIKEConfig drives every IKE verb through the binaries:
// PEM and the PSK on stdin, refusals that change nothing, secrets never
// printed (by the CLI or in the daemon's log), everything restored after
// a restart.
func TestIntegrationIKEConfig(t *testing.T) {
	const psk = "integration-psk-never-printed-7431"
	e := newEnv(t)
	d := e.start()
	e.base()
	ca := pkitest.NewCA("integration CA")
	srv := ca.Issue("gw.example.com")
	keyDER := pemDER(t, srv.KeyPEM())

	r := e.okIn(string(srv.ServerPEM(ca)), "certificate", "install", "--tenant", "t1", "--type", "server", "--cert-name", "srv")
	r = e.okIn(string(ca.PEM()), "certificate", "install", "-vserver", "t1", "-type", "client-ca", "-cert-name", "ca")
	if !strings.Contains(r.stderr, "ca-certificate add") {
		t.Errorf("CA install gives no hint on stderr: %q", r.stderr)
	}
	e.ok("ca-certificate", "add", "-vserver", "t1", "-ca-certs", "ca")
	e.okIn(string(ca.CRL(srv.Cert)), "crl", "add", "--tenant", "t1")

	// Seed 003's PSK example (vm1 speaks for 2001:db8:1::121), the key on stdin.
	r = e.okIn(psk+"\n", "policy", "create", "-vserver", "t1", "-name", "test34", "--vm", "vm1",
		"-local-ip-subnets", "2001:db8:1::121/128", "-remote-ip-subnets", "2001:db8:2::/64", "--remote-address", "2001:db8:2::5")
	// Seed 003's PKI example.
	e.ok("policy", "create", "-vserver", "t1", "-name", "pki", "-local-ip-subnets", "2001:db8:ff::1/128", "-remote-ip-subnets", "2001:db8:ff::/64",
		"-local-ports", "2049", "-protocols", "tcp", "-auth-method", "PKI", "-cert-name", "srv",
		"-local-identity", "CN=netapp.ipsec.lif1.vs0", "-remote-identity", "ANYTHING", "--esp-proposals", "aes256gcm16-ecp384")
	var ps []api.Policy
	if err := json.Unmarshal([]byte(e.ok("--format", "json", "policy", "show", "--tenant", "t1").stdout), &ps); err != nil || len(ps) != 2 {
		t.Fatalf("policy show: %v %+v", err, ps)
	}
	if ps[1].Name != "test34" || ps[1].PSK != "set" || ps[1].AuthMethod != "PSK" || ps[1].Mode != "transport" || ps[1].LocalAddress != "2001:db8:1::121" {
		t.Errorf("test34 listed as %+v", ps[1])
	}
	if ps[0].Name != "pki" || ps[0].PSK != "" || ps[0].CertName != "srv" || ps[0].LocalPorts != "2049" {
		t.Errorf("pki listed as %+v", ps[0])
	}
	if out := e.ok("policy", "show").stdout; !strings.Contains(out, "test34") || !strings.Contains(out, "set") {
		t.Errorf("policy show table:\n%s", out)
	}
	// The VM's traffic waits for IKE: SPs with no SA, matched first.
	if out := e.ok("sp", "list").stdout; !strings.Contains(out, "ike/t1/test34/waiting/out") || !strings.Contains(out, "(missing)") {
		t.Errorf("sp list lacks the waiting SPs of test34:\n%s", out)
	}
	// Column headers as docs/cli.md gives them.
	if out := e.ok("show-ikesa").stdout; !regexp.MustCompile(`^Tenant +Policy +Local-Address +Remote-Address +Initiator-SPI +State +Key-Exchanges +PPK\n`).MatchString(out) {
		t.Errorf("show-ikesa header:\n%s", out)
	}
	if out := e.ok("show-ipsecsa").stdout; !regexp.MustCompile(`^Tenant +Policy +Local-Address +Remote-Address +Inbound-SPI +Outbound-SPI +State\n`).MatchString(out) {
		t.Errorf("show-ipsecsa header:\n%s", out)
	}
	// test34 initiates (it has a --remote-address): the engine runs in
	// vifsecd and shows its IKE SA, which waits for a peer.
	var ikesas []api.IKESA
	json.Unmarshal([]byte(e.ok("--format", "json", "show-ikesa", "--tenant", "t1").stdout), &ikesas)
	if len(ikesas) != 1 || ikesas[0].Policy != "test34" || ikesas[0].State != "CONNECTING" || ikesas[0].LocalAddress != "2001:db8:1::121" || len(ikesas[0].InitiatorSPI) != 16 {
		t.Errorf("show-ikesa: %+v", ikesas)
	}

	before, beforeIKE := e.snapshot(), e.ikeSnapshot()
	refusals := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"policy name taken", psk, []string{"policy", "create", "--tenant", "t1", "--name", "test34", "--local-ip-subnets", "2001:db8:1::121", "--remote-ip-subnets", "2001:db8:2::/64"}, exitExists, "--name"},
		{"psk on a flag", "", []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "::1", "--remote-ip-subnets", "::2", "--psk", psk}, exitUsage, "unknown flag --psk"},
		{"no psk on stdin", "", []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:db8:1::121", "--remote-ip-subnets", "2001:db8:2::/64"}, exitRejected, "pre-shared key"},
		{"anything with psk", psk, []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:db8:1::121", "--remote-ip-subnets", "2001:db8:2::/64", "--remote-identity", "ANYTHING"}, exitRejected, "--remote-identity"},
		{"mixed families", psk, []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:db8:1::121,192.0.2.1", "--remote-ip-subnets", "2001:db8:2::/64"}, exitRejected, "--local-ip-subnets"},
		{"bad prefix", psk, []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:0DB8:0001:/48", "--remote-ip-subnets", "2001:db8:2::/64"}, exitRejected, "2001:db8:1::/48"},
		{"bad ports", psk, []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:db8:1::121", "--remote-ip-subnets", "2001:db8:2::/64", "--protocols", "tcp", "--local-ports", "9-1"}, exitRejected, "--local-ports"},
		{"bad protocol", psk, []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:db8:1::121", "--remote-ip-subnets", "2001:db8:2::/64", "--protocols", "tcp,udp"}, exitRejected, "--protocols"},
		{"bad mode", psk, []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:db8:1::121", "--remote-ip-subnets", "2001:db8:2::/64", "--mode", "tunel"}, exitRejected, "--mode"},
		{"bad proposal", psk, []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:db8:1::121", "--remote-ip-subnets", "2001:db8:2::/64", "--ike-proposals", "aes256gcm16"}, exitRejected, "--ike-proposals"},
		{"vm subnet", psk, []string{"policy", "create", "--tenant", "t1", "--name", "x", "--vm", "vm1", "--local-ip-subnets", "2001:db8:9::/64", "--remote-ip-subnets", "2001:db8:2::/64"}, exitRejected, "--local-ip-subnets"},
		{"pki unknown cert", "", []string{"policy", "create", "--tenant", "t1", "--name", "x", "--local-ip-subnets", "2001:db8:1::121", "--remote-ip-subnets", "2001:db8:2::/64", "--auth-method", "PKI", "--cert-name", "nosuch", "--remote-identity", "ANYTHING"}, exitNotFound, "--cert-name"},
		{"modify unknown", "", []string{"policy", "modify", "--tenant", "t1", "--name", "nosuch", "--mode", "tunnel"}, exitNotFound, "--name"},
		{"modify breaks a rule", "", []string{"policy", "modify", "--tenant", "t1", "--name", "pki", "--cert-name", "ca"}, exitRejected, "--cert-name"},
		{"delete unknown", "", []string{"policy", "delete", "--tenant", "t1", "--name", "nosuch"}, exitNotFound, "--name"},
		{"server cert without key", string(srv.CertPEM()), []string{"certificate", "install", "--tenant", "t1", "--type", "server", "--cert-name", "x"}, exitRejected, "private key"},
		{"cert name taken", string(ca.PEM()), []string{"certificate", "install", "--tenant", "t1", "--type", "server-ca", "--cert-name", "srv"}, exitExists, "--cert-name"},
		{"cert no pem", "", []string{"certificate", "install", "--tenant", "t1", "--type", "server-ca", "--cert-name", "x"}, exitRejected, "stdin is empty"},
		{"cert bad type", "x", []string{"certificate", "install", "--tenant", "t1", "--type", "root", "--cert-name", "x"}, exitRejected, "--type"},
		{"cert in use", "", []string{"certificate", "delete", "--tenant", "t1", "--cert-name", "srv"}, exitRejected, "pki"},
		{"ca add server", "", []string{"ca-certificate", "add", "--tenant", "t1", "--ca-certs", "srv"}, exitRejected, "--ca-certs"},
		{"ca add unknown", "", []string{"ca-certificate", "add", "--tenant", "t1", "--ca-certs", "ca,nosuch"}, exitNotFound, "--ca-certs"},
		{"crl of another ca", string(pkitest.NewCA("other").CRL()), []string{"crl", "add", "--tenant", "t1"}, exitRejected, "none of tenant t1's CA"},
		{"crl older", string(ca.CRLNumber(0)), []string{"crl", "add", "--tenant", "t1"}, exitRejected, "older"},
		{"ike sp", "", []string{"sp", "remove", "--sp-name", "ike/t1/test34/waiting/out"}, exitRejected, "IKE policy"},
		{"show-ikesa unknown tenant", "", []string{"show-ikesa", "--tenant", "nosuch"}, exitNotFound, "--tenant"},
	}
	for _, tt := range refusals {
		r := e.cliIn(tt.stdin, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d naming %q", tt.name, r.code, r.stderr, tt.code, tt.want)
		}
		if strings.Contains(r.stdout+r.stderr, psk) {
			t.Errorf("%s: the PSK was printed", tt.name)
		}
	}
	if after, afterIKE := e.snapshot(), e.ikeSnapshot(); after != before || afterIKE != beforeIKE {
		t.Errorf("refusals changed the state:\nbefore %s\n%s\nafter  %s\n%s", before, beforeIKE, after, afterIKE)
	}

	// Modify: a new PSK from stdin, tunnel mode; --remote-address= resets.
	e.okIn(psk+"-2\n", "policy", "modify", "--tenant", "t1", "--name", "test34", "--auth-method", "PSK", "--mode", "tunnel", "--remote-address=")
	json.Unmarshal([]byte(e.ok("--format", "json", "policy", "show").stdout), &ps)
	if ps[1].Mode != "tunnel" || ps[1].RemoteAddress != "" || ps[1].PSK != "set" {
		t.Errorf("after modify: %+v", ps[1])
	}
	before, beforeIKE = e.snapshot(), e.ikeSnapshot()
	if code := d.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, d.log.String())
	}
	// Secrets: in the state file (mode 0600), never in the log.
	for _, s := range []string{psk, hex.EncodeToString([]byte(psk)), base64.StdEncoding.EncodeToString([]byte(psk)),
		hex.EncodeToString(keyDER), base64.StdEncoding.EncodeToString(keyDER)[:40]} {
		if strings.Contains(d.log.String(), s) {
			t.Errorf("the daemon's log holds a secret (%.10s…)", s)
		}
	}
	if fi, err := os.Stat(filepath.Join(e.state, "state.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", fi, err)
	}
	e.start()
	if after, afterIKE := e.snapshot(), e.ikeSnapshot(); after != before || afterIKE != beforeIKE {
		t.Errorf("state differs after restart:\nbefore %s\n%s\nafter  %s\n%s", before, beforeIKE, after, afterIKE)
	}
	e.ok("policy", "delete", "--tenant", "t1", "--name", "test34")
	e.ok("policy", "delete", "--tenant", "t1", "--name", "pki")
	e.ok("ca-certificate", "remove", "--tenant", "t1", "--ca-certs", "ca")
	e.ok("certificate", "delete", "--tenant", "t1", "--cert-name", "ca")
	e.ok("certificate", "delete", "--tenant", "t1", "--cert-name", "srv")
	if out := strings.TrimSpace(e.ok("--format", "json", "crl", "show").stdout); out != "[]" {
		t.Errorf("CRLs left after their CA was deleted: %s", out)
	}
	e.ok("vm", "detach", "--vm", "vm1")
}

func pemDER(t *testing.T, p []byte) []byte {
	s := string(p)
	s = s[strings.Index(s, "\n")+1 : strings.Index(s, "-----END")]
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return der
}
