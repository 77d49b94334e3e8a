package ike

import (
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
)

// TestFailureCounters: each way a negotiation fails is counted under its
// reason on the side that saw it, and rekeys and DPD deaths are counted.
func TestFailureCounters(t *testing.T) {
	t.Run("ike-proposal", func(t *testing.T) {
		pa, pb := pskPair()
		pa.IKE = mustIKE(t, "aes128gcm16-prfsha256-x25519")
		pb.IKE = mustIKE(t, "aes256-sha256-modp2048")
		_, a, b := establish(t, pa, pb, nil, nil)
		if a.e.Stats().Failures[FailureNoProposal] == 0 || b.e.Stats().Failures[FailureNoProposal] == 0 {
			t.Errorf("no_proposal_chosen not counted: a %v b %v", a.e.Stats().Failures, b.e.Stats().Failures)
		}
	})
	t.Run("esp-proposal", func(t *testing.T) {
		pa, pb := pskPair()
		pa.ESP, pb.ESP = mustESP(t, "aes128gcm16"), mustESP(t, "aes256-sha256")
		_, a, b := establish(t, pa, pb, nil, nil)
		if a.e.Stats().Failures[FailureNoProposal] == 0 || b.e.Stats().Failures[FailureNoProposal] == 0 {
			t.Errorf("no_proposal_chosen not counted: a %v b %v", a.e.Stats().Failures, b.e.Stats().Failures)
		}
	})
	t.Run("psk", func(t *testing.T) {
		pa, pb := pskPair()
		pb.PSK = []byte("a different and wrong secret")
		_, a, b := establish(t, pa, pb, nil, nil)
		if b.e.Stats().Failures[FailureAuth] == 0 || a.e.Stats().Failures[FailureAuth] == 0 {
			t.Errorf("authentication_failed not counted: a %v b %v", a.e.Stats().Failures, b.e.Stats().Failures)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		pa, pb := pskPair()
		n := newNet(t)
		a := n.add("a", "192.0.2.1", nil)
		n.filter = func(p *Packet) bool { return false }
		if err := a.e.SetPolicies([]Policy{pa}); err != nil {
			t.Fatal(err)
		}
		_ = pb
		n.advance(5 * time.Minute)
		if a.e.Stats().Failures[FailureTimeout] == 0 {
			t.Errorf("timeout not counted: %v", a.e.Stats().Failures)
		}
	})
	t.Run("rekeys-and-dpd", func(t *testing.T) {
		pa, pb := pskPair()
		pa.DPD = 30 * time.Second
		n, a, b := establish(t, pa, pb, nil, nil)
		wantUp(t, a, b, 1)
		for _, nd := range []*node{a, b} {
			if st := nd.e.Stats(); st.Failures != [NumFailures]uint64{} || st.ChildRekeys != 0 || st.IKERekeys != 0 {
				t.Fatalf("%s: counters before any failure or rekey: %+v", nd.name, st)
			}
		}
		c := onlyChild(t, a)
		a.e.HandleEvent(sa.Event{Kind: sa.EventSoft, Name: c.Out.Name})
		n.pump()
		a.do(func(e *Engine) { upSA(t, e).rekeyIKE(0) })
		wantUp(t, a, b, 1)
		for _, nd := range []*node{a, b} {
			if st := nd.e.Stats(); st.ChildRekeys != 1 || st.IKERekeys != 1 || st.ChildRekeyFailures != 0 || st.IKERekeyFailures != 0 {
				t.Errorf("%s: rekeys %d/%d failed %d/%d, want 1/1 and 0/0", nd.name, st.ChildRekeys, st.IKERekeys, st.ChildRekeyFailures, st.IKERekeyFailures)
			}
		}
		n.filter = func(p *Packet) bool { return p.Remote.Addr() != addrB && p.Local.Addr() != addrB }
		n.advance(4 * time.Minute)
		if got := a.e.Stats().DPDFailures; got != 1 {
			t.Errorf("DPD failures %d, want 1", got)
		}
	})
}

func TestFailureString(t *testing.T) {
	seen := map[string]bool{}
	for f := Failure(1); f < NumFailures; f++ {
		s := f.String()
		if seen[s] || s == "" || s[0] == 'F' {
			t.Errorf("Failure(%d).String() = %q", f, s)
		}
		seen[s] = true
	}
}
