package ike

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Packet is one IKE datagram, received or to send.
type Packet struct {
	// Local and Remote are our address and port and the peer's. A port of
	// 4500 (Config.NATPort) means the datagram is (to be) carried with the
	// 4-byte non-ESP marker (RFC 3948 §2.2), which the caller adds and
	// strips: Data never holds it.
	Local, Remote netip.AddrPort
	// Scope is the VM whose identity the engine speaks for; zero for the
	// hypervisor's underlay address.
	Scope sa.Scope
	// Data is the IKE message. Input does not keep it after it returns;
	// Send's Data belongs to the callee.
	Data []byte
}

// ChildSA is a negotiated Child SA: an inbound and an outbound ESP SA.
type ChildSA struct {
	Tenant, Policy, VM string
	Scope              sa.Scope
	// In and Out are complete ESP-core configurations: names
	// "ike/TENANT/POLICY/INSPI-in" and "…-out" (INSPI is the inbound SPI
	// in 8 hex digits, unique in the VM's scope), Dir, Src/Dst, Mode,
	// algorithms, keys (Install only; zeroed by the engine when Install
	// returns), ESN, hard lifetime, and Encap when NAT was detected.
	In, Out sa.Config
	// Traffic selectors, from our side: LocalTS are our addresses (the
	// source of outbound traffic). Protocol 0 is any; a [0, 0] port range
	// any port.
	LocalTS, RemoteTS       []netip.Prefix
	Protocol                uint8
	LocalPorts, RemotePorts [2]uint16
	// Replaces is In.Name of the Child SA this one rekeys ("" for a new
	// one): when Switch is called for this child, traffic moves to it from
	// that one.
	Replaces string
}

