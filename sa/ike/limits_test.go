package ike

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa/ike/iketest"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// responder is an engine under attack, driven synchronously: Input runs
// the engine's callbacks before it returns, so an answer is in out.
type responder struct {
	t   *testing.T
	e   *Engine
	now time.Time
	out []Packet
}

func newResponder(t *testing.T, cfg *Config, ps ...Policy) *responder {
	r := &responder{t: t, now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c.Logger = testLogger()
	c.Now = func() time.Time { return r.now }
	c.Send = func(p Packet) { r.out = append(r.out, p) }
	r.e = New(&c)
	if err := r.e.SetPolicies(ps); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *responder) roundTrip(src, dst netip.AddrPort, req []byte) []byte {
	r.out = r.out[:0]
	r.input(src, dst, req)
	for _, p := range r.out {
		if p.Remote == src {
			return p.Data
		}
	}
	return nil
}

func (r *responder) input(src, dst netip.AddrPort, b []byte) {
	r.e.Input(Packet{Local: dst, Remote: src, Data: b})
}

// respondOnly is a responder policy of tenant on local for any peer.
func respondOnly(tenant string, local netip.Addr) Policy {
	_, p := pskPair()
	p.Tenant, p.Local = tenant, local
	p.LocalTS = []netip.Prefix{netip.PrefixFrom(local, 32)}
	p.RemoteTS = []netip.Prefix{prefix("0.0.0.0/0")}
	return p
}

// attacker is a hostile initiator against r (iketest.Attacker) that fails
// the test on an error.
type attacker struct {
	t *testing.T
	a *iketest.Attacker
}

func newAttacker(t *testing.T, rt iketest.RoundTrip, frag bool) *attacker {
	return &attacker{t, iketest.NewAttacker(rt, DefaultIKEProposals[0], frag)}
}

func (a *attacker) open(src, dst netip.AddrPort) (*iketest.HalfOpen, iketest.Outcome) {
	a.t.Helper()
	h, o, err := a.a.Open(src, dst)
	if err != nil {
		a.t.Fatal(err)
	}
	return h, o
}

func ap(s string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(s), port)
}

// heldTotal is the reassembly memory of every IKE SA.
func heldTotal(e *Engine) int {
	n := 0
	for _, s := range e.sas {
		n += s.reasm.Held()
	}
	return n
}

func TestHalfOpenPerSource(t *testing.T) {
	r := newResponder(t, nil, respondOnly("acme", addrB))
	a := newAttacker(t, r.roundTrip, false)
	dst := netip.AddrPortFrom(addrB, 500)
	cookies := 0
	for i := range 40 {
		h, o := a.open(ap("198.51.100.7", uint16(1000+i)), dst)
		if o == iketest.Answered && h.Cookie {
			cookies++
		}
	}
	if r.e.nHalf != 32 {
		t.Fatalf("%d half-open IKE SAs from one source, want the limit 32", r.e.nHalf)
	}
	if cookies == 0 {
		t.Error("a source with many half-open IKE SAs was never asked for a cookie")
	}
	if d := r.e.Stats().Drops[LimitHalfOpenSource]; d != 8 {
		t.Errorf("%d drops counted for half_open_per_source, want 8", d)
	}
	// Another source is answered; so is the first once its SAs time out.
	if _, o := a.open(ap("198.51.100.8", 500), dst); o != iketest.Answered {
		t.Fatalf("another source: outcome %v", o)
	}
	r.now = r.now.Add(31 * time.Second)
	r.e.tick()
	if r.e.nHalf != 0 || len(r.e.halfBySource) != 0 || len(r.e.halfByTenant) != 0 {
		t.Fatalf("after the timeout: %d half-open, by source %v, by tenant %v", r.e.nHalf, r.e.halfBySource, r.e.halfByTenant)
	}
	if _, o := a.open(ap("198.51.100.7", 999), dst); o != iketest.Answered {
		t.Fatalf("first source after the timeout: outcome %v", o)
	}
}

