package ike

import (
	"slices"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
)

func TestChildRekey(t *testing.T) {
	for _, side := range []string{"initiator", "responder"} {
		for _, pfs := range []bool{false, true} {
			name := side
			if pfs {
				name += "-pfs"
			}
			t.Run(name, func(t *testing.T) {
				pa, pb := pskPair()
				if pfs {
					pa.ESP, pb.ESP = mustESP(t, "aes128gcm16-ecp256"), mustESP(t, "aes128gcm16-ecp256")
				}
				n, a, b := establish(t, pa, pb, nil, nil)
				wantUp(t, a, b, 1)
				oldA, oldB := onlyChild(t, a), onlyChild(t, b)
				who, other := a, b
				if side == "responder" {
					who, other = b, a
				}
				old := onlyChild(t, who)
				if !who.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: old.Out.Name}) {
					t.Fatal("HandleEvent: SA not the engine's")
				}
				n.pump()
				wantUp(t, a, b, 1)
				newA, newB := onlyChild(t, a), onlyChild(t, b)
				if newA.In.SPI == oldA.In.SPI || newB.In.SPI == oldB.In.SPI {
					t.Fatal("child not replaced")
				}
				if newA.Replaces != oldA.In.Name || newB.Replaces != oldB.In.Name {
					t.Errorf("Replaces: %q %q", newA.Replaces, newB.Replaces)
				}
				for _, nd := range []*node{who, other} {
					if !slices.Contains(nd.switched, onlyChild(t, nd).In.Name) {
						t.Errorf("%s never switched to the new child (%v)", nd.name, nd.switched)
					}
					if len(nd.removed) != 1 {
						t.Errorf("%s removed %v", nd.name, nd.removed)
					}
				}
				if pfs && slices.Equal(newA.Out.EncKey, oldA.Out.EncKey) {
					t.Fatal("same keys after rekey")
				}
			})
		}
	}
}

// TestChildRekeyMakeBeforeBreak checks the order of callbacks on both
// sides: the new pair is installed before the old one goes, and the
// responder switches only when the old pair is deleted.
func TestChildRekeyMakeBeforeBreak(t *testing.T) {
	pa, pb := pskPair()
	n, a, b := establish(t, pa, pb, nil, nil)
	old := onlyChild(t, a)
	// Hold back the initiator's Delete so the responder is mid-rekey.
	var held []Packet
	n.filter = func(p *Packet) bool {
		if p.Local.Addr() == addrA && p.Data[18] == 37 {
			held = append(held, *p)
			return false
		}
		return true
	}
	a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: old.In.Name})
	n.pump()
	if len(b.children()) != 2 || len(a.children()) != 2 {
		t.Fatalf("mid-rekey: a has %d, b has %d children; want both pairs", len(a.children()), len(b.children()))
	}
	if len(b.switched) != 1 {
		t.Fatalf("responder switched before the old pair was deleted: %v", b.switched)
	}
	if len(a.switched) != 2 {
		t.Fatalf("initiator did not switch at once: %v", a.switched)
	}
	n.filter = nil
	for _, p := range held {
		n.deliver(p)
	}
	n.pump()
	wantUp(t, a, b, 1)
	if len(b.switched) != 2 {
		t.Fatalf("responder did not switch on the Delete: %v", b.switched)
	}
}

func TestChildRekeyByTimer(t *testing.T) {
	pa, pb := pskPair()
	pa.ChildLifetime, pb.ChildLifetime = 10*time.Minute, 10*time.Minute
	n, a, b := establish(t, pa, pb, nil, nil)
	first := onlyChild(t, a)
	if first.In.Lifetime.Hard.Seconds != 600 {
		t.Errorf("hard lifetime %d s", first.In.Lifetime.Hard.Seconds)
	}
	n.advance(9*time.Minute + 30*time.Second)
	wantUp(t, a, b, 1)
	if onlyChild(t, a).In.SPI == first.In.SPI {
		t.Fatal("not rekeyed before the hard lifetime")
	}
	// Many lifetimes later there is still exactly one pair.
	n.advance(time.Hour)
	wantUp(t, a, b, 1)
}