// Config configures an Engine. A nil *Config means the defaults (which
// send nothing and install nothing: useful only in tests).
type Config struct {
	Logger *slog.Logger     // nil: slog.Default()
	Rand   io.Reader        // nil: crypto/rand
	Now    func() time.Time // nil: time.Now

	// Send transmits one datagram. It must not block for long.
	Send func(Packet)
	// Install adds c.In and c.Out to the SA database, atomically (both or
	// neither). c.In must carry traffic at once; c.Out only once Switch
	// is called for it. It must copy the keys it keeps: the engine zeroes
	// c's when Install returns.
	Install func(c *ChildSA) error
	// Switch makes c.Out the SA for outbound traffic of c's policy and
	// selectors (from c.Replaces if set). nil: Install's caller routes
	// outbound traffic itself when Install returns.
	Switch func(c *ChildSA)
	// Remove deletes c.In and c.Out from the SA database. It must
	// tolerate SAs the data path already dropped (hard lifetime).
	Remove func(c *ChildSA)
	// AllocSPI returns a random, non-reserved SPI (>= 0x100) unused in
	// scope and reserves it until Remove of the child that carries it or
	// FreeSPI. Unlike the other callbacks it is called with the engine's
	// lock held: it must not call the Engine nor wait on a lock that is
	// held around calls into the Engine. nil: the engine draws random
	// SPIs unique among its own.
	AllocSPI func(scope sa.Scope) (uint32, error)
	// FreeSPI releases an SPI from AllocSPI that never got installed
	// (the negotiation failed). Same locking rule as AllocSPI. May be nil.
	FreeSPI func(scope sa.Scope, spi uint32)
	// Rebind moves c.In's and c.Out's remote end, in place, to c.Out.Dst
	// and c.Out.Encap.DstPort (sa.SA.Rebind: keys, sequence numbers and
	// replay window unchanged): the peer behind a NAT was seen at a new
	// address or port, in authenticated ESP (sa.EventPeerMoved) or IKE.
	// It must tolerate SAs already gone. nil: Child SAs keep the
	// endpoint they were installed with.
	Rebind func(c *ChildSA)
	// InboundPackets returns how many ESP packets the data path has
	// authenticated on c.In (ICV verified, inside the replay window)
	// since Install: the SA's packet counter. A peer whose Child SAs
	// still bring ESP is alive: a liveness check (DPD) is sent only when
	// neither an IKE message nor, by this count, ESP arrived in the DPD
	// interval (RFC 7296 §2.4). Same locking rule as AllocSPI: it must be
	// cheap (an atomic load) and must not call the Engine. nil: only IKE
	// messages count.
	InboundPackets func(c *ChildSA) uint64

	// HalfOpenCookieThreshold: with this many half-open IKE SAs (answered
	// IKE_SA_INIT, no IKE_AUTH yet) of a tenant, new IKE_SA_INIT requests
	// to its policies must carry a cookie (RFC 7296 §2.6); so must those
	// of a source at half its MaxHalfOpenPerSource and all once half of
	// MaxHalfOpen are in use (limits.go). Default 64; negative: never.
	HalfOpenCookieThreshold int
	// HalfOpenTimeout drops a half-open IKE SA (default 30s).
	HalfOpenTimeout time.Duration
	// Retransmission (strongSwan's defaults): the n-th retransmission
	// (n = 1..RetransmitTries) goes RetransmitTimeout*RetransmitBase^(n-1)
	// after the previous send; after the last one the exchange fails when
	// RetransmitTimeout*RetransmitBase^RetransmitTries passes without an
	// answer. Defaults 4s, 1.8, 5 (about 165s in all).
	RetransmitTimeout time.Duration
	RetransmitBase    float64
	RetransmitTries   int
	// FragmentSize is the largest IP datagram an encrypted IKE message may
	// fill before it is fragmented (RFC 7383; only when both peers
	// announced support). Default 1280, as strongSwan.
	FragmentSize int
	// RetryInterval is how long after a failed attempt an initiating
	// policy tries again (doubling up to 8 times, jittered). Default 30s.
	RetryInterval time.Duration
	// PreferInitiatorProposals: as responder take the initiator's order of
	// proposals instead of our own (see proposal.go).
	PreferInitiatorProposals bool
	// Port and NATPort are the IKE ports: 500 and 4500.
	Port, NATPort uint16
	// MaxHalfOpen bounds the half-open IKE SAs; IKE_SA_INIT requests
	// beyond it are dropped. Default 16384.
	MaxHalfOpen int
	// MaxHalfOpenPerSource bounds the half-open IKE SAs from one IP
	// address (any port). Default 32.
	MaxHalfOpenPerSource int
	// MaxHalfOpenPerTenant bounds the half-open IKE SAs a tenant's
	// policies may answer, so that one tenant's flood leaves the others
	// room. Default MaxHalfOpen/16 (1024), at least 1.
	MaxHalfOpenPerTenant int
	// MaxReassembly bounds an IKE message reassembled from RFC 7383
	// fragments, in bytes; an IKE SA reassembles one message at a time
	// while half-open, two once established. Default 64 KiB.
	MaxReassembly int
	// MaxReassemblyTotal bounds the memory all IKE SAs' reassembly holds,
	// in bytes. Default 16 MiB.
	MaxReassemblyTotal int
}

// Engine is the IKEv2 protocol engine (RFC 7296) for any number of
// policies, VMs and peers.
//
// # Concurrency
//
// Every method is safe for concurrent use. The engine's state is guarded
// by one mutex, held only while a message, a timer or an API call is
// processed, never while a callback runs: Send, Install, Switch and Remove
// are queued under the lock and run after it is released, in the order
// they were queued, by exactly one goroutine at a time (the first caller
// that finds the queue non-empty drains it). So callbacks may call any
// Engine method — the effects of such a nested call run after the current
// callback returns — and an Engine method may return before the callbacks
// it caused have run, if another goroutine is draining. AllocSPI and
// FreeSPI are the exception: they run under the lock (see Config).
//
// Input, SetPolicies and the timers of Run are the only entry points that
// change state; IKESAs and ChildSAs only read.
type Engine struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	policies map[string]*policyState // tenant/name
	order    []*policyState
	sas      map[uint64]*ikeSA // by our SPI
	halfOpen map[halfOpenKey]*ikeSA
	nHalf    int
	// Limits (limits.go).
	halfBySource map[netip.Addr]int
	halfByTenant map[string]int
	reasmHeld    int // sum of Reassembler.Held over all IKE SAs
	lastSweep    time.Time
	stats        Stats
	children     map[string]*childSA // by In.Name and Out.Name
	spis         map[sa.Key]bool     // inbound SPIs allocated and not yet freed
	timers       timerHeap
	cookies      cookieJar

	fx       []func()
	draining bool
	wake     chan struct{}
}

