//go:build linux

package ike_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/examples/lab"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// IKE interop with strongSwan: charon (kernel-libipsec) in one network
// namespace, the engine on real UDP sockets (500 and 4500, non-ESP marker)
// in another, joined by a veth pair. Only IKE is checked here (no ESP
// traffic): both sides must agree on the IKE SA's and the Child SA's SPIs,
// as `swanctl --list-sas` shows them, across establishment from either
// side, Child SA and IKE SA rekeying from either side, and deletion.

func needCharon(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.CannotRun(t, "needs root (network namespaces)")
	}
	if _, err := os.Stat(lab.CharonPath); err != nil {
		testutil.CannotRun(t, "strongSwan charon missing: apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins")
	}
	if _, err := exec.LookPath("swanctl"); err != nil {
		testutil.CannotRun(t, "swanctl missing: apt-get install strongswan-swanctl")
	}
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// udpEndpoint is the engine's two IKE sockets in a namespace.
type udpEndpoint struct {
	conns map[uint16]*net.UDPConn
	wg    sync.WaitGroup
}

func openEndpoint(t *testing.T, ns string, addr netip.Addr) *udpEndpoint {
	ep := &udpEndpoint{conns: map[uint16]*net.UDPConn{}}
	err := lab.InNS(ns, func() error {
		for _, port := range []uint16{500, 4500} {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
			if err != nil {
				return err
			}
			ep.conns[port] = c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func (ep *udpEndpoint) send(p ike.Packet) {
	c := ep.conns[p.Local.Port()]
	if c == nil {
		return
	}
	b := p.Data
	if p.Local.Port() == 4500 {
		b = append([]byte{0, 0, 0, 0}, b...) // non-ESP marker, RFC 3948 §2.2
	}
	c.WriteToUDPAddrPort(b, p.Remote)
}

func (ep *udpEndpoint) serve(e *ike.Engine) {
	for port, c := range ep.conns {
		ep.wg.Add(1)
		go func() {
			defer ep.wg.Done()
			buf := make([]byte, 65536)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				b := buf[:n]
				if port == 4500 {
					if n < 4 || b[0]|b[1]|b[2]|b[3] != 0 {
						if os.Getenv("IKE_TEST_LOG") != "" {
							fmt.Fprintf(os.Stderr, "ignored %d bytes of ESP or keepalive on %d from %v\n", n, port, from)
						}
						continue // ESP, or a keepalive
					}
					b = b[4:]
				}
				if os.Getenv("IKE_TEST_LOG") != "" {
					fmt.Fprintf(os.Stderr, "recv %d bytes on %d from %v\n", len(b), port, from)
				}
				local := netip.AddrPortFrom(netip.MustParseAddrPort(c.LocalAddr().String()).Addr(), port)
				e.Input(ike.Packet{Local: local, Remote: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), Data: b})
			}
		}()
	}
}

func (ep *udpEndpoint) close() {
	for _, c := range ep.conns {
		c.Close()
	}
	ep.wg.Wait()
}

type installed struct {
	mu sync.Mutex
	m  map[string]*ike.ChildSA
}

func (in *installed) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.m)
}

type interopCase struct {
	name, ike, esp string
	weInitiate     bool
	auth           string // psk, ecdsa, rsa
	fragSize       int    // our Config.FragmentSize (0: default)
}

func TestIntegrationStrongSwan(t *testing.T) {
	needCharon(t)
	for _, tc := range []interopCase{
		{"we-initiate-aes128gcm16-modp2048-psk", "aes128gcm16-prfsha256-modp2048", "aes128gcm16", true, "psk", 0},
		{"charon-initiates-chacha20-x25519-psk", "chacha20poly1305-prfsha256-x25519", "chacha20poly1305", false, "psk", 0},
		{"we-initiate-aes256-sha256-ecp384-pfs", "aes256-sha256-ecp384", "aes256-sha256-ecp384", true, "psk", 0},
		{"charon-initiates-aes256gcm16-ecp256-pfs", "aes256gcm16-prfsha384-ecp256", "aes256gcm16-x25519", false, "psk", 0},
		{"we-initiate-ecdsa-certs", "aes128gcm16-prfsha256-ecp256", "aes128gcm16", true, "ecdsa", 0},
		{"charon-initiates-rsa-certs", "aes256gcm16-prfsha384-modp2048", "aes256gcm16", false, "rsa", 0},
		{"we-initiate-rsa-certs-fragmented", "aes128-sha256-x25519", "aes128-sha256", true, "rsa", 576},
	} {
		t.Run(tc.name, func(t *testing.T) { interop(t, tc) })
	}
}

