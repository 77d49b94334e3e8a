package ikectl

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
)

// TestESPKeepsPeerAlive: the controller gives the engine the inbound SAs'
// packet counters. While a's inbound SA authenticates ESP (its counter
// grows, as the data path's decapsulation makes it) and all of b's IKE is
// lost, a sends no liveness check and keeps its SAs; once the ESP stops,
// a's check goes unanswered and the peer is found dead.
func TestESPKeepsPeerAlive(t *testing.T) {
	w := newWire(t)
	quick := func() *ike.Config { return &ike.Config{RetransmitTimeout: 100 * time.Millisecond, RetransmitTries: 2} }
	a := newGatewayEngine(t, w, "a", "52:54:00:00:00:0a", 10, "2001:db8:1::121", quick())
	b := newGatewayEngine(t, w, "b", "52:54:00:00:00:0b", 20, "2001:db8:2::5", quick())
	pa := pskPolicy("p1", "vm1", "2001:db8:1::121/128", "2001:db8:2::5/128", "2001:db8:2::5")
	pa.DPDInterval = time.Second
	mustW(t)(a.d.CreatePolicy(pa))
	mustW(t)(b.d.CreatePolicy(pskPolicy("p1", "vm1", "2001:db8:2::5/128", "2001:db8:1::/64", "")))
	start(t, w, a, b)
	ra := waitChildren(t, a, 1)[0]
	waitChildren(t, b, 1)
	in := a.d.SADB().Lookup(sa.Key{Scope: a.scope, SPI: ra.InboundSPI})
	if in == nil {
		t.Fatal("a's inbound SA is not in its database")
	}
	// From here on b's IKE is lost; a's liveness checks are counted.
	bAddr := netip.MustParseAddr("2001:db8:2::5")
	var checks atomic.Int32
	w.mu.Lock()
	w.drop = func(p ike.Packet) bool {
		if p.Remote.Addr() == bAddr && len(p.Data) > 19 && p.Data[18] == 37 && p.Data[19]&0x20 == 0 {
			checks.Add(1)
		}
		return p.Local.Addr() == bAddr
	}
	w.mu.Unlock()
	// b's ESP keeps arriving for three DPD intervals, each of them long
	// enough for a check to be sent and to fail.
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); {
		in.Account(100)
		time.Sleep(100 * time.Millisecond)
	}
	if n := checks.Load(); n != 0 {
		t.Errorf("a sent %d liveness checks while b's ESP kept arriving, want 0", n)
	}
	if f := a.c.Engine().Stats().DPDFailures; f != 0 {
		t.Fatalf("a found b dead %d times while b's ESP kept arriving", f)
	}
	if sas, _ := a.d.IKESAs("t1"); len(sas) != 1 || sas[0].State != "ESTABLISHED" {
		t.Fatalf("a's IKE SAs while b's ESP kept arriving: %+v", sas)
	}
	// The ESP stops: a checks, hears nothing, and b is dead.
	testutil.WaitUntil(t, "a finds b dead once its ESP stopped", 10*time.Second, func() bool {
		return a.c.Engine().Stats().DPDFailures == 1
	})
	if checks.Load() == 0 {
		t.Error("b found dead without a liveness check")
	}
}
