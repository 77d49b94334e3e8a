package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/api"
)

// Interop with strongSwan 6 (Debian 13), run chrooted in the tree `make
// lab-trixie` builds: an additional key exchange (RFC 9370) in
// IKE_INTERMEDIATE at setup and in IKE_FOLLOWUP_KE after every rekey, of
// the IKE SA and of the Child SA (PFS), each side initiating and
// rekeying; and a post-quantum preshared key (RFC 8784) required on both
// sides, through its rekeys. The additional key exchange is ECP-384 after x25519, and
// ML-KEM-768 too where the root's charon implements it: Debian 13's
// strongSwan 6.0.1 does not (its openssl plugin has KEMs only from 6.1,
// and the ml plugin is not packaged: `swanctl --list-algs` lists DH
// groups only); a root with 6.1 (VIFSEC_TRIXIE_ROOT, e.g. debootstrap of
// sid) runs both.

// trixieCharon is the daemon the tree's charon-systemd package installs.
const trixieCharon = "/usr/sbin/charon-systemd"

// trixiePlugins are charon 6's plugins the lab needs.
const trixiePlugins = CharonPlugins

// needTrixie returns the strongSwan 6 root, or skips (fails under CI)
// without it.
func needTrixie(t *testing.T) string {
	t.Helper()
	root := os.Getenv("VIFSEC_TRIXIE_ROOT")
	if root == "" {
		root, _ = filepath.Abs("../../.cache/lab-trixie")
	}
	if _, err := os.Stat(filepath.Join(root, ".complete")); err != nil {
		msg := "strongSwan 6 root missing (make lab-trixie): " + root
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return root
}

func ikeSAOf(t *testing.T, d *Daemon, policy string) api.IKESA {
	t.Helper()
	for _, s := range ike2IKESAs(t, d, "acme") {
		if s.Policy == policy && s.State == "ESTABLISHED" {
			return s
		}
	}
	t.Fatalf("no established IKE SA for %s", policy)
	return api.IKESA{}
}

// waitFor polls cond every 100 ms for up to timeout.
func waitFor6(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestIntegrationIKEStrongSwan6(t *testing.T) {
	bin := needDemoTools(t)
	root := needTrixie(t)
	l, d := ikeLabT(t, bin, "vs6")
	ctx := context.Background()
	base := CharonConfig{Root: root, Charon: trixieCharon, Plugins: trixiePlugins}
	type keCase struct{ ike, esp, kes, theirs, ppkID string }
	kcs := []keCase{{"aes256gcm16-prfsha384-x25519-ke1_ecp384", "aes256gcm16-x25519-ke1_ecp384", "curve25519+ecp384", "KE1_ECP_384", ""},
		// RFC 8784: a post-quantum preshared key required on both sides.
		{"aes256gcm16-prfsha384-x25519", "aes256gcm16-x25519", "curve25519", "CURVE_25519", "lab-ppk-1"}}
	if algs := charonAlgs(t, l, base); strings.Contains(algs, "ML_KEM_768") {
		kcs = append(kcs, keCase{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-x25519-ke1_mlkem768", "curve25519+mlkem768", "KE1_ML_KEM_768", ""})
	} else {
		t.Logf("the charon in %s implements no ML-KEM (no ML_KEM_768 in swanctl --list-algs): the additional key exchange is ECP-384 only", root)
	}
	i := 0
	for _, kc := range kcs {
		for _, weInitiate := range []bool{true, false} {
			i++
			ikeP, espP, kes, theirs := kc.ike, kc.esp, kc.kes, kc.theirs
			c := ikeCase{auth: "psk", ike: ikeP, esp: espP, weInitiate: weInitiate, ppkID: kc.ppkID}
			ok := t.Run(c.name(), func(t *testing.T) {
				ch := peerCharonIn(t, l, c, nil, nil, base)
				name := fmt.Sprintf("pq%d", i)
				vifsecPolicy(t, d, l, c, name)
				t.Cleanup(func() { d.CLI(ctx, "policy", "delete", "--tenant", "acme", "--name", name) })
				if !weInitiate {
					if err := ch.Initiate(ctx); err != nil {
						t.Fatal(err)
					}
				}
				waitIPsecSA(t, d, name, 20*time.Second)
				traffic := func(when string) {
					t.Helper()
					if b, err := Exec(ctx, l.Guest.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", IKEProtHost4.String()); err != nil {
						t.Fatalf("%s: ping through the tunnel: %v\n%s", when, err, b)
					}
					if err := TCPEcho(l.Guest.NS, l.Peer, IKEProtHost4, 0, 64<<10); err != nil {
						t.Fatalf("%s: TCP through the tunnel: %v", when, err)
					}
				}
				traffic("established")
				if s := ikeSAOf(t, d, name); s.KeyExchanges != kes || s.PPK != (c.ppkID != "") {
					t.Fatalf("show-ikesa: key exchanges %q, PPK %v; want %q, %v", s.KeyExchanges, s.PPK, kes, c.ppkID != "")
				}
				list, err := ch.ListSAs(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(list, theirs) {
					t.Errorf("swanctl --list-sas shows no %s:\n%s", theirs, list)
				}
				t.Logf("swanctl --list-sas:\n%s", list)
				// Four rekeys, each with an additional key exchange in
				// IKE_FOLLOWUP_KE: ours and charon's, of the Child SA and of
				// the IKE SA.
				childSPIs := func() string { l, _ := ch.ListSAs(ctx); return strings.Join(charonChildSPIs(l), ",") }
				for _, r := range []struct {
					what string
					do   func() error
					ike  bool
				}{
					{"vifsec rekeys the Child SA", func() error { _, err := d.CLI(ctx, "policy", "rekey", "--tenant", "acme", "--name", name); return err }, false},
					{"charon rekeys the Child SA", func() error { _, err := ch.Swanctl(ctx, "--rekey", "--child", "vm"); return err }, false},
					{"vifsec rekeys the IKE SA", func() error {
						_, err := d.CLI(ctx, "policy", "rekey", "--tenant", "acme", "--name", name, "--ike")
						return err
					}, true},
					{"charon rekeys the IKE SA", func() error { _, err := ch.Swanctl(ctx, "--rekey", "--ike", "vm"); return err }, true},
				} {
					beforeIKE, beforeChild := ikeSAOf(t, d, name).InitiatorSPI, childSPIs()
					if err := r.do(); err != nil {
						t.Fatalf("%s: %v", r.what, err)
					}
					waitFor6(t, 20*time.Second, r.what+": no new SA", func() bool {
						if r.ike {
							// One IKE SA of the policy (an earlier case's may
							// still be deleting), a new one.
							var up []api.IKESA
							for _, s := range ike2IKESAs(t, d, "acme") {
								if s.Policy == name {
									up = append(up, s)
								}
							}
							return len(up) == 1 && up[0].State == "ESTABLISHED" && up[0].InitiatorSPI != beforeIKE
						}
						now := childSPIs()
						return now != beforeChild && strings.Count(now, ",") == 1
					})
					if s := ikeSAOf(t, d, name); s.KeyExchanges != kes || s.PPK != (c.ppkID != "") {
						t.Errorf("%s: show-ikesa key exchanges %q, PPK %v; want %q, %v", r.what, s.KeyExchanges, s.PPK, kes, c.ppkID != "")
					}
					traffic(r.what)
				}
				list, _ = ch.ListSAs(ctx)
				t.Logf("after the rekeys, swanctl --list-sas:\n%s", list)
				if strings.Count(list, theirs) < 2 {
					t.Errorf("after the rekeys, swanctl --list-sas does not show %s on both the IKE SA and the Child SA:\n%s", theirs, list)
				}
			})
			if !ok {
				return
			}
		}
	}
}

// charonAlgs returns `swanctl --list-algs` of a charon started from base
// in the lab's peer namespace, with no connection.
func charonAlgs(t *testing.T, l *IKELab, base CharonConfig) string {
	t.Helper()
	ctx := context.Background()
	base.NS, base.SwanctlConf = l.Peer, "connections {\n}\n"
	ch, err := StartCharon(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Stop()
	out, err := ch.Swanctl(ctx, "--list-algs")
	if err != nil {
		t.Fatalf("swanctl --list-algs: %v\n%s", err, out)
	}
	return out
}