// TestHalfOpenPerTenant: one tenant's flood from many sources fills its
// share of the half-open table, not the table: another tenant's peer is
// answered throughout, without a cookie.
func TestHalfOpenPerTenant(t *testing.T) {
	globexAddr := netip.MustParseAddr("192.0.2.3")
	r := newResponder(t, &Config{MaxHalfOpen: 128}, respondOnly("acme", addrB), respondOnly("globex", globexAddr))
	if r.e.cfg.MaxHalfOpenPerTenant != 8 {
		t.Fatalf("default MaxHalfOpenPerTenant %d with MaxHalfOpen 128, want 8", r.e.cfg.MaxHalfOpenPerTenant)
	}
	a := newAttacker(t, r.roundTrip, false)
	peer := newAttacker(t, r.roundTrip, false)
	for i := range 160 {
		a.open(ap(fmt.Sprintf("198.51.100.%d", 10+i/2), uint16(500+i)), netip.AddrPortFrom(addrB, 500))
		if i%32 == 31 {
			h, o := peer.open(ap("203.0.113.5", uint16(600+i)), netip.AddrPortFrom(globexAddr, 500))
			if o != iketest.Answered || h.Cookie {
				t.Fatalf("after %d attempts on acme: globex's peer got outcome %v (cookie asked: %v)", i+1, o, o == iketest.Answered && h.Cookie)
			}
		}
	}
	st := r.e.Stats()
	if st.HalfOpenByTenant["acme"] != 8 || st.HalfOpenByTenant["globex"] != 5 {
		t.Fatalf("half-open by tenant %v, want acme 8 (its limit), globex 5", st.HalfOpenByTenant)
	}
	if st.Drops[LimitHalfOpenTenant] != 152 {
		t.Fatalf("%d drops counted for half_open_per_tenant, want 152", st.Drops[LimitHalfOpenTenant])
	}
}

// TestCookiePerTenant: cookies are asked for from the peers of the tenant
// whose half-open SAs reach the threshold, not from every tenant's.
func TestCookiePerTenant(t *testing.T) {
	globexAddr := netip.MustParseAddr("192.0.2.3")
	r := newResponder(t, &Config{HalfOpenCookieThreshold: 2}, respondOnly("acme", addrB), respondOnly("globex", globexAddr))
	a := newAttacker(t, r.roundTrip, false)
	for i := range 4 {
		h, o := a.open(ap(fmt.Sprintf("198.51.100.%d", 10+i), 500), netip.AddrPortFrom(addrB, 500))
		if o != iketest.Answered || h.Cookie != (i >= 2) {
			t.Fatalf("acme attempt %d: outcome %v, cookie asked %v; want a cookie from the third on", i, o, o == iketest.Answered && h.Cookie)
		}
	}
	h, o := a.open(ap("203.0.113.5", 500), netip.AddrPortFrom(globexAddr, 500))
	if o != iketest.Answered || h.Cookie {
		t.Fatalf("globex's peer: outcome %v, cookie asked %v; want answered without", o, o == iketest.Answered && h.Cookie)
	}
	if r.e.Stats().CookiesSent != 2 {
		t.Fatalf("%d cookies counted, want 2", r.e.Stats().CookiesSent)
	}
}

// TestFragmentsNeedNegotiation: an IKE SA whose IKE_SA_INIT did not
// negotiate RFC 7383 holds no fragments.
func TestFragmentsNeedNegotiation(t *testing.T) {
	r := newResponder(t, nil, respondOnly("acme", addrB))
	h, o := newAttacker(t, r.roundTrip, false).open(ap("198.51.100.7", 500), netip.AddrPortFrom(addrB, 500))
	if o != iketest.Answered {
		t.Fatalf("outcome %v", o)
	}
	for n := uint16(1); n < 4; n++ {
		r.input(h.Src, h.Dst, h.Fragment(wire.ExchangeIKEAuth, 1, n, 4, 1000))
	}
	s := r.e.sas[h.SPIr]
	if s.reasm.Pending() != 0 || s.reasm.Held() != 0 {
		t.Fatalf("fragments held without RFC 7383 negotiated: %d messages, %d bytes", s.reasm.Pending(), s.reasm.Held())
	}
	if d := r.e.Stats().Drops[LimitFragmentNotNegotiated]; d != 3 {
		t.Fatalf("%d drops counted for fragment_not_negotiated, want 3", d)
	}
}

