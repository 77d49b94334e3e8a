package ike

import (
	"crypto/x509"
	"errors"
	"math"
	"net/netip"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// reassemblyTimeout drops a fragmented message not complete after this.
const reassemblyTimeout = 30 * time.Second

type ikeState uint8

const (
	ikeInvalid      ikeState = iota
	ikeInitSent              // initiator: IKE_SA_INIT sent
	ikeIntermediate          // initiator: IKE_INTERMEDIATE exchanges running
	ikeAuthSent              // initiator: IKE_AUTH sent
	ikeHalfOpen              // responder: IKE_SA_INIT answered, IKE_AUTH awaited
	ikeEstablished           // authenticated
	ikeDeleting              // our Delete is queued or in flight
	ikeDead                  // gone (removed from the engine)
)

// ikeSA is one IKE SA. All fields are guarded by Engine.mu.
type ikeSA struct {
	e     *Engine
	pol   *policyState   // nil on a responder until IKE_AUTH picks one
	cands []*policyState // responder: policies the addresses matched
	hoKey halfOpenKey    // responder: its entry in Engine.halfOpen
	// Responder while half-open: what it is counted against (limits.go).
	hoCounted bool
	hoSource  netip.Addr
	hoTenants []string

	initiator  bool // we are the original initiator
	spiI, spiR uint64
	local      netip.AddrPort
	remote     netip.AddrPort
	scope      sa.Scope
	state      ikeState

	suite   suite.IKE
	prf     suite.PRF
	keys    suite.Keys
	out, in *suite.Protector

	// IKE_SA_INIT material, kept until IKE_AUTH is done.
	ni, nr           []byte
	dh               suite.DH
	initReq, initRsp []byte
	cookie           []byte
	initRetries      int

	// Additional key exchanges in IKE_INTERMEDIATE (intermediate.go).
	intOK        bool // both announced INTERMEDIATE_EXCHANGE_SUPPORTED
	addKE        int  // index in suite.AddKE of the exchange running or next
	kesDone      []uint16
	intExchanges int
	intI, intR   []byte           // IntAuth chains of RFC 9242
	authMsgID    uint32           // initiator: Message ID of its IKE_AUTH request
	prevIn       *suite.Protector // responder: keys of the request its cached answer answers

	// PPK (RFC 8784, auth.go).
	ppkOK   bool // both announced USE_PPK
	ppk     bool // the SA's keys are mixed with a PPK
	ppkKeys suite.Keys

	natLocal, natRemote bool // we / the peer are behind a NAT
	fragOK              bool // both sides announced RFC 7383
	peerHashes          []uint16
	peerCertReq         bool

	localID, remoteID ID
	peerCert          *x509.Certificate

	// Message IDs (window size 1 both ways).
	msgIDOut uint32 // ID of our next request
	msgIDIn  uint32 // ID of the peer's next request
	lastRsp  [][]byte
	req      *request
	queue    []*request
	reasm    wire.Reassembler

	children []*childSA

	created, established, lastRecv time.Time
	tRetrans, tDPD, tRekey, tHalf  timer

	// IKE SA rekeying.
	rekeyPending    bool      // our CREATE_CHILD_SA rekeying this SA is queued or in flight
	rekeyedTo       *ikeSA    // the SA that replaced this one; it waits for deletion
	collision       *ikeSA    // the peer rekeyed this SA while our rekey was pending
	fu              *followup // responder: a CREATE_CHILD_SA whose IKE_FOLLOWUP_KE exchanges run (followup.go)
	nonces          [2][]byte
	installFailures int

	// The policy's Child SA when the peer refused it (in IKE_AUTH, or a
	// CREATE_CHILD_SA of ours for a new one): the IKE SA stands (RFC 7296
	// §2.21.2) and an initiating policy retries the Child SA alone with
	// CREATE_CHILD_SA, after RetryInterval doubling per failure
	// (childFailed, retryChild). childErr says why the last attempt
	// failed ("" once a Child SA is installed).
	childErr   string
	childFails int
	tChild     timer
}

// request is one exchange we initiate.
type request struct {
	exch   wire.ExchangeType
	build  func() []wire.Payload // nil result: nothing to send any more
	raw    []byte                // IKE_SA_INIT only: the message
	onResp func(h wire.Header, ps []wire.Payload)
	onFail func()
	once   bool // no retransmission

	id    uint32
	pkts  [][]byte
	tries int
}

func (e *Engine) newIKESA(initiator bool, local, remote netip.AddrPort, scope sa.Scope) *ikeSA {
	s := &ikeSA{e: e, initiator: initiator, local: local, remote: remote, scope: scope, created: e.now()}
	s.lastRecv = s.created
	s.tRetrans = newTimer(s.retransmit)
	s.tDPD = newTimer(s.dpdCheck)
	s.tRekey = newTimer(s.rekeyTimer)
	s.tHalf = newTimer(func() { s.destroy("half-open timeout") })
	s.tChild = newTimer(s.retryChild)
	return s
}

// setPolicy binds s to policy p.
func (s *ikeSA) setPolicy(p *policyState) {
	if s.pol != nil {
		delete(s.pol.sas, s)
	}
	s.pol = p
	p.sas[s] = struct{}{}
}

func (s *ikeSA) ourSPI() uint64 {
	if s.initiator {
		return s.spiI
	}
	return s.spiR
}

func (s *ikeSA) peerSPI() uint64 {
	if s.initiator {
		return s.spiR
	}
	return s.spiI
}

func (s *ikeSA) logger() *logAttrs { return &logAttrs{s} }

// logAttrs puts the SA's identity on log lines.
type logAttrs struct{ s *ikeSA }

func (l *logAttrs) args(kv ...any) []any {
	s := l.s
	a := []any{"spi_i", hex64(s.spiI), "spi_r", hex64(s.spiR), "remote", s.remote}
	if s.pol != nil {
		a = append(a, "tenant", s.pol.Tenant, "policy", s.pol.Name)
	}
	return append(a, kv...)
}

func (s *ikeSA) linfo(msg string, kv ...any)  { s.e.log.Info(msg, s.logger().args(kv...)...) }
func (s *ikeSA) lwarn(msg string, kv ...any)  { s.e.log.Warn(msg, s.logger().args(kv...)...) }
func (s *ikeSA) ldebug(msg string, kv ...any) { s.e.log.Debug(msg, s.logger().args(kv...)...) }

func hex64(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

func (s *ikeSA) stateName() string {
	switch {
	case s.rekeyedTo != nil:
		return "REKEYED"
	case s.state == ikeEstablished && s.rekeyPending:
		return "REKEYING"
	}
	switch s.state {
	case ikeInitSent, ikeIntermediate, ikeAuthSent, ikeHalfOpen:
		return "CONNECTING"
	case ikeEstablished:
		return "ESTABLISHED"
	case ikeDeleting:
		return "DELETING"
	}
	return "DEAD"
}

func (s *ikeSA) describe() IKESAInfo {
	in := IKESAInfo{
		Scope: s.scope, Local: s.local, Remote: s.remote, SPIi: s.spiI, SPIr: s.spiR,
		Initiator: s.initiator, State: s.stateName(), NAT: s.natLocal || s.natRemote,
		Established: s.established, Children: len(s.children), PPK: s.ppk,
		LocalID: s.localID.String(), RemoteID: s.remoteID.String(), ChildError: s.childErr,
	}
	if s.suite != (suite.IKE{}) {
		in.Suite = s.suite.String()
		in.KeyExchanges = suite.DHName(s.suite.DH)
		for _, k := range s.kesDone {
			in.KeyExchanges += "+" + suite.KEName(k)
		}
	}
	if s.pol != nil {
		in.Tenant, in.Policy, in.VM = s.pol.Tenant, s.pol.Name, s.pol.VM
	}
	return in
}

// ---- sending ----

// msgLimit is the largest IKE message (UDP payload) that fits
// Config.FragmentSize towards remote.
func (s *ikeSA) msgLimit() int {
	n := s.e.cfg.FragmentSize - 8
	if s.remote.Addr().Unmap().Is4() {
		n -= 20
	} else {
		n -= 40
	}
	if s.local.Port() == s.e.cfg.NATPort || s.remote.Port() == s.e.cfg.NATPort {
		n -= 4 // non-ESP marker
	}
	return n
}

// seal encrypts ps as one message, or as RFC 7383 fragments.
func (s *ikeSA) seal(exch wire.ExchangeType, resp bool, id uint32, ps []wire.Payload) [][]byte {
	var flags uint8
	if s.initiator {
		flags |= wire.FlagInitiator
	}
	if resp {
		flags |= wire.FlagResponse
	}
	h := wire.Header{SPIi: s.spiI, SPIr: s.spiR, Next: wire.PayloadSK, Version: wire.Version2, Exchange: exch, Flags: flags, MessageID: id}
	first, plain := wire.AppendPayloads(nil, ps)
	if exch == wire.ExchangeIntermediate {
		s.chainIntAuth(s.initiator, h, first, plain)
	}
	limit := s.msgLimit()
	if s.fragOK && wire.HeaderLen+4+len(plain)+s.out.Overhead(len(plain)) > limit {
		return s.fragments(h, first, plain, limit)
	}
	hdr := wire.AppendHeader(make([]byte, 0, wire.HeaderLen+4), h)
	hdr = wire.AppendEncryptedHeader(hdr, first, 0)
	return [][]byte{s.out.Seal(hdr, plain)}
}

func (s *ikeSA) fragments(h wire.Header, first wire.PayloadType, plain []byte, limit int) [][]byte {
	chunk := max(limit-wire.HeaderLen-8-s.out.Overhead(0), 64)
	n := (len(plain) + chunk - 1) / chunk
	h.Next = wire.PayloadSKF
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		part := plain[i*chunk : min((i+1)*chunk, len(plain))]
		inner := wire.PayloadNone
		if i == 0 {
			inner = first
		}
		hdr := wire.AppendHeader(make([]byte, 0, wire.HeaderLen+8), h)
		hdr = wire.AppendFragmentHeader(hdr, inner, uint16(i+1), uint16(n), 0)
		out = append(out, s.out.Seal(hdr, part))
	}
	return out
}

func (s *ikeSA) sendPkts(pkts [][]byte, local, remote netip.AddrPort) {
	for _, b := range pkts {
		s.e.send(Packet{Local: local, Remote: remote, Scope: s.scope, Data: append([]byte(nil), b...)})
	}
}

// enqueue adds an exchange to run when the window is free; front puts it
// before the others (deletes).
func (s *ikeSA) enqueue(r *request, front bool) {
	if s.state == ikeDead {
		return
	}
	if front {
		s.queue = append([]*request{r}, s.queue...)
	} else {
		s.queue = append(s.queue, r)
	}
	s.pump()
}

// pump starts the next queued exchange if none is outstanding.
func (s *ikeSA) pump() {
	for s.req == nil && len(s.queue) > 0 && s.state != ikeDead {
		r := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.start(r)
	}
}

func (s *ikeSA) start(r *request) {
	r.id = s.msgIDOut
	if r.raw != nil {
		r.pkts = [][]byte{r.raw}
	} else {
		ps := r.build()
		if ps == nil && r.exch != wire.ExchangeInformational {
			return
		}
		if ps == nil {
			ps = []wire.Payload{}
		}
		r.pkts = s.seal(r.exch, false, r.id, ps)
	}
	r.tries = 0
	s.req = r
	s.sendPkts(r.pkts, s.local, s.remote)
	s.e.arm(&s.tRetrans, s.e.now().Add(s.e.cfg.RetransmitTimeout))
}

// retransmit is the retransmission timer.
func (s *ikeSA) retransmit() {
	r := s.req
	if r == nil {
		return
	}
	if r.once || r.tries >= s.e.cfg.RetransmitTries {
		s.req = nil
		s.ldebug("exchange timed out", "exchange", r.exch, "message_id", r.id)
		if r.onFail != nil {
			r.onFail()
		}
		s.pump()
		return
	}
	r.tries++
	s.sendPkts(r.pkts, s.local, s.remote)
	d := time.Duration(float64(s.e.cfg.RetransmitTimeout) * math.Pow(s.e.cfg.RetransmitBase, float64(r.tries)))
	s.e.arm(&s.tRetrans, s.e.now().Add(d))
}

// respond answers the peer's request h with ps and caches the answer for
// retransmitted requests.
func (s *ikeSA) respond(p Packet, h wire.Header, ps []wire.Payload) {
	if ps == nil {
		ps = []wire.Payload{}
	}
	s.prevIn = nil
	s.lastRsp = s.seal(h.Exchange, true, h.MessageID, ps)
	s.msgIDIn = h.MessageID + 1
	s.sendPkts(s.lastRsp, p.Local, p.Remote)
}

func (s *ikeSA) respondNotify(p Packet, h wire.Header, t wire.NotifyType, data []byte) {
	s.respond(p, h, []wire.Payload{&wire.Notify{NotifyType: t, Data: data}})
}

// ---- receiving ----

// receive handles an encrypted message for this SA: window check,
// authentication, reassembly, then the exchange.
func (s *ikeSA) receive(p Packet, h wire.Header) {
	if s.in == nil || s.state == ikeDead {
		return
	}
	resp := h.Flags&wire.FlagResponse != 0
	if s.state == ikeHalfOpen && (resp || (h.Exchange != wire.ExchangeIKEAuth && h.Exchange != wire.ExchangeIntermediate)) {
		// Before IKE_AUTH only its request may come (RFC 7296 §1.2),
		// after IKE_INTERMEDIATE requests (RFC 9242 §3).
		s.e.drop(LimitHalfOpenExchange, "message dropped: a half-open IKE SA takes only IKE_INTERMEDIATE and IKE_AUTH requests", "remote", p.Remote, "exchange", h.Exchange)
		return
	}
	dup := false
	if resp {
		if s.req == nil || s.req.raw != nil || h.MessageID != s.req.id || h.Exchange != s.req.exch {
			return
		}
	} else {
		switch {
		case h.MessageID == s.msgIDIn:
		case h.MessageID+1 == s.msgIDIn && s.lastRsp != nil:
			dup = true
		default:
			s.ldebug("dropped request outside the window", "exchange", h.Exchange, "message_id", h.MessageID, "expected", s.msgIDIn)
			return
		}
	}
	m, err := wire.Parse(p.Data)
	if err != nil || len(m.Payloads) == 0 {
		s.ldebug("dropped malformed message", "exchange", h.Exchange, "message_id", h.MessageID, "err", err)
		return
	}
	var body []byte
	var frag *wire.Fragment
	var first wire.PayloadType
	switch x := m.Payloads[len(m.Payloads)-1].(type) {
	case *wire.Encrypted:
		body, first = x.Body, x.Inner
	case *wire.Fragment:
		if !s.fragOK {
			s.e.drop(LimitFragmentNotNegotiated, "IKE fragment dropped: fragmentation was not negotiated", "remote", p.Remote)
			return
		}
		body, frag = x.Body, x
	default:
		return
	}
	aad := p.Data[:len(p.Data)-len(body)]
	in := s.in
	if dup && s.prevIn != nil {
		in = s.prevIn
	}
	plain, err := in.Open(aad, body)
	if err != nil {
		s.ldebug("dropped message that failed authentication", "exchange", h.Exchange, "message_id", h.MessageID)
		return
	}
	if dup {
		if frag == nil || frag.Number == 1 {
			s.sendPkts(s.lastRsp, p.Local, p.Remote)
		}
		return
	}
	if frag != nil {
		inner, data := s.reassemble(h, frag, plain)
		if data == nil {
			return
		}
		first, plain = inner, data
	}
	ps, err := wire.ParsePayloads(first, plain)
	if err != nil {
		s.ldebug("malformed encrypted payloads", "exchange", h.Exchange, "message_id", h.MessageID, "err", err)
		if !resp {
			var uc *wire.UnsupportedCriticalError
			if errors.As(err, &uc) {
				s.respondNotify(p, h, wire.NotifyUnsupportedCriticalPayload, []byte{byte(uc.Type)})
			} else {
				s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
			}
		}
		return
	}
	if h.Exchange == wire.ExchangeIntermediate {
		s.chainIntAuth(!s.initiator, h, first, plain)
	}
	s.lastRecv = s.e.now()
	if (s.natLocal || s.natRemote) && (p.Remote != s.remote || p.Local != s.local) {
		// RFC 7296 §2.23: with a NAT, follow the peer's authenticated
		// address and port (the float to 4500 included), and so do the
		// Child SAs.
		s.remote, s.local = p.Remote, p.Local
		s.rebindChildren()
	}
	if resp {
		r := s.req
		s.req = nil
		s.msgIDOut++
		s.e.disarm(&s.tRetrans)
		if r.onResp != nil {
			r.onResp(h, ps)
		}
		s.pump()
		return
	}
	switch h.Exchange {
	case wire.ExchangeIKEAuth:
		if !s.initiator && s.state == ikeHalfOpen {
			s.authRequest(p, h, ps)
		}
	case wire.ExchangeIntermediate:
		if !s.initiator && s.state == ikeHalfOpen {
			s.intermediateRequest(p, h, ps)
		}
	case wire.ExchangeCreateChildSA:
		s.createChildRequest(p, h, ps)
	case wire.ExchangeFollowupKE:
		s.followupRequest(p, h, ps)
	case wire.ExchangeInformational:
		s.informationalRequest(p, h, ps)
	}
}

// ---- teardown ----

// destroy removes the SA from the engine: its Child SAs are removed from
// the data path, its keys zeroed. Nothing is sent.
func (s *ikeSA) destroy(reason string) {
	if s.state == ikeDead {
		return
	}
	if s.state == ikeEstablished || s.state == ikeDeleting {
		s.linfo("IKE SA deleted", "reason", reason)
	} else {
		s.ldebug("IKE SA dropped", "reason", reason)
	}
	e := s.e
	s.dropFollowup()
	for len(s.children) > 0 {
		e.dropChild(s.children[0], false)
	}
	e.leaveHalfOpen(s)
	if e.sas[s.ourSPI()] == s {
		delete(e.sas, s.ourSPI())
	}
	if s.pol != nil {
		delete(s.pol.sas, s)
	}
	s.state = ikeDead
	for _, t := range []*timer{&s.tRetrans, &s.tDPD, &s.tRekey, &s.tHalf, &s.tChild} {
		e.disarm(t)
	}
	s.req, s.queue = nil, nil
	s.resetReassembly()
	s.keys.Zero()
	s.keys = suite.Keys{}
	s.ppkKeys.Zero()
	s.ppkKeys = suite.Keys{}
	s.out, s.in, s.dh, s.prevIn = nil, nil, nil, nil
	s.initReq, s.initRsp, s.lastRsp = nil, nil, nil
}

// dead handles a peer that stopped answering or a failed setup: the SA
// goes; an initiating policy comes back (at once after an established SA
// died, after RetryInterval after a failed setup).
func (s *ikeSA) dead(reason string) {
	wasUp := s.state == ikeEstablished
	pol := s.pol
	s.destroy(reason)
	if pol == nil {
		return
	}
	if wasUp {
		pol.fails = 0
		if pol.DPDClear && pol.initiates() && !pol.live() {
			pol.cleared = true
			s.linfo("peer dead: the policy waits for the peer to initiate (DPD action clear)")
			return
		}
		s.e.reconcile(pol)
	} else if s.initiator {
		s.e.failed(pol)
	}
}

// remove deletes the SA: with sendDelete and an authenticated SA, the
// peer is told (INFORMATIONAL Delete) before it goes; its Child SAs are
// removed from the data path at once.
func (s *ikeSA) remove(reason string, sendDelete bool) {
	if s.state == ikeDead {
		return
	}
	if !sendDelete || (s.state != ikeEstablished) {
		s.destroy(reason)
		return
	}
	s.state = ikeDeleting
	s.linfo("deleting IKE SA", "reason", reason)
	for len(s.children) > 0 {
		s.e.dropChild(s.children[0], false)
	}
	s.queue = nil
	s.enqueue(&request{
		exch:   wire.ExchangeInformational,
		build:  func() []wire.Payload { return []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}} },
		onResp: func(wire.Header, []wire.Payload) { s.destroy(reason) },
		onFail: func() { s.destroy(reason) },
	}, true)
}