func TestIKERekey(t *testing.T) {
	for _, side := range []string{"initiator", "responder"} {
		t.Run(side, func(t *testing.T) {
			pa, pb := pskPair()
			n, a, b := establish(t, pa, pb, nil, nil)
			before := a.established()[0]
			child := onlyChild(t, a)
			who := a
			if side == "responder" {
				who = b
			}
			who.do(func(e *Engine) { upSA(t, e).rekeyIKE(0) })
			wantUp(t, a, b, 1)
			after := a.established()[0]
			if after.SPIi == before.SPIi || after.SPIr == before.SPIr {
				t.Fatalf("IKE SA not replaced: %+v", after)
			}
			if len(a.e.IKESAs()) != 1 || len(b.e.IKESAs()) != 1 {
				t.Fatalf("old IKE SA left: %+v / %+v", a.e.IKESAs(), b.e.IKESAs())
			}
			if onlyChild(t, a).In.SPI != child.In.SPI {
				t.Fatal("child changed by an IKE SA rekey")
			}
			if got := a.e.ChildSAs()[0]; got.IKESPIi != after.SPIi {
				t.Errorf("child still on the old IKE SA")
			}
			// The new IKE SA works: rekey the child over it, from the other side.
			other := b
			if who == b {
				other = a
			}
			c := onlyChild(t, other)
			other.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: c.In.Name})
			n.pump()
			wantUp(t, a, b, 1)
			if onlyChild(t, other).In.SPI == c.In.SPI {
				t.Fatal("child rekey over the new IKE SA failed")
			}
		})
	}
}

func TestIKERekeyByTimer(t *testing.T) {
	pa, pb := pskPair()
	pa.IKELifetime, pb.IKELifetime = 20*time.Minute, 20*time.Minute
	pa.DPD, pb.DPD = time.Minute, time.Minute
	n, a, b := establish(t, pa, pb, nil, nil)
	spi := a.established()[0].SPIi
	n.advance(3 * time.Hour)
	wantUp(t, a, b, 1)
	if a.established()[0].SPIi == spi {
		t.Fatal("IKE SA not rekeyed")
	}
	if len(a.e.IKESAs()) != 1 || len(b.e.IKESAs()) != 1 {
		t.Fatalf("old IKE SAs left: %d %d", len(a.e.IKESAs()), len(b.e.IKESAs()))
	}
}

func TestChildRekeyCollision(t *testing.T) {
	for i := 0; i < 8; i++ { // nonces are random: either side may win
		pa, pb := pskPair()
		n, a, b := establish(t, pa, pb, nil, nil)
		ca, cb := onlyChild(t, a), onlyChild(t, b)
		a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: ca.In.Name})
		b.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: cb.In.Name})
		n.pump()
		wantUp(t, a, b, 1)
		na, nb := onlyChild(t, a), onlyChild(t, b)
		if na.In.SPI == ca.In.SPI || nb.In.SPI == cb.In.SPI {
			t.Fatal("old child survived the collision")
		}
		// Both sides send on the surviving pair.
		for _, nd := range []*node{a, b} {
			if last := nd.switched[len(nd.switched)-1]; last != onlyChild(t, nd).In.Name {
				t.Fatalf("%s sends on %s, the survivor is %s", nd.name, last, onlyChild(t, nd).In.Name)
			}
		}
		// Everything is consistent afterwards: another rekey works.
		a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: na.In.Name})
		n.pump()
		wantUp(t, a, b, 1)
	}
}

func TestIKERekeyCollision(t *testing.T) {
	for i := 0; i < 8; i++ {
		pa, pb := pskPair()
		n, a, b := establish(t, pa, pb, nil, nil)
		child := onlyChild(t, a)
		a.e.mu.Lock()
		upSA(t, a.e).rekeyIKE(0)
		a.e.unlock()
		b.e.mu.Lock()
		upSA(t, b.e).rekeyIKE(0)
		b.e.unlock()
		n.pump()
		wantUp(t, a, b, 1)
		if len(a.e.IKESAs()) != 1 || len(b.e.IKESAs()) != 1 {
			t.Fatalf("IKE SAs left after the collision: %+v / %+v", a.e.IKESAs(), b.e.IKESAs())
		}
		x, y := a.established()[0], b.established()[0]
		if x.SPIi != y.SPIi || x.SPIr != y.SPIr || x.Children != 1 || y.Children != 1 {
			t.Fatalf("sides disagree: %+v / %+v", x, y)
		}
		if onlyChild(t, a).In.SPI != child.In.SPI {
			t.Fatal("child changed")
		}
		// The surviving IKE SA works.
		c := onlyChild(t, b)
		b.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: c.In.Name})
		n.pump()
		wantUp(t, a, b, 1)
	}
}
