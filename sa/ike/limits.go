package ike

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Limits on what an unauthenticated or hostile peer can make the
// responder hold (RFC 7296 §2.6, RFC 7383 §2.6.1):
//
//  1. Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not done) are
//     counted per source address, per tenant and in all. A source at its
//     limit, a tenant at its limit (the tenants of the policies that could
//     answer; a request goes on with the others) or the engine at its
//     limit gets no answer. Cookies (cookie.go) are asked for once a
//     tenant has HalfOpenCookieThreshold half-open SAs, a source half its
//     limit, or the engine half of MaxHalfOpen: a spoofed flood then makes
//     no state, and one tenant's flood does not make the others' peers pay
//     the cookie round trip. Sources are compared without the port, IPv4
//     in IPv6 unmapped.
//  2. An IKE_SA_INIT request larger than maxInitRequest is dropped: a
//     half-open SA keeps the request until IKE_AUTH (it is signed there).
//  3. Fragments (SKF) are taken only on an IKE SA that negotiated
//     IKEV2_FRAGMENTATION_SUPPORTED in its completed IKE_SA_INIT, and on a
//     half-open SA only as the IKE_AUTH request (Message ID 1); other
//     messages there are dropped before decryption.
//  4. Reassembly holds at most MaxReassembly bytes per message, one
//     message while half-open and two (one request, one response, the
//     windows of one) once established, and MaxReassemblyTotal bytes over
//     all IKE SAs (Reassembler.Held: content plus bookkeeping). A fragment
//     beyond is dropped.
//
// Each refusal is counted by Reason (Engine.Stats).

// maxInitRequest bounds an IKE_SA_INIT request the responder answers, in
// bytes (strongSwan's default charon.max_packet is 10000).
const maxInitRequest = 10000

// reassemblySweep is the least time between two sweeps of expired
// reassemblies over all IKE SAs, made when the total budget is exhausted.
const reassemblySweep = time.Second

// Limit names a limit that made the engine drop a datagram or a fragment.
// The zero value is invalid.
type Limit uint8

const (
	LimitInvalid               Limit = iota
	LimitHalfOpenSource              // half-open IKE SAs of one source address (MaxHalfOpenPerSource)
	LimitHalfOpenTenant              // half-open IKE SAs of a tenant (MaxHalfOpenPerTenant)
	LimitHalfOpenTotal               // half-open IKE SAs in all (MaxHalfOpen)
	LimitInitSize                    // IKE_SA_INIT request above maxInitRequest bytes
	LimitFragmentNotNegotiated       // SKF on an IKE SA without RFC 7383 support negotiated
	LimitHalfOpenExchange            // a message other than IKE_AUTH on a half-open IKE SA
	LimitReassemblySA                // fragment above the per-IKE-SA reassembly limit (MaxReassembly)
	LimitReassemblyTotal             // fragment above the engine's reassembly budget (MaxReassemblyTotal)
	NumLimits
)

// String returns the limit's name as in metrics labels.
func (l Limit) String() string {
	switch l {
	case LimitHalfOpenSource:
		return "half_open_per_source"
	case LimitHalfOpenTenant:
		return "half_open_per_tenant"
	case LimitHalfOpenTotal:
		return "half_open_total"
	case LimitInitSize:
		return "init_request_size"
	case LimitFragmentNotNegotiated:
		return "fragment_not_negotiated"
	case LimitHalfOpenExchange:
		return "half_open_exchange"
	case LimitReassemblySA:
		return "reassembly_per_sa"
	case LimitReassemblyTotal:
		return "reassembly_total"
	}
	return fmt.Sprintf("Limit(%d)", uint8(l))
}

// Stats is a snapshot of the engine's exhaustion limits.
type Stats struct {
	HalfOpen         int            // half-open IKE SAs
	HalfOpenByTenant map[string]int // charged to each tenant that could answer them
	ReassemblyBytes  int            // held by fragment reassembly, all IKE SAs
	CookiesSent      uint64         // IKE_SA_INIT requests answered with a COOKIE
	// Drops counts datagrams (or fragments) dropped, by the limit that
	// refused them; index LimitInvalid is unused.
	Drops [NumLimits]uint64
	// Failures counts failed IKE SA and Child SA negotiations, by
	// Failure; index FailureInvalid is unused.
	Failures [NumFailures]uint64
	// Rekeys done (our own or the peer's) and rekeys we started that
	// failed (refused, or a bad or missing answer), of IKE SAs and of
	// Child SAs.
	IKERekeys, ChildRekeys               uint64
	IKERekeyFailures, ChildRekeyFailures uint64
	DPDFailures                          uint64 // established IKE SAs found dead by a liveness check
}

// Stats returns the engine's limit counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	st.HalfOpen = e.nHalf
	st.HalfOpenByTenant = maps.Clone(e.halfByTenant)
	st.ReassemblyBytes = e.reasmHeld
	return st
}

func (e *Engine) drop(l Limit, msg string, kv ...any) {
	e.stats.Drops[l]++
	if n := e.stats.Drops[l]; n&(n-1) == 0 { // log at 1, 2, 4, 8, …
		e.log.Warn(msg, append(kv, "limit", l.String(), "dropped", n)...)
	}
}

// ---- half-open accounting ----

func sourceOf(p Packet) netip.Addr { return p.Remote.Addr().Unmap() }