// ---- timers ----

func (s *ikeSA) armEstablished() {
	now := s.e.now()
	if s.pol != nil {
		s.e.arm(&s.tRekey, now.Add(s.e.jitter(s.pol.IKELifetime, 0.85, 0.95)))
		if s.pol.DPD > 0 {
			s.e.arm(&s.tDPD, now.Add(s.pol.DPD))
		}
	}
}

// dpdCheck sends an empty INFORMATIONAL when the peer has been silent for
// the policy's DPD delay; if it goes unanswered the SA is dead.
func (s *ikeSA) dpdCheck() {
	if s.state != ikeEstablished || s.pol == nil || s.pol.DPD <= 0 {
		return
	}
	now := s.e.now()
	if s.espArrived() {
		// ESP since the last check, at most the DPD delay ago: the peer
		// is alive.
		s.lastRecv = now
	}
	idle := now.Sub(s.lastRecv)
	if idle < s.pol.DPD {
		s.e.arm(&s.tDPD, s.lastRecv.Add(s.pol.DPD))
		return
	}
	s.e.arm(&s.tDPD, now.Add(s.pol.DPD))
	if s.req != nil || len(s.queue) > 0 {
		return // an exchange in flight tests liveness already
	}
	s.enqueue(&request{
		exch:   wire.ExchangeInformational,
		build:  func() []wire.Payload { return []wire.Payload{} },
		onFail: func() { s.e.stats.DPDFailures++; s.dead("peer did not answer liveness check (DPD)") },
	}, false)
}