// pkiFiles makes a CA and two end-entity certificates (ours for
// 192.0.2.1, charon's for 192.0.2.2) and returns charon's files and our
// certificate, key and CA.
func pkiFiles(t *testing.T, rsaKeys bool) (map[string][]byte, *x509.Certificate, crypto.Signer, *x509.Certificate) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Interop CA", Organization: []string{"vifsec test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(cn string, ip netip.Addr, serial int64) (*x509.Certificate, crypto.Signer) {
		var key crypto.Signer
		if rsaKeys {
			key, _ = rsa.GenerateKey(rand.Reader, 2048)
		} else {
			key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"vifsec test"}},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{ip.AsSlice()},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	ours, ourKey := leaf("vifsec.example", netip.MustParseAddr("192.0.2.1"), 2)
	theirs, theirKey := leaf("charon.example", netip.MustParseAddr("192.0.2.2"), 3)
	pk, err := x509.MarshalPKCS8PrivateKey(theirKey)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	files := map[string][]byte{
		"x509ca/ca.pem":      pemOf("CERTIFICATE", ca.Raw),
		"x509/charon.pem":    pemOf("CERTIFICATE", theirs.Raw),
		"private/charon.pem": pemOf("PRIVATE KEY", pk),
	}
	return files, ours, ourKey, ca
}

func certSwanctlConf(ikeProp, espProp string) string {
	return fmt.Sprintf(`connections {
  lab {
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = %s
    local {
      auth = pubkey
      certs = charon.pem
      id = 192.0.2.2
    }
    remote {
      auth = pubkey
      id = 192.0.2.1
    }
    children {
      lab {
        local_ts = 203.0.113.0/24
        remote_ts = 198.51.100.0/24
        esp_proposals = %s
        mode = tunnel
        start_action = none
      }
    }
  }
}
`, ikeProp, espProp)
}

// interopNetns makes the two namespaces, ours (nsA, 192.0.2.1) and
// charon's (nsB, 192.0.2.2 and 203.0.113.1 inside its local TS), joined
// by a veth pair; t's cleanup deletes them.
func interopNetns(t *testing.T) (nsA, nsB string) {
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	nsA, nsB = "vikea"+id, "vikeb"+id
	for _, ns := range []string{nsA, nsB} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	sh(t, "ip", "link", "add", "vka"+id, "netns", nsA, "type", "veth", "peer", "name", "vkb"+id, "netns", nsB)
	for _, x := range []struct{ ns, dev, addr string }{{nsA, "vka" + id, "192.0.2.1/24"}, {nsB, "vkb" + id, "192.0.2.2/24"}} {
		sh(t, "ip", "-n", x.ns, "addr", "add", x.addr, "dev", x.dev)
		sh(t, "ip", "-n", x.ns, "link", "set", x.dev, "up")
		sh(t, "ip", "-n", x.ns, "link", "set", "lo", "up")
	}
	// libipsec installs its routes from an address inside its local TS.
	sh(t, "ip", "-n", nsB, "addr", "add", "203.0.113.1/24", "dev", "lo")
	return nsA, nsB
}

