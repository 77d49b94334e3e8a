package ike

import (
	"testing"
	"time"
)

// TestDPDESPKeepsPeerAlive: a peer whose IKE has gone quiet (its IKE
// messages are lost) but that still sends ESP, authenticated on one of
// its Child SAs, is not declared dead and is sent no liveness check
// (RFC 7296 §2.4: check only when nothing was received in the
// interval). Once its ESP stops too, the liveness check goes out and,
// unanswered, ends the IKE SA.
func TestDPDESPKeepsPeerAlive(t *testing.T) {
	pa, pb := pskPair()
	pa.DPD = 30 * time.Second
	// inbound is a's data path's count of authenticated ESP by In.Name.
	inbound := map[string]uint64{}
	asked := 0
	ca := &Config{InboundPackets: func(c *ChildSA) uint64 { asked++; return inbound[c.In.Name] }}
	n, a, b := establish(t, pa, pb, ca, nil)
	wantUp(t, a, b, 1)
	var in string
	for name := range a.children() {
		in = name
	}
	// B's IKE is lost from here on; its ESP keeps arriving, a packet
	// every 10 s.
	n.filter = func(p *Packet) bool { return p.Local.Addr() != addrB }
	before := countSent(n, addrA, 37)
	for i := 0; i < 60; i++ { // 10 minutes, 20 DPD intervals
		inbound[in]++
		n.advance(10 * time.Second)
	}
	if asked == 0 {
		t.Error("the engine never asked the data path for inbound ESP")
	}
	if got := countSent(n, addrA, 37) - before; got != 0 {
		t.Errorf("%d INFORMATIONAL requests (liveness checks) sent while the peer's ESP kept arriving, want 0", got)
	}
	wantUp(t, a, b, 1)
	if got := a.e.Stats().DPDFailures; got != 0 {
		t.Errorf("DPD failures %d while the peer's ESP kept arriving", got)
	}
	// Its ESP stops: the check goes out within two intervals, goes
	// unanswered and the peer is dead.
	n.advance(61 * time.Second)
	if countSent(n, addrA, 37) == before {
		t.Fatal("no liveness check after the peer's ESP stopped")
	}
	n.advance(4 * time.Minute)
	if len(a.established()) != 0 || len(a.children()) != 0 {
		t.Fatal("IKE SA with a silent peer still up")
	}
	if got := a.e.Stats().DPDFailures; got != 1 {
		t.Errorf("DPD failures %d, want 1", got)
	}
}
