package ike

import (
	"crypto"
	"crypto/x509"
	"net/netip"
	"testing"
	"time"
)

// establish wires A (initiator) and B (responder) with policies pa, pb and
// runs until quiet.
func establish(t *testing.T, pa, pb Policy, ca, cb *Config) (*fakeNet, *node, *node) {
	t.Helper()
	n := newNet(t)
	a := n.add("a", "192.0.2.1", ca)
	b := n.add("b", "192.0.2.2", cb)
	if err := b.e.SetPolicies([]Policy{pb}); err != nil {
		t.Fatal(err)
	}
	if err := a.e.SetPolicies([]Policy{pa}); err != nil {
		t.Fatal(err)
	}
	n.pump()
	return n, a, b
}

func wantUp(t *testing.T, a, b *node, children int) {
	t.Helper()
	if got := len(a.established()); got != 1 {
		t.Fatalf("a: %d established IKE SAs, want 1: %+v", got, a.e.IKESAs())
	}
	if got := len(b.established()); got != 1 {
		t.Fatalf("b: %d established IKE SAs, want 1: %+v", got, b.e.IKESAs())
	}
	if got := len(a.children()); got != children {
		t.Fatalf("a: %d children installed, want %d", got, children)
	}
	checkPaired(t, a, b)
}

func TestEstablishPSK(t *testing.T) {
	for _, tc := range []struct{ ike, esp string }{
		{"aes128gcm16-prfsha256-modp2048", "aes128gcm16"},
		{"aes256gcm16-prfsha384-ecp384", "aes256gcm16-esn"},
		{"aes256-sha256-modp2048", "aes256-sha256"},
		{"chacha20poly1305-prfsha256-x25519", "chacha20poly1305"},
	} {
		t.Run(tc.ike, func(t *testing.T) {
			pa, pb := pskPair()
			pa.IKE, pb.IKE = mustIKE(t, tc.ike), mustIKE(t, tc.ike)
			pa.ESP, pb.ESP = mustESP(t, tc.esp), mustESP(t, tc.esp)
			_, a, b := establish(t, pa, pb, nil, nil)
			wantUp(t, a, b, 1)
			sa := a.established()[0]
			if got := mustIKE(t, sa.Suite); len(got) != 1 || got[0] != pa.IKE[0] {
				t.Errorf("suite %q, want %q", sa.Suite, tc.ike)
			}
			for _, c := range a.children() {
				if got := a.e.ChildSAs()[0].Suite; got != tc.esp {
					t.Errorf("ESP suite %q, want %q", got, tc.esp)
				}
				if len(a.switched) != 1 || a.switched[0] != c.In.Name {
					t.Errorf("a switched %v", a.switched)
				}
			}
		})
	}
}

func TestEstablishCerts(t *testing.T) {
	ca := newCA(t, "Test CA")
	for _, tc := range []struct {
		name string
		opts leafOpts
	}{
		{"ecdsa-p256", leafOpts{}},
		{"ecdsa-p384", leafOpts{p384: true}},
		{"rsa", leafOpts{rsa: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oa, ob := tc.opts, tc.opts
			oa.cn, oa.ips = "a.example", []netip.Addr{addrA}
			ob.cn, ob.dns = "b.example", []string{"b.example"}
			ca1, ka := ca.issue(t, oa)
			cb1, kb := ca.issue(t, ob)
			pa, pb := pskPair()
			pa.PSK, pb.PSK = nil, nil
			pa.Cert, pa.Key, pa.Roots = ca1, ka.(crypto.Signer), []*x509.Certificate{ca.cert}
			pb.Cert, pb.Key, pb.Roots = cb1, kb.(crypto.Signer), []*x509.Certificate{ca.cert}
			pa.LocalID, pa.RemoteID = "192.0.2.1", "fqdn:b.example"
			pb.LocalID, pb.AnyRemoteID = "b.example", true
			_, a, b := establish(t, pa, pb, nil, nil)
			wantUp(t, a, b, 1)
			if got := b.established()[0].RemoteID; got != "192.0.2.1" {
				t.Errorf("b sees remote id %q", got)
			}
			if got := a.established()[0].RemoteID; got != "b.example" {
				t.Errorf("a sees remote id %q", got)
			}
		})
	}
}

func TestWrongPSK(t *testing.T) {
	pa, pb := pskPair()
	pb.PSK = []byte("something else entirely")
	n, a, b := establish(t, pa, pb, nil, nil)
	if len(a.children()) != 0 || len(b.children()) != 0 {
		t.Fatal("children installed despite a wrong PSK")
	}
	if len(a.e.IKESAs()) != 0 || len(b.e.IKESAs()) != 0 {
		t.Fatalf("IKE SAs left: %+v %+v", a.e.IKESAs(), b.e.IKESAs())
	}
	// The responder answered AUTHENTICATION_FAILED.
	found := false
	for _, p := range n.sent {
		if p.Local.Addr() == addrB && len(p.Data) > 28 && p.Data[18] == 35 {
			found = true
		}
	}
	if !found {
		t.Fatal("no IKE_AUTH answer from the responder")
	}
	// And the initiator tries again later, still failing.
	n.advance(time.Minute)
	if len(a.children()) != 0 || len(b.children()) != 0 {
		t.Fatal("children installed after a retry with a wrong PSK")
	}
}
