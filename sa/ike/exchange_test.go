package ike

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

func TestDeleteFromEitherSide(t *testing.T) {
	for _, side := range []string{"initiator", "responder"} {
		t.Run(side, func(t *testing.T) {
			pa, pb := pskPair()
			n, a, b := establish(t, pa, pb, nil, nil)
			wantUp(t, a, b, 1)
			who := a
			if side == "responder" {
				who = b
			}
			if err := who.e.SetPolicies(nil); err != nil {
				t.Fatal(err)
			}
			n.pump()
			for _, nd := range []*node{a, b} {
				if len(nd.children()) != 0 {
					t.Fatalf("%s: children left: %v", nd.name, nd.children())
				}
				if len(nd.removed) != 1 {
					t.Fatalf("%s: removed %v", nd.name, nd.removed)
				}
			}
			if len(who.e.IKESAs()) != 0 {
				t.Fatalf("%s: IKE SAs left: %+v", who.name, who.e.IKESAs())
			}
			if side == "initiator" && len(b.e.IKESAs()) != 0 {
				t.Fatalf("b: IKE SAs left: %+v", b.e.IKESAs())
			}
			if side == "responder" {
				// A keeps trying (its policy stands) and is refused.
				n.advance(5 * time.Minute)
				if len(a.children()) != 0 || len(a.established()) != 0 {
					t.Fatal("a established with a peer that has no policy")
				}
			}
		})
	}
}

func TestDeleteChild(t *testing.T) {
	pa, pb := pskPair()
	n, a, b := establish(t, pa, pb, nil, nil)
	c := onlyChild(t, b)
	b.e.HandleEvent(sa.Event{Kind: sa.EventHard, Name: c.In.Name})
	n.pump()
	if len(a.children()) != 0 || len(b.children()) != 0 {
		t.Fatal("child not deleted on both sides")
	}
	if len(a.established()) != 1 || len(b.established()) != 1 {
		t.Fatal("IKE SA went with the child")
	}
	// SetPolicies again: the initiator brings a child up anew over the
	// existing IKE SA (CREATE_CHILD_SA for a new child).
	a.do(func(e *Engine) { upSA(t, e).createChild(nil, 0) })
	wantUp(t, a, b, 1)
}

func TestDPDDeadPeer(t *testing.T) {
	pa, pb := pskPair()
	pa.DPD = 30 * time.Second
	n, a, b := establish(t, pa, pb, nil, nil)
	wantUp(t, a, b, 1)
	// B is alive and answers: nothing happens for a while.
	n.advance(10 * time.Minute)
	wantUp(t, a, b, 1)
	if countSent(n, addrA, 37) == 0 {
		t.Fatal("no liveness check sent")
	}
	// B dies.
	n.filter = func(p *Packet) bool { return p.Remote.Addr() != addrB && p.Local.Addr() != addrB }
	n.advance(4 * time.Minute)
	if len(a.children()) != 0 {
		t.Fatal("children of a dead peer still installed")
	}
	if len(a.established()) != 0 {
		t.Fatal("IKE SA with a dead peer still established")
	}
	// A re-initiates: once B is back, the SA comes up again.
	n.filter = nil
	b.do(func(e *Engine) {
		for _, s := range e.sas {
			s.destroy("test: B restarted")
		}
	})
	n.advance(10 * time.Minute)
	wantUp(t, a, b, 1)
}

