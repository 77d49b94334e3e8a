package ike

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Additional key exchanges after CREATE_CHILD_SA in IKE_FOLLOWUP_KE
// (RFC 9370 §2.2.4): Child SA rekeys with PFS and IKE SA rekeys, from
// either side, collisions, a lost message.

// rekeyChildOf starts a rekey of nd's only child and runs the network.
func rekeyChildOf(t *testing.T, n *fakeNet, nd *node) {
	t.Helper()
	if !nd.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: onlyChild(t, nd).In.Name}) {
		t.Fatal("HandleEvent: SA not the engine's")
	}
	n.pump()
}

func childSuite(t *testing.T, nd *node) string {
	t.Helper()
	cs := nd.e.ChildSAs()
	if len(cs) != 1 {
		t.Fatalf("%s: %d child SAs", nd.name, len(cs))
	}
	return cs[0].Suite
}

func TestFollowupKEChildRekey(t *testing.T) {
	for _, tc := range []struct {
		name, esp, suite string
		followups        int
	}{
		{"x25519+mlkem768", "aes256gcm16-x25519-ke1_mlkem768", "aes256gcm16-curve25519-ke1_mlkem768", 1},
		{"ecp256+mlkem1024+x25519", "aes128gcm16-ecp256-ke1_mlkem1024-ke3_x25519", "aes128gcm16-ecp256-ke1_mlkem1024-ke3_curve25519", 2},
	} {
		for _, side := range []string{"initiator", "responder"} {
			t.Run(tc.name+"/"+side, func(t *testing.T) {
				pa, pb := pskPair()
				pa.ESP, pb.ESP = mustESP(t, tc.esp), mustESP(t, tc.esp)
				big := &Config{FragmentSize: 9000} // one datagram per message: counted below
				n, a, b := establish(t, pa, pb, big, big)
				wantUp(t, a, b, 1)
				who, other := a, b
				if side == "responder" {
					who, other = b, a
				}
				oldW, oldO := onlyChild(t, who), onlyChild(t, other)
				before := countSent(n, who.addr, byte(wire.ExchangeFollowupKE))
				rekeyChildOf(t, n, who)
				wantUp(t, a, b, 1) // both derived the same keys
				newW, newO := onlyChild(t, who), onlyChild(t, other)
				if newW.In.SPI == oldW.In.SPI || newO.In.SPI == oldO.In.SPI || newW.Replaces != oldW.In.Name {
					t.Fatalf("child not replaced: %+v", newW)
				}
				if got := countSent(n, who.addr, byte(wire.ExchangeFollowupKE)) - before; got != tc.followups {
					t.Errorf("%s sent %d IKE_FOLLOWUP_KE requests, want %d", who.name, got, tc.followups)
				}
				if got := countSent(n, other.addr, byte(wire.ExchangeFollowupKE)); got != tc.followups {
					t.Errorf("%s sent %d IKE_FOLLOWUP_KE answers, want %d", other.name, got, tc.followups)
				}
				for _, nd := range []*node{a, b} {
					if got := childSuite(t, nd); got != tc.suite {
						t.Errorf("%s: child suite %q, want %q", nd.name, got, tc.suite)
					}
				}
				if bytes.Equal(newW.Out.EncKey, oldW.Out.EncKey) {
					t.Fatal("same keys after the rekey")
				}
				// Once more, from the other side.
				rekeyChildOf(t, n, other)
				wantUp(t, a, b, 1)
				if onlyChild(t, other).In.SPI == newO.In.SPI {
					t.Fatal("second rekey did not replace the child")
				}
			})
		}
	}
}