// tenantsOf lists the tenants of policies, each once, in order.
func tenantsOf(ps []*policyState) []string {
	var out []string
	for _, p := range ps {
		if !slices.Contains(out, p.Tenant) {
			out = append(out, p.Tenant)
		}
	}
	return out
}

// admitHalfOpen checks the half-open limits for an IKE_SA_INIT request
// from src that cands could answer. It returns the candidates whose
// tenant has room (none: drop, counted) and whether a cookie is required.
func (e *Engine) admitHalfOpen(src netip.Addr, cands []*policyState) (room []*policyState, cookie bool) {
	for _, c := range cands {
		if e.halfByTenant[c.Tenant] < e.cfg.MaxHalfOpenPerTenant {
			room = append(room, c)
		}
	}
	if len(room) == 0 {
		e.drop(LimitHalfOpenTenant, "IKE_SA_INIT dropped: the tenant has too many half-open IKE SAs", "remote", src, "tenants", tenantsOf(cands))
		return nil, false
	}
	t := e.cfg.HalfOpenCookieThreshold
	if t < 0 {
		return room, false
	}
	if e.halfBySource[src] >= max(e.cfg.MaxHalfOpenPerSource/2, 1) || e.nHalf >= max(e.cfg.MaxHalfOpen/2, 1) {
		return room, true
	}
	for _, c := range room {
		if e.halfByTenant[c.Tenant] >= t {
			return room, true
		}
	}
	return room, false
}

// enterHalfOpen counts s, answered from the source of p, as half-open.
func (e *Engine) enterHalfOpen(s *ikeSA, k halfOpenKey) {
	s.state = ikeHalfOpen
	s.hoCounted = true
	s.hoKey = k
	s.hoSource = k.remote.Addr().Unmap()
	s.hoTenants = tenantsOf(s.cands)
	e.halfOpen[k] = s
	e.nHalf++
	e.halfBySource[s.hoSource]++
	for _, t := range s.hoTenants {
		e.halfByTenant[t]++
	}
	e.arm(&s.tHalf, e.now().Add(e.cfg.HalfOpenTimeout))
}

// leaveHalfOpen uncounts s (authenticated or gone); it may be called more
// than once.
func (e *Engine) leaveHalfOpen(s *ikeSA) {
	if e.halfOpen[s.hoKey] == s {
		delete(e.halfOpen, s.hoKey)
	}
	e.disarm(&s.tHalf)
	if !s.hoCounted {
		return
	}
	s.hoCounted = false
	e.nHalf--
	if e.halfBySource[s.hoSource]--; e.halfBySource[s.hoSource] <= 0 {
		delete(e.halfBySource, s.hoSource)
	}
	for _, t := range s.hoTenants {
		if e.halfByTenant[t]--; e.halfByTenant[t] <= 0 {
			delete(e.halfByTenant, t)
		}
	}
	s.hoTenants, s.hoSource = nil, netip.Addr{}
}

// ---- reassembly budget ----

// reassemble adds a decrypted fragment to s's reassembly within the
// limits; it returns the message once complete.
func (s *ikeSA) reassemble(h wire.Header, f *wire.Fragment, plain []byte) (wire.PayloadType, []byte) {
	e := s.e
	now := e.now()
	before := s.reasm.Held()
	s.reasm.Expire(now.Add(-reassemblyTimeout))
	e.reasmHeld += s.reasm.Held() - before
	s.reasm.MaxBytes = e.cfg.MaxReassembly
	s.reasm.MaxMessages = 2
	if s.state == ikeHalfOpen {
		s.reasm.MaxMessages = 1
	}
	if e.reasmHeld+wire.MaxGrowth(f, len(plain)) > e.cfg.MaxReassemblyTotal {
		e.sweepReassembly(now)
		if e.reasmHeld+wire.MaxGrowth(f, len(plain)) > e.cfg.MaxReassemblyTotal {
			e.drop(LimitReassemblyTotal, "IKE fragment dropped: reassembly memory exhausted", "remote", s.remote, "held", e.reasmHeld)
			return wire.PayloadNone, nil
		}
	}
	before = s.reasm.Held()
	inner, data, err := s.reasm.Add(h, f, plain, now)
	e.reasmHeld += s.reasm.Held() - before
	if errors.Is(err, wire.ErrTooManyFragments) || errors.Is(err, wire.ErrReassemblyTooLarge) {
		e.drop(LimitReassemblySA, "IKE fragment dropped: above the reassembly limit of an IKE SA", "remote", s.remote, "err", err)
		return wire.PayloadNone, nil
	}
	if err != nil {
		s.ldebug("IKE fragment dropped", "err", err)
		return wire.PayloadNone, nil
	}
	return inner, data
}

// sweepReassembly drops expired reassemblies of every IKE SA (at most
// once per reassemblySweep).
func (e *Engine) sweepReassembly(now time.Time) {
	if now.Sub(e.lastSweep) < reassemblySweep {
		return
	}
	e.lastSweep = now
	for _, s := range e.sas {
		before := s.reasm.Held()
		s.reasm.Expire(now.Add(-reassemblyTimeout))
		e.reasmHeld += s.reasm.Held() - before
	}
}

// resetReassembly drops s's reassemblies.
func (s *ikeSA) resetReassembly() {
	s.e.reasmHeld -= s.reasm.Held()
	s.reasm.Reset()
}