func TestRetransmitAfterDrop(t *testing.T) {
	for _, what := range []string{"IKE_SA_INIT request", "IKE_AUTH request", "IKE_AUTH response"} {
		t.Run(what, func(t *testing.T) {
			pa, pb := pskPair()
			n := newNet(t)
			a := n.add("a", "192.0.2.1", nil)
			b := n.add("b", "192.0.2.2", nil)
			dropped := false
			n.filter = func(p *Packet) bool {
				if dropped {
					return true
				}
				exch, resp := p.Data[18], p.Data[19]&wire.FlagResponse != 0
				switch {
				case what == "IKE_SA_INIT request" && exch == 34 && !resp,
					what == "IKE_AUTH request" && exch == 35 && !resp,
					what == "IKE_AUTH response" && exch == 35 && resp:
					dropped = true
					return false
				}
				return true
			}
			b.e.SetPolicies([]Policy{pb})
			a.e.SetPolicies([]Policy{pa})
			n.pump()
			if len(a.children()) != 0 && what != "IKE_AUTH response" {
				t.Fatal("up despite the drop")
			}
			n.advance(5 * time.Second)
			wantUp(t, a, b, 1)
			if !dropped {
				t.Fatal("nothing dropped")
			}
		})
	}
}

func TestDuplicateRequestAnsweredFromCache(t *testing.T) {
	pa, pb := pskPair()
	n := newNet(t)
	a := n.add("a", "192.0.2.1", nil)
	b := n.add("b", "192.0.2.2", nil)
	n.filter = dupFilter(n) // every datagram arrives twice
	b.e.SetPolicies([]Policy{pb})
	a.e.SetPolicies([]Policy{pa})
	n.pump()
	wantUp(t, a, b, 1)
	// B answered the duplicated IKE_AUTH request with the same bytes.
	var rsps [][]byte
	for _, p := range n.sent {
		if p.Local.Addr() == addrB && p.Data[18] == 35 {
			rsps = append(rsps, p.Data)
		}
	}
	if len(rsps) != 2 || !bytes.Equal(rsps[0], rsps[1]) {
		t.Fatalf("IKE_AUTH answers: %d, identical %v", len(rsps), len(rsps) == 2 && bytes.Equal(rsps[0], rsps[1]))
	}
	// Duplicates of a rekey, too.
	c := onlyChild(t, a)
	a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: c.In.Name})
	n.pump()
	wantUp(t, a, b, 1)
}

// dupFilter delivers every datagram twice.
func dupFilter(n *fakeNet) func(*Packet) bool {
	return func(p *Packet) bool {
		// Queue a copy to arrive right after this one, marked (VLAN 4095)
		// so that it is not copied again.
		if p.Scope.VLAN != 4095 {
			cp := *p
			cp.Scope.VLAN = 4095
			n.queue = append([]Packet{cp}, n.queue...)
		}
		p.Scope.VLAN = 0
		return true
	}
}

func TestCookieChallenge(t *testing.T) {
	pa, pb := pskPair()
	n := newNet(t)
	a := n.add("a", "192.0.2.1", nil)
	b := n.add("b", "192.0.2.2", &Config{HalfOpenCookieThreshold: 1})
	c := n.add("c", "192.0.2.3", nil)
	b.e.SetPolicies([]Policy{pb})
	// C leaves a half-open SA on B: its IKE_AUTH never arrives.
	n.filter = func(p *Packet) bool { return !(p.Local.Addr() == c.addr && p.Data[18] == 35) }
	pc := pa
	pc.Local, pc.LocalTS = c.addr, []netip.Prefix{prefix("192.0.2.3/32")}
	c.e.SetPolicies([]Policy{pc})
	n.pump()
	if b.e.nHalf != 1 {
		t.Fatalf("half-open on b: %d", b.e.nHalf)
	}
	a.e.SetPolicies([]Policy{pa})
	n.pump()
	cookies := 0
	for _, p := range n.sent {
		if p.Local.Addr() == addrB && p.Data[18] == 34 {
			m, err := wire.Parse(p.Data)
			if err == nil && len(m.Payloads) == 1 {
				if x, ok := m.Payloads[0].(*wire.Notify); ok && x.NotifyType == wire.NotifyCookie {
					cookies++
				}
			}
		}
	}
	if cookies != 1 {
		t.Fatalf("%d COOKIE answers, want 1", cookies)
	}
	if len(a.established()) != 1 || len(a.children()) != 1 {
		t.Fatal("a not established after the cookie exchange")
	}
	checkPaired(t, a, b)
	// A forged cookie is refused again (stateless: no new half-open SA).
	n.advance(time.Minute) // C's half-open SA times out
	if b.e.nHalf != 0 {
		t.Fatalf("half-open after timeout: %d", b.e.nHalf)
	}
}

