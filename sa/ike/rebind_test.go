package ike

import (
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/sa"
)

// natBetween puts a NAT in front of a (addrA) on n: its datagrams leave
// from pub and a public port mapped from each private one; *mapped can
// be changed to rebind the mapping.
func natBetween(n *fakeNet, a *node, pub netip.Addr, mapped map[uint16]uint16) {
	n.filter = func(p *Packet) bool {
		switch {
		case p.Local.Addr() == addrA: // outbound through the NAT
			pp, ok := mapped[p.Local.Port()]
			if !ok {
				pp = 40000 + uint16(len(mapped))
				mapped[p.Local.Port()] = pp
			}
			p.Local = netip.AddrPortFrom(pub, pp)
		case p.Remote.Addr() == pub: // back in
			found := false
			for priv, pp := range mapped {
				if pp == p.Remote.Port() {
					p.Remote, found = netip.AddrPortFrom(addrA, priv), true
				}
			}
			return found // a mapping the NAT forgot drops
		}
		return true
	}
	n.nodes[pub] = a
}

// TestNATRebindChildFollows: the peer behind a NAT (a) is seen from a new
// public port. Authenticated ESP from there (sa.EventPeerMoved from b's
// data path) moves b's IKE SA and its Child SA there, in place (Rebind,
// no rekey); so does an authenticated IKE message from there. Without a
// NAT nothing moves.
func TestNATRebindChildFollows(t *testing.T) {
	pa, pb := pskPair()
	pa.Mode, pb.Mode = sa.ModeTunnel, sa.ModeTunnel
	n := newNet(t)
	var rebinds []ChildSA
	a := n.add("a", addrA.String(), nil)
	b := n.add("b", addrB.String(), &Config{Rebind: func(c *ChildSA) { rebinds = append(rebinds, *c) }})
	pub := netip.MustParseAddr("203.0.113.1")
	mapped := map[uint16]uint16{}
	natBetween(n, a, pub, mapped)
	b.e.SetPolicies([]Policy{pb})
	a.e.SetPolicies([]Policy{pa})
	n.pump()
	wantUp(t, a, b, 1)
	cb := onlyChild(t, b)
	if cb.Out.Dst != pub || cb.Out.Encap == nil || cb.Out.Encap.DstPort != 40001 {
		t.Fatalf("b's Child SA before: to %v %+v", cb.Out.Dst, cb.Out.Encap)
	}

	// The NAT rebinds a's 4500 to 41000; a's ESP reaches b from there.
	mapped[4500] = 41000
	moved := netip.AddrPortFrom(pub, 41000)
	if !b.e.HandleEvent(sa.Event{Kind: sa.EventPeerMoved, Name: cb.In.Name, Peer: moved}) {
		t.Fatal("the engine does not know b's inbound SA")
	}
	n.pump()
	if len(rebinds) != 1 {
		t.Fatalf("%d rebinds of b's Child SA, want 1: %+v", len(rebinds), rebinds)
	}
	r := rebinds[0]
	if r.In.Name != cb.In.Name || r.Out.Dst != pub || r.Out.Encap.DstPort != 41000 || r.In.Src != pub || r.In.Encap.SrcPort != 41000 ||
		r.Out.Encap.SrcPort != 4500 || r.In.Encap.DstPort != 4500 {
		t.Fatalf("rebind of b's Child SA: out %v %+v, in %v %+v", r.Out.Dst, *r.Out.Encap, r.In.Src, *r.In.Encap)
	}
	if got := b.established()[0].Remote; got != moved {
		t.Fatalf("b's IKE SA talks to %v, want %v", got, moved)
	}
	if c := b.e.ChildSAs(); len(c) != 1 || c[0].InSPI != cb.In.SPI {
		t.Fatalf("b's Child SAs after the move: %+v (want the same one, not a rekey)", c)
	}
	// The same report again moves nothing.
	b.e.HandleEvent(sa.Event{Kind: sa.EventPeerMoved, Name: cb.In.Name, Peer: moved})
	n.pump()
	if len(rebinds) != 1 {
		t.Fatalf("a repeated report rebound again: %d", len(rebinds))
	}
	// IKE from b reaches a at the new mapping: b rekeys the Child SA.
	b.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: cb.In.Name})
	n.pump()
	wantUp(t, a, b, 1)
	nb := onlyChild(t, b)
	if nb.In.Name == cb.In.Name || nb.Out.Encap.DstPort != 41000 {
		t.Fatalf("b's Child SA after its rekey: %s to port %d", nb.In.Name, nb.Out.Encap.DstPort)
	}

	// The NAT rebinds again, and a's next IKE message shows it: b's IKE
	// SA follows, and its Child SA with it.
	mapped[4500] = 42000
	a.do(func(e *Engine) { upSA(t, e).rekeyChild(upSA(t, e).children[0]) })
	n.pump()
	wantUp(t, a, b, 1)
	last := rebinds[len(rebinds)-1]
	if got := b.established()[0].Remote.Port(); got != 42000 {
		t.Fatalf("b's IKE SA talks to port %d after IKE from 42000", got)
	}
	if len(rebinds) < 2 || last.Out.Encap.DstPort != 42000 {
		t.Fatalf("b's Child SA did not follow the IKE SA to 42000: %+v", rebinds)
	}
}

// TestNATRebindWithoutNAT: with no NAT between the peers, a report of
// ESP from elsewhere moves nothing.
func TestNATRebindWithoutNAT(t *testing.T) {
	pa, pb := pskPair()
	var rebinds int
	n, a, b := establish(t, pa, pb, nil, &Config{Rebind: func(*ChildSA) { rebinds++ }})
	wantUp(t, a, b, 1)
	cb := onlyChild(t, b)
	b.e.HandleEvent(sa.Event{Kind: sa.EventPeerMoved, Name: cb.In.Name, Peer: netip.MustParseAddrPort("192.0.2.99:4500")})
	n.pump()
	if rebinds != 0 || b.established()[0].Remote.Addr() != addrA {
		t.Fatalf("without a NAT: %d rebinds, IKE SA to %v", rebinds, b.established()[0].Remote)
	}
}