type halfOpenKey struct {
	remote netip.AddrPort
	spiI   uint64
}

// New returns an Engine; call SetPolicies to give it work and Run for its
// timers.
func New(cfg *Config) *Engine {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HalfOpenCookieThreshold == 0 {
		c.HalfOpenCookieThreshold = 64
	}
	if c.HalfOpenTimeout <= 0 {
		c.HalfOpenTimeout = 30 * time.Second
	}
	if c.RetransmitTimeout <= 0 {
		c.RetransmitTimeout = 4 * time.Second
	}
	if c.RetransmitBase < 1 {
		c.RetransmitBase = 1.8
	}
	if c.RetransmitTries <= 0 {
		c.RetransmitTries = 5
	}
	if c.FragmentSize <= 0 {
		c.FragmentSize = 1280
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 30 * time.Second
	}
	if c.Port == 0 {
		c.Port = 500
	}
	if c.NATPort == 0 {
		c.NATPort = 4500
	}
	if c.MaxHalfOpen <= 0 {
		c.MaxHalfOpen = 16384
	}
	if c.MaxHalfOpenPerSource <= 0 {
		c.MaxHalfOpenPerSource = 32
	}
	if c.MaxHalfOpenPerTenant <= 0 {
		c.MaxHalfOpenPerTenant = max(c.MaxHalfOpen/16, 1)
	}
	if c.MaxReassembly <= 0 {
		c.MaxReassembly = 64 << 10
	}
	if c.MaxReassemblyTotal <= 0 {
		c.MaxReassemblyTotal = 16 << 20
	}
	e := &Engine{
		cfg:          c,
		log:          c.Logger.With("component", "ike"),
		policies:     map[string]*policyState{},
		sas:          map[uint64]*ikeSA{},
		halfOpen:     map[halfOpenKey]*ikeSA{},
		halfBySource: map[netip.Addr]int{},
		halfByTenant: map[string]int{},
		children:     map[string]*childSA{},
		spis:         map[sa.Key]bool{},
		wake:         make(chan struct{}, 1),
	}
	return e
}

// ---- effects: callbacks run outside the lock, in order ----

// unlock releases e.mu and runs the queued callbacks unless another
// goroutine is already running them. Call it instead of e.mu.Unlock
// wherever effects may have been queued.
func (e *Engine) unlock() {
	if e.draining {
		e.mu.Unlock()
		return
	}
	e.draining = true
	done := false
	defer func() {
		if !done {
			// A callback panicked: let the next caller drain.
			e.mu.Lock()
			e.draining = false
			e.mu.Unlock()
		}
	}()
	for len(e.fx) > 0 {
		fx := e.fx
		e.fx = nil
		e.mu.Unlock()
		for i, f := range fx {
			fx[i] = nil
			f()
		}
		e.mu.Lock()
	}
	e.draining = false
	done = true
	e.mu.Unlock()
}

func (e *Engine) effect(f func()) { e.fx = append(e.fx, f) }

func (e *Engine) send(p Packet) {
	if e.cfg.Send == nil {
		return
	}
	e.effect(func() { e.cfg.Send(p) })
}

// ---- randomness and time ----

func (e *Engine) now() time.Time { return e.cfg.Now() }

func (e *Engine) random(n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(e.cfg.Rand, b); err != nil {
		panic(fmt.Sprintf("ike: random source failed: %v", err))
	}
	return b
}

func (e *Engine) randUint64() uint64 { return binary.BigEndian.Uint64(e.random(8)) }

// jitter returns d scaled by a random factor in [lo, hi).
func (e *Engine) jitter(d time.Duration, lo, hi float64) time.Duration {
	f := lo + (hi-lo)*float64(e.randUint64()>>11)/float64(1<<53)
	return time.Duration(float64(d) * f)
}

// newSPI draws an IKE SPI unused by any of our IKE SAs.
func (e *Engine) newSPI() uint64 {
	for {
		s := e.randUint64()
		if s != 0 && e.sas[s] == nil {
			return s
		}
	}
}