func TestCookieValidity(t *testing.T) {
	n := newNet(t)
	b := n.add("b", "192.0.2.2", nil)
	e := b.e
	ni := bytes.Repeat([]byte{1}, 32)
	ip := netip.MustParseAddr("198.51.100.7")
	c := e.cookies.make(e, ni, ip, 42)
	if !e.cookies.valid(e, c, ni, ip, 42) {
		t.Fatal("fresh cookie refused")
	}
	for _, bad := range []struct {
		ni  []byte
		ip  netip.Addr
		spi uint64
	}{{bytes.Repeat([]byte{2}, 32), ip, 42}, {ni, netip.MustParseAddr("198.51.100.8"), 42}, {ni, ip, 43}} {
		if e.cookies.valid(e, c, bad.ni, bad.ip, bad.spi) {
			t.Fatal("cookie valid for another initiator")
		}
	}
	n.now = n.now.Add(3 * time.Minute)
	if !e.cookies.valid(e, c, ni, ip, 42) {
		t.Fatal("cookie of the previous secret refused")
	}
	n.now = n.now.Add(3 * time.Minute)
	if e.cookies.valid(e, c, ni, ip, 42) {
		t.Fatal("cookie two secrets old accepted")
	}
	// A forged version-0 cookie (zero secret) is never valid.
	var zero [32]byte
	if e.cookies.valid(e, cookieMAC(&zero, 0, ni, ip, 42), ni, ip, 42) {
		t.Fatal("zero-secret cookie accepted")
	}
}

func TestFragmentation(t *testing.T) {
	ca := newCA(t, "Test CA")
	ka, ka1 := ca.issue(t, leafOpts{cn: "a.example", ips: []netip.Addr{addrA}, rsa: true})
	kb, kb1 := ca.issue(t, leafOpts{cn: "b.example", ips: []netip.Addr{addrB}, rsa: true})
	pa, pb := pskPair()
	pa.PSK, pb.PSK = nil, nil
	pa.Cert, pa.Key, pa.Roots, pa.RemoteID = ka, ka1.(crypto.Signer), []*x509.Certificate{ca.cert}, "192.0.2.2"
	pb.Cert, pb.Key, pb.Roots, pb.AnyRemoteID, pb.LocalID = kb, kb1.(crypto.Signer), []*x509.Certificate{ca.cert}, true, "192.0.2.2"
	cfg := &Config{FragmentSize: 576}
	n, a, b := establish(t, pa, pb, cfg, cfg)
	wantUp(t, a, b, 1)
	frags := map[netip.Addr]int{}
	for _, p := range n.sent {
		if p.Data[16] == byte(wire.PayloadSKF) {
			frags[p.Local.Addr()]++
			if len(p.Data)+28 > 576 {
				t.Fatalf("fragment of %d bytes exceeds 576 with headers", len(p.Data))
			}
		}
		if p.Data[18] != 34 && len(p.Data)+28 > 576 {
			t.Fatalf("unfragmented message of %d bytes", len(p.Data))
		}
	}
	if frags[addrA] < 2 || frags[addrB] < 2 {
		t.Fatalf("fragments sent: %v", frags)
	}
	// Small messages are never fragmented.
	qa, qb := pskPair()
	n2, a2, b2 := establish(t, qa, qb, cfg, cfg)
	wantUp(t, a2, b2, 1)
	for _, p := range n2.sent {
		if p.Data[16] == byte(wire.PayloadSKF) {
			t.Fatalf("a %d-byte message fragmented below the limit", len(p.Data))
		}
	}
}

