package ike

import (
	"slices"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Operator actions: rekeying on demand (`vifsec policy rekey`) and the
// DPD action.

func TestRekeyChildNow(t *testing.T) {
	for _, side := range []string{"initiator", "responder"} {
		t.Run(side, func(t *testing.T) {
			pa, pb := pskPair()
			n, a, b := establish(t, pa, pb, nil, nil)
			wantUp(t, a, b, 1)
			who, other := a, b
			if side == "responder" {
				who, other = b, a
			}
			old, oldOther := onlyChild(t, who), onlyChild(t, other)
			ikeBefore := who.established()[0]
			if got := who.e.RekeyChild("acme", "p1"); got != 1 {
				t.Fatalf("RekeyChild = %d, want 1", got)
			}
			// A second request while the first is in flight starts nothing.
			if got := who.e.RekeyChild("acme", "p1"); got != 0 {
				t.Fatalf("RekeyChild while rekeying = %d, want 0", got)
			}
			n.pump()
			wantUp(t, a, b, 1)
			now, nowOther := onlyChild(t, who), onlyChild(t, other)
			if now.In.SPI == old.In.SPI || nowOther.In.SPI == oldOther.In.SPI {
				t.Fatal("Child SA not replaced")
			}
			if now.Replaces != old.In.Name {
				t.Errorf("Replaces = %q, want %q", now.Replaces, old.In.Name)
			}
			for _, nd := range []*node{who, other} {
				c := onlyChild(t, nd)
				// Make before break: installed and switched to before the
				// old pair went.
				if !slices.Contains(nd.switched, c.In.Name) {
					t.Errorf("%s never switched to the new child (%v)", nd.name, nd.switched)
				}
				if len(nd.removed) != 1 {
					t.Errorf("%s removed %v, want the old child only", nd.name, nd.removed)
				}
			}
			if after := who.established()[0]; after.SPIi != ikeBefore.SPIi || after.SPIr != ikeBefore.SPIr {
				t.Error("RekeyChild replaced the IKE SA")
			}
			// And again: the new child rekeys too.
			if got := who.e.RekeyChild("acme", "p1"); got != 1 {
				t.Fatalf("second RekeyChild = %d, want 1", got)
			}
			n.pump()
			wantUp(t, a, b, 1)
			if onlyChild(t, who).In.SPI == now.In.SPI {
				t.Fatal("second rekey did not replace the child")
			}
		})
	}
}

func TestRekeyChildNothingToDo(t *testing.T) {
	pa, pb := pskPair()
	n, a, b := establish(t, pa, pb, nil, nil)
	for _, tc := range []struct{ tenant, name string }{{"acme", "nope"}, {"other", "p1"}, {"", ""}} {
		if got := a.e.RekeyChild(tc.tenant, tc.name); got != 0 {
			t.Errorf("RekeyChild(%q, %q) = %d, want 0", tc.tenant, tc.name, got)
		}
	}
	// While the IKE SA is being rekeyed, no Child SA rekey starts.
	if got := a.e.RekeyIKE("acme", "p1"); got != 1 {
		t.Fatalf("RekeyIKE = %d", got)
	}
	if got := a.e.RekeyChild("acme", "p1"); got != 0 {
		t.Fatalf("RekeyChild during an IKE rekey = %d, want 0", got)
	}
	n.pump()
	wantUp(t, a, b, 1)
	// No policy has an SA before it is established.
	n2 := newNet(t)
	c := n2.add("c", "192.0.2.1", nil)
	if err := c.e.SetPolicies([]Policy{pa}); err != nil {
		t.Fatal(err)
	}
	if got := c.e.RekeyChild("acme", "p1"); got != 0 {
		t.Fatalf("RekeyChild while connecting = %d, want 0", got)
	}
}

// countInitRequests counts IKE_SA_INIT requests sent by from.
func countInitRequests(n *fakeNet, from string) int {
	k := 0
	for _, p := range n.sent {
		if p.Local.Addr().String() == from && len(p.Data) >= 28 && p.Data[18] == byte(wire.ExchangeIKESAInit) && p.Data[19]&wire.FlagResponse == 0 {
			k++
		}
	}
	return k
}

func TestDPDActionClear(t *testing.T) {
	pa, pb := pskPair()
	pa.DPD, pa.DPDClear = 30*time.Second, true
	n, a, b := establish(t, pa, pb, nil, nil)
	wantUp(t, a, b, 1)
	// B dies: A finds out, removes the SAs and does not initiate again.
	n.filter = func(p *Packet) bool { return p.Remote.Addr() != addrB && p.Local.Addr() != addrB }
	inits := countInitRequests(n, "192.0.2.1")
	n.advance(4 * time.Minute)
	if len(a.children()) != 0 || len(a.e.IKESAs()) != 0 {
		t.Fatalf("SAs with a dead peer left: %+v", a.e.IKESAs())
	}
	n.filter = nil
	b.do(func(e *Engine) {
		for _, s := range e.sas {
			s.destroy("test: B restarted")
		}
	})
	n.advance(30 * time.Minute)
	if got := countInitRequests(n, "192.0.2.1"); got != inits {
		t.Fatalf("A sent %d IKE_SA_INIT requests after the peer died with DPD action clear", got-inits)
	}
	if len(a.e.IKESAs()) != 0 {
		t.Fatalf("A brought an IKE SA up: %+v", a.e.IKESAs())
	}
	// The same policies again change nothing: it stays cleared.
	if err := a.e.SetPolicies([]Policy{pa}); err != nil {
		t.Fatal(err)
	}
	n.advance(time.Minute)
	if len(a.e.IKESAs()) != 0 {
		t.Fatal("an unchanged policy re-initiated")
	}
	// The peer may still initiate: the policy responds.
	pb2 := pb
	pb2.Remote = addrA
	pb2.RemoteTS = pa.LocalTS
	if err := b.e.SetPolicies([]Policy{pb2}); err != nil {
		t.Fatal(err)
	}
	n.pump()
	wantUp(t, a, b, 1)
	if s := a.established()[0]; s.Initiator {
		t.Fatal("A initiated")
	}
	// A changed policy starts afresh and initiates.
	if err := b.e.SetPolicies([]Policy{pb}); err != nil {
		t.Fatal(err)
	}
	pa.DPD = time.Minute
	if err := a.e.SetPolicies([]Policy{pa}); err != nil {
		t.Fatal(err)
	}
	n.pump()
	wantUp(t, a, b, 1)
	if s := a.established()[0]; !s.Initiator {
		t.Fatal("the changed policy did not initiate")
	}
}

// TestDPDActionRestartDefault: without DPDClear an initiating policy
// comes back by itself once the peer does (TestDPDDeadPeer covers the
// same with the peer back at once); here the point is that it tries at
// once, not after RetryInterval.
func TestDPDActionRestartDefault(t *testing.T) {
	pa, pb := pskPair()
	pa.DPD = 30 * time.Second
	n, a, b := establish(t, pa, pb, nil, nil)
	n.filter = func(p *Packet) bool { return p.Remote.Addr() != addrB && p.Local.Addr() != addrB }
	inits := countInitRequests(n, "192.0.2.1")
	n.advance(4 * time.Minute)
	if countInitRequests(n, "192.0.2.1") == inits {
		t.Fatal("no re-initiation after the peer died")
	}
	n.filter = nil
	b.do(func(e *Engine) {
		for _, s := range e.sas {
			s.destroy("test: B restarted")
		}
	})
	n.advance(10 * time.Minute)
	wantUp(t, a, b, 1)
}

// TestShortLifetimes: with the shortest lifetimes the CLI accepts (10s
// both), IKE and Child SA rekeys keep colliding in time; the policy must
// stay up with exactly one Child SA throughout.
func TestShortLifetimes(t *testing.T) {
	pa, pb := pskPair()
	for _, p := range []*Policy{&pa, &pb} {
		p.IKELifetime, p.ChildLifetime = 10*time.Second, 10*time.Second
	}
	n, a, b := establish(t, pa, pb, nil, nil)
	first := onlyChild(t, a)
	for i := 0; i < 60; i++ {
		n.advance(5 * time.Second)
		wantUp(t, a, b, 1)
	}
	if onlyChild(t, a).In.SPI == first.In.SPI {
		t.Fatal("never rekeyed")
	}
}

// TestChildRekeyWhileIKERekeys: a Child SA whose rekey falls while its
// IKE SA is being rekeyed tries again soon enough to beat its hard
// lifetime, even when that is short.
func TestChildRekeyWhileIKERekeys(t *testing.T) {
	pa, pb := pskPair()
	pa.ChildLifetime = 10 * time.Second // only A's children rekey in this test
	n, a, b := establish(t, pa, pb, nil, nil)
	first := onlyChild(t, a)
	var held []Packet
	n.filter = func(p *Packet) bool {
		if p.Local.Addr() == addrA {
			held = append(held, *p)
			return false
		}
		return true
	}
	if got := a.e.RekeyIKE("acme", "p1"); got != 1 {
		t.Fatalf("RekeyIKE = %d", got)
	}
	// A's child is due for rekeying (8.5-9.5s) while the IKE rekey is
	// stuck; it is let through just before the child's hard lifetime.
	n.advance(9700 * time.Millisecond)
	n.filter = nil
	for _, p := range held {
		n.deliver(p)
	}
	n.pump()
	n.advance(800 * time.Millisecond)
	wantUp(t, a, b, 1)
	if onlyChild(t, a).In.SPI == first.In.SPI {
		t.Fatal("child not rekeyed")
	}
}
