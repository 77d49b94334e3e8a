package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needLibreswan returns the libreswan root `make lab-libreswan` builds,
// or skips (fails under CI) without it.
func needLibreswan(t *testing.T) string {
	t.Helper()
	root, _ := filepath.Abs("../../.cache/lab-libreswan")
	if r := os.Getenv("VIFSEC_LIBRESWAN_ROOT"); r != "" {
		root = r
	}
	b, err := os.ReadFile(filepath.Join(root, ".complete"))
	if err != nil || !strings.Contains(string(b), "libreswan") {
		msg := "libreswan root missing (make lab-libreswan): " + root
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return root
}

// TestIntegrationIKELibreswan: libreswan 5.2 (Debian 13's pluto, chrooted)
// as a second independent IKE implementation: IKE SAs with a PSK and with
// ECDSA certificates, each side initiating, established on both sides.
// Pluto installs Child SAs with the kernel's XFRM, and this kernel has no
// ESP (CONFIG_INET_ESP unset): the Child SA fails on pluto's side with
// the netlink error the test logs, so no traffic is carried. On a kernel
// with ESP the Child SA comes up and the test runs a ping through it.
func TestIntegrationIKELibreswan(t *testing.T) {
	bin := needDemoTools(t)
	root := needLibreswan(t)
	l, d := ikeLabT(t, bin, "vls")
	ctx := context.Background()
	pki, peerID := installPKI(t, d, "ecdsa")
	i := 0
	for _, auth := range []string{"psk", "ecdsa"} {
		for _, weInitiate := range []bool{true, false} {
			i++
			c := ikeCase{auth: auth, ike: "aes256gcm16-prfsha256-ecp256", esp: "aes256gcm16", weInitiate: weInitiate}
			who := "pluto-initiates"
			if weInitiate {
				who = "vifsec-initiates"
			}
			ok := t.Run(auth+"/"+who, func(t *testing.T) {
				authby, leftcert, secrets := "secret", "", fmt.Sprintf("%s %s : PSK %q\n", IKEPeer4, IKEGuest4, ikeLabPSK)
				cfg := PlutoConfig{NS: l.Peer, Root: root}
				rightid := IKEGuest4.String()
				if auth != "psk" {
					authby, leftcert, secrets = "ecdsa", "\tleftcert=peer\n", ""
					cfg.CAPEM, cfg.CertPEM, cfg.KeyPEM = pki.CAPEM, peerID.CertPEM, peerID.KeyPEM
				}
				cfg.Secrets = secrets
				cfg.Conf = fmt.Sprintf(`config setup
	plutodebug=none
conn vm
	keyexchange=ikev2
	authby=%s
	left=%s
	leftid=%s
%s	leftsubnet=%s
	right=%s
	rightid=%s
	rightsubnet=%s/32
	type=tunnel
	ike=aes_gcm256-sha2_256-dh19
	esp=aes_gcm256
	auto=add
`, authby, IKEPeer4, IKEPeer4, leftcert, IKEProtected4, IKEGuest4, rightid, IKEGuest4)
				p, err := StartPluto(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("pluto log:\n%s", tail(p.Log, 60))
					}
					p.Stop()
				})
				if out, err := p.Ipsec(ctx, "add", "vm"); err != nil {
					t.Fatalf("ipsec add vm: %v\n%s", err, out)
				}
				name := fmt.Sprintf("ls%d", i)
				vifsecPolicy(t, d, l, c, name)
				t.Cleanup(func() { d.CLI(ctx, "policy", "delete", "--tenant", "acme", "--name", name) })
				if !weInitiate {
					out, _ := p.Ipsec(ctx, "up", "vm", "--asynchronous")
					t.Logf("ipsec up vm: %s", out)
				}
				// The IKE SA, on both sides.
				waitFor6(t, 20*time.Second, "no established IKE SA with pluto", func() bool {
					b, _ := os.ReadFile(p.Log)
					if !strings.Contains(string(b), "established IKE SA") {
						return false
					}
					for _, s := range ike2IKESAs(t, d, "acme") {
						if s.Policy == name && s.State == "ESTABLISHED" {
							return true
						}
					}
					return false
				})
				b, _ := os.ReadFile(p.Log)
				for _, line := range strings.Split(string(b), "\n") {
					if strings.Contains(line, "established IKE SA") {
						t.Logf("pluto: %s", line)
						psk, lc := strings.Contains(line, "authby=secret"), strings.ToLower(line)
						if psk != (auth == "psk") || !psk && !strings.Contains(lc, "ecdsa") && !strings.Contains(lc, "certificate") {
							t.Errorf("pluto did not authenticate vifsec by %s: %s", auth, line)
						}
					}
				}
				s := ikeSAOf(t, d, name)
				t.Logf("vifsec: IKE SA %s/%s with %s (%s), %s", s.InitiatorSPI, s.ResponderSPI, s.RemoteID, s.RemoteAddress, s.Suite)
				if !strings.Contains(s.RemoteID, IKEPeer4.String()) {
					t.Errorf("vifsec's IKE SA has remote identity %q, want pluto's %s", s.RemoteID, IKEPeer4)
				}
				// The Child SA: pluto installs it in the kernel, or says why
				// it cannot.
				var child, failed []string
				waitFor6(t, 20*time.Second, "pluto neither installed the Child SA nor failed to", func() bool {
					b, _ := os.ReadFile(p.Log)
					child, failed = nil, nil
					for _, line := range strings.Split(string(b), "\n") {
						switch {
						case strings.Contains(line, "established Child SA"):
							child = append(child, line)
						case strings.Contains(line, "netlink response for Add SA") || strings.Contains(line, "ERROR:") && strings.Contains(line, "SA"):
							failed = append(failed, line)
						}
					}
					return len(child) > 0 || len(failed) > 0
				})
				if len(child) == 0 {
					for _, line := range failed {
						t.Logf("pluto: %s", line)
					}
					t.Logf("no kernel ESP: pluto's Child SA is not installed, no traffic to carry")
					return
				}
				if out, err := Exec(ctx, l.Guest.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", IKEProtHost4.String()); err != nil {
					t.Fatalf("ping through the tunnel: %v\n%s", err, out)
				}
			})
			if !ok {
				return
			}
		}
	}
}