func TestRevokedCertificate(t *testing.T) {
	ca := newCA(t, "Test CA")
	other := newCA(t, "Other CA")
	ka, ka1 := ca.issue(t, leafOpts{cn: "a.example", ips: []netip.Addr{addrA}})
	kb, kb1 := ca.issue(t, leafOpts{cn: "b.example", ips: []netip.Addr{addrB}})
	base := func() (Policy, Policy) {
		pa, pb := pskPair()
		pa.PSK, pb.PSK = nil, nil
		pa.Cert, pa.Key, pa.Roots, pa.RemoteID = ka, ka1.(crypto.Signer), []*x509.Certificate{ca.cert}, "192.0.2.2"
		pb.Cert, pb.Key, pb.Roots, pb.AnyRemoteID, pb.LocalID = kb, kb1.(crypto.Signer), []*x509.Certificate{ca.cert}, true, "192.0.2.2"
		return pa, pb
	}
	t.Run("revoked", func(t *testing.T) {
		c := *ca
		c.crls = nil
		c.revoke(t, ka, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		pa, pb := base()
		pb.CRLs = c.crls
		_, a, b := establish(t, pa, pb, nil, nil)
		if len(a.children()) != 0 || len(b.children()) != 0 || len(b.established()) != 0 {
			t.Fatal("revoked certificate accepted")
		}
	})
	t.Run("revoked-stale-crl", func(t *testing.T) {
		c := *ca
		c.crls = nil
		c.revoke(t, ka, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)) // NextUpdate in the past
		pa, pb := base()
		pb.CRLs = c.crls
		_, a, _ := establish(t, pa, pb, nil, nil)
		if len(a.children()) != 0 {
			t.Fatal("certificate revoked by a stale CRL accepted")
		}
	})
	t.Run("crl-of-another-ca-ignored", func(t *testing.T) {
		// A CRL naming A's serial but signed by another CA counts for nothing.
		o := *other
		o.crls = nil
		o.revoke(t, ka, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		pa, pb := base()
		pb.CRLs = o.crls
		_, a, b := establish(t, pa, pb, nil, nil)
		wantUp(t, a, b, 1)
	})
	t.Run("initiator-refuses-revoked-responder", func(t *testing.T) {
		c := *ca
		c.crls = nil
		c.revoke(t, kb, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		pa, pb := base()
		pa.CRLs = c.crls
		n, a, b := establish(t, pa, pb, nil, nil)
		if len(a.children()) != 0 || len(a.established()) != 0 {
			t.Fatal("initiator accepted a revoked responder")
		}
		// The responder was told (AUTHENTICATION_FAILED) and removed its side.
		if len(b.children()) != 0 || len(b.e.IKESAs()) != 0 {
			t.Fatalf("responder kept %d children, %d IKE SAs", len(b.children()), len(b.e.IKESAs()))
		}
		_ = n
	})
	t.Run("unknown-ca", func(t *testing.T) {
		pa, pb := base()
		pb.Roots = []*x509.Certificate{other.cert}
		_, _, b := establish(t, pa, pb, nil, nil)
		if len(b.established()) != 0 {
			t.Fatal("certificate from an unknown CA accepted")
		}
	})
	t.Run("identity-not-proven", func(t *testing.T) {
		pa, pb := base()
		pa.LocalID = "fqdn:a.example" // not in A's certificate
		_, _, b := establish(t, pa, pb, nil, nil)
		if len(b.established()) != 0 {
			t.Fatal("identity the certificate does not prove accepted")
		}
	})
	t.Run("wrong-remote-id", func(t *testing.T) {
		pa, pb := base()
		pb.AnyRemoteID, pb.RemoteID = false, "192.0.2.9"
		_, _, b := establish(t, pa, pb, nil, nil)
		if len(b.established()) != 0 {
			t.Fatal("peer with another identity accepted")
		}
	})
	t.Run("dn-identity", func(t *testing.T) {
		pa, pb := base()
		pa.LocalID = "CN=a.example, O=Test"
		pb.AnyRemoteID, pb.RemoteID = false, "O=Test, CN=a.example" // reverse order matches too
		_, a, b := establish(t, pa, pb, nil, nil)
		wantUp(t, a, b, 1)
	})
}

func TestTSNarrowing(t *testing.T) {
	pa, pb := pskPair()
	pa.Mode, pb.Mode = sa.ModeTunnel, sa.ModeTunnel
	pa.LocalTS = []netip.Prefix{prefix("10.1.0.0/16")}
	pa.RemoteTS = []netip.Prefix{prefix("10.2.0.0/16")}
	pa.Protocol = 6
	pb.LocalTS = []netip.Prefix{prefix("10.2.3.0/24"), prefix("10.9.0.0/16")}
	pb.RemoteTS = []netip.Prefix{prefix("10.0.0.0/8")}
	pb.RemotePorts = [2]uint16{1000, 2000}
	_, a, b := establish(t, pa, pb, nil, nil)
	wantUp(t, a, b, 1)
	ca, cb := onlyChild(t, a), onlyChild(t, b)
	if got := ca.RemoteTS; len(got) != 1 || got[0] != prefix("10.2.3.0/24") {
		t.Errorf("a remote TS %v", got)
	}
	if got := ca.LocalTS; len(got) != 1 || got[0] != prefix("10.1.0.0/16") {
		t.Errorf("a local TS %v", got)
	}
	if ca.Protocol != 6 || ca.LocalPorts != [2]uint16{1000, 2000} || ca.RemotePorts != [2]uint16{} {
		t.Errorf("a proto %d ports %v %v", ca.Protocol, ca.LocalPorts, ca.RemotePorts)
	}
	if got := cb.LocalTS; len(got) != 1 || got[0] != prefix("10.2.3.0/24") {
		t.Errorf("b local TS %v", got)
	}
	if cb.Protocol != 6 || cb.RemotePorts != [2]uint16{1000, 2000} {
		t.Errorf("b proto %d ports %v", cb.Protocol, cb.RemotePorts)
	}

	// Disjoint selectors: the IKE SA comes up without a child.
	pa, pb = pskPair()
	pb.LocalTS = []netip.Prefix{prefix("198.51.100.0/24")}
	_, a, b = establish(t, pa, pb, nil, nil)
	if len(a.established()) != 1 || len(a.children()) != 0 || len(b.children()) != 0 {
		t.Fatalf("disjoint TS: %d IKE SAs, %d/%d children", len(a.established()), len(a.children()), len(b.children()))
	}
}

func TestModeMismatch(t *testing.T) {
	pa, pb := pskPair()
	pb.Mode = sa.ModeTunnel
	_, a, b := establish(t, pa, pb, nil, nil)
	if len(a.children()) != 0 || len(b.children()) != 0 {
		t.Fatal("child with mismatched modes")
	}
}

func TestInvalidKE(t *testing.T) {
	pa, pb := pskPair()
	pa.IKE = mustIKE(t, "aes128gcm16-prfsha256-x25519,aes128gcm16-prfsha256-ecp256")
	pb.IKE = mustIKE(t, "aes128gcm16-prfsha256-ecp256")
	n, a, b := establish(t, pa, pb, nil, nil)
	wantUp(t, a, b, 1)
	if got := countSent(n, addrA, 34); got != 2 {
		t.Fatalf("%d IKE_SA_INIT requests, want 2 (one retry with the requested group)", got)
	}
	// The responder prefers a proposal matching the KE it got, even if it
	// lists it second.
	pb.IKE = mustIKE(t, "aes256gcm16-prfsha384-ecp384,aes128gcm16-prfsha256-x25519")
	pa.IKE = mustIKE(t, "aes128gcm16-prfsha256-x25519,aes256gcm16-prfsha384-ecp384")
	n, a, b = establish(t, pa, pb, nil, nil)
	wantUp(t, a, b, 1)
	if got := countSent(n, addrA, 34); got != 1 {
		t.Fatalf("%d IKE_SA_INIT requests, want 1", got)
	}
}

func TestNoProposal(t *testing.T) {
	pa, pb := pskPair()
	pa.IKE = mustIKE(t, "aes128gcm16-prfsha256-x25519")
	pb.IKE = mustIKE(t, "aes256-sha256-modp2048")
	_, a, b := establish(t, pa, pb, nil, nil)
	if len(a.e.IKESAs()) != 0 || len(b.e.IKESAs()) != 0 {
		t.Fatal("IKE SA without a common proposal")
	}
	// ESP mismatch: IKE SA up, no child.
	pa, pb = pskPair()
	pa.ESP, pb.ESP = mustESP(t, "aes128gcm16"), mustESP(t, "aes256-sha256")
	_, a, b = establish(t, pa, pb, nil, nil)
	if len(a.established()) != 1 || len(a.children()) != 0 || len(b.children()) != 0 {
		t.Fatal("child without a common ESP proposal")
	}
}

func TestNAT(t *testing.T) {
	pa, pb := pskPair()
	pa.Mode, pb.Mode = sa.ModeTunnel, sa.ModeTunnel
	n := newNet(t)
	a := n.add("a", "192.0.2.1", nil)
	b := n.add("b", "192.0.2.2", nil)
	pub := netip.MustParseAddr("203.0.113.1")
	ports := map[uint16]uint16{} // private port -> public
	n.filter = func(p *Packet) bool {
		switch {
		case p.Local.Addr() == addrA: // outbound through the NAT
			pp, ok := ports[p.Local.Port()]
			if !ok {
				pp = 40000 + uint16(len(ports))
				ports[p.Local.Port()] = pp
			}
			p.Local = netip.AddrPortFrom(pub, pp)
		case p.Remote.Addr() == pub: // back in
			for priv, pp := range ports {
				if pp == p.Remote.Port() {
					p.Remote = netip.AddrPortFrom(addrA, priv)
				}
			}
		}
		return true
	}
	n.nodes[pub] = a
	b.e.SetPolicies([]Policy{pb})
	a.e.SetPolicies([]Policy{pa})
	n.pump()
	wantUp(t, a, b, 1)
	ia, ib := a.established()[0], b.established()[0]
	if !ia.NAT || !ib.NAT || ia.Local.Port() != 4500 || ia.Remote.Port() != 4500 || ib.Local.Port() != 4500 {
		t.Fatalf("no float to 4500: %+v / %+v", ia, ib)
	}
	if ib.Remote != netip.AddrPortFrom(pub, 40001) {
		t.Fatalf("b talks to %v", ib.Remote)
	}
	ca, cb := onlyChild(t, a), onlyChild(t, b)
	if ca.Out.Encap == nil || *ca.Out.Encap != (sa.UDPEncap{SrcPort: 4500, DstPort: 4500}) {
		t.Fatalf("a encap %+v", ca.Out.Encap)
	}
	if cb.Out.Encap == nil || *cb.Out.Encap != (sa.UDPEncap{SrcPort: 4500, DstPort: 40001}) || *cb.In.Encap != (sa.UDPEncap{SrcPort: 40001, DstPort: 4500}) {
		t.Fatalf("b encap %+v %+v", cb.Out.Encap, cb.In.Encap)
	}
	if cb.Out.Dst != pub {
		t.Errorf("b sends ESP to %v", cb.Out.Dst)
	}
	// Rekey works through the NAT.
	a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: ca.In.Name})
	n.pump()
	wantUp(t, a, b, 1)
}