// TestHalfOpenReassemblyBound: a half-open IKE SA reassembles only its
// IKE_AUTH request, within MaxReassembly.
func TestHalfOpenReassemblyBound(t *testing.T) {
	r := newResponder(t, nil, respondOnly("acme", addrB))
	h, o := newAttacker(t, r.roundTrip, true).open(ap("198.51.100.7", 500), netip.AddrPortFrom(addrB, 500))
	if o != iketest.Answered {
		t.Fatalf("outcome %v", o)
	}
	s := r.e.sas[h.SPIr]
	if !s.fragOK {
		t.Fatal("fragmentation not negotiated")
	}
	// 63 of 64 fragments of 1200 bytes: 75,600 bytes, above 64 KiB.
	for n := uint16(1); n < 64; n++ {
		r.input(h.Src, h.Dst, h.Fragment(wire.ExchangeIKEAuth, 1, n, 64, 1200))
	}
	if held := s.reasm.Held(); held > 64<<10+64*24 || held != r.e.Stats().ReassemblyBytes {
		t.Fatalf("half-open IKE SA holds %d bytes of fragments (engine counts %d), limit 64 KiB", held, r.e.Stats().ReassemblyBytes)
	}
	if r.e.Stats().Drops[LimitReassemblySA] == 0 {
		t.Fatal("no drop counted for reassembly_per_sa")
	}
	// Other exchanges are not taken before IKE_AUTH.
	r.input(h.Src, h.Dst, h.Fragment(wire.ExchangeInformational, 1, 1, 2, 100))
	r.input(h.Src, h.Dst, h.Fragment(wire.ExchangeCreateChildSA, 1, 1, 2, 100))
	if d := r.e.Stats().Drops[LimitHalfOpenExchange]; d != 2 {
		t.Fatalf("%d drops counted for half_open_exchange, want 2", d)
	}
	// The SA's timeout releases what it held.
	r.now = r.now.Add(31 * time.Second)
	r.e.tick()
	if st := r.e.Stats(); st.ReassemblyBytes != 0 || st.HalfOpen != 0 {
		t.Fatalf("after the half-open timeout: %d bytes held, %d half-open", st.ReassemblyBytes, st.HalfOpen)
	}
}

// TestReassemblyTotal: the reassembly of all IKE SAs together stays within
// MaxReassemblyTotal.
func TestReassemblyTotal(t *testing.T) {
	const limit = 200 << 10
	r := newResponder(t, &Config{MaxReassemblyTotal: limit}, respondOnly("acme", addrB))
	a := newAttacker(t, r.roundTrip, true)
	for i := range 10 {
		h, o := a.open(ap(fmt.Sprintf("198.51.100.%d", 10+i), 500), netip.AddrPortFrom(addrB, 500))
		if o != iketest.Answered {
			t.Fatalf("SA %d: outcome %v", i, o)
		}
		// 40 of 41 fragments of 1000 bytes: within the per-SA limit.
		for n := uint16(1); n <= 40; n++ {
			r.input(h.Src, h.Dst, h.Fragment(wire.ExchangeIKEAuth, 1, n, 41, 1000))
		}
	}
	st := r.e.Stats()
	if st.ReassemblyBytes > limit || st.ReassemblyBytes != heldTotal(r.e) {
		t.Fatalf("reassembly holds %d bytes (sum over SAs %d), limit %d", st.ReassemblyBytes, heldTotal(r.e), limit)
	}
	if st.Drops[LimitReassemblyTotal] == 0 {
		t.Fatal("no drop counted for reassembly_total")
	}
	r.now = r.now.Add(31 * time.Second)
	r.e.tick()
	if st := r.e.Stats(); st.ReassemblyBytes != 0 {
		t.Fatalf("after the half-open timeout: %d bytes held", st.ReassemblyBytes)
	}
}

// TestInitRequestSize: an IKE_SA_INIT request too large to keep is not
// answered.
func TestInitRequestSize(t *testing.T) {
	r := newResponder(t, nil, respondOnly("acme", addrB))
	a := newAttacker(t, func(src, dst netip.AddrPort, req []byte) []byte {
		m, err := wire.Parse(req)
		if err != nil {
			t.Fatal(err)
		}
		m.Payloads = append(m.Payloads, &wire.VendorID{Data: make([]byte, maxInitRequest)})
		return r.roundTrip(src, dst, m.Encode())
	}, false)
	if _, o := a.open(ap("198.51.100.7", 500), netip.AddrPortFrom(addrB, 500)); o != iketest.Dropped {
		t.Fatalf("outcome %v, want dropped", o)
	}
	if r.e.nHalf != 0 || r.e.Stats().Drops[LimitInitSize] != 1 {
		t.Fatalf("%d half-open, %d drops counted for init_request_size", r.e.nHalf, r.e.Stats().Drops[LimitInitSize])
	}
}
