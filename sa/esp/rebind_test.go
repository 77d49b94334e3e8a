package esp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

// TestRebindOutbound: after Rebind an outbound ESP-in-UDP SA sends to the
// new port and, in tunnel mode, the new address, with the sequence
// numbers going on; the receiver's SA, rebound too, still decrypts. A
// rebind to the other family, or of an SA without UDP, is refused.
func TestRebindOutbound(t *testing.T) {
	for _, mode := range []sa.Mode{sa.ModeTransport, sa.ModeTunnel} {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/v6=%v", mode, v6), func(t *testing.T) {
				p := natPair(t, natSuites[0], mode, v6)
				var sc sa.Scratch
				send := func() []byte {
					buf := make([]byte, Headroom+1500+Tailroom)
					s, d := inner(v6)
					n := satest.UDP(buf, Headroom, s, d, 1000, 2000, 100)
					st, en, dr := Encap(p.out, &sc, buf, Headroom, n)
					if dr != drop.None {
						t.Fatalf("Encap: %v", dr)
					}
					return buf[st:en]
				}
				before := send()
				oldDst := dstOf(before)
				to := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.77"), 41000)
				if v6 {
					to = netip.AddrPortFrom(netip.MustParseAddr("2001:db8:77::1"), 41000)
				}
				if err := p.out.Rebind(to); err != nil {
					t.Fatal(err)
				}
				if err := p.in.Rebind(to); err != nil {
					t.Fatal(err)
				}
				after := send()
				h := ipHdrLen(after)
				if got := binary.BigEndian.Uint16(after[h+2:]); got != 41000 {
					t.Errorf("UDP destination port %d after Rebind, want 41000", got)
				}
				if got := binary.BigEndian.Uint16(after[h:]); got != 31337 {
					t.Errorf("UDP source port %d after Rebind, want 31337 (ours is unchanged)", got)
				}
				wantDst := oldDst // transport: the packet's own header
				if mode == sa.ModeTunnel {
					wantDst = to.Addr()
				}
				if got := dstOf(after); got != wantDst {
					t.Errorf("outer destination %v after Rebind, want %v", got, wantDst)
				}
				if s0, s1 := binary.BigEndian.Uint32(before[h+8+4:]), binary.BigEndian.Uint32(after[h+8+4:]); s1 != s0+1 {
					t.Errorf("sequence numbers %d then %d across Rebind", s0, s1)
				}
				// The receiver's NAT maps the packet back to its port 4500.
				binary.BigEndian.PutUint16(after[h+2:], NATTPort)
				if _, dr := decapCopy(p.in, &sc, after); dr != drop.None {
					t.Errorf("Decap after Rebind: %v", dr)
				}
				if got, _ := p.in.Peer(); got != to {
					t.Errorf("inbound peer %v, want %v", got, to)
				}
				other := netip.MustParseAddrPort("[2001:db8::9]:4500")
				if v6 {
					other = netip.MustParseAddrPort("192.0.2.9:4500")
				}
				if err := p.out.Rebind(other); err == nil {
					t.Errorf("Rebind to %v (the other family) accepted", other)
				}
			})
		}
	}
	plain := newPair(t, natSuites[0], sa.ModeTunnel, false, false)
	if err := plain.out.Rebind(netip.MustParseAddrPort("192.0.2.9:4500")); err == nil {
		t.Error("Rebind of an SA without UDP encapsulation accepted")
	}
}

func dstOf(pkt []byte) netip.Addr {
	if pkt[0]>>4 == 6 {
		return header.IPv6(pkt).Dst()
	}
	return header.IPv4(pkt).Dst()
}
