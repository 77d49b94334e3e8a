package ike

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// established describes what must not change: every established IKE SA
// and every Child SA.
func establishedState(e *Engine) string {
	var s string
	for _, x := range e.IKESAs() {
		if x.State != "CONNECTING" {
			s += fmt.Sprintf("%+v\n", x)
		}
	}
	for _, c := range e.ChildSAs() {
		s += fmt.Sprintf("%+v\n", c)
	}
	return s
}

// FuzzInput feeds arbitrary datagrams to a responder and to both ends of
// an established IKE SA. Nothing may panic, and no datagram may change an
// established IKE SA or Child SA: without the keys nothing authenticates,
// and replays of recorded messages are answered from the cache or
// dropped. The seeds are the datagrams of a real exchange (IKE_SA_INIT,
// IKE_AUTH with fragments, CREATE_CHILD_SA, INFORMATIONAL) and mutations
// of their headers.
func FuzzInput(f *testing.F) {
	n := newNet(f)
	pa, pb := pskPair()
	// With an additional ML-KEM exchange, so that the seeds hold
	// IKE_INTERMEDIATE fragments and the state between the exchanges.
	pa.IKE = append(mustIKE(f, "aes256gcm16-prfsha384-x25519-ke1_mlkem768"), DefaultIKEProposals...)
	pb.IKE = pa.IKE
	// The Child SA rekey below runs an IKE_FOLLOWUP_KE exchange.
	pa.ESP = append(mustESP(f, "aes256gcm16-x25519-ke1_mlkem768"), DefaultESPProposals...)
	pb.ESP = pa.ESP
	a := n.add("a", "192.0.2.1", &Config{FragmentSize: 400})
	b := n.add("b", "192.0.2.2", &Config{FragmentSize: 400})
	if err := b.e.SetPolicies([]Policy{pb}); err != nil {
		f.Fatal(err)
	}
	if err := a.e.SetPolicies([]Policy{pa}); err != nil {
		f.Fatal(err)
	}
	n.pump()
	c := onlyChild(f, a)
	a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: c.In.Name})
	n.pump()
	if len(a.children()) != 1 || len(b.children()) != 1 || countSent(n, addrA, byte(wire.ExchangeFollowupKE)) == 0 {
		f.Fatal("setup failed")
	}
	for _, p := range n.sent {
		for target := byte(0); target < 3; target++ {
			f.Add(append([]byte{target}, p.Data...))
		}
		if len(p.Data) >= 28 {
			m := append([]byte{1}, p.Data...)
			binary.BigEndian.PutUint32(m[1+20:], binary.BigEndian.Uint32(m[1+20:])+1) // next message ID
			f.Add(m)
			m = append([]byte{2}, p.Data...)
			m[1+19] ^= 0x20 // flip the response flag
			f.Add(m)
		}
	}
	f.Add([]byte{0})
	f.Add([]byte{0, 1, 2, 3})

	// A third engine, responder only, fresh for IKE_SA_INIT inputs.
	r := n.add("r", "192.0.2.9", &Config{HalfOpenCookieThreshold: 8})
	pr := pb
	pr.Local = r.addr
	pr.LocalTS = []netip.Prefix{prefix("192.0.2.9/32")}
	if err := r.e.SetPolicies([]Policy{pr}); err != nil {
		f.Fatal(err)
	}
	n.sent = nil

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		target := []*node{r, a, b}[int(data[0])%3]
		from := netip.AddrPortFrom(addrB, 500)
		if target == b {
			from = netip.AddrPortFrom(addrA, 500)
		}
		if target == r {
			from = netip.AddrPortFrom(addrA, 500)
		}
		beforeA, beforeB := establishedState(a.e), establishedState(b.e)
		target.e.Input(Packet{Local: netip.AddrPortFrom(target.addr, 500), Remote: from, Data: data[1:]})
		// What the target answers reaches the others, too.
		n.pump()
		if got := establishedState(a.e); got != beforeA {
			t.Fatalf("a changed:\n%s\n->\n%s", beforeA, got)
		}
		if got := establishedState(b.e); got != beforeB {
			t.Fatalf("b changed:\n%s\n->\n%s", beforeB, got)
		}
		if len(a.children()) != 1 || len(b.children()) != 1 {
			t.Fatal("children changed")
		}
		n.sent = n.sent[:0]
	})
}