func interop(t *testing.T, tc interopCase) {
	ikeProp, espProp, weInitiate := tc.ike, tc.esp, tc.weInitiate
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nsA, nsB := interopNetns(t)
	addrA, addrB := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	psk := "interop-test-key-0123456789"
	cc := lab.CharonConfig{
		NS: nsB, Conn: "lab", Child: "lab", Local: addrB, Remote: addrA, PSK: psk,
		IKEProposals: ikeProp, ESPProposals: espProp, Mode: "tunnel",
		// Subnets behind the gateways, not the IKE endpoints: libipsec
		// routes traffic for its remote TS into its TUN device, IKE
		// included if the TS covered the peer's address.
		LocalTS: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, RemoteTS: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	}
	var ourCert, ca *x509.Certificate
	var ourKey crypto.Signer
	if tc.auth != "psk" {
		cc.Files, ourCert, ourKey, ca = pkiFiles(t, tc.auth == "rsa")
		cc.SwanctlConf = certSwanctlConf(ikeProp, espProp)
	}
	charon, err := lab.StartCharon(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(charon.Log)
			lines := strings.Split(string(b), "\n")
			t.Logf("charon log (tail):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
		charon.Stop()
	})

	ep := openEndpoint(t, nsA, addrA)
	defer ep.close()
	inst := &installed{m: map[string]*ike.ChildSA{}}
	level := slog.LevelInfo
	if os.Getenv("IKE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	e := ike.New(&ike.Config{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Send:   ep.send,
		Install: func(c *ike.ChildSA) error {
			inst.mu.Lock()
			defer inst.mu.Unlock()
			cp := *c
			inst.m[c.In.Name] = &cp
			return nil
		},
		Remove: func(c *ike.ChildSA) {
			inst.mu.Lock()
			defer inst.mu.Unlock()
			delete(inst.m, c.In.Name)
		},
		RetransmitTimeout: time.Second,
		FragmentSize:      tc.fragSize,
	})
	ep.serve(e)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go e.Run(runCtx)

	ikes, err := suite.ParseIKEProposal(ikeProp)
	if err != nil {
		t.Fatal(err)
	}
	esps, err := suite.ParseESPProposal(espProp)
	if err != nil {
		t.Fatal(err)
	}
	pol := ike.Policy{
		Tenant: "acme", Name: "interop", Local: addrA,
		LocalTS: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, RemoteTS: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		Mode: sa.ModeTunnel, PSK: []byte(psk), IKE: ikes, ESP: esps,
	}
	if tc.auth != "psk" {
		pol.PSK, pol.Cert, pol.Key, pol.Roots = nil, ourCert, ourKey, []*x509.Certificate{ca}
		pol.LocalID, pol.RemoteID = "192.0.2.1", "192.0.2.2"
	}
	if weInitiate {
		pol.Remote = addrB
	}
	if err := e.SetPolicies([]ike.Policy{pol}); err != nil {
		t.Fatal(err)
	}
	if !weInitiate {
		if err := charon.Initiate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	up := func() bool {
		for _, s := range e.IKESAs() {
			if s.State == "ESTABLISHED" && s.Children == 1 && inst.len() == 1 {
				return true
			}
		}
		return false
	}
	testutil.WaitUntil(t, "IKE SA and Child SA", 20*time.Second, up)
	agree := func(what string) {
		t.Helper()
		var out string
		testutil.WaitUntil(t, what+": strongSwan agreeing on the SPIs", 10*time.Second, func() bool {
			sas, cs := e.IKESAs(), e.ChildSAs()
			if len(sas) != 1 || len(cs) != 1 {
				return false
			}
			out, _ = charon.ListSAs(ctx)
			want := []string{
				fmt.Sprintf("%016x_i", sas[0].SPIi), fmt.Sprintf("%016x_r", sas[0].SPIr),
				fmt.Sprintf("in  %08x", cs[0].OutSPI), fmt.Sprintf("out %08x", cs[0].InSPI),
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					return false
				}
			}
			return strings.Count(out, "ESTABLISHED") == 1 && strings.Count(out, "INSTALLED") == 1
		})
		t.Logf("%s:\n%s", what, out)
		if !strings.Contains(out, "TUNNEL-in-UDP") {
			t.Errorf("%s: strongSwan does not report UDP encapsulation", what)
		}
		if s := e.IKESAs()[0]; !s.NAT || s.Local.Port() != 4500 {
			t.Errorf("%s: engine did not float to 4500 for libipsec's NAT-T: %+v", what, s)
		}
	}
	agree("established")
	if tc.fragSize > 0 {
		b, _ := os.ReadFile(charon.Log)
		if !strings.Contains(string(b), "received fragment #") {
			t.Error("strongSwan received no IKE fragments")
		}
	}
	first := e.ChildSAs()[0]
	if first.Encap != true {
		t.Error("Child SA without UDP encapsulation")
	}

	// Child SA rekey, charon first, then ours.
	if out, err := charon.Swanctl(ctx, "--rekey", "--child", "lab"); err != nil {
		t.Fatalf("swanctl --rekey --child: %v\n%s", err, out)
	}
	testutil.WaitUntil(t, "charon's child rekey", 10*time.Second, func() bool {
		cs := e.ChildSAs()
		return len(cs) == 1 && cs[0].InSPI != first.InSPI && inst.len() == 1
	})
	agree("after strongSwan rekeyed the Child SA")
	second := e.ChildSAs()[0]
	e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: second.InName})
	testutil.WaitUntil(t, "our child rekey", 10*time.Second, func() bool {
		cs := e.ChildSAs()
		return len(cs) == 1 && cs[0].InSPI != second.InSPI && inst.len() == 1
	})
	agree("after we rekeyed the Child SA")

	// IKE SA rekey by strongSwan.
	spi := e.IKESAs()[0].SPIi
	if out, err := charon.Swanctl(ctx, "--rekey", "--ike", "lab"); err != nil {
		t.Fatalf("swanctl --rekey --ike: %v\n%s", err, out)
	}
	testutil.WaitUntil(t, "charon's IKE rekey", 10*time.Second, func() bool {
		sas := e.IKESAs()
		return len(sas) == 1 && sas[0].SPIi != spi && sas[0].State == "ESTABLISHED"
	})
	agree("after strongSwan rekeyed the IKE SA")
	// The rekeyed IKE SA still carries exchanges: our child rekey over it.
	third := e.ChildSAs()[0]
	e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: third.InName})
	testutil.WaitUntil(t, "child rekey over the new IKE SA", 10*time.Second, func() bool {
		cs := e.ChildSAs()
		return len(cs) == 1 && cs[0].InSPI != third.InSPI
	})
	agree("after a child rekey over the rekeyed IKE SA")

	// IKE SA rekey by us, then a child rekey by strongSwan over it.
	spi = e.IKESAs()[0].SPIi
	if n := e.RekeyIKE("acme", "interop"); n != 1 {
		t.Fatalf("RekeyIKE started %d rekeys", n)
	}
	testutil.WaitUntil(t, "our IKE rekey", 10*time.Second, func() bool {
		sas := e.IKESAs()
		return len(sas) == 1 && sas[0].SPIi != spi && sas[0].State == "ESTABLISHED"
	})
	agree("after we rekeyed the IKE SA")
	fourth := e.ChildSAs()[0]
	if out, err := charon.Swanctl(ctx, "--rekey", "--child", "lab"); err != nil {
		t.Fatalf("swanctl --rekey --child: %v\n%s", err, out)
	}
	testutil.WaitUntil(t, "charon's child rekey over our new IKE SA", 10*time.Second, func() bool {
		cs := e.ChildSAs()
		return len(cs) == 1 && cs[0].InSPI != fourth.InSPI && inst.len() == 1
	})
	agree("after strongSwan rekeyed the Child SA over our new IKE SA")

	// strongSwan deletes the IKE SA: everything goes on our side.
	if out, err := charon.Swanctl(ctx, "--terminate", "--ike", "lab"); err != nil {
		t.Fatalf("swanctl --terminate: %v\n%s", err, out)
	}
	testutil.WaitUntil(t, "deletion", 10*time.Second, func() bool { return len(e.ChildSAs()) == 0 && inst.len() == 0 })
	if weInitiate {
		// Our policy brings it back (after RetryInterval) — not waited
		// for; remove the policy, which must leave nothing behind.
		if err := e.SetPolicies(nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.IKESAs()); n != 0 {
		t.Errorf("%d IKE SAs left", n)
	}
}