func TestFollowupKEChildNegotiation(t *testing.T) {
	const (
		classic  = "aes256gcm16-x25519"
		required = "aes256gcm16-x25519-ke1_mlkem768"
		optional = "aes256gcm16-x25519-ke1_mlkem768-ke1_none"
	)
	for _, tc := range []struct {
		name, a, b string
		want       string // suite of the rekeyed child; "" for a refused rekey
	}{
		{"initiator requires, responder optional", required, optional, "aes256gcm16-curve25519-ke1_mlkem768"},
		{"initiator optional, responder requires", optional, required, "aes256gcm16-curve25519-ke1_mlkem768"},
		{"initiator optional, responder classic", optional, classic, "aes256gcm16-curve25519"},
		{"initiator requires, responder classic", required, classic, ""},
		{"initiator classic, responder requires", classic, required, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa, pb := pskPair()
			pa.ESP, pb.ESP = mustESP(t, tc.a), mustESP(t, tc.b)
			n, a, b := establish(t, pa, pb, nil, nil)
			wantUp(t, a, b, 1)
			old := onlyChild(t, a)
			rekeyChildOf(t, n, a)
			wantUp(t, a, b, 1)
			if tc.want == "" {
				if onlyChild(t, a).In.SPI != old.In.SPI {
					t.Fatal("rekeyed without a common proposal")
				}
				return
			}
			if onlyChild(t, a).In.SPI == old.In.SPI {
				t.Fatal("not rekeyed")
			}
			if got := childSuite(t, a); got != tc.want {
				t.Errorf("suite %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFollowupKEIKERekey(t *testing.T) {
	for _, tc := range []struct{ ike, want string }{
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "curve25519+mlkem768"},
		{"aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke3_ecp256", "curve25519+mlkem768+ecp256"},
	} {
		for _, side := range []string{"initiator", "responder"} {
			t.Run(tc.want+"/"+side, func(t *testing.T) {
				pa, pb := pskPair()
				pa.IKE, pb.IKE = mustIKE(t, tc.ike), mustIKE(t, tc.ike)
				pa.ESP, pb.ESP = mustESP(t, "aes256gcm16-x25519-ke1_mlkem768"), mustESP(t, "aes256gcm16-x25519-ke1_mlkem768")
				n, a, b := establish(t, pa, pb, nil, nil)
				wantUp(t, a, b, 1)
				before := a.established()[0]
				child := onlyChild(t, a)
				who := a
				if side == "responder" {
					who = b
				}
				who.do(func(e *Engine) { upSA(t, e).rekeyIKE(0) })
				wantUp(t, a, b, 1)
				for _, nd := range []*node{a, b} {
					if len(nd.e.IKESAs()) != 1 {
						t.Fatalf("%s: old IKE SA left: %+v", nd.name, nd.e.IKESAs())
					}
					if got := nd.established()[0].KeyExchanges; got != tc.want {
						t.Errorf("%s: rekeyed IKE SA key exchanges %q, want %q", nd.name, got, tc.want)
					}
				}
				after := a.established()[0]
				if after.SPIi == before.SPIi || after.SPIr == before.SPIr || onlyChild(t, a).In.SPI != child.In.SPI {
					t.Fatalf("IKE SA not replaced, or its child changed: %+v", after)
				}
				// The new IKE SA's keys agree on both sides: a Child SA
				// rekey with follow-ups over it works.
				rekeyChildOf(t, n, a)
				wantUp(t, a, b, 1)
				if onlyChild(t, a).In.SPI == child.In.SPI {
					t.Fatal("child rekey over the new IKE SA failed")
				}
			})
		}
	}
}

// TestFollowupKECollision: both sides rekey at once, with follow-ups on
// both sides or on one side only (the other's rekey plain): afterwards
// one pair (one IKE SA) is left and both send on it.
func TestFollowupKECollision(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		prefPeer   bool
	}{
		{"both follow up", "aes256gcm16-x25519-ke1_mlkem768", "aes256gcm16-x25519-ke1_mlkem768", false},
		// Each side as responder takes the initiator's first choice: a's
		// rekey has follow-ups, b's is plain.
		{"one plain", "aes256gcm16-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-x25519-ke1_none-ke1_mlkem768", true},
	} {
		t.Run("child/"+tc.name, func(t *testing.T) {
			for i := 0; i < 6; i++ { // nonces are random: either side may win
				pa, pb := pskPair()
				pa.ESP, pb.ESP = mustESP(t, tc.a), mustESP(t, tc.b)
				cfg := &Config{PreferInitiatorProposals: tc.prefPeer}
				n, a, b := establish(t, pa, pb, cfg, cfg)
				ca, cb := onlyChild(t, a), onlyChild(t, b)
				a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: ca.In.Name})
				b.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: cb.In.Name})
				n.pump()
				n.advance(30 * time.Second) // a TEMPORARY_FAILURE is retried
				wantUp(t, a, b, 1)
				na, nb := onlyChild(t, a), onlyChild(t, b)
				if na.In.SPI == ca.In.SPI || nb.In.SPI == cb.In.SPI {
					t.Fatal("old child survived the collision")
				}
				for _, nd := range []*node{a, b} {
					if last := nd.switched[len(nd.switched)-1]; last != onlyChild(t, nd).In.Name {
						t.Fatalf("%s sends on %s, the survivor is %s", nd.name, last, onlyChild(t, nd).In.Name)
					}
				}
				rekeyChildOf(t, n, b)
				wantUp(t, a, b, 1)
			}
		})
	}
	// The peer's plain rekey arrives while ours runs its follow-ups: the
	// four nonces of the two CREATE_CHILD_SA exchanges settle it.
	t.Run("child/plain during follow-ups", func(t *testing.T) {
		for i := 0; i < 8; i++ {
			pa, pb := pskPair()
			pa.ESP, pb.ESP = mustESP(t, "aes256gcm16-x25519-ke1_mlkem768-ke1_none"), mustESP(t, "aes256gcm16-x25519-ke1_none-ke1_mlkem768")
			cfg := &Config{PreferInitiatorProposals: true}
			n, a, b := establish(t, pa, pb, cfg, cfg)
			ca, cb := onlyChild(t, a), onlyChild(t, b)
			started := false
			n.filter = func(p *Packet) bool {
				if !started && p.Local.Addr() == addrA && p.Data[18] == byte(wire.ExchangeFollowupKE) {
					started = true
					b.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: cb.In.Name})
				}
				return true
			}
			a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: ca.In.Name})
			n.pump()
			n.filter = nil
			if !started {
				t.Fatal("a's rekey ran no IKE_FOLLOWUP_KE")
			}
			n.advance(30 * time.Second)
			wantUp(t, a, b, 1)
			na, nb := onlyChild(t, a), onlyChild(t, b)
			if na.In.SPI == ca.In.SPI || nb.In.SPI == cb.In.SPI {
				t.Fatal("old child survived the collision")
			}
			for _, nd := range []*node{a, b} {
				if last := nd.switched[len(nd.switched)-1]; last != onlyChild(t, nd).In.Name {
					t.Fatalf("%s sends on %s, the survivor is %s", nd.name, last, onlyChild(t, nd).In.Name)
				}
			}
			rekeyChildOf(t, n, a)
			wantUp(t, a, b, 1)
		}
	})
	t.Run("ike", func(t *testing.T) {
		for i := 0; i < 6; i++ {
			pa, pb := pskPair()
			pa.IKE, pb.IKE = mustIKE(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768"), mustIKE(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
			n, a, b := establish(t, pa, pb, nil, nil)
			child := onlyChild(t, a)
			a.e.mu.Lock()
			upSA(t, a.e).rekeyIKE(0)
			a.e.unlock()
			b.e.mu.Lock()
			upSA(t, b.e).rekeyIKE(0)
			b.e.unlock()
			n.pump()
			n.advance(30 * time.Second)
			wantUp(t, a, b, 1)
			if len(a.e.IKESAs()) != 1 || len(b.e.IKESAs()) != 1 {
				t.Fatalf("IKE SAs left after the collision: %+v / %+v", a.e.IKESAs(), b.e.IKESAs())
			}
			x, y := a.established()[0], b.established()[0]
			if x.SPIi != y.SPIi || x.SPIr != y.SPIr || x.KeyExchanges != "curve25519+mlkem768" || y.KeyExchanges != x.KeyExchanges {
				t.Fatalf("sides disagree: %+v / %+v", x, y)
			}
			if onlyChild(t, a).In.SPI != child.In.SPI {
				t.Fatal("child changed")
			}
			rekeyChildOf(t, n, b)
			wantUp(t, a, b, 1)
		}
	})
}