// TestForceEncap: with no NAT in the way, an initiating policy with
// ForceEncap (strongSwan's encap=yes) makes both ends detect a NAT: IKE
// floats to 4500 and both ends' Child SAs carry ESP in UDP between ports
// 4500. Without it, the same pair uses plain ESP.
func TestForceEncap(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprint("force=", force), func(t *testing.T) {
			pa, pb := pskPair()
			pa.ForceEncap = force
			_, a, b := establish(t, pa, pb, nil, nil)
			wantUp(t, a, b, 1)
			ia, ib := a.established()[0], b.established()[0]
			ca, cb := onlyChild(t, a), onlyChild(t, b)
			if !force {
				if ia.NAT || ib.NAT || ca.Out.Encap != nil || cb.In.Encap != nil {
					t.Fatalf("NAT %v/%v, encap %+v/%+v without a NAT or ForceEncap", ia.NAT, ib.NAT, ca.Out.Encap, cb.In.Encap)
				}
				return
			}
			if !ia.NAT || !ib.NAT || ia.Local.Port() != 4500 || ia.Remote.Port() != 4500 || ib.Local.Port() != 4500 || ib.Remote.Port() != 4500 {
				t.Fatalf("no float to 4500: %+v / %+v", ia, ib)
			}
			want := sa.UDPEncap{SrcPort: 4500, DstPort: 4500}
			for _, c := range []*sa.UDPEncap{ca.Out.Encap, ca.In.Encap, cb.Out.Encap, cb.In.Encap} {
				if c == nil || *c != want {
					t.Fatalf("encap a %+v %+v, b %+v %+v; want 4500->4500 everywhere", ca.Out.Encap, ca.In.Encap, cb.Out.Encap, cb.In.Encap)
				}
			}
		})
	}
}