// allocSPI gets an inbound ESP SPI for scope.
func (e *Engine) allocSPI(scope sa.Scope) (uint32, error) {
	for range 16 {
		var spi uint32
		if e.cfg.AllocSPI != nil {
			var err error
			if spi, err = e.cfg.AllocSPI(scope); err != nil {
				return 0, err
			}
		} else {
			spi = uint32(e.randUint64())
		}
		k := sa.Key{Scope: scope, SPI: spi}
		if spi < 0x100 || e.spis[k] {
			continue // reserved, or one of ours (its reservation stays)
		}
		e.spis[k] = true
		return spi, nil
	}
	return 0, errors.New("ike: no free SPI")
}

// freeSPI releases an SPI that was never installed.
func (e *Engine) freeSPI(scope sa.Scope, spi uint32) {
	k := sa.Key{Scope: scope, SPI: spi}
	if !e.spis[k] {
		return
	}
	delete(e.spis, k)
	if e.cfg.FreeSPI != nil {
		e.cfg.FreeSPI(scope, spi)
	}
}

// ---- timers ----

type timer struct {
	at  time.Time
	idx int // in the heap; -1 when not armed
	fn  func()
}

func newTimer(fn func()) timer { return timer{idx: -1, fn: fn} }

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}

// arm (re)schedules t at at.
func (e *Engine) arm(t *timer, at time.Time) {
	t.at = at
	if t.idx >= 0 {
		heap.Fix(&e.timers, t.idx)
	} else {
		heap.Push(&e.timers, t)
	}
	if t.idx == 0 {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

func (e *Engine) disarm(t *timer) {
	if t.idx >= 0 {
		heap.Remove(&e.timers, t.idx)
	}
}

// tick runs every timer that is due.
func (e *Engine) tick() {
	e.mu.Lock()
	now := e.now()
	for len(e.timers) > 0 && !e.timers[0].at.After(now) {
		t := heap.Pop(&e.timers).(*timer)
		t.fn()
	}
	e.unlock()
}

// nextTimer is when tick has work next (zero: none).
func (e *Engine) nextTimer() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.timers) == 0 {
		return time.Time{}
	}
	return e.timers[0].at
}

// Run drives the engine's timers (retransmissions, rekeying, DPD,
// timeouts) until ctx is done.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.tick()
		d := time.Hour
		if at := e.nextTimer(); !at.IsZero() {
			d = max(at.Sub(e.now()), time.Millisecond)
		}
		t.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.wake:
		}
	}
}

// ---- API ----

// SetPolicies replaces the set of policies. New policies that have a
// Remote are initiated; IKE SAs of removed policies are deleted (with
// their Child SAs); a changed policy is torn down and brought up anew.
// It fails, changing nothing, if any policy is invalid or two share
// tenant and name.
func (e *Engine) SetPolicies(ps []Policy) error {
	seen := map[string]bool{}
	for i := range ps {
		if err := ps[i].Validate(); err != nil {
			return fmt.Errorf("policy %s/%s: %w", ps[i].Tenant, ps[i].Name, err)
		}
		k := ps[i].Tenant + "/" + ps[i].Name
		if seen[k] {
			return fmt.Errorf("policy %s: given twice", k)
		}
		seen[k] = true
	}
	e.mu.Lock()
	next := map[string]*policyState{}
	var order []*policyState
	for i := range ps {
		k := ps[i].Tenant + "/" + ps[i].Name
		if old := e.policies[k]; old != nil && samePolicy(&old.given, &ps[i]) && !old.removed {
			// Unchanged: its SAs stay.
			next[k] = old
			order = append(order, old)
			continue
		}
		st := newPolicyState(ps[i])
		next[k] = st
		order = append(order, st)
	}
	for k, old := range e.policies {
		if next[k] != old {
			old.removed = true
			e.disarm(&old.retry)
			for _, s := range e.sasOf(old) {
				s.remove("policy removed or changed", true)
			}
		}
	}
	e.policies, e.order = next, order
	for _, p := range order {
		e.reconcile(p)
	}
	e.unlock()
	return nil
}