// peerMoved follows the peer to "to", where authenticated ESP of one of
// the IKE SA's Child SAs came from (sa.EventPeerMoved): with a NAT
// between us (ESP in UDP, RFC 3948) the IKE SA's remote end moves there
// (the peer's IKE and ESP share its port 4500, and so its NAT mapping)
// and every Child SA follows. Without a NAT addresses are fixed and
// nothing moves.
func (s *ikeSA) peerMoved(to netip.AddrPort) {
	if !(s.natLocal || s.natRemote) || s.state != ikeEstablished || !to.IsValid() ||
		to.Addr().Unmap().Is4() != s.remote.Addr().Unmap().Is4() {
		return
	}
	if to != s.remote {
		s.linfo("peer moved: authenticated ESP from a new address or port", "from", s.remote.String(), "to", to.String())
		s.remote = to
	}
	s.rebindChildren()
}

// rebindChildren moves the UDP-encapsulated Child SAs whose remote end is
// not the IKE SA's to it (Config.Rebind).
func (s *ikeSA) rebindChildren() {
	e := s.e
	for _, c := range s.children {
		out := c.cfg.Out.Encap
		if out == nil || (c.cfg.Out.Dst == s.remote.Addr().Unmap() && out.DstPort == s.remote.Port()) {
			continue
		}
		ra := s.remote.Addr().Unmap()
		if ra.Is4() != c.cfg.Out.Dst.Is4() {
			continue
		}
		c.cfg.Out.Dst, c.cfg.In.Src = ra, ra
		c.cfg.Out.Encap = &sa.UDPEncap{SrcPort: out.SrcPort, DstPort: s.remote.Port()}
		c.cfg.In.Encap = &sa.UDPEncap{SrcPort: s.remote.Port(), DstPort: c.cfg.In.Encap.DstPort}
		s.linfo("Child SA follows the peer", "in_spi", hex32(c.inSPI), "out_spi", hex32(c.outSPI), "to", s.remote.String())
		cc := c.copyCfg()
		e.effect(func() {
			if c.inst.Load() == instOK && e.cfg.Rebind != nil {
				e.cfg.Rebind(cc)
			}
		})
	}
}

// espArrived reports whether the data path authenticated ESP on any of
// the IKE SA's installed Child SAs since the last call, by their inbound
// packet counters (Config.InboundPackets).
func (s *ikeSA) espArrived() bool {
	f := s.e.cfg.InboundPackets
	if f == nil {
		return false
	}
	arrived := false
	for _, c := range s.children {
		if c.inst.Load() != instOK {
			continue
		}
		if n := f(&c.cfg); n != c.inSeen {
			c.inSeen, arrived = n, true
		}
	}
	return arrived
}

func (s *ikeSA) rekeyTimer() {
	if s.state != ikeEstablished || s.rekeyedTo != nil {
		return
	}
	s.rekeyIKE(0)
}
