package ike

import (
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/sa/ike/wire"
)

// rewriteAuthNotify makes the responder b's IKE_AUTH answers to a carry
// error notify t instead of the one b put there (b refuses the Child SA
// with TS_UNACCEPTABLE): the answer is opened with a's keys and sealed
// again with b's, as b would have sent it with t.
func rewriteAuthNotify(t *testing.T, n *fakeNet, a, b *node, nt wire.NotifyType) {
	n.filter = func(p *Packet) bool {
		h, err := wire.ParseHeader(p.Data)
		if err != nil || p.Local.Addr() != b.addr || h.Exchange != wire.ExchangeIKEAuth || h.Flags&wire.FlagResponse == 0 {
			return true
		}
		as, bs := a.e.sas[h.SPIi], b.e.sas[h.SPIr]
		if as == nil || bs == nil {
			t.Fatalf("IKE_AUTH answer of an unknown IKE SA %016x/%016x", h.SPIi, h.SPIr)
		}
		m, err := wire.Parse(p.Data)
		if err != nil {
			t.Fatal(err)
		}
		sk, ok := m.Payloads[len(m.Payloads)-1].(*wire.Encrypted)
		if !ok {
			t.Fatalf("IKE_AUTH answer without SK (fragmented?): %T", m.Payloads[len(m.Payloads)-1])
		}
		plain, err := as.in.Open(p.Data[:len(p.Data)-len(sk.Body)], sk.Body)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := wire.ParsePayloads(sk.Inner, plain)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, x := range ps {
			if no, ok := x.(*wire.Notify); ok && no.NotifyType == wire.NotifyTSUnacceptable {
				no.NotifyType, found = nt, true
			}
		}
		if !found {
			t.Fatalf("b's IKE_AUTH answer has no TS_UNACCEPTABLE to rewrite: %v", ps)
		}
		pkts := bs.seal(wire.ExchangeIKEAuth, true, h.MessageID, ps)
		if len(pkts) != 1 {
			t.Fatalf("re-sealed answer in %d fragments", len(pkts))
		}
		p.Data = pkts[0]
		return true
	}
}

// countRequests counts the requests of exchange x that from sent.
func countRequests(n *fakeNet, from netip.Addr, x wire.ExchangeType) int {
	k := 0
	for _, p := range n.sent {
		if h, err := wire.ParseHeader(p.Data); err == nil && p.Local.Addr() == from && h.Exchange == x && h.Flags&wire.FlagResponse == 0 {
			k++
		}
	}
	return k
}