// TestIntegrationStrongSwanChildRefused: charon authenticates us but
// refuses the Child SA in its IKE_AUTH answer (its traffic selectors and
// ours are disjoint: TS_UNACCEPTABLE). The IKE SA stands on both sides
// (RFC 7296 §2.21.2); the engine says why it has no Child SA and retries
// the Child SA alone with CREATE_CHILD_SA on that IKE SA (charon refuses
// again, the IKE SA still stands), never with a second IKE_SA_INIT.
func TestIntegrationStrongSwanChildRefused(t *testing.T) {
	needCharon(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nsA, nsB := interopNetns(t)
	addrA, addrB := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	psk := "interop-test-key-0123456789"
	charon, err := lab.StartCharon(ctx, lab.CharonConfig{
		NS: nsB, Conn: "lab", Child: "lab", Local: addrB, Remote: addrA, PSK: psk, Mode: "tunnel",
		LocalTS: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, RemoteTS: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(charon.Log)
			lines := strings.Split(string(b), "\n")
			t.Logf("charon log (tail):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
		charon.Stop()
	})
	ep := openEndpoint(t, nsA, addrA)
	defer ep.close()
	var mu sync.Mutex
	requests := map[wire.ExchangeType]int{} // requests we sent, by exchange
	sent := func(x wire.ExchangeType) int {
		mu.Lock()
		defer mu.Unlock()
		return requests[x]
	}
	e := ike.New(&ike.Config{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Send: func(p ike.Packet) {
			if h, err := wire.ParseHeader(p.Data); err == nil && h.Flags&wire.FlagResponse == 0 {
				mu.Lock()
				requests[h.Exchange]++
				mu.Unlock()
			}
			ep.send(p)
		},
		Install:           func(*ike.ChildSA) error { t.Error("a Child SA was installed"); return nil },
		RetransmitTimeout: time.Second,
		RetryInterval:     2 * time.Second,
	})
	ep.serve(e)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go e.Run(runCtx)
	// charon's default proposals (lab.CharonConfig).
	ikes, err := suite.ParseIKEProposal("aes128gcm16-prfsha256-modp2048")
	if err != nil {
		t.Fatal(err)
	}
	esps, err := suite.ParseESPProposal("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetPolicies([]ike.Policy{{
		Tenant: "acme", Name: "interop", Local: addrA, Remote: addrB, PSK: []byte(psk), Mode: sa.ModeTunnel, IKE: ikes, ESP: esps,
		LocalTS: []netip.Prefix{netip.MustParsePrefix("192.0.2.64/26")}, RemoteTS: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
	}}); err != nil {
		t.Fatal(err)
	}
	var first ike.IKESAInfo
	testutil.WaitUntil(t, "the IKE SA up without its Child SA", 20*time.Second, func() bool {
		sas := e.IKESAs()
		if len(sas) == 1 && sas[0].State == "ESTABLISHED" && sas[0].ChildError != "" {
			first = sas[0]
			return true
		}
		return false
	})
	if first.ChildError != "TS_UNACCEPTABLE" || first.Children != 0 {
		t.Errorf("IKE SA %+v: want no Child SA, ChildError TS_UNACCEPTABLE", first)
	}
	// Two retries: the second is sent only after charon refused the
	// first and the engine kept the IKE SA.
	testutil.WaitUntil(t, "two CREATE_CHILD_SA retries", 20*time.Second, func() bool { return sent(wire.ExchangeCreateChildSA) >= 2 })
	sas := e.IKESAs()
	if len(sas) != 1 || sas[0].SPIi != first.SPIi || sas[0].State != "ESTABLISHED" || sas[0].ChildError != "TS_UNACCEPTABLE" {
		t.Errorf("after the retries: %+v; want the first IKE SA %016x still ESTABLISHED without a Child SA", sas, first.SPIi)
	}
	if n := sent(wire.ExchangeIKESAInit); n != 1 {
		t.Errorf("%d IKE_SA_INIT requests sent, want 1", n)
	}
	out, err := charon.ListSAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fmt.Sprintf("%016x_i", first.SPIi)) || strings.Count(out, "ESTABLISHED") != 1 || strings.Contains(out, "INSTALLED") {
		t.Errorf("charon's SAs: want our IKE SA %016x ESTABLISHED, no Child SA:\n%s", first.SPIi, out)
	}
}
