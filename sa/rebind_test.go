package sa_test

import (
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

// TestNotePeer: an inbound ESP-in-UDP SA reports an authenticated packet
// from another endpoint than its peer once per new endpoint
// (EventPeerMoved), nothing for its peer's, and nothing again after
// Rebind moved it there; without allocating on the usual path.
func TestNotePeer(t *testing.T) {
	db := sa.NewDB(16)
	peer := netip.MustParseAddrPort("203.0.113.1:40001")
	c := satest.Config("in", satest.Suites()[0], sa.ModeTunnel, peer.Addr(), netip.MustParseAddr("192.0.2.10"), 0x1234)
	c.Dir, c.Encap = sa.DirIn, &sa.UDPEncap{SrcPort: 40001, DstPort: 4500}
	s := satest.MustNew(c)
	if err := db.Add(s); err != nil {
		t.Fatal(err)
	}
	events := func() []sa.Event {
		var out []sa.Event
		for {
			select {
			case ev := <-db.Events():
				out = append(out, ev)
			default:
				return out
			}
		}
	}
	s.NotePeer(peer)
	if ev := events(); len(ev) != 0 {
		t.Fatalf("events for the peer's own endpoint: %+v", ev)
	}
	if n := testing.AllocsPerRun(100, func() { s.NotePeer(peer) }); n != 0 {
		t.Errorf("NotePeer of the peer allocates %v", n)
	}
	moved := netip.MustParseAddrPort("203.0.113.1:41000")
	s.NotePeer(moved)
	s.NotePeer(moved)
	ev := events()
	if len(ev) != 1 || ev[0].Kind != sa.EventPeerMoved || ev[0].Peer != moved || ev[0].Name != "in" || ev[0].Key != s.Key() {
		t.Fatalf("events after two packets from %v: %+v, want one peer-moved", moved, ev)
	}
	if err := s.Rebind(moved); err != nil {
		t.Fatal(err)
	}
	s.NotePeer(moved)
	if ev := events(); len(ev) != 0 {
		t.Fatalf("events from the peer after Rebind: %+v", ev)
	}
	// Back at the first endpoint: reported again.
	s.NotePeer(peer)
	if ev := events(); len(ev) != 1 || ev[0].Peer != peer {
		t.Fatalf("events after a move back: %+v", ev)
	}
	// An outbound SA, or one without UDP, reports nothing.
	c2 := c
	c2.Name, c2.SPI, c2.Encap = "plain", 0x1235, nil
	p := satest.MustNew(c2)
	if err := db.Add(p); err != nil {
		t.Fatal(err)
	}
	p.NotePeer(moved)
	if ev := events(); len(ev) != 0 {
		t.Fatalf("an SA without UDP encapsulation reported %+v", ev)
	}
}
