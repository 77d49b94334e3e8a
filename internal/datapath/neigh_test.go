package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// Tests of neighbour resolution on a VM's behalf (neigh.go): the requests
// SendIKE sends, what it learns from the answers and what it does not.

// fakeClock is an engine clock that moves only when a test says.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var broadcastMAC = header.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpFrame builds an untagged Ethernet frame carrying an Ethernet/IPv4
// ARP message (RFC 826).
func arpFrame(ethDst, ethSrc header.MAC, op uint16, sha header.MAC, spa netip.Addr, tha header.MAC, tpa netip.Addr) []byte {
	f := make([]byte, ethLen+28)
	copy(f[0:], ethDst[:])
	copy(f[6:], ethSrc[:])
	binary.BigEndian.PutUint16(f[12:], etherARP)
	a := f[ethLen:]
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	s, t := spa.As4(), tpa.As4()
	copy(a[8:], sha[:])
	copy(a[14:], s[:])
	copy(a[18:], tha[:])
	copy(a[24:], t[:])
	return f
}

// refICMPv6Sum is the sum of the ICMPv6 message m with its pseudo-header:
// 0xffff when its checksum verifies.
func refICMPv6Sum(src, dst netip.Addr, m []byte) uint16 {
	a, b := src.As16(), dst.As16()
	ph := append(append([]byte(nil), a[:]...), b[:]...)
	ph = append(ph, 0, 0, byte(len(m)>>8), byte(len(m)), 0, 0, 0, 58)
	return refSum(ph, m)
}

// naOpts are the knobs of naFrame.
type naOpts struct {
	flags  byte        // R S O in the top bits
	hop    byte        // hop limit
	tlla   *header.MAC // target link-layer address option; nil: none
	badSum bool
	extra  []byte // more options, raw
}

// naFrame builds an untagged Ethernet frame carrying a Neighbor
// Advertisement (RFC 4861 §4.4) for target from src to dst.
func naFrame(ethDst, ethSrc header.MAC, src, dst, target netip.Addr, o naOpts) []byte {
	m := make([]byte, 24)
	m[0], m[4] = 136, o.flags
	t := target.As16()
	copy(m[8:], t[:])
	if o.tlla != nil {
		m = append(append(m, 2, 1), o.tlla[:]...)
	}
	m = append(m, o.extra...)
	c := ^refICMPv6Sum(src, dst, m)
	if o.badSum {
		c ^= 0x0101
	}
	binary.BigEndian.PutUint16(m[2:], c)
	f := make([]byte, ethLen+40, ethLen+40+len(m))
	copy(f[0:], ethDst[:])
	copy(f[6:], ethSrc[:])
	binary.BigEndian.PutUint16(f[12:], etherIPv6)
	ip := f[ethLen:]
	ip[0], ip[6], ip[7] = 0x60, 58, o.hop
	binary.BigEndian.PutUint16(ip[4:], uint16(len(m)))
	a, b := src.As16(), dst.As16()
	copy(ip[8:], a[:])
	copy(ip[24:], b[:])
	return append(f, m...)
}