// DropPolicies removes the policies named by keys ("TENANT/NAME") as
// SetPolicies without them would, except that their IKE SAs and Child SAs
// go at once and the peer is told nothing. It is for a policy whose VM
// has left this host (moved to another one, detached): no datagram may go
// out from the VM's address here any more, so a Delete could not be sent
// (and would be retransmitted for minutes, its IKE SA listed as DELETING
// meanwhile). The peer learns of it from the INITIAL_CONTACT of the IKE
// SA the VM's new host sets up, or by DPD. Keys of no policy are ignored.
// It reports how many IKE SAs went.
func (e *Engine) DropPolicies(keys ...string) int {
	e.mu.Lock()
	k := 0
	for _, key := range keys {
		p := e.policies[key]
		if p == nil {
			continue
		}
		p.removed = true
		e.disarm(&p.retry)
		for _, s := range e.sasOf(p) {
			s.destroy("policy dropped: its VM left this host")
			k++
		}
		delete(e.policies, key)
		e.order = slices.DeleteFunc(e.order, func(x *policyState) bool { return x == p })
	}
	e.unlock()
	return k
}

// sasOf lists the IKE SAs of policy p (responder SAs only once
// authenticated).
func (e *Engine) sasOf(p *policyState) []*ikeSA {
	out := make([]*ikeSA, 0, len(p.sas))
	for s := range p.sas {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spiI < out[j].spiI })
	return out
}

// reconcile initiates an initiating policy that has no IKE SA.
func (e *Engine) reconcile(p *policyState) {
	if p.removed || p.cleared || !p.initiates() || p.retry.idx >= 0 || p.live() {
		return
	}
	e.initiate(p)
}

// live reports whether p has an IKE SA that is up or coming up.
func (p *policyState) live() bool {
	for s := range p.sas {
		if s.state != ikeDead && s.state != ikeDeleting && s.rekeyedTo == nil {
			return true
		}
	}
	return false
}

// failed is called when an initiation of p failed: retry later.
func (e *Engine) failed(p *policyState) {
	if p == nil || p.removed || !p.initiates() {
		return
	}
	d := e.cfg.RetryInterval << min(p.fails, 8)
	p.fails++
	p.retry.fn = func() { e.reconcile(p) }
	e.arm(&p.retry, e.now().Add(e.jitter(d, 0.9, 1.1)))
}

// Input processes one received IKE datagram.
func (e *Engine) Input(p Packet) {
	p.Data = slices.Clone(p.Data)
	e.mu.Lock()
	e.input(p)
	e.unlock()
}

// HandleEvent takes a lifetime event of an SA the engine installed
// (sa.DB.Events): a soft limit or sequence number exhaustion rekeys its
// Child SA, a hard limit deletes it; authenticated ESP from the peer at a
// new address or port behind a NAT moves the IKE SA and all its Child
// SAs there (RFC 3948, RFC 7296 §2.23). It reports whether the SA is the
// engine's.
func (e *Engine) HandleEvent(ev sa.Event) bool {
	e.mu.Lock()
	c := e.children[ev.Name]
	if c != nil {
		switch ev.Kind {
		case sa.EventSoft, sa.EventSeqOverflow:
			c.ike.rekeyChild(c)
		case sa.EventHard:
			c.ike.deleteChild(c, "hard lifetime")
		case sa.EventPeerMoved:
			c.ike.peerMoved(ev.Peer)
		}
	}
	e.unlock()
	return c != nil
}

// RekeyIKE rekeys the established IKE SAs of a policy now (as
// `swanctl --rekey --ike` does) and reports how many it started; their
// Child SAs move to the new IKE SAs unchanged. RekeyChild rekeys the
// Child SAs.
func (e *Engine) RekeyIKE(tenant, name string) int {
	e.mu.Lock()
	k := 0
	if p := e.policies[tenant+"/"+name]; p != nil {
		for _, s := range e.sasOf(p) {
			if s.state == ikeEstablished && s.rekeyedTo == nil && !s.rekeyPending {
				s.rekeyIKE(0)
				k++
			}
		}
	}
	e.unlock()
	return k
}

// RekeyChild rekeys the installed Child SAs of a policy now, make
// before break as at their soft lifetime (as `swanctl --rekey --child`
// does), and reports how many rekeys it started. A Child SA already being
// rekeyed or deleted, or on an IKE SA that is not established or is being
// rekeyed itself, is not counted (the latter is rekeyed shortly after).
func (e *Engine) RekeyChild(tenant, name string) int {
	e.mu.Lock()
	k := 0
	if p := e.policies[tenant+"/"+name]; p != nil {
		for _, s := range e.sasOf(p) {
			if s.state != ikeEstablished || s.rekeyedTo != nil {
				continue
			}
			for _, c := range slices.Clone(s.children) {
				if c.state != childInstalled || c.redundant {
					continue
				}
				s.rekeyChild(c)
				if c.state == childRekeying {
					k++
				}
			}
		}
	}
	e.unlock()
	return k
}