// TestChildRefusedInAuth: the responder authenticates (valid AUTH) but
// refuses the Child SA in its IKE_AUTH answer (TS_UNACCEPTABLE,
// NO_PROPOSAL_CHOSEN, SINGLE_PAIR_REQUIRED): RFC 7296 §2.21.2, only the
// Child SA failed. The IKE SA stays established on both sides; the
// initiator says why in its IKE SA's ChildError, and retries the Child SA
// alone with CREATE_CHILD_SA on that IKE SA — after RetryInterval, then
// twice as long — never with a new IKE_SA_INIT; once the responder
// accepts, the Child SA is up on the same IKE SA.
func TestChildRefusedInAuth(t *testing.T) {
	for _, nt := range []wire.NotifyType{wire.NotifyTSUnacceptable, wire.NotifyNoProposalChosen, wire.NotifySinglePairRequired} {
		t.Run(nt.String(), func(t *testing.T) {
			pa, pb := pskPair()
			good := newPolicyState(pb).localSel
			pb.LocalTS = []netip.Prefix{prefix("198.51.100.0/24")} // disjoint: b refuses the Child SA
			n := newNet(t)
			a := n.add("a", "192.0.2.1", nil)
			b := n.add("b", "192.0.2.2", nil)
			if nt != wire.NotifyTSUnacceptable {
				rewriteAuthNotify(t, n, a, b, nt)
			}
			if err := b.e.SetPolicies([]Policy{pb}); err != nil {
				t.Fatal(err)
			}
			if err := a.e.SetPolicies([]Policy{pa}); err != nil {
				t.Fatal(err)
			}
			n.pump()
			n.filter = nil

			up := func(when string, children int) IKESAInfo {
				t.Helper()
				as, bs := a.established(), b.established()
				if len(as) != 1 || len(bs) != 1 {
					t.Fatalf("%s: %d and %d established IKE SAs, want 1 each: a %+v, b %+v", when, len(as), len(bs), a.e.IKESAs(), b.e.IKESAs())
				}
				if len(a.children()) != children || len(b.children()) != children {
					t.Fatalf("%s: %d and %d Child SAs, want %d", when, len(a.children()), len(b.children()), children)
				}
				if got := countSent(n, addrA, uint8(wire.ExchangeIKESAInit)); got != 1 {
					t.Fatalf("%s: a sent %d IKE_SA_INIT, want the first only", when, got)
				}
				return as[0]
			}
			first := up("after IKE_AUTH", 0)
			if first.ChildError != nt.String() {
				t.Errorf("ChildError %q, want %q", first.ChildError, nt)
			}
			retry := a.e.cfg.RetryInterval
			n.advance(retry * 8 / 10)
			if got := countRequests(n, addrA, wire.ExchangeCreateChildSA); got != 0 {
				t.Fatalf("a sent %d CREATE_CHILD_SA before RetryInterval", got)
			}
			// The first retry, refused again (b's selectors are still
			// disjoint): the IKE SA still stands.
			n.advance(retry * 4 / 10)
			if got := countRequests(n, addrA, wire.ExchangeCreateChildSA); got != 1 {
				t.Fatalf("a sent %d CREATE_CHILD_SA after RetryInterval, want 1 (the Child SA's retry)", got)
			}
			if s := up("after the first retry", 0); s.SPIi != first.SPIi || s.ChildError != wire.NotifyTSUnacceptable.String() {
				t.Fatalf("after the first retry: IKE SA %016x (was %016x), ChildError %q", s.SPIi, first.SPIi, s.ChildError)
			}
			// The next waits twice as long (±10%): not before 2.7
			// RetryInterval from IKE_AUTH, at the latest 3.3.
			n.advance(retry * 14 / 10)
			if got := countRequests(n, addrA, wire.ExchangeCreateChildSA); got != 1 {
				t.Fatalf("a sent %d CREATE_CHILD_SA within 2.6 RetryInterval, want no second retry yet", got)
			}
			// b comes to accept the Child SA: the next retry makes it.
			b.do(func(e *Engine) { e.policies["acme/p1"].localSel = good })
			n.advance(retry * 8 / 10)
			s := up("after b accepts", 1)
			if s.SPIi != first.SPIi || s.ChildError != "" || s.Children != 1 {
				t.Fatalf("IKE SA %016x (was %016x), ChildError %q, %d children", s.SPIi, first.SPIi, s.ChildError, s.Children)
			}
			checkPaired(t, a, b)
			// No more retries once the Child SA is up.
			k := countRequests(n, addrA, wire.ExchangeCreateChildSA)
			n.advance(10 * retry)
			if got := countRequests(n, addrA, wire.ExchangeCreateChildSA); got != k {
				t.Fatalf("a sent %d more CREATE_CHILD_SA with its Child SA up", got-k)
			}
		})
	}
}

// TestChildRefusedRespondingPolicy: a policy that only responds keeps the
// IKE SA whose Child SA it could not make, and waits for the peer (the
// initiator retries, TestChildRefusedInAuth).
func TestChildRefusedRespondingPolicy(t *testing.T) {
	pa, pb := pskPair()
	pb.LocalTS = []netip.Prefix{prefix("198.51.100.0/24")}
	n, a, b := establish(t, pa, pb, nil, nil)
	if bs := b.established(); len(bs) != 1 || len(b.children()) != 0 || bs[0].ChildError != "TS_UNACCEPTABLE" {
		t.Fatalf("b: %+v, %d children; want its IKE SA up, its ChildError TS_UNACCEPTABLE", b.e.IKESAs(), len(b.children()))
	}
	before := countRequests(n, addrB, wire.ExchangeCreateChildSA)
	n.advance(3 * b.e.cfg.RetryInterval)
	if got := countRequests(n, addrB, wire.ExchangeCreateChildSA); got != before {
		t.Fatalf("the responding policy sent %d CREATE_CHILD_SA", got-before)
	}
	if len(a.established()) != 1 || len(b.established()) != 1 {
		t.Fatalf("IKE SA gone: a %+v, b %+v", a.e.IKESAs(), b.e.IKESAs())
	}
}