// TestNeighborRequestFrames: with no next hop known, SendIKE sends an ARP
// request (IPv4) or a Neighbor Solicitation (IPv6) from the VM's MAC and
// address, tagged with its VLAN, and nothing else yet: every field is
// checked, the ICMPv6 checksum by the reference sum.
func TestNeighborRequestFrames(t *testing.T) {
	x := newIKEEngine(t, true)
	tagged := func(t *testing.T, fr []byte, et uint16) []byte {
		t.Helper()
		if binary.BigEndian.Uint16(fr[12:]) != etherVLAN || binary.BigEndian.Uint16(fr[14:]) != 100 || binary.BigEndian.Uint16(fr[16:]) != et {
			t.Fatalf("not 802.1Q VLAN 100 (PCP 0) EtherType %#x: %x", et, fr[:18])
		}
		return fr[18:]
	}
	send := func(local, remote netip.Addr) {
		t.Helper()
		if err := x.e.SendIKE(IKEPacket{Scope: x.scope, Local: netip.AddrPortFrom(local, 500), Remote: netip.AddrPortFrom(remote, 500),
			Data: []byte("IKE_SA_INIT")}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("ARP", func(t *testing.T) {
		send(x.v4, x.remote4)
		fr := recv(t, x.peer)
		if len(fr) != 18+28 || header.MAC(fr[0:6]) != broadcastMAC || header.MAC(fr[6:12]) != macB1 {
			t.Fatalf("Ethernet header or length (%d) wrong: %x", len(fr), fr)
		}
		a := tagged(t, fr, 0x0806)
		for _, c := range []struct {
			field     string
			got, want []byte
		}{
			{"htype", a[0:2], []byte{0, 1}},
			{"ptype", a[2:4], []byte{0x08, 0x00}},
			{"hlen, plen", a[4:6], []byte{6, 4}},
			{"oper", a[6:8], []byte{0, 1}},
			{"sha", a[8:14], macB1[:]},
			{"spa", a[14:18], x.v4.AsSlice()},
			{"tha", a[18:24], make([]byte, 6)},
			{"tpa", a[24:28], x.remote4.AsSlice()},
		} {
			if !bytes.Equal(c.got, c.want) {
				t.Errorf("%s: %x, want %x", c.field, c.got, c.want)
			}
		}
	})

	t.Run("NS", func(t *testing.T) {
		send(x.v6, x.remote6) // 2001:db8:1::121
		fr := recv(t, x.peer)
		if len(fr) != 18+40+32 || !bytes.Equal(fr[0:6], []byte{0x33, 0x33, 0xff, 0x00, 0x01, 0x21}) || header.MAC(fr[6:12]) != macB1 {
			t.Fatalf("Ethernet header or length (%d) wrong: %x", len(fr), fr)
		}
		ip := tagged(t, fr, 0x86dd)
		snm := netip.MustParseAddr("ff02::1:ff00:121")
		m := ip[40:]
		for _, c := range []struct {
			field     string
			got, want []byte
		}{
			{"version, class, flow", ip[0:4], []byte{0x60, 0, 0, 0}},
			{"payload length", ip[4:6], []byte{0, 32}},
			{"next header, hop limit", ip[6:8], []byte{58, 255}},
			{"source", ip[8:24], x.v6.AsSlice()},
			{"destination", ip[24:40], snm.AsSlice()},
			{"type, code", m[0:2], []byte{135, 0}},
			{"reserved", m[4:8], make([]byte, 4)},
			{"target", m[8:24], x.remote6.AsSlice()},
			{"option: source link-layer address, length 1", m[24:26], []byte{1, 1}},
			{"option: the VM's MAC", m[26:32], macB1[:]},
		} {
			if !bytes.Equal(c.got, c.want) {
				t.Errorf("%s: %x, want %x", c.field, c.got, c.want)
			}
		}
		if refICMPv6Sum(x.v6, snm, m) != 0xffff {
			t.Errorf("ICMPv6 checksum %#x does not verify", binary.BigEndian.Uint16(m[2:]))
		}
	})
	time.Sleep(20 * time.Millisecond)
	if n := len(x.up.Written()); n != 2 {
		t.Fatalf("%d frames on the wire, want the 2 requests (the datagrams wait)", n)
	}
	if st := x.e.Stats("acme"); st.NeighRequests.Load() != 2 || st.IKEOut.Load() != 0 {
		t.Fatalf("NeighRequests %d, IKEOut %d", st.NeighRequests.Load(), st.IKEOut.Load())
	}
}

// TestNeighborAnswerLearned: the answer to SendIKE's request teaches the
// next hop (ARP: the sender hardware address; NA: the target link-layer
// option, else the frame's source), sends the datagram that waited, and
// still reaches the guest; the next datagram leaves at once.
func TestNeighborAnswerLearned(t *testing.T) {
	answerMAC := header.MAC{2, 0, 0, 0, 0x20, 1}
	srcMAC := header.MAC{2, 0, 0, 0, 0x99, 1} // the answer frame's source, when it differs
	for _, tc := range []struct {
		name   string
		v6     bool
		answer func(x *ikeEngine) []byte
	}{
		{"ARP reply", false, func(x *ikeEngine) []byte {
			return arpFrame(macB1, srcMAC, 2, answerMAC, x.remote4, macB1, x.v4)
		}},
		{"NA with target link-layer address", true, func(x *ikeEngine) []byte {
			return naFrame(macB1, srcMAC, x.remote6, x.v6, x.remote6, naOpts{flags: 0x60, hop: 255, tlla: &answerMAC})
		}},
		{"NA without it", true, func(x *ikeEngine) []byte {
			return naFrame(macB1, answerMAC, x.remote6, x.v6, x.remote6, naOpts{flags: 0x40, hop: 255})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newIKEEngine(t, true)
			local, remote := netip.AddrPortFrom(x.v4, 500), netip.AddrPortFrom(x.remote4, 500)
			if tc.v6 {
				local, remote = netip.AddrPortFrom(x.v6, 4500), netip.AddrPortFrom(x.remote6, 4500)
			}
			send := func(msg string) {
				t.Helper()
				if err := x.e.SendIKE(IKEPacket{Scope: x.scope, Local: local, Remote: remote, Data: []byte(msg)}); err != nil {
					t.Fatal(err)
				}
			}
			send("first")
			recv(t, x.peer) // the request
			ans := tc.answer(x)
			x.up.Inject(ans, vif.Meta{VLAN: 100, Tagged: true})
			p := parseIKEFrame(t, recv(t, x.peer))
			if p.dst != answerMAC || p.src != macB1 || p.local != local || p.remote != remote || string(p.data) != "first" {
				t.Fatalf("waiting datagram sent as %+v, want to %v", p, answerMAC)
			}
			if got := recv(t, x.guest); !bytes.Equal(got, ans) {
				t.Fatalf("guest got %x, want the answer %x", got, ans)
			}
			send("second")
			if p := parseIKEFrame(t, recv(t, x.peer)); p.dst != answerMAC || string(p.data) != "second" {
				t.Fatalf("next datagram %+v", p)
			}
			st := x.e.Stats("acme")
			if st.NeighRequests.Load() != 1 || st.NeighLearned.Load() != 1 || st.IKEOut.Load() != 2 {
				t.Fatalf("NeighRequests %d, NeighLearned %d, IKEOut %d", st.NeighRequests.Load(), st.NeighLearned.Load(), st.IKEOut.Load())
			}
		})
	}
}

// TestNeighborAnswerNotLearned: nothing but the answer a host would accept
// to what SendIKE asked teaches a next hop — not an answer about another
// address, to another MAC or address, a request, a gratuitous broadcast, a
// malformed or unsolicited NA, an answer after the request went stale, or
// any answer when nothing was asked. Every one still reaches the guest
// but the NA with an option of length 0, which the data path drops as a
// host would (RFC 4861 §7.1.2).
func TestNeighborAnswerNotLearned(t *testing.T) {
	x := newIKEEngine(t, true)
	for _, r := range []netip.Addr{x.remote4, x.remote6} {
		if err := x.e.SendIKE(IKEPacket{Scope: x.scope, Local: netip.AddrPortFrom(map[bool]netip.Addr{true: x.v4, false: x.v6}[r.Is4()], 500),
			Remote: netip.AddrPortFrom(r, 500), Data: []byte("waits")}); err != nil {
			t.Fatal(err)
		}
		recv(t, x.peer)
	}
	other4, other6 := netip.MustParseAddr("192.0.2.77"), netip.MustParseAddr("2001:db8:1::77")
	notVM4, notVM6 := netip.MustParseAddr("192.0.2.99"), netip.MustParseAddr("2001:db8:1::99")
	mac := header.MAC{2, 0, 0, 0, 0x66, 6}
	mcast := header.MAC{1, 0, 0x5e, 0, 0, 1}
	na := func(o naOpts) naOpts {
		if o.hop == 0 {
			o.hop = 255
		}
		if o.flags == 0 {
			o.flags = 0x40
		}
		return o
	}
	for _, tc := range []struct {
		name    string
		frame   []byte
		dropped bool
	}{
		{"ARP reply about an address not asked for", arpFrame(macB1, mac, 2, mac, other4, macB1, x.v4), false},
		{"ARP reply to another MAC", arpFrame(macB1, mac, 2, mac, x.remote4, macA1, x.v4), false},
		{"ARP reply to an address not the VM's", arpFrame(macB1, mac, 2, mac, x.remote4, macB1, notVM4), false},
		{"ARP request from the peer", arpFrame(macB1, mac, 1, mac, x.remote4, macB1, x.v4), false},
		{"ARP reply with a multicast sender", arpFrame(macB1, mac, 2, mcast, x.remote4, macB1, x.v4), false},
		{"gratuitous ARP (broadcast)", arpFrame(broadcastMAC, mac, 2, mac, x.remote4, broadcastMAC, x.remote4), false},
		{"NA about an address not asked for", naFrame(macB1, mac, x.remote6, x.v6, other6, na(naOpts{tlla: &mac})), false},
		{"NA to an address not the VM's", naFrame(macB1, mac, x.remote6, notVM6, x.remote6, na(naOpts{tlla: &mac})), false},
		{"NA not solicited", naFrame(macB1, mac, x.remote6, x.v6, x.remote6, na(naOpts{flags: 0x20, tlla: &mac})), false},
		{"NA with hop limit 64", naFrame(macB1, mac, x.remote6, x.v6, x.remote6, na(naOpts{hop: 64, tlla: &mac})), false},
		{"NA with a bad checksum", naFrame(macB1, mac, x.remote6, x.v6, x.remote6, na(naOpts{badSum: true, tlla: &mac})), false},
		{"NA with an option of length 0", naFrame(macB1, mac, x.remote6, x.v6, x.remote6, na(naOpts{tlla: &mac, extra: []byte{5, 0, 0, 0, 0, 0, 0, 0}})), true},
		{"NA with a multicast target link-layer address", naFrame(macB1, mac, x.remote6, x.v6, x.remote6, na(naOpts{tlla: &mcast})), false},
	} {
		x.up.Inject(tc.frame, vif.Meta{VLAN: 100, Tagged: true})
		if tc.dropped {
			testutil.WaitUntil(t, tc.name+" dropped", 2*time.Second, func() bool { return x.e.Stats("acme").Drops[drop.BadNeighbor].Load() == 1 })
		} else if got := recv(t, x.guest); !bytes.Equal(got, tc.frame) {
			t.Fatalf("%s: guest got %x", tc.name, got)
		}
		for _, a := range []netip.Addr{x.remote4, x.remote6, other4, other6} {
			if m, ok := x.e.ikeNeigh.lookup(ikeNeighKey{x.scope, a}, x.clock.now()); ok {
				t.Fatalf("%s: learned %v for %v", tc.name, m, a)
			}
		}
	}
	// Stale: the right answer, 4 s after the request.
	x.clock.advance(neighPendingTTL + time.Second)
	good := arpFrame(macB1, mac, 2, mac, x.remote4, macB1, x.v4)
	x.up.Inject(good, vif.Meta{VLAN: 100, Tagged: true})
	recv(t, x.guest)
	if _, ok := x.e.ikeNeigh.lookup(ikeNeighKey{x.scope, x.remote4}, x.clock.now()); ok {
		t.Fatal("learned from an answer to a stale request")
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(x.up.Written()); n != 2 {
		t.Fatalf("%d frames on the wire, want only the 2 requests", n)
	}
	if n := x.e.Stats("acme").NeighLearned.Load(); n != 0 {
		t.Fatalf("NeighLearned %d", n)
	}

	// Nothing asked: the right answer teaches nothing.
	y := newIKEEngine(t, true)
	y.up.Inject(good, vif.Meta{VLAN: 100, Tagged: true})
	recv(t, y.guest)
	if _, ok := y.e.ikeNeigh.lookup(ikeNeighKey{y.scope, y.remote4}, y.clock.now()); ok {
		t.Fatal("learned from an unsolicited reply")
	}
}

// TestNeighborRateLimitAndQueue: one request per second per (VM,
// address); the newest datagram waits (a keepalive does not displace an
// IKE message) and is the one sent on the answer; a datagram older than
// neighPendingTTL is dropped; learned next hops expire after neighTTL
// unless the peer's IKE refreshes them.
func TestNeighborRateLimitAndQueue(t *testing.T) {
	x := newIKEEngine(t, true)
	requests := func() int {
		time.Sleep(5 * time.Millisecond)
		n := 0
		for _, f := range x.up.Written() {
			if et := binary.BigEndian.Uint16(f.Data[16:]); et == etherARP || et == etherIPv6 && f.Data[18+6] == 58 {
				n++
			}
		}
		return n
	}
	send := func(remote netip.Addr, msg string) {
		t.Helper()
		local := x.v4
		if remote.Is6() {
			local = x.v6
		}
		if err := x.e.SendIKE(IKEPacket{Scope: x.scope, Local: netip.AddrPortFrom(local, 500), Remote: netip.AddrPortFrom(remote, 500),
			Data: []byte(msg)}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(what string, n int) {
		t.Helper()
		if got := requests(); got != n {
			t.Fatalf("%s: %d requests, want %d", what, got, n)
		}
	}
	send(x.remote4, "m1")
	send(x.remote4, "m2")
	send(x.remote4, "m3")
	want("three at once", 1)
	x.clock.advance(500 * time.Millisecond)
	send(x.remote4, "m4")
	want("half a second later", 1)
	x.clock.advance(500 * time.Millisecond)
	send(x.remote4, "m5")
	want("a second later", 2)
	if err := x.e.SendNATKeepalive("acme", x.scope, netip.AddrPortFrom(x.v4, 4500), netip.AddrPortFrom(x.remote4, 4500)); err != nil {
		t.Fatal(err)
	}
	want("a keepalive within the second", 2)
	send(x.remote6, "other address")
	want("another address", 3)

	// The answer sends m5 (not m1..m4, not the keepalive) and nothing else.
	for range 3 {
		recv(t, x.peer) // the requests
	}
	x.up.Inject(arpFrame(macB1, peerMAC, 2, peerMAC, x.remote4, macB1, x.v4), vif.Meta{VLAN: 100, Tagged: true})
	if p := parseIKEFrame(t, recv(t, x.peer)); string(p.data) != "m5" || p.dst != peerMAC {
		t.Fatalf("sent %q to %v, want m5 to %v", p.data, p.dst, peerMAC)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(x.up.Written()); n != 4 {
		t.Fatalf("%d frames on the wire, want 3 requests and m5", n)
	}

	// A datagram that waited too long is dropped, and a late answer
	// teaches nothing; the next datagram asks again.
	x.clock.advance(neighRetry)
	send(x.remote6, "stale")
	want("the IPv6 peer asked again", 4)
	recv(t, x.peer)
	x.clock.advance(neighPendingTTL + time.Millisecond)
	na := naFrame(macB1, peerMAC, x.remote6, x.v6, x.remote6, naOpts{flags: 0x40, hop: 255, tlla: &peerMAC})
	x.up.Inject(na, vif.Meta{VLAN: 100, Tagged: true})
	recv(t, x.guest)
	time.Sleep(20 * time.Millisecond)
	if n := len(x.up.Written()); n != 5 {
		t.Fatalf("%d frames on the wire: a stale datagram or answer was used", n)
	}
	send(x.remote6, "fresh")
	want("after the stale one", 5)
	recv(t, x.peer)
	x.up.Inject(na, vif.Meta{VLAN: 100, Tagged: true})
	if p := parseIKEFrame(t, recv(t, x.peer)); string(p.data) != "fresh" {
		t.Fatalf("sent %q, want fresh", p.data)
	}

	// Expiry: the IPv4 peer's entry is refreshed by its IKE at 4 min and
	// still used at 6; 5 min after that it is gone and SendIKE asks.
	x.clock.advance(4 * time.Minute)
	x.up.Inject(udpFrame(macB1, peerMAC, x.remote4, x.v4, 500, 500, []byte{1, 2, 3, 4, 5, 6, 7, 8}), vif.Meta{VLAN: 100, Tagged: true})
	x.handled(t)
	x.clock.advance(2 * time.Minute)
	send(x.remote4, "still known")
	if p := parseIKEFrame(t, recv(t, x.peer)); string(p.data) != "still known" {
		t.Fatalf("sent %q", p.data)
	}
	want("refreshed entry", 5)
	x.clock.advance(neighTTL + time.Second)
	send(x.remote4, "expired")
	want("expired entry", 6)
}

// TestNeighborTables: both tables stay within their bounds; with
// maxNeighPending addresses being resolved, SendIKE's miss fails with
// ErrNoNeighbor until stale ones go.
func TestNeighborTables(t *testing.T) {
	var n ikeNeighbors
	now := time.Now()
	key := func(i int) ikeNeighKey {
		return ikeNeighKey{sa.Scope{VLAN: 1, MAC: macA1}, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
	}
	for i := range maxNeighPending {
		if ask, err := n.miss(key(i), nil, now); !ask || err != nil {
			t.Fatalf("miss %d: ask %v, %v", i, ask, err)
		}
	}
	if _, err := n.miss(key(-1), nil, now); !errors.Is(err, ErrNoNeighbor) {
		t.Fatalf("miss with a full table: %v, want ErrNoNeighbor", err)
	}
	now = now.Add(neighPendingTTL + time.Second)
	if ask, err := n.miss(key(-1), nil, now); !ask || err != nil || n.npending.Load() != 1 {
		t.Fatalf("miss once the others went stale: ask %v, %v, %d pending", ask, err, n.npending.Load())
	}
	for i := range maxIKENeighbors + 100 {
		n.learn(key(i), macB1, now)
		if len(n.m) > maxIKENeighbors {
			t.Fatalf("%d learned entries", len(n.m))
		}
	}
	// Expired entries go first.
	later := now.Add(neighTTL + time.Second)
	n.learn(key(1<<20), macB1, later)
	if len(n.m) != 1 {
		t.Fatalf("%d entries after expiry, want 1", len(n.m))
	}

	// A datagram waits neighPendingTTL at most, even while a keepalive
	// (which does not displace it) keeps the request going.
	k, t0 := key(7), later
	ike := &queuedUDP{marker: true, at: t0}
	if ask, _ := n.miss(k, ike, t0); !ask {
		t.Fatal("no request")
	}
	if ask, _ := n.miss(k, &queuedUDP{at: t0.Add(1500 * time.Millisecond)}, t0.Add(1500*time.Millisecond)); !ask || n.pending[k].queued != ike {
		t.Fatalf("keepalive 1.5 s later: ask %v, queued %+v", ask, n.pending[k].queued)
	}
	if q, learned := n.learnIfPending(k, macB1, t0.Add(3500*time.Millisecond)); !learned || q != nil {
		t.Fatalf("answer 3.5 s after the datagram: learned %v, sends %+v", learned, q)
	}
	// Through the punt path too (which learns without a request).
	k = key(8)
	_, _ = n.miss(k, ike, t0)
	if q := n.learn(k, macB1, t0.Add(neighPendingTTL+time.Millisecond)); q != nil {
		t.Fatal("punt sent a datagram that waited too long")
	}
	_, _ = n.miss(k, ike, t0)
	if q := n.learn(k, macB1, t0.Add(time.Millisecond)); q != ike {
		t.Fatal("punt did not send the waiting datagram")
	}
}

// snoopBench is an uplink worker in front of one VM whose IKE the
// gateway runs (192.0.2.2, 2001:db8:1::122 on VLAN 100), with frames from
// the wire: ordinary UDP of both families, and ARP and ND frames that
// answer nothing SendIKE asked.
type snoopBench struct {
	e      *Engine
	vm     *vmState
	sink   *viftest.Sink
	w      *worker
	frames [][]byte
}

func newSnoopBench() *snoopBench {
	v4, v6 := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8:1::122")
	r4, r6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:1::121")
	x := &snoopBench{e: New(sa.NewDB(0), nil), sink: viftest.NewSink("vifB")}
	now := time.Now()
	x.e.now = func() time.Time { return now }
	x.vm = &vmState{name: "acme", port: &txPort{Port: x.sink}, mac: macB1, vlan: 100, ips: []netip.Addr{v4, v6}, def: tenant.ActionNone,
		spd: tenant.Compile(nil), stats: new(VMStats), ike: true, icmp: pmtu.NewRateLimiter(1, 1)}
	snap := newSnapshot()
	snap.byKey[vmKey{100, macB1}] = x.vm
	snap.byPort[x.sink] = x.vm
	x.e.snap.Store(snap)
	x.e.setConfig(func(c *config) { c.uplink = &txPort{Port: viftest.NewSink("up")} })
	x.w = newTestWorker(x.e, &txPort{Port: viftest.NewSink("upw")}, true)
	mac := header.MAC{2, 0, 0, 0, 0x66, 6}
	x.frames = [][]byte{
		udpFrame(macB1, peerMAC, r4, v4, 3000, 4000, make([]byte, 200)),
		udpFrame(macB1, peerMAC, r6, v6, 3000, 4000, make([]byte, 200)),
		arpFrame(macB1, mac, 2, mac, netip.MustParseAddr("192.0.2.77"), macB1, v4),
		arpFrame(macB1, mac, 1, mac, r4, macB1, v4),
		naFrame(macB1, mac, r6, v6, netip.MustParseAddr("2001:db8:1::77"), naOpts{flags: 0x40, hop: 255, tlla: &mac}),
		naFrame(macB1, mac, r6, v6, r6, naOpts{flags: 0x40, hop: 255, tlla: &mac, badSum: true}),
	}
	return x
}

// resolving makes SendIKE's table wait for both peers.
func (x *snoopBench) resolving() {
	now := x.e.now()
	for _, a := range []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:1::121")} {
		_, _ = x.e.ikeNeigh.miss(keyOf(x.vm, a), nil, now)
	}
}

// run hands frames[i] (frame, frame, ...) to the worker as one batch and
// reports how many reached the VM.
func (x *snoopBench) run(frames [][]byte) int {
	for i, f := range frames {
		x.w.sizes[i] = copy(x.w.bufs[i][readOff:], f)
		x.w.meta[i] = vif.Meta{VLAN: 100, Tagged: true}
	}
	before := x.sink.Frames
	x.w.batch(len(frames))
	return x.sink.Frames - before
}

// TestNeighborSnoopAllocs: while SendIKE resolves addresses, the uplink
// path allocates nothing for ordinary frames of either family, nor for
// ARP and ND frames that answer nothing asked, and all of them reach the
// guest.
func TestNeighborSnoopAllocs(t *testing.T) {
	x := newSnoopBench()
	x.resolving()
	allocs := testing.AllocsPerRun(50, func() {
		if n := x.run(x.frames); n != len(x.frames) {
			t.Fatalf("guest got %d frames, want %d", n, len(x.frames))
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
	if x.e.ikeNeigh.npending.Load() != 2 || len(x.e.ikeNeigh.m) != 0 {
		t.Fatalf("%d pending, %d learned", x.e.ikeNeigh.npending.Load(), len(x.e.ikeNeigh.m))
	}
}

// BenchmarkNeighborSnoop: the uplink path's cost per frame for a VM whose
// IKE the gateway runs, with and without addresses being resolved: IPv6
// UDP (looked at for an NA only while resolving) and an NA that answers
// nothing asked (parsed, checksummed).
func BenchmarkNeighborSnoop(b *testing.B) {
	for _, kind := range []struct {
		name  string
		frame int
	}{{"udp6", 1}, {"na-other", 4}} {
		for _, resolving := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/resolving=%v", kind.name, resolving), func(b *testing.B) {
				x := newSnoopBench()
				if resolving {
					x.resolving()
				}
				batch := make([][]byte, vif.MaxBatch)
				for i := range batch {
					batch[i] = x.frames[kind.frame]
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(batch[0])))
				b.ResetTimer()
				for i := 0; i < b.N; i += len(batch) {
					x.run(batch)
				}
			})
		}
	}
}

// FuzzNeighborAnswer: the answer parsers read any bytes without panicking,
// and what they accept names a unicast MAC and an address of the right
// family.
func FuzzNeighborAnswer(f *testing.F) {
	v4, v6 := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8:1::122")
	r4, r6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:1::121")
	f.Add(arpFrame(macB1, peerMAC, 2, peerMAC, r4, macB1, v4))
	f.Add(naFrame(macB1, peerMAC, r6, v6, r6, naOpts{flags: 0x60, hop: 255, tlla: &peerMAC}))
	f.Add(naFrame(macB1, peerMAC, r6, v6, r6, naOpts{flags: 0x40, hop: 255, extra: []byte{1, 1, 2, 0, 0, 0, 0, 9, 14, 2}}))
	f.Add([]byte{})
	vm := &vmState{mac: macB1, vlan: 100, ips: []netip.Addr{v4, v6}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, m, ok := parseARPReply(vm, b); ok && (!a.Is4() || !unicastMAC(m[:])) {
			t.Fatalf("ARP: %v %v", a, m)
		}
		if a, m, ok := parseNeighborAdvert(vm, b); ok && (!a.Is6() || a.IsMulticast() || !unicastMAC(m[:])) {
			t.Fatalf("NA: %v %v", a, m)
		}
	})
}
