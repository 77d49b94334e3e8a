package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/api"
)

// Interop with strongSwan 6 (6.1 with OpenSSL 3.6, Debian forky), run
// chrooted in the tree `make lab-sw6` builds: an additional key exchange
// (RFC 9370) in IKE_INTERMEDIATE at setup and in IKE_FOLLOWUP_KE after
// every rekey, of the IKE SA and of the Child SA (PFS), each side
// initiating and rekeying; a post-quantum preshared key (RFC 8784)
// required on both sides, with a PSK and with certificates, through its
// rekeys.
//
// The additional key exchange is ML-KEM: x25519 then ML-KEM-768, ECP-384
// then ML-KEM-1024. strongSwan's openssl plugin provides ML-KEM from 6.0.2
// on with OpenSSL 3.5 or later; Debian 13's 6.0.1 has none (before 6.0.2
// the openssl plugin offered it only when built against AWS-LC, and
// Debian builds none of the ml, botan or wolfssl plugins), hence the
// forky root. A root whose charon lists no ML_KEM_768 in `swanctl
// --list-algs` (VIFSEC_SW6_ROOT pointing at another tree) runs the matrix
// with ECP-384 or x25519 as the additional key exchange, and fails when
// CI=true.
//
// The wire, captured on the peer, has each IKE_INTERMEDIATE (exchange
// type 43) and IKE_FOLLOWUP_KE (44) as tshark decodes them.

// sw6Charon is the daemon the tree's charon-systemd package installs.
const sw6Charon = "/usr/sbin/charon-systemd"

// sw6Plugins are charon 6's plugins the lab needs.
const sw6Plugins = CharonPlugins