// TestFollowupKERetransmit: a lost IKE_FOLLOWUP_KE request or answer is
// retransmitted, and the responder answers a retransmission from its
// cache.
func TestFollowupKERetransmit(t *testing.T) {
	for _, what := range []string{"request", "response"} {
		t.Run(what, func(t *testing.T) {
			pa, pb := pskPair()
			pa.ESP, pb.ESP = mustESP(t, "aes256gcm16-x25519-ke1_mlkem768"), mustESP(t, "aes256gcm16-x25519-ke1_mlkem768")
			n, a, b := establish(t, pa, pb, nil, nil)
			old := onlyChild(t, a)
			dropped := false
			n.filter = func(p *Packet) bool {
				resp := p.Data[19]&wire.FlagResponse != 0
				if !dropped && p.Data[18] == byte(wire.ExchangeFollowupKE) && resp == (what == "response") {
					dropped = true
					return false
				}
				return true
			}
			rekeyChildOf(t, n, a)
			if !dropped {
				t.Fatal("no IKE_FOLLOWUP_KE seen")
			}
			n.advance(5 * time.Second)
			wantUp(t, a, b, 1)
			if onlyChild(t, a).In.SPI == old.In.SPI {
				t.Fatal("not rekeyed")
			}
			if got := countSent(n, addrB, byte(wire.ExchangeFollowupKE)); what == "response" && got != 2 {
				t.Errorf("responder sent %d IKE_FOLLOWUP_KE answers, want 2 (one from its cache)", got)
			}
		})
	}
}