func TestRetransmitSchedule(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *Config
		want []time.Duration // send times of the IKE_SA_INIT request
		fail time.Duration   // when the attempt is given up
	}{
		{"strongswan-defaults", nil, []time.Duration{0, 4000, 11200, 24160, 47488, 89478}, 165060},
		{"configured", &Config{RetransmitTimeout: time.Second, RetransmitBase: 2, RetransmitTries: 3}, []time.Duration{0, 1000, 3000, 7000}, 15000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa, _ := pskPair()
			n := newNet(t)
			a := n.add("a", "192.0.2.1", tc.cfg)
			start := n.now
			var times []time.Duration
			n.filter = func(p *Packet) bool {
				if p.Local.Addr() == addrA {
					times = append(times, n.now.Sub(start))
				}
				return false // B is dead
			}
			a.e.SetPolicies([]Policy{pa})
			n.pump()
			n.advance(tc.fail*time.Millisecond - time.Second)
			if len(a.e.IKESAs()) != 1 {
				t.Fatal("attempt given up too early")
			}
			n.advance(2 * time.Second)
			if len(a.e.IKESAs()) != 0 {
				t.Fatal("attempt not given up")
			}
			if len(times) != len(tc.want) {
				t.Fatalf("sent at %v, want %v (ms)", times, tc.want)
			}
			for i, w := range tc.want {
				if d := times[i] - w*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
					t.Fatalf("send %d at %v, want %v", i, times[i], w*time.Millisecond)
				}
			}
			// The policy tries again after RetryInterval (30s, jittered ±10%).
			k := len(times)
			n.advance(26 * time.Second)
			if len(times) != k {
				t.Fatal("new attempt before RetryInterval")
			}
			n.advance(8 * time.Second)
			if len(times) == k {
				t.Fatal("no new attempt after RetryInterval")
			}
		})
	}
}