// needSW6 returns the strongSwan 6 root (VIFSEC_SW6_ROOT, or
// VIFSEC_TRIXIE_ROOT as older trees named it, else `make lab-sw6`'s), or
// skips (fails under CI) without it. It logs the package versions the
// root's .complete stamp records: the root follows Debian testing.
func needSW6(t *testing.T) string {
	t.Helper()
	root := os.Getenv("VIFSEC_SW6_ROOT")
	if root == "" {
		root = os.Getenv("VIFSEC_TRIXIE_ROOT")
	}
	if root == "" {
		root, _ = filepath.Abs("../../.cache/lab-sw6")
	}
	stamp, err := os.ReadFile(filepath.Join(root, ".complete"))
	if err != nil {
		msg := "strongSwan 6 root missing (make lab-sw6): " + root
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, versions, ok := strings.Cut(strings.TrimSpace(string(stamp)), "\n"); ok {
		t.Logf("strongSwan 6 root %s:\n%s", root, versions)
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

// ike6KE is one key-exchange row of the strongSwan 6 matrix.
type ike6KE struct {
	ike, esp string // strongSwan proposal syntax, used on both sides
	kes      string // show-ikesa's key exchanges
	theirs   string // what swanctl --list-sas shows of the additional one
}

// ike6KEs returns the matrix's key exchanges: x25519 and ECP-384, each
// with ML-KEM after it where charon has it, else with the other.
func ike6KEs(mlkem bool) [2]ike6KE {
	if mlkem {
		return [2]ike6KE{
			{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-x25519-ke1_mlkem768", "curve25519+mlkem768", "KE1_ML_KEM_768"},
			{"aes256gcm16-prfsha384-ecp384-ke1_mlkem1024", "aes256gcm16-ecp384-ke1_mlkem1024", "ecp384+mlkem1024", "KE1_ML_KEM_1024"},
		}
	}
	return [2]ike6KE{
		{"aes256gcm16-prfsha384-x25519-ke1_ecp384", "aes256gcm16-x25519-ke1_ecp384", "curve25519+ecp384", "KE1_ECP_384"},
		{"aes256gcm16-prfsha384-ecp384-ke1_curve25519", "aes256gcm16-ecp384-ke1_curve25519", "ecp384+curve25519", "KE1_CURVE_25519"},
	}
}

// charonChildPair returns the inbound and outbound SPI ("0x%08x") of the
// one INSTALLED Child SA in `swanctl --list-sas`, "" if there is not
// exactly one.
func charonChildPair(list string) (in, out string) {
	var ins, outs []string
	installed := false
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, ", reqid ") {
			installed = strings.Contains(line, ", INSTALLED,")
			continue
		}
		f := strings.Fields(line)
		if !installed || len(f) < 2 {
			continue
		}
		spi := "0x" + strings.ToLower(strings.TrimSuffix(f[1], ","))
		switch f[0] {
		case "in":
			ins = append(ins, spi)
		case "out":
			outs = append(outs, spi)
		}
	}
	if len(ins) != 1 || len(outs) != 1 {
		return "", ""
	}
	return ins[0], outs[0]
}

func TestIntegrationIKEStrongSwan6(t *testing.T) {
	bin := needDemoTools(t)
	root := needSW6(t)
	l, d := ikeLabT(t, bin, "vs6")
	ctx := context.Background()
	base := CharonConfig{Root: root, Charon: sw6Charon, Plugins: sw6Plugins}
	algs := charonAlgs(t, l, base)
	mlkem := strings.Contains(algs, "ML_KEM_768") && strings.Contains(algs, "ML_KEM_1024")
	if !mlkem && os.Getenv("CI") == "true" {
		t.Fatalf("the charon in %s lacks ML-KEM-768 or ML-KEM-1024 (swanctl --list-algs below); make lab-sw6 builds one with both\n%s", root, algs)
	}
	if !mlkem {
		t.Logf("the charon in %s implements no ML-KEM (ML_KEM_768 or ML_KEM_1024 missing from swanctl --list-algs): the additional key exchange is ECP-384 or x25519", root)
	}
	kes := ike6KEs(mlkem)
	type keCase struct {
		auth  string
		ke    ike6KE
		ppkID string
	}
	kcs := []keCase{
		{"psk", kes[0], ""},
		// RFC 8784: a post-quantum preshared key required on both sides,
		// with each kind of authentication.
		{"psk", kes[1], "lab-ppk-1"},
		{"ecdsa", kes[0], "lab-ppk-1"},
		{"ecdsa", kes[1], "lab-ppk-1"},
		{"psk", ike6KE{"aes256gcm16-prfsha384-x25519", "aes256gcm16-x25519", "curve25519", "CURVE_25519"}, "lab-ppk-1"},
	}
	pki, peerID := installPKI(t, d, "ecdsa")
	// The wire, seen from the peer's side, through the whole matrix.
	capture, err := StartCaptureOn(ctx, l.Peer, "eth0", filepath.Join(t.TempDir(), "ike6.pcap"), "udp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(capture.Stop)
	i, ran := 0, 0
	for _, kc := range kcs {
		for _, weInitiate := range []bool{true, false} {
			i++
			kc := kc
			c := ikeCase{auth: kc.auth, ike: kc.ke.ike, esp: kc.ke.esp, weInitiate: weInitiate, ppkID: kc.ppkID}
			ok := t.Run(c.name(), func(t *testing.T) {
				ran++
				start := time.Now()
				ch := peerCharonIn(t, l, c, pki, peerID, base)
				name := fmt.Sprintf("pq%d", i)
				vifsecPolicy(t, d, l, c, name)
				t.Cleanup(func() { d.CLI(ctx, "policy", "delete", "--tenant", "acme", "--name", name) })
				if !weInitiate {
					if err := ch.Initiate(ctx); err != nil {
						t.Fatal(err)
					}
				}
				waitIPsecSA(t, d, name, 20*time.Second)
				t.Logf("%v: Child SA up", time.Since(start).Round(time.Millisecond))
				traffic := func(when string) {
					t.Helper()
					defer func() { t.Logf("%v: %s: traffic carried", time.Since(start).Round(time.Millisecond), when) }()
					if b, err := Exec(ctx, l.Guest.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", IKEProtHost4.String()); err != nil {
						t.Fatalf("%s: ping through the tunnel: %v\n%s", when, err, b)
					}
					if err := TCPEcho(l.Guest.NS, l.Peer, IKEProtHost4, 0, 64<<10); err != nil {
						t.Fatalf("%s: TCP through the tunnel: %v", when, err)
					}
				}
				// Both sides show the same Child SA: our inbound SPI is
				// charon's outbound one and the other way round.
				sameSPIs := func(when string) {
					t.Helper()
					deadline := time.Now().Add(10 * time.Second)
					for {
						list, _ := ch.ListSAs(ctx)
						in, out := charonChildPair(list)
						var ours []string
						for _, r := range ike2IPsecSAs(t, d, "acme") {
							if r.Policy == name && r.State == "INSTALLED" {
								if r.InboundSPI.String() == out && r.OutboundSPI.String() == in {
									return
								}
								ours = append(ours, "in "+r.InboundSPI.String()+" out "+r.OutboundSPI.String())
							}
						}
						if time.Now().After(deadline) {
							t.Fatalf("%s: vifsec's Child SA %v, charon's in %q out %q:\n%s", when, ours, in, out, list)
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
				traffic("established")
				sameSPIs("established")
				if s := ikeSAOf(t, d, name); s.KeyExchanges != kc.ke.kes || s.PPK != (c.ppkID != "") {
					t.Fatalf("show-ikesa: key exchanges %q, PPK %v; want %q, %v", s.KeyExchanges, s.PPK, kc.ke.kes, c.ppkID != "")
				}
				list, err := ch.ListSAs(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(list, kc.ke.theirs) {
					t.Errorf("swanctl --list-sas shows no %s:\n%s", kc.ke.theirs, list)
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
					if s := ikeSAOf(t, d, name); s.KeyExchanges != kc.ke.kes || s.PPK != (c.ppkID != "") {
						t.Errorf("%s: show-ikesa key exchanges %q, PPK %v; want %q, %v", r.what, s.KeyExchanges, s.PPK, kc.ke.kes, c.ppkID != "")
					}
					traffic(r.what)
					sameSPIs(r.what)
				}
				list, _ = ch.ListSAs(ctx)
				t.Logf("after the rekeys, swanctl --list-sas:\n%s", list)
				if strings.Count(list, kc.ke.theirs) < 2 {
					t.Errorf("after the rekeys, swanctl --list-sas does not show %s on both the IKE SA and the Child SA:\n%s", kc.ke.theirs, list)
				}
			})
			if !ok {
				return
			}
		}
	}
	capture.Stop()
	if ran == 0 {
		t.Log("no case ran (-run chose none): nothing on the wire to check")
		return
	}
	checkIntermediateWire(t, capture.File)
}

// checkIntermediateWire reads the capture of the strongSwan 6 matrix with
// tshark: every IKE SA set up with an additional key exchange has its
// IKE_INTERMEDIATE (exchange type 43) as message 1, request and
// response, between IKE_SA_INIT (34, message 0) and IKE_AUTH (35,
// message 2); every rekey with one has an IKE_FOLLOWUP_KE (44) after its
// CREATE_CHILD_SA (36); and tshark finds no IKE message malformed.
func checkIntermediateWire(t *testing.T, file string) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-n", "-T", "fields", "-E", "separator=|",
		"-e", "isakmp.ispi", "-e", "isakmp.exchangetype", "-e", "isakmp.messageid", "-e", "isakmp.flag_r", "-e", "_ws.malformed",
		"-Y", "isakmp").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	type msg struct{ exch, id string }
	bySA := map[string]map[msg]int{} // by initiator SPI: requests+responses
	exch := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 5 {
			continue
		}
		if f[4] != "" {
			t.Errorf("tshark: malformed IKE message: %s", line)
		}
		ispi, x, id, resp := f[0], f[1], f[2], f[3]
		exch[x]++
		if bySA[ispi] == nil {
			bySA[ispi] = map[msg]int{}
		}
		m := msg{x, id}
		if resp == "1" || resp == "True" {
			m.exch += "r"
		}
		bySA[ispi][m]++
	}
	t.Logf("IKE exchanges on the wire by type: %v", exch)
	// IKE SAs set up by IKE_SA_INIT whose IKE_AUTH is message 2 had one
	// IKE_INTERMEDIATE: message 1 both ways, of exchange type 43.
	inter := 0
	for ispi, m := range bySA {
		if m[msg{"35", "0x00000002"}] == 0 && m[msg{"35", "2"}] == 0 {
			continue
		}
		inter++
		if m[msg{"43", "0x00000001"}]+m[msg{"43", "1"}] == 0 || m[msg{"43r", "0x00000001"}]+m[msg{"43r", "1"}] == 0 {
			t.Errorf("IKE SA %s: IKE_AUTH is message 2 but no IKE_INTERMEDIATE (43) request and response as message 1: %v", ispi, m)
		}
	}
	if inter == 0 {
		t.Errorf("no IKE SA with an IKE_INTERMEDIATE exchange on the wire: %v", exch)
	}
	if exch["43"] == 0 || exch["44"] == 0 || exch["36"] == 0 {
		t.Errorf("IKE exchange types on the wire %v: want IKE_INTERMEDIATE (43), CREATE_CHILD_SA (36) and IKE_FOLLOWUP_KE (44)", exch)
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

// TestIntegrationIKEStrongSwan6RawESP: strongSwan 6's kernel-libipsec
// with raw_esp = yes sends and takes ESP on IP protocol 50 sockets, so
// with no NAT between them the Child SA is plain ESP (5.9.8's libipsec
// forced UDP encapsulation). A tunnel-mode Child SA carries ping and TCP,
// and the wire between the guest's and the peer's addresses has ESP on
// protocol 50 with the negotiated SPIs and no ESP-in-UDP.
//
// Transport mode: libipsec creates tunnel-mode SAs only (ipsec_sa_create
// refuses any other mode, logging "IPsec SA: unsupported mode", in
// 6.0.1 and 6.1 as in 5.9.8); the subtest sees charon refuse to install it, and
// runs traffic through it should a root's charon accept it.
func TestIntegrationIKEStrongSwan6RawESP(t *testing.T) {
	bin := needDemoTools(t)
	root := needSW6(t)
	l, d := ikeLabT(t, bin, "vr6")
	ctx := context.Background()
	base := CharonConfig{Root: root, Charon: sw6Charon, Plugins: sw6Plugins, RawESP: true}
	ike, esp := "aes256gcm16-prfsha384-x25519", "aes256gcm16"

	t.Run("tunnel", func(t *testing.T) {
		c := ikeCase{auth: "psk", ike: ike, esp: esp, weInitiate: true}
		ch := peerCharonIn(t, l, c, nil, nil, base)
		capture, err := StartCaptureOn(ctx, l.Peer, "eth0", filepath.Join(t.TempDir(), "raw.pcap"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(capture.Stop)
		vifsecPolicy(t, d, l, c, "raw")
		t.Cleanup(func() { d.CLI(ctx, "policy", "delete", "--tenant", "acme", "--name", "raw") })
		waitIPsecSA(t, d, "raw", 20*time.Second)
		if b, err := Exec(ctx, l.Guest.NS, "ping", "-c", "3", "-i", "0.2", "-W", "2", IKEProtHost4.String()); err != nil {
			t.Fatalf("ping through the tunnel: %v\n%s", err, b)
		}
		if err := TCPEcho(l.Guest.NS, l.Peer, IKEProtHost4, 0, 256<<10); err != nil {
			t.Fatalf("TCP through the tunnel: %v", err)
		}
		list, err := ch.ListSAs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("swanctl --list-sas:\n%s", list)
		if !strings.Contains(list, "INSTALLED, TUNNEL,") {
			t.Errorf("charon's Child SA is not plain tunnel-mode ESP (TUNNEL, not TUNNEL-in-UDP):\n%s", list)
		}
		in, out := charonChildPair(list)
		capture.Stop()
		raw, udp := wireESP(t, capture.File)
		t.Logf("wire: raw ESP by SPI %v, ESP-in-UDP frames %d", raw, udp)
		if udp != 0 {
			t.Errorf("%d ESP-in-UDP frames on the wire, want none", udp)
		}
		// Both directions, each with the SPI its receiver chose.
		if raw[in] == 0 || raw[out] == 0 {
			t.Errorf("raw ESP on the wire by SPI %v: want charon's inbound %s and outbound %s", raw, in, out)
		}
		for spi := range raw {
			if spi != in && spi != out {
				t.Errorf("raw ESP with SPI %s, not the Child SA's (%s, %s)", spi, in, out)
			}
		}
	})

	t.Run("transport", func(t *testing.T) {
		c := ikeCase{auth: "psk", ike: ike, esp: esp, weInitiate: true, mode: "transport"}
		ch := peerCharonIn(t, l, c, nil, nil, base)
		vifsecPolicy(t, d, l, c, "rawt")
		t.Cleanup(func() { d.CLI(ctx, "policy", "delete", "--tenant", "acme", "--name", "rawt") })
		var refused bool
		waitFor6(t, 20*time.Second, "charon neither installed the transport-mode Child SA nor refused it", func() bool {
			b, _ := os.ReadFile(ch.Log)
			refused = strings.Contains(string(b), "IPsec SA: unsupported mode")
			list, _ := ch.ListSAs(ctx)
			return refused || strings.Contains(list, "INSTALLED, TRANSPORT")
		})
		if refused {
			b, _ := os.ReadFile(ch.Log)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "unsupported mode") || strings.Contains(line, "unable to install") || strings.Contains(line, "failed to establish CHILD_SA") {
					t.Logf("charon: %s", line)
				}
			}
			t.Logf("libipsec has no transport mode: nothing to carry traffic through")
			// vifsec has taken IKE_AUTH's answer once its IKE SA is
			// established or gone (it ends an IKE SA whose IKE_AUTH
			// answer refuses the Child SA); it installed no Child SA.
			waitFor6(t, 10*time.Second, "vifsec's IKE SA for rawt still in IKE_AUTH", func() bool {
				for _, s := range ike2IKESAs(t, d, "acme") {
					if s.Policy == "rawt" && s.State != "ESTABLISHED" {
						return false
					}
				}
				return true
			})
			for _, r := range ike2IPsecSAs(t, d, "acme") {
				if r.Policy == "rawt" {
					t.Errorf("vifsec shows a Child SA charon refused: %+v", r)
				}
			}
			return
		}
		waitIPsecSA(t, d, "rawt", 20*time.Second)
		if b, err := Exec(ctx, l.Guest.NS, "ping", "-c", "3", "-i", "0.2", "-W", "2", IKEPeer4.String()); err != nil {
			t.Fatalf("ping in transport mode: %v\n%s", err, b)
		}
	})
}

// wireESP counts a capture's ESP frames: raw (IP protocol 50) by SPI
// ("0x%08x"), and how many were ESP in UDP.
func wireESP(t *testing.T, file string) (raw map[string]int, udp int) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-n", "-T", "fields", "-E", "separator=|",
		"-e", "ip.proto", "-e", "udp.dstport", "-e", "esp.spi", "-Y", "esp").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	raw = map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 3 {
			continue
		}
		switch {
		case f[1] != "":
			udp++
		case strings.HasPrefix(f[0], "50"):
			raw[strings.ToLower(f[2])]++
		}
	}
	return raw, udp
}
