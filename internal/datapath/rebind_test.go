package datapath

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/vif"
)

// TestESPInUDPPeerMoved: ESP in UDP that authenticates (ICV verified,
// inside the replay window) from another address and port than its SA's
// peer — a NAT that rebound — is reported on the SA's event channel
// (sa.EventPeerMoved, where from) and delivered. A replay of it, or a
// forgery, from yet another endpoint moves nothing; nor does ESP from the
// peer itself.
func TestESPInUDPPeerMoved(t *testing.T) {
	_, b := natGateways(t, sa.ModeTunnel, false, true)
	out, _ := natSAs(t, macA1, sa.ModeTunnel, true, 0x1000, 0x2000, satest.V4GwA, satest.V4GwB)
	var sc sa.Scratch
	// seal returns A's next ESP-in-UDP frame to B, as a NAT in front of
	// A passes it on from "from".
	seal := func(from netip.AddrPort) []byte {
		f := frame(macB1, peerMAC, satest.V4A, satest.V4B, 100)
		buf := make([]byte, readOff+len(f)+esp.MaxPrefix+esp.Tailroom)
		copy(buf[readOff+esp.MaxPrefix:], f)
		off := readOff + esp.MaxPrefix
		st, en, d := esp.Encap(out, &sc, buf, off+ethLen, len(f)-ethLen)
		if d != drop.None {
			t.Fatal(d)
		}
		copy(buf[st-ethLen:], f[:ethLen])
		fr := buf[st-ethLen : en]
		ip := fr[ethLen:]
		a4 := from.Addr().As4()
		copy(ip[12:16], a4[:])
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^refSum(ip[:20]))
		binary.BigEndian.PutUint16(ip[20:], from.Port())
		return fr
	}
	tagged := vif.Meta{VLAN: 100, Tagged: true}
	in := b.db.Lookup(sa.Key{Scope: sa.Scope{VLAN: 100, MAC: macB1}, SPI: 0x1000})
	st := b.e.Stats("acme")
	events := func() []sa.Event {
		var evs []sa.Event
		for {
			select {
			case ev := <-b.db.Events():
				evs = append(evs, ev)
			default:
				return evs
			}
		}
	}

	// From the peer itself: delivered, nothing reported.
	b.uplink.Inject(seal(netip.AddrPortFrom(satest.V4GwA, 4500)), tagged)
	recv(t, b.guests["acme"])
	if evs := events(); len(evs) != 0 {
		t.Fatalf("ESP from the SA's peer reported: %+v", evs)
	}
	// The NAT rebinds: from a new address and port, authenticated.
	moved := netip.MustParseAddrPort("198.51.100.77:41000")
	fr := seal(moved)
	replay := append([]byte(nil), fr...)
	b.uplink.Inject(fr, tagged)
	recv(t, b.guests["acme"])
	testutil.WaitUntil(t, "the move reported", 2*time.Second, func() bool { return len(b.db.Events()) > 0 })
	if evs := events(); len(evs) != 1 || evs[0].Kind != sa.EventPeerMoved || evs[0].Peer != moved || evs[0].Name != in.Name() {
		t.Fatalf("after authenticated ESP from %v: events %+v, want one peer-moved from there for %s", moved, evs, in.Name())
	}
	// A replay of that packet, and a forgery, from elsewhere: dropped,
	// nothing reported.
	elsewhere := netip.MustParseAddrPort("203.0.113.5:42000")
	binary.BigEndian.PutUint16(replay[ethLen+20:], elsewhere.Port())
	forged := seal(elsewhere)
	forged[len(forged)-1] ^= 1 // the ICV's last bit
	b.uplink.Inject(replay, tagged)
	b.uplink.Inject(forged, tagged)
	testutil.WaitUntil(t, "the replay and the forgery dropped", 2*time.Second, func() bool {
		return st.Drops[drop.Replay].Load() == 1 && st.Drops[drop.AuthFailed].Load() == 1
	})
	if evs := events(); len(evs) != 0 {
		t.Fatalf("unauthenticated ESP moved the peer: %+v", evs)
	}
}