func TestHalfOpenLimit(t *testing.T) {
	n := newNet(t)
	b := n.add("b", "192.0.2.2", &Config{MaxHalfOpen: 3, MaxHalfOpenPerTenant: 5, HalfOpenCookieThreshold: -1})
	_, pb := pskPair()
	b.e.SetPolicies([]Policy{pb})
	// Initiators whose IKE_AUTH never comes.
	n.filter = func(p *Packet) bool { return p.Data[18] == 34 }
	for i := 0; i < 5; i++ {
		pa, _ := pskPair()
		x := n.add(fmt.Sprintf("x%d", i), fmt.Sprintf("192.0.2.%d", 10+i), nil)
		pa.Local = x.addr
		pa.LocalTS = []netip.Prefix{netip.PrefixFrom(x.addr, 32)}
		x.e.SetPolicies([]Policy{pa})
		n.pump()
	}
	if b.e.nHalf != 3 || len(b.e.IKESAs()) != 3 {
		t.Fatalf("%d half-open (%d IKE SAs), want 3", b.e.nHalf, len(b.e.IKESAs()))
	}
	n.advance(31 * time.Second)
	if b.e.nHalf > 3 {
		t.Fatalf("%d half-open", b.e.nHalf)
	}
}

func TestEstablishIPv6(t *testing.T) {
	pa, pb := pskPair()
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	pa.Local, pa.Remote, pb.Local = a6, b6, b6
	pa.LocalTS, pa.RemoteTS = []netip.Prefix{prefix("2001:db8::1/128")}, []netip.Prefix{prefix("2001:db8::2/128")}
	pb.LocalTS, pb.RemoteTS = []netip.Prefix{prefix("2001:db8::2/128")}, []netip.Prefix{prefix("2001:db8::/64")}
	n := newNet(t)
	a := n.add("a", "2001:db8::1", &Config{FragmentSize: 1280})
	b := n.add("b", "2001:db8::2", nil)
	b.e.SetPolicies([]Policy{pb})
	a.e.SetPolicies([]Policy{pa})
	n.pump()
	wantUp(t, a, b, 1)
	c := onlyChild(t, a)
	if c.Out.Src != a6 || c.Out.Dst != b6 || c.LocalTS[0] != prefix("2001:db8::1/128") {
		t.Fatalf("child %+v", c)
	}
	if got := a.established()[0].RemoteID; got != "2001:db8::2" {
		t.Fatalf("remote id %q", got)
	}
}