// TestFollowupKEStateNotFound: an IKE_FOLLOWUP_KE the responder has no
// exchange for is answered STATE_NOT_FOUND, and the initiator's rekey
// fails cleanly (the old child stays, a later rekey works).
func TestFollowupKEStateNotFound(t *testing.T) {
	pa, pb := pskPair()
	pa.ESP, pb.ESP = mustESP(t, "aes256gcm16-x25519-ke1_mlkem768"), mustESP(t, "aes256gcm16-x25519-ke1_mlkem768")
	n, a, b := establish(t, pa, pb, nil, nil)
	old := onlyChild(t, a)
	// b forgets the exchange between its CREATE_CHILD_SA answer and a's
	// follow-up.
	n.filter = func(p *Packet) bool {
		if p.Local.Addr() == addrA && p.Data[18] == byte(wire.ExchangeFollowupKE) && p.Data[19]&wire.FlagResponse == 0 {
			b.e.mu.Lock()
			upSA(t, b.e).dropFollowup()
			b.e.unlock()
		}
		return true
	}
	rekeyChildOf(t, n, a)
	n.filter = nil
	wantUp(t, a, b, 1)
	if onlyChild(t, a).In.SPI != old.In.SPI {
		t.Fatal("rekeyed although the responder lost the exchange")
	}
	if got := countSent(n, addrB, byte(wire.ExchangeFollowupKE)); got != 1 {
		t.Fatalf("b sent %d IKE_FOLLOWUP_KE answers", got)
	}
	n.advance(time.Minute) // the rekey is retried
	wantUp(t, a, b, 1)
	if onlyChild(t, a).In.SPI == old.In.SPI {
		t.Fatal("retried rekey did not replace the child")
	}
	if !strings.Contains(childSuite(t, a), "ke1_mlkem768") {
		t.Errorf("suite %q", childSuite(t, a))
	}
}

// TestFollowupKEAbandoned: an initiator that never sends its
// IKE_FOLLOWUP_KE leaves the responder's exchange to expire after a whole
// retransmission schedule: the SPI it reserved is freed, no child is
// made, and a later rekey works.
func TestFollowupKEAbandoned(t *testing.T) {
	pa, pb := pskPair()
	pa.ESP, pb.ESP = mustESP(t, "aes256gcm16-x25519-ke1_mlkem768"), mustESP(t, "aes256gcm16-x25519-ke1_mlkem768")
	n, a, b := establish(t, pa, pb, nil, nil)
	old := onlyChild(t, a)
	spis := func() int { b.e.mu.Lock(); defer b.e.unlock(); return len(b.e.spis) }
	before := spis()
	n.filter = func(p *Packet) bool { return p.Data[18] != byte(wire.ExchangeFollowupKE) }
	rekeyChildOf(t, n, a)
	pending := func() bool { b.e.mu.Lock(); defer b.e.unlock(); return upSA(t, b.e).fu != nil }
	if !pending() || spis() != before+1 {
		t.Fatalf("responder: exchange pending %v, %d SPIs (before %d)", pending(), spis(), before)
	}
	// a gives up after its retransmissions and drops the IKE SA; b's
	// exchange expires at about the same time.
	b.e.mu.Lock()
	timeout := b.e.followupTimeout()
	b.e.unlock()
	if timeout < 100*time.Second || timeout > 300*time.Second {
		t.Errorf("follow-up timeout %v, want the retransmission schedule (about 165s)", timeout)
	}
	n.filter = func(p *Packet) bool { return p.Local.Addr() != addrA } // a is gone
	n.advance(timeout - 5*time.Second)
	if !pending() {
		t.Fatal("the responder dropped the exchange before the initiator could have given up")
	}
	n.advance(10 * time.Second)
	if len(b.established()) != 1 {
		t.Fatalf("b's IKE SA went: %+v", b.e.IKESAs())
	}
	if pending() || spis() != before {
		t.Fatalf("after the timeout: exchange pending %v, %d SPIs (before %d)", pending(), spis(), before)
	}
	if got := len(b.children()); got > 1 || (got == 1 && onlyChild(t, b).In.SPI != old.Out.SPI) {
		t.Errorf("b made a child from the abandoned exchange: %v", b.children())
	}
}