// IKESAInfo describes an IKE SA (show-ikesa).
type IKESAInfo struct {
	Tenant, Policy, VM string
	Scope              sa.Scope
	Local, Remote      netip.AddrPort
	SPIi, SPIr         uint64
	Initiator          bool   // we are the original initiator
	State              string // CONNECTING, ESTABLISHED, REKEYING, REKEYED, DELETING
	Suite              string // e.g. aes128gcm16-prfsha256-modp2048
	// KeyExchanges are the key exchanges that keyed the SA, in order,
	// joined by '+' ("curve25519+mlkem768"): IKE_SA_INIT's DH (or that of
	// the rekey that made the SA) and the additional ones of RFC 9370
	// done so far. PPK: its keys are mixed with a post-quantum preshared
	// key (RFC 8784).
	KeyExchanges      string
	PPK               bool
	LocalID, RemoteID string
	NAT               bool // a NAT was detected: IKE on 4500, ESP in UDP
	Established       time.Time
	Children          int
	// ChildError says why the policy's Child SA is missing on this IKE SA
	// (the peer refused it, e.g. "TS_UNACCEPTABLE"); an initiating policy
	// retries it with CREATE_CHILD_SA. "" once one is installed.
	ChildError string
}

// ChildSAInfo describes a Child SA (show-ipsecsa).
type ChildSAInfo struct {
	Tenant, Policy, VM string
	Scope              sa.Scope
	Local, Remote      netip.Addr
	InSPI, OutSPI      uint32
	InName, OutName    string
	Mode               sa.Mode
	State              string // INSTALLED, REKEYING, REKEYED, DELETING
	Suite              string
	LocalTS, RemoteTS  []netip.Prefix
	Encap              bool
	Created            time.Time
	IKESPIi, IKESPIr   uint64
}

// IKESAs lists the IKE SAs, by tenant, policy, then SPIs.
func (e *Engine) IKESAs() []IKESAInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]IKESAInfo, 0, len(e.sas))
	for _, s := range e.sas {
		out = append(out, s.describe())
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := strings.Compare(a.Tenant+"/"+a.Policy, b.Tenant+"/"+b.Policy); c != 0 {
			return c < 0
		}
		if a.SPIi != b.SPIi {
			return a.SPIi < b.SPIi
		}
		return a.SPIr < b.SPIr
	})
	return out
}

// ChildSAs lists the Child SAs, by tenant, policy, then inbound SPI.
func (e *Engine) ChildSAs() []ChildSAInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ChildSAInfo
	for _, s := range e.sas {
		for _, c := range s.children {
			out = append(out, c.describe())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := strings.Compare(a.Tenant+"/"+a.Policy, b.Tenant+"/"+b.Policy); c != 0 {
			return c < 0
		}
		return a.InSPI < b.InSPI
	})
	return out
}

// ---- input dispatch ----

func (e *Engine) input(p Packet) {
	h, err := wire.ParseHeader(p.Data)
	if err != nil {
		e.log.Debug("dropped datagram", "from", p.Remote, "err", err)
		return
	}
	resp := h.Flags&wire.FlagResponse != 0
	if h.Exchange == wire.ExchangeIKESAInit {
		if !resp {
			e.initRequest(p, h)
			return
		}
		s := e.sas[h.SPIi]
		if s == nil || !s.initiator || s.state != ikeInitSent || h.Flags&wire.FlagInitiator != 0 {
			return
		}
		s.initResponse(p, h)
		return
	}
	var ours, theirs uint64
	if h.Flags&wire.FlagInitiator != 0 {
		ours, theirs = h.SPIr, h.SPIi // the sender is the original initiator
	} else {
		ours, theirs = h.SPIi, h.SPIr
	}
	s := e.sas[ours]
	if s == nil || s.peerSPI() != theirs || s.initiator == (h.Flags&wire.FlagInitiator != 0) {
		e.log.Debug("dropped message for an unknown IKE SA", "from", p.Remote, "exchange", h.Exchange)
		return
	}
	s.receive(p, h)
}