func TestInstallFailure(t *testing.T) {
	pa, pb := pskPair()
	n := newNet(t)
	a := n.add("a", "192.0.2.1", nil)
	b := n.add("b", "192.0.2.2", nil)
	a.installErr = errors.New("SPI taken")
	b.e.SetPolicies([]Policy{pb})
	a.e.SetPolicies([]Policy{pa})
	n.pump()
	// A refused every attempt (the first and two retries) and told B each time.
	if len(a.children()) != 0 || len(b.children()) != 0 {
		t.Fatalf("children: a %d, b %d", len(a.children()), len(b.children()))
	}
	if got := countSent(n, addrA, 36); got != 2 {
		t.Fatalf("%d CREATE_CHILD_SA retries, want 2", got)
	}
	// Once the data path accepts, a later attempt succeeds.
	a.installErr = nil
	a.do(func(e *Engine) { upSA(t, e).createChild(nil, 0) })
	wantUp(t, a, b, 1)
}

func TestSetPoliciesUnchangedKeepsSAs(t *testing.T) {
	pa, pb := pskPair() // default proposals and lifetimes
	n, a, b := establish(t, pa, pb, nil, nil)
	before := onlyChild(t, a)
	for i := 0; i < 3; i++ {
		if err := a.e.SetPolicies([]Policy{pa}); err != nil {
			t.Fatal(err)
		}
		if err := b.e.SetPolicies([]Policy{pb}); err != nil {
			t.Fatal(err)
		}
		n.pump()
	}
	wantUp(t, a, b, 1)
	if onlyChild(t, a).In.SPI != before.In.SPI {
		t.Fatal("an unchanged policy was torn down")
	}
	// A change (DPD) replaces the SAs.
	pa.DPD = time.Minute
	a.e.SetPolicies([]Policy{pa})
	n.pump()
	wantUp(t, a, b, 1)
	if onlyChild(t, a).In.SPI == before.In.SPI {
		t.Fatal("a changed policy kept its SAs")
	}
}
