package ike

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Child SAs: creation in IKE_AUTH and CREATE_CHILD_SA, rekeying
// (make-before-break, RFC 7296 §2.8 and the collisions of §2.8.1),
// deletion.
//
// Make-before-break. The initiator of a rekey installs the new pair when
// the exchange completes and switches outbound traffic to it at once (the
// responder installed its inbound SA before answering), then deletes the
// old pair; the old inbound SA is removed only when that Delete is
// answered. The responder installs the new pair before answering (its
// inbound SA is usable immediately) but keeps sending on the old one
// until the initiator deletes it (§2.8: the initiator's inbound SA might
// not exist yet when the answer is in flight).

type childState uint8

const (
	childInstalled childState = iota + 1
	childRekeying             // our rekey exchange is queued or in flight
	childRekeyed              // replaced; waits for its deletion
	childDeleting             // our Delete is queued or in flight
)

const (
	instPending int32 = iota
	instOK
	instFailed
)

type childSA struct {
	ike           *ikeSA
	inSPI, outSPI uint32
	esp           suite.ESP
	mode          sa.Mode
	localSel      []wire.Selector
	remoteSel     []wire.Selector
	cfg           ChildSA // without keys
	pending       *ChildSA
	state         childState
	created       time.Time
	tRekey        timer
	tExpire       timer
	inst          atomic.Int32
	inSeen        uint64 // Config.InboundPackets at the last liveness check

	nonces    [2][]byte // Ni, Nr of the exchange that made it
	replaces  *childSA  // the child this one rekeys
	peerRekey *childSA  // made by the peer rekeying this one while ours was pending
	redundant bool      // lost a rekey collision: its creator deletes it
	switched  bool
}

// newChild builds a Child SA with its keys (in*: what the peer sends us).
func (s *ikeSA) newChild(inSPI, outSPI uint32, esp suite.ESP, mode sa.Mode, localSel, remoteSel []wire.Selector, inEnc, inInteg, outEnc, outInteg []byte) *childSA {
	e, pol := s.e, s.pol
	now := e.now()
	c := &childSA{ike: s, inSPI: inSPI, outSPI: outSPI, esp: esp, mode: mode, localSel: localSel, remoteSel: remoteSel, created: now}
	c.tRekey = newTimer(func() { c.ike.rekeyChild(c) })
	c.tExpire = newTimer(func() { c.ike.deleteChild(c, "hard lifetime reached") })
	life := uint64((pol.ChildLifetime + time.Second - 1) / time.Second)
	base := fmt.Sprintf("ike/%s/%s/%08x", pol.Tenant, pol.Name, inSPI)
	lts, proto, lports := selectorPrefixes(localSel, pol.Protocol, pol.LocalPorts)
	rts, _, rports := selectorPrefixes(remoteSel, pol.Protocol, pol.RemotePorts)
	var encIn, encOut *sa.UDPEncap
	if s.natLocal || s.natRemote {
		encIn = &sa.UDPEncap{SrcPort: s.remote.Port(), DstPort: s.local.Port()}
		encOut = &sa.UDPEncap{SrcPort: s.local.Port(), DstPort: s.remote.Port()}
	}
	la, ra := s.local.Addr().Unmap(), s.remote.Addr().Unmap()
	lim := sa.Lifetime{Hard: sa.Limits{Seconds: life}}
	c.cfg = ChildSA{
		Tenant: pol.Tenant, Policy: pol.Name, VM: pol.VM, Scope: pol.Scope,
		In: sa.Config{Name: base + "-in", Scope: pol.Scope, SPI: inSPI, Dir: sa.DirIn, Src: ra, Dst: la, Mode: mode,
			Enc: esp.Enc, Integ: esp.Integ, ESN: esp.ESN, Lifetime: lim, Encap: encIn, Created: now},
		Out: sa.Config{Name: base + "-out", Scope: pol.Scope, SPI: outSPI, Dir: sa.DirOut, Src: la, Dst: ra, Mode: mode,
			Enc: esp.Enc, Integ: esp.Integ, ESN: esp.ESN, Lifetime: lim, Encap: encOut, Created: now},
		LocalTS: lts, RemoteTS: rts, Protocol: proto, LocalPorts: lports, RemotePorts: rports,
	}
	full := c.cfg
	full.In.EncKey, full.In.IntegKey = inEnc, inInteg
	full.Out.EncKey, full.Out.IntegKey = outEnc, outInteg
	c.pending = &full
	c.state = childInstalled
	return c
}

// copyCfg is a fresh copy of the child's configuration for a callback.
func (c *childSA) copyCfg() *ChildSA {
	cc := c.cfg
	cc.LocalTS, cc.RemoteTS = slices.Clone(cc.LocalTS), slices.Clone(cc.RemoteTS)
	return &cc
}

func (c *childSA) describe() ChildSAInfo {
	st := "INSTALLED"
	switch c.state {
	case childRekeying:
		st = "REKEYING"
	case childRekeyed:
		st = "REKEYED"
	case childDeleting:
		st = "DELETING"
	}
	return ChildSAInfo{
		Tenant: c.cfg.Tenant, Policy: c.cfg.Policy, VM: c.cfg.VM, Scope: c.cfg.Scope,
		Local: c.cfg.Out.Src, Remote: c.cfg.Out.Dst, InSPI: c.inSPI, OutSPI: c.outSPI,
		InName: c.cfg.In.Name, OutName: c.cfg.Out.Name, Mode: c.mode, State: st, Suite: c.esp.String(),
		LocalTS: slices.Clone(c.cfg.LocalTS), RemoteTS: slices.Clone(c.cfg.RemoteTS),
		Encap: c.cfg.Out.Encap != nil, Created: c.created, IKESPIi: c.ike.spiI, IKESPIr: c.ike.spiR,
	}
}

// installChild attaches c to its IKE SA and installs it; with switchNow
// outbound traffic moves to it at once.
func (s *ikeSA) installChild(c *childSA, switchNow bool) {
	e := s.e
	if c.replaces != nil {
		c.cfg.Replaces = c.replaces.cfg.In.Name
	}
	cc := c.pending
	c.pending = nil
	cc.Replaces = c.cfg.Replaces
	e.children[c.cfg.In.Name] = c
	e.children[c.cfg.Out.Name] = c
	s.children = append(s.children, c)
	s.childErr, s.childFails = "", 0
	e.disarm(&s.tChild)
	if c.replaces != nil && !c.redundant {
		e.stats.ChildRekeys++
	}
	now := e.now()
	e.arm(&c.tRekey, now.Add(e.jitter(s.pol.ChildLifetime, 0.85, 0.95)))
	e.arm(&c.tExpire, now.Add(s.pol.ChildLifetime))
	c.switched = switchNow
	var sw *ChildSA
	if switchNow {
		sw = c.copyCfg()
	}
	s.linfo("Child SA installed", "in_spi", hex32(c.inSPI), "out_spi", hex32(c.outSPI), "suite", c.esp.String(), "mode", c.mode)
	e.effect(func() {
		var err error
		if e.cfg.Install != nil {
			err = e.cfg.Install(cc)
		}
		suite.Zero(cc.In.EncKey, cc.In.IntegKey, cc.Out.EncKey, cc.Out.IntegKey)
		if err != nil {
			c.inst.Store(instFailed)
			e.mu.Lock()
			e.installFailed(c, err)
			e.unlock()
			return
		}
		c.inst.Store(instOK)
		if sw != nil && e.cfg.Switch != nil {
			e.cfg.Switch(sw)
		}
	})
}

func hex32(v uint32) string { return fmt.Sprintf("%08x", v) }

// switchTo moves outbound traffic to c (deferred switch of a responder).
func (e *Engine) switchTo(c *childSA) {
	if c.switched {
		return
	}
	c.switched = true
	cc := c.copyCfg()
	e.effect(func() {
		if c.inst.Load() == instOK && e.cfg.Switch != nil {
			e.cfg.Switch(cc)
		}
	})
}

// installFailed: the data path refused the child; drop it and tell the
// peer.
func (e *Engine) installFailed(c *childSA, err error) {
	s := c.ike
	s.lwarn("Child SA could not be installed", "in", c.cfg.In.Name, "err", err)
	if e.children[c.cfg.In.Name] != c {
		return
	}
	e.dropChild(c, true)
	// An initiating policy tries once or twice more with fresh SPIs (the
	// data path may have refused, say, an outbound SPI the peer chose that
	// another SA of the VM uses).
	if s.state == ikeEstablished && s.rekeyedTo == nil && s.pol.initiates() && len(s.children) == 0 && s.installFailures < 2 {
		s.installFailures++
		s.createChild(nil, 0)
	}
}

// dropChild detaches c and removes it from the data path. With
// tellPeer (and a live IKE SA) the peer gets a Delete.
func (e *Engine) dropChild(c *childSA, tellPeer bool) {
	s := c.ike
	e.disarm(&c.tRekey)
	e.disarm(&c.tExpire)
	if e.children[c.cfg.In.Name] == c {
		delete(e.children, c.cfg.In.Name)
		delete(e.children, c.cfg.Out.Name)
	}
	if i := slices.Index(s.children, c); i >= 0 {
		s.children = slices.Delete(s.children, i, i+1)
	}
	// A child the peer made by rekeying c takes over outbound traffic
	// before c goes.
	for _, n := range s.children {
		if n.replaces == c && !n.redundant {
			e.switchTo(n)
		}
	}
	for _, n := range s.children {
		if n.replaces == c {
			n.replaces = nil
		}
	}
	if c.pending != nil {
		suite.Zero(c.pending.In.EncKey, c.pending.In.IntegKey, c.pending.Out.EncKey, c.pending.Out.IntegKey)
		c.pending = nil
	}
	if tellPeer && s.state == ikeEstablished {
		s.sendChildDelete(c.inSPI)
	}
	cc := c.copyCfg()
	scope, spi := c.cfg.Scope, c.inSPI
	e.effect(func() {
		if c.inst.Load() != instFailed && e.cfg.Remove != nil {
			e.cfg.Remove(cc)
		}
	})
	k := sa.Key{Scope: scope, SPI: spi}
	if e.spis[k] {
		delete(e.spis, k)
		if c.inst.Load() == instFailed && e.cfg.FreeSPI != nil {
			e.cfg.FreeSPI(scope, spi)
		}
	}
	s.linfo("Child SA removed", "in_spi", hex32(c.inSPI), "out_spi", hex32(c.outSPI))
}

// sendChildDelete tells the peer that our inbound SA spi is gone.
func (s *ikeSA) sendChildDelete(spi uint32) {
	s.enqueue(&request{
		exch: wire.ExchangeInformational,
		build: func() []wire.Payload {
			return []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPISize: 4, SPIs: [][]byte{spiBytes(spi)}}}
		},
		onFail: func() { s.dead("no answer to a Delete") },
	}, false)
}

// deleteChild deletes c: Delete to the peer, removal when it answers.
func (s *ikeSA) deleteChild(c *childSA, reason string) {
	if c.state == childDeleting || c.ike != s {
		return
	}
	if s.state != ikeEstablished || s.rekeyedTo != nil {
		s.e.dropChild(c, false)
		return
	}
	c.state = childDeleting
	s.e.disarm(&c.tRekey)
	s.ldebug("deleting Child SA", "in_spi", hex32(c.inSPI), "reason", reason)
	s.queueChildDelete(c)
}

func (s *ikeSA) queueChildDelete(c *childSA) {
	s.enqueue(&request{
		exch: wire.ExchangeInformational,
		build: func() []wire.Payload {
			if c.ike != s || s.e.children[c.cfg.In.Name] != c {
				return []wire.Payload{} // gone meanwhile: an empty INFORMATIONAL
			}
			return []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPISize: 4, SPIs: [][]byte{spiBytes(c.inSPI)}}}
		},
		onResp: func(wire.Header, []wire.Payload) {
			if s.e.children[c.cfg.In.Name] == c {
				s.e.dropChild(c, false)
			}
		},
		onFail: func() { s.dead("no answer to a Delete") },
	}, false)
}

// lowestIsIn reports whether the lowest of all four nonces is one of ours
// (RFC 7296 §2.8.1: the SA made with the lowest nonce is redundant).
func lowestIsIn(ours, theirs [2][]byte) bool {
	lo := ours[0]
	for _, n := range [][]byte{ours[1], theirs[0], theirs[1]} {
		if bytes.Compare(n, lo) < 0 {
			lo = n
		}
	}
	return bytes.Equal(lo, ours[0]) || bytes.Equal(lo, ours[1])
}

// ---- CREATE_CHILD_SA, initiator ----

// rekeyChild starts rekeying c (timer, soft lifetime event).
func (s *ikeSA) rekeyChild(c *childSA) {
	if c.ike != s || c.state != childInstalled {
		return
	}
	if s.state != ikeEstablished || s.rekeyedTo != nil || s.rekeyPending {
		// Try again shortly (the IKE SA is busy being rekeyed itself),
		// and well before the hard lifetime ends (it may be short).
		now := s.e.now()
		d := s.e.jitter(10*time.Second, 1, 2)
		if c.tExpire.idx >= 0 {
			if left := c.tExpire.at.Sub(now); left > 0 {
				d = min(d, max(left/4, min(100*time.Millisecond, left/2)))
			}
		}
		s.e.arm(&c.tRekey, now.Add(d))
		return
	}
	c.state = childRekeying
	s.createChild(c, 0)
}

// childFailed records that the policy's Child SA was refused (why) while
// s stands, and for an initiating policy arms the retry of the Child SA
// alone, with CREATE_CHILD_SA on s: RetryInterval after the first
// failure, doubling after each (at most 256 times), as the policy's own
// retries of a failed IKE SA. A responding policy waits for the peer.
func (s *ikeSA) childFailed(why string) {
	s.childErr = why
	pol := s.pol
	if pol == nil || pol.removed || !pol.initiates() || s.state != ikeEstablished || len(s.children) > 0 {
		return
	}
	d := s.e.cfg.RetryInterval << min(s.childFails, 8)
	s.childFails++
	s.e.arm(&s.tChild, s.e.now().Add(s.e.jitter(d, 0.9, 1.1)))
}

// retryChild is the tChild timer: the policy's Child SA again, if s
// still has none.
func (s *ikeSA) retryChild() {
	pol := s.pol
	if s.state != ikeEstablished || s.rekeyedTo != nil || pol == nil || pol.removed || len(s.children) > 0 {
		return
	}
	if s.rekeyPending {
		// The IKE SA is being rekeyed: its successor takes the retry
		// over (moveChildren), or this one tries again shortly.
		s.e.arm(&s.tChild, s.e.now().Add(s.e.jitter(10*time.Second, 1, 2)))
		return
	}
	s.linfo("retrying the Child SA with CREATE_CHILD_SA", "last_failure", s.childErr, "attempt", s.childFails+1)
	s.createChild(nil, 0)
}

// createChild runs CREATE_CHILD_SA for a new Child SA, or to rekey old;
// group is the PFS group to use (0: the first proposal's).
func (s *ikeSA) createChild(old *childSA, group uint16) {
	pol := s.pol
	var inSPI uint32
	var ni []byte
	var dh suite.DH
	if group == 0 {
		group = pol.ESP[0].DH
	}
	r := &request{exch: wire.ExchangeCreateChildSA}
	r.build = func() []wire.Payload {
		if s.state != ikeEstablished || s.rekeyedTo != nil || (old != nil && (old.ike != s || old.state != childRekeying)) {
			if old != nil && old.ike == s && old.state == childRekeying {
				old.state = childInstalled
			}
			if n := s.rekeyedTo; old == nil && n != nil && len(n.children) == 0 {
				n.childFailed(s.childErr) // the successor retries it
			}
			return nil
		}
		spi, err := s.e.allocSPI(pol.Scope)
		if err != nil {
			s.lwarn("no SPI for a Child SA", "err", err)
			if old != nil {
				old.state = childInstalled
				s.e.arm(&old.tRekey, s.e.now().Add(s.e.cfg.RetryInterval))
			}
			return nil
		}
		inSPI, ni = spi, s.e.random(nonceLen)
		var ps []wire.Payload
		mode, lsel, rsel := pol.Mode, pol.localSel, pol.remSel
		if old != nil {
			ps = append(ps, &wire.Notify{Protocol: wire.ProtoESP, SPI: spiBytes(old.inSPI), NotifyType: wire.NotifyRekeySA})
			mode, lsel, rsel = old.mode, old.localSel, old.remoteSel
		}
		if mode == sa.ModeTransport {
			ps = append(ps, &wire.Notify{NotifyType: wire.NotifyUseTransportMode})
		}
		ps = append(ps, espProposals(pol.ESP, inSPI, false), &wire.Nonce{Data: ni})
		if group != 0 {
			if dh, err = suite.NewDH(group, s.e.cfg.Rand); err != nil {
				s.e.freeSPI(pol.Scope, inSPI)
				return nil
			}
			ps = append(ps, &wire.KE{Group: group, Data: dh.Public()})
		}
		return append(ps, &wire.TS{Selectors: lsel}, &wire.TS{Responder: true, Selectors: rsel})
	}
	r.onResp = func(_ wire.Header, ps []wire.Payload) { s.createChildResponse(old, inSPI, ni, dh, group, ps) }
	r.onFail = func() {
		if inSPI != 0 {
			s.e.freeSPI(pol.Scope, inSPI)
		}
		s.e.fail(FailureTimeout)
		if old != nil {
			s.e.stats.ChildRekeyFailures++
		}
		s.dead("no answer to CREATE_CHILD_SA")
	}
	s.enqueue(r, false)
}

// childPayloads sorts the payloads of CREATE_CHILD_SA.
type childPayloads struct {
	sa        *wire.SA
	nonce     []byte
	ke        *wire.KE
	tsi, tsr  *wire.TS
	transport bool
	rekey     *wire.Notify
	errNote   *wire.Notify
}

func sortChild(ps []wire.Payload) childPayloads {
	var cp childPayloads
	for _, p := range ps {
		switch x := p.(type) {
		case *wire.SA:
			cp.sa = x
		case *wire.Nonce:
			cp.nonce = x.Data
		case *wire.KE:
			cp.ke = x
		case *wire.TS:
			if x.Responder {
				cp.tsr = x
			} else {
				cp.tsi = x
			}
		case *wire.Notify:
			switch {
			case x.NotifyType == wire.NotifyUseTransportMode:
				cp.transport = true
			case x.NotifyType == wire.NotifyRekeySA:
				cp.rekey = x
			case x.NotifyType.IsError() && cp.errNote == nil:
				cp.errNote = x
			}
		}
	}
	return cp
}

func (s *ikeSA) createChildResponse(old *childSA, inSPI uint32, ni []byte, dh suite.DH, group uint16, ps []wire.Payload) {
	pol := s.pol
	if s.state != ikeEstablished || s.rekeyedTo != nil {
		// Deleting or replaced meanwhile: the answer is moot.
		s.e.freeSPI(pol.Scope, inSPI)
		if n := s.rekeyedTo; old == nil && n != nil && len(n.children) == 0 {
			n.childFailed("the IKE SA was rekeyed while the Child SA was made")
		}
		return
	}
	cp := sortChild(ps)
	// restore puts old back to work after a failed rekey.
	restore := func(after time.Duration) {
		if old == nil || old.ike != s || old.state != childRekeying {
			return
		}
		if old.peerRekey != nil && s.e.children[old.peerRekey.cfg.In.Name] == old.peerRekey {
			old.state = childRekeyed // the peer's rekey stands; it deletes old
			return
		}
		old.state = childInstalled
		s.e.arm(&old.tRekey, s.e.now().Add(after))
	}
	if cp.errNote != nil {
		s.e.freeSPI(pol.Scope, inSPI)
		if t := cp.errNote.NotifyType; t != wire.NotifyInvalidKEPayload && t != wire.NotifyTemporaryFailure {
			s.e.fail(failureOf(t))
			if old != nil {
				s.e.stats.ChildRekeyFailures++
			}
		}
		switch t := cp.errNote.NotifyType; t {
		case wire.NotifyInvalidKEPayload:
			if len(cp.errNote.Data) == 2 {
				g := binary.BigEndian.Uint16(cp.errNote.Data)
				ok := false
				for _, x := range pol.ESP {
					ok = ok || (x.DH == g && g != 0)
				}
				if ok && g != group {
					s.createChild(old, g)
					return
				}
			}
			restore(s.e.cfg.RetryInterval)
		case wire.NotifyTemporaryFailure:
			restore(s.e.jitter(10*time.Second, 0.5, 1.5))
		case wire.NotifyChildSANotFound:
			if old != nil && old.ike == s {
				s.lwarn("peer does not know the Child SA we rekey; removing it", "in_spi", hex32(old.inSPI))
				s.e.dropChild(old, false)
				if pol.initiates() && len(s.children) == 0 {
					s.createChild(nil, 0)
				}
			}
		default:
			s.lwarn("CREATE_CHILD_SA refused", "notify", t)
			restore(s.e.cfg.RetryInterval)
		}
		if old == nil {
			s.childFailed(cp.errNote.NotifyType.String())
		}
		return
	}
	reason, bad := "", FailureNoProposal
	var ch espChoice
	var ok bool
	mode := pol.Mode
	lsel, rsel := pol.localSel, pol.remSel
	if old != nil {
		mode, lsel, rsel = old.mode, old.localSel, old.remoteSel
	}
	if cp.sa != nil {
		ch, ok = acceptedESP(cp.sa, pol.ESP, false)
	}
	switch {
	case !ok:
		reason = "responder chose an ESP proposal we did not offer"
	case ch.suite.DH != group && !(ch.suite.DH == 0 && group == 0):
		reason = "responder chose another PFS group"
	case ch.suite.DH != 0 && (cp.ke == nil || cp.ke.Group != ch.suite.DH):
		reason = "responder's KE payload does not match"
	case len(cp.nonce) < minNonce || len(cp.nonce) > maxNonce:
		reason = "responder's nonce has a bad length"
	case cp.tsi == nil || cp.tsr == nil || !within(cp.tsi.Selectors, lsel) || !within(cp.tsr.Selectors, rsel):
		reason, bad = "responder's traffic selectors are not within ours", FailureTSUnacceptable
	case cp.transport != (mode == sa.ModeTransport):
		reason = "responder chose another mode"
	case spiFrom(ch.spi) < 0x100:
		reason = "responder chose a reserved SPI"
	}
	var shared []byte
	if reason == "" && ch.suite.DH != 0 {
		var err error
		if shared, err = dh.Shared(cp.ke.Data); err != nil {
			reason = "responder's KE payload: " + err.Error()
		}
	}
	refused := func(reason string, bad Failure) {
		s.e.fail(bad)
		if old != nil {
			s.e.stats.ChildRekeyFailures++
		}
		s.lwarn("CREATE_CHILD_SA answer refused", "reason", reason)
		s.e.freeSPI(pol.Scope, inSPI)
		s.sendChildDelete(inSPI)
		restore(s.e.cfg.RetryInterval)
		if old == nil {
			s.childFailed(reason)
		}
	}
	if reason != "" {
		refused(reason, bad)
		return
	}
	complete := func(add []byte) {
		iE, iI, rE, rI, err := suite.ChildKeysAddKE(s.suite, s.keys.D, ch.suite, shared, ni, cp.nonce, add)
		suite.Zero(shared)
		if err != nil {
			refused("key derivation: "+err.Error(), FailureOther)
			return
		}
		s.childMade(old, inSPI, ni, ch, mode, cp, iE, iI, rE, rI)
	}
	if !ch.suite.HasAddKE() {
		complete(nil)
		return
	}
	// The additional key exchanges run in IKE_FOLLOWUP_KE (followup.go);
	// old stays REKEYING meanwhile.
	s.followups(addKEMethods(ch.suite.AddKE), addKELink(ps), nil, func(add []byte, why string) {
		if s.state != ikeEstablished || s.rekeyedTo != nil {
			suite.Zero(shared, add)
			s.e.freeSPI(pol.Scope, inSPI)
			return
		}
		if why != "" {
			suite.Zero(shared)
			refused(why, FailureOther)
			return
		}
		complete(add)
		suite.Zero(add)
	})
}

// childMade installs the Child SA our CREATE_CHILD_SA made, settling a
// rekey collision (RFC 7296 §2.8.1) if old was rekeyed by the peer too.
func (s *ikeSA) childMade(old *childSA, inSPI uint32, ni []byte, ch espChoice, mode sa.Mode, cp childPayloads, iE, iI, rE, rI []byte) {
	c := s.newChild(inSPI, spiFrom(ch.spi), ch.suite, mode, cp.tsi.Selectors, cp.tsr.Selectors, rE, rI, iE, iI)
	c.nonces = [2][]byte{ni, slices.Clone(cp.nonce)}
	if old == nil || old.ike != s || old.state != childRekeying {
		// A new child, or old went meanwhile (deleted, hard lifetime):
		// the new one stands alone.
		s.installChild(c, true)
		return
	}
	c.replaces = old
	if b := old.peerRekey; b != nil && s.e.children[b.cfg.In.Name] == b && lowestIsIn(c.nonces, b.nonces) {
		// §2.8.1: ours has the lowest nonce and is redundant; we made it,
		// we delete it. The peer's replacement stays; the peer deletes old.
		s.ldebug("rekey collision lost", "old_in_spi", hex32(old.inSPI))
		c.redundant = true
		old.state = childRekeyed
		s.installChild(c, false)
		s.deleteChild(c, "redundant after a rekey collision")
		return
	}
	if b := old.peerRekey; b != nil {
		s.ldebug("rekey collision won", "old_in_spi", hex32(old.inSPI))
		b.redundant = true // the peer made it and deletes it
	}
	s.installChild(c, true)
	old.state = childRekeyed
	s.deleteChild(old, "rekeyed")
}

// ---- CREATE_CHILD_SA, responder ----

type childOffer struct {
	sa        *wire.SA
	tsi, tsr  *wire.TS
	transport bool
	ke        *wire.KE
	ni        []byte
}

// respondChild negotiates the Child SA the peer asks for. It returns the
// payloads of the answer (an error notify on failure) and the child, not
// yet installed. In IKE_AUTH (auth) the IKE SA's nonces key it and PFS is
// not negotiated. A suite with additional key exchanges is for
// offerChild.
func (s *ikeSA) respondChild(o childOffer, auth bool, old *childSA) ([]wire.Payload, *childSA) {
	ps, fin, abort, addKE := s.offerChild(o, auth, old)
	if fin == nil {
		return ps, nil
	}
	if len(addKE) > 0 {
		abort()
		return s.refuseChild(wire.NotifyNoProposalChosen, nil, "a suite with additional key exchanges needs IKE_FOLLOWUP_KE")
	}
	c, why := fin(nil)
	if c == nil {
		return s.refuseChild(wire.NotifyNoProposalChosen, nil, why)
	}
	return ps, c
}

// refuseChild counts and logs a refused Child SA and returns the answer.
func (s *ikeSA) refuseChild(t wire.NotifyType, data []byte, why string) ([]wire.Payload, *childSA) {
	s.e.fail(failureOf(t))
	s.lwarn("Child SA refused", "reason", why)
	return []wire.Payload{&wire.Notify{NotifyType: t, Data: data}}, nil
}

// offerChild negotiates the Child SA the peer asks for up to its keys:
// it returns the payloads of the answer (an error notify, and fin nil, on
// failure), fin, which keys and builds the child (not yet installed) from
// SK(1) | ... | SK(n) of the additional key exchanges addKE still to run
// (nil if none), and abort, which releases the child's SPI if fin is
// never called.
func (s *ikeSA) offerChild(o childOffer, auth bool, old *childSA) (ps []wire.Payload, fin func(add []byte) (*childSA, string), abort func(), addKE []uint16) {
	pol := s.pol
	e := s.e
	mode := pol.Mode
	if old != nil {
		mode = old.mode
	}
	refuse := func(t wire.NotifyType, data []byte, why string) ([]wire.Payload, func([]byte) (*childSA, string), func(), []uint16) {
		ps, _ := s.refuseChild(t, data, why)
		return ps, nil, nil, nil
	}
	if o.transport != (mode == sa.ModeTransport) {
		return refuse(wire.NotifyNoProposalChosen, nil, fmt.Sprintf("peer asks for the other mode; the policy wants %s", mode))
	}
	var keGroup uint16
	if o.ke != nil {
		keGroup = o.ke.Group
	}
	ch, ok := selectESP(o.sa.Proposals, pol.ESP, auth, keGroup, e.cfg.PreferInitiatorProposals)
	if !ok {
		return refuse(wire.NotifyNoProposalChosen, nil, "no acceptable ESP proposal")
	}
	if !auth && ch.suite.DH != 0 && keGroup != ch.suite.DH {
		return refuse(wire.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, ch.suite.DH), "peer's KE group differs")
	}
	if spiFrom(ch.spi) < 0x100 {
		return refuse(wire.NotifyNoProposalChosen, nil, "peer's SPI is reserved")
	}
	tsi := narrow(o.tsi.Selectors, pol.remSel)
	tsr := narrow(o.tsr.Selectors, pol.localSel)
	if old != nil {
		tsi, tsr = narrow(o.tsi.Selectors, old.remoteSel), narrow(o.tsr.Selectors, old.localSel)
	}
	if len(tsi) == 0 || len(tsr) == 0 {
		return refuse(wire.NotifyTSUnacceptable, nil, "traffic selectors do not meet the policy's")
	}
	ni, nr := s.ni, s.nr
	if !auth {
		ni, nr = o.ni, e.random(nonceLen)
	}
	var shared, kePub []byte
	if !auth && ch.suite.DH != 0 {
		dh, err := suite.NewDH(ch.suite.DH, e.cfg.Rand)
		if err != nil {
			return refuse(wire.NotifyNoProposalChosen, nil, err.Error())
		}
		if shared, err = dh.Shared(o.ke.Data); err != nil {
			return refuse(wire.NotifyInvalidSyntax, nil, "peer's KE payload: "+err.Error())
		}
		kePub = dh.Public()
	}
	inSPI, err := e.allocSPI(pol.Scope)
	if err != nil {
		suite.Zero(shared)
		return refuse(wire.NotifyNoAdditionalSAs, nil, "no SPI: "+err.Error())
	}
	fin = func(add []byte) (*childSA, string) {
		iE, iI, rE, rI, err := suite.ChildKeysAddKE(s.suite, s.keys.D, ch.suite, shared, ni, nr, add)
		suite.Zero(shared)
		if err != nil {
			e.freeSPI(pol.Scope, inSPI)
			return nil, "key derivation: " + err.Error()
		}
		c := s.newChild(inSPI, spiFrom(ch.spi), ch.suite, mode, tsr, tsi, iE, iI, rE, rI)
		c.nonces = [2][]byte{slices.Clone(ni), nr}
		return c, ""
	}
	abort = func() {
		suite.Zero(shared)
		e.freeSPI(pol.Scope, inSPI)
	}
	ps = []wire.Payload{&wire.SA{Proposals: []wire.Proposal{{Num: ch.num, Protocol: wire.ProtoESP, SPI: spiBytes(inSPI), Transforms: ch.suite.Transforms()}}}}
	if !auth {
		ps = append(ps, &wire.Nonce{Data: nr})
		if kePub != nil {
			ps = append(ps, &wire.KE{Group: ch.suite.DH, Data: kePub})
		}
	}
	if mode == sa.ModeTransport {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyUseTransportMode})
	}
	ps = append(ps, &wire.TS{Selectors: tsi}, &wire.TS{Responder: true, Selectors: tsr})
	return ps, fin, abort, addKEMethods(ch.suite.AddKE)
}

// createChildRequest answers CREATE_CHILD_SA: a new Child SA, a Child SA
// rekey or an IKE SA rekey.
func (s *ikeSA) createChildRequest(p Packet, h wire.Header, ps []wire.Payload) {
	cp := sortChild(ps)
	if s.state != ikeEstablished || s.rekeyedTo != nil {
		s.respondNotify(p, h, wire.NotifyTemporaryFailure, nil)
		return
	}
	if cp.sa == nil || len(cp.sa.Proposals) == 0 || cp.nonce == nil {
		s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
		return
	}
	if len(cp.nonce) < minNonce || len(cp.nonce) > maxNonce {
		s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
		return
	}
	if cp.sa.Proposals[0].Protocol == wire.ProtoIKE {
		s.rekeyIKERequest(p, h, cp)
		return
	}
	if cp.tsi == nil || cp.tsr == nil {
		s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
		return
	}
	if s.rekeyPending {
		// RFC 7296 §2.25.2: no new Child SAs while the IKE SA is rekeyed.
		s.respondNotify(p, h, wire.NotifyTemporaryFailure, nil)
		return
	}
	var old *childSA
	if cp.rekey != nil {
		spi := spiFrom(cp.rekey.SPI)
		for _, c := range s.children {
			if c.outSPI == spi {
				old = c
			}
		}
		if old == nil || cp.rekey.Protocol != wire.ProtoESP {
			rsp := &wire.Notify{Protocol: wire.ProtoESP, SPI: cp.rekey.SPI, NotifyType: wire.NotifyChildSANotFound}
			s.respond(p, h, []wire.Payload{rsp})
			return
		}
		if old.state == childRekeyed || old.state == childDeleting {
			s.respondNotify(p, h, wire.NotifyTemporaryFailure, nil)
			return
		}
	}
	rps, fin, abort, addKE := s.offerChild(childOffer{sa: cp.sa, tsi: cp.tsi, tsr: cp.tsr, transport: cp.transport, ke: cp.ke, ni: cp.nonce}, false, old)
	if fin == nil {
		s.respond(p, h, rps)
		return
	}
	install := func(c *childSA) {
		if old == nil || old.ike != s || s.e.children[old.cfg.In.Name] != old {
			s.installChild(c, true) // a new child, or old went meanwhile
			return
		}
		c.replaces = old
		if old.state == childRekeying {
			old.peerRekey = c // collision: settled when our exchange ends
		} else {
			old.state = childRekeyed
			s.e.disarm(&old.tRekey)
		}
		s.installChild(c, false)
	}
	if len(addKE) == 0 {
		c, why := fin(nil)
		if c == nil {
			rps, _ = s.refuseChild(wire.NotifyNoProposalChosen, nil, why)
		} else {
			install(c)
		}
		s.respond(p, h, rps)
		return
	}
	if old != nil && old.state == childRekeying {
		// We rekey old ourselves and the peer's rekey needs follow-ups:
		// its child would not exist when ours is settled. The peer
		// retries, or deletes old once ours is done.
		abort()
		s.respondNotify(p, h, wire.NotifyTemporaryFailure, nil)
		return
	}
	s.awaitFollowups(p, h, rps, addKE, func(add []byte) bool {
		c, why := fin(add)
		if c == nil {
			s.refuseChild(wire.NotifyNoProposalChosen, nil, why)
			return false
		}
		if old != nil && old.state == childRekeyed || old != nil && old.state == childDeleting {
			old = nil // replaced or deleted meanwhile: the new child stands alone
		}
		install(c)
		return true
	}, abort)
}

// ---- INFORMATIONAL ----

func (s *ikeSA) informationalRequest(p Packet, h wire.Header, ps []wire.Payload) {
	var delIKE, authFailed bool
	var ours [][]byte
	var drop []*childSA
	for _, x := range ps {
		switch d := x.(type) {
		case *wire.Delete:
			switch d.Protocol {
			case wire.ProtoIKE:
				delIKE = true
			case wire.ProtoESP:
				for _, b := range d.SPIs {
					spi := spiFrom(b)
					for _, c := range s.children {
						if c.outSPI == spi && !slices.Contains(drop, c) {
							drop = append(drop, c)
							if c.state != childDeleting {
								ours = append(ours, spiBytes(c.inSPI))
							}
						}
					}
				}
			}
		case *wire.Notify:
			if d.NotifyType == wire.NotifyAuthenticationFailed {
				authFailed = true
			}
		}
	}
	if delIKE || authFailed {
		s.respond(p, h, nil)
		pol, rekeyed := s.pol, s.rekeyedTo != nil
		why := "deleted by peer"
		if authFailed {
			why = "peer refused our authentication"
		}
		s.destroy(why)
		if !rekeyed && pol != nil {
			s.e.failed(pol)
		}
		return
	}
	var rps []wire.Payload
	if len(ours) > 0 {
		rps = []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPISize: 4, SPIs: ours}}
	}
	s.respond(p, h, rps)
	for _, c := range drop {
		s.e.dropChild(c, false)
	}
}

// ---- IKE SA rekeying (RFC 7296 §2.18, §2.8.1) ----

// rekeyIKE rekeys the IKE SA with a new DH exchange; group 0 means the
// first proposal's.
func (s *ikeSA) rekeyIKE(group uint16) {
	if s.rekeyPending && group == 0 {
		return
	}
	pol := s.pol
	s.rekeyPending = true
	if group == 0 {
		group = pol.IKE[0].DH
	}
	var spi uint64
	var ni []byte
	var dh suite.DH
	r := &request{exch: wire.ExchangeCreateChildSA}
	r.build = func() []wire.Payload {
		if s.state != ikeEstablished || s.rekeyedTo != nil {
			s.rekeyPending = false
			return nil
		}
		var err error
		if dh, err = suite.NewDH(group, s.e.cfg.Rand); err != nil {
			s.rekeyPending = false
			return nil
		}
		spi, ni = s.e.newSPI(), s.e.random(nonceLen)
		return []wire.Payload{ikeProposals(pol.IKE, binary.BigEndian.AppendUint64(nil, spi)), &wire.Nonce{Data: ni}, &wire.KE{Group: group, Data: dh.Public()}}
	}
	r.onResp = func(_ wire.Header, ps []wire.Payload) { s.rekeyIKEResponse(spi, ni, dh, group, ps) }
	r.onFail = func() {
		s.e.fail(FailureTimeout)
		s.e.stats.IKERekeyFailures++
		s.dead("no answer to the IKE SA rekey")
	}
	s.enqueue(r, false)
}

func (s *ikeSA) rekeyIKEResponse(spi uint64, ni []byte, dh suite.DH, group uint16, ps []wire.Payload) {
	pol := s.pol
	s.rekeyPending = false
	if s.state != ikeEstablished || s.rekeyedTo != nil {
		return
	}
	cp := sortChild(ps)
	retry := func(after time.Duration) {
		if c := s.collision; c != nil && c.state == ikeEstablished {
			s.e.stats.IKERekeys++ // the peer's
			s.moveChildren(c)     // the peer's rekey stands; it deletes this SA
			return
		}
		s.e.arm(&s.tRekey, s.e.now().Add(after))
	}
	if cp.errNote != nil {
		switch cp.errNote.NotifyType {
		case wire.NotifyInvalidKEPayload:
			if len(cp.errNote.Data) == 2 {
				g := binary.BigEndian.Uint16(cp.errNote.Data)
				for _, x := range pol.IKE {
					if x.DH == g && g != group {
						s.rekeyIKE(g)
						return
					}
				}
			}
			retry(s.e.cfg.RetryInterval)
		case wire.NotifyTemporaryFailure:
			retry(s.e.jitter(10*time.Second, 0.5, 1.5))
		default:
			s.e.fail(failureOf(cp.errNote.NotifyType))
			s.e.stats.IKERekeyFailures++
			s.lwarn("IKE SA rekey refused", "notify", cp.errNote.NotifyType)
			retry(s.e.cfg.RetryInterval)
		}
		return
	}
	var st suite.IKE
	ok := false
	if cp.sa != nil {
		st, ok = acceptedIKE(cp.sa, 8, pol.IKE)
	}
	if !ok || st.DH != group || cp.ke == nil || cp.ke.Group != group || len(cp.nonce) < minNonce || len(cp.nonce) > maxNonce {
		s.e.fail(FailureNoProposal)
		s.e.stats.IKERekeyFailures++
		s.lwarn("IKE SA rekey answer refused")
		retry(s.e.cfg.RetryInterval)
		return
	}
	peerSPI := binary.BigEndian.Uint64(cp.sa.Proposals[0].SPI)
	shared, err := dh.Shared(cp.ke.Data)
	if err != nil || peerSPI == 0 || s.e.sas[spi] != nil {
		retry(s.e.cfg.RetryInterval)
		return
	}
	nr := slices.Clone(cp.nonce)
	complete := func(add []byte) {
		keys, err := suite.DeriveIKERekeyAddKE(st, s.keys.D, shared, ni, nr, add, spi, peerSPI)
		suite.Zero(shared)
		if err != nil {
			retry(s.e.cfg.RetryInterval)
			return
		}
		n, err := s.successor(true, spi, peerSPI, st, keys, ni, nr)
		if err != nil {
			retry(s.e.cfg.RetryInterval)
			return
		}
		if c := s.collision; c != nil && c.state == ikeEstablished {
			if lowestIsIn(n.nonces, c.nonces) {
				s.ldebug("IKE SA rekey collision lost")
				s.moveChildren(c)
				n.remove("redundant after an IKE SA rekey collision", true)
				return
			}
			s.ldebug("IKE SA rekey collision won")
		}
		s.moveChildren(n)
		s.e.stats.IKERekeys++
		s.linfo("IKE SA rekeyed", "new_spi_i", hex64(n.spiI), "new_spi_r", hex64(n.spiR), "key_exchanges", st.KeyExchanges())
		s.enqueue(&request{
			exch:   wire.ExchangeInformational,
			build:  func() []wire.Payload { return []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}} },
			onResp: func(wire.Header, []wire.Payload) { s.destroy("rekeyed") },
			onFail: func() { s.destroy("rekeyed") },
		}, true)
	}
	if !st.HasAddKE() {
		complete(nil)
		return
	}
	// The additional key exchanges run in IKE_FOLLOWUP_KE (followup.go);
	// the rekey is pending until they are done.
	s.rekeyPending = true
	s.followups(addKEMethods(st.AddKE), addKELink(ps), nil, func(add []byte, why string) {
		s.rekeyPending = false
		if s.state != ikeEstablished || s.rekeyedTo != nil {
			suite.Zero(shared, add)
			return
		}
		if why != "" {
			suite.Zero(shared)
			s.e.fail(FailureOther)
			s.e.stats.IKERekeyFailures++
			s.lwarn("IKE SA rekey failed", "reason", why)
			retry(s.e.cfg.RetryInterval)
			return
		}
		complete(add)
		suite.Zero(add)
	})
}

// rekeyIKERequest answers the peer's rekey of this IKE SA.
func (s *ikeSA) rekeyIKERequest(p Packet, h wire.Header, cp childPayloads) {
	pol := s.pol
	for _, c := range s.children {
		if c.state == childRekeying && s.req != nil && (s.req.exch == wire.ExchangeCreateChildSA || s.req.exch == wire.ExchangeFollowupKE) && !s.rekeyPending {
			s.respondNotify(p, h, wire.NotifyTemporaryFailure, nil)
			return
		}
	}
	if cp.ke == nil {
		s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
		return
	}
	ch, ok := selectIKE(cp.sa.Proposals, 8, pol.IKE, cp.ke.Group, s.e.cfg.PreferInitiatorProposals)
	if !ok {
		s.respondNotify(p, h, wire.NotifyNoProposalChosen, nil)
		return
	}
	if ch.suite.DH != cp.ke.Group {
		s.respondNotify(p, h, wire.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, ch.suite.DH))
		return
	}
	if ch.suite.HasAddKE() && s.rekeyPending {
		// Our own rekey is pending and the peer's needs follow-ups: its
		// new SA would not exist when ours is settled. The peer retries
		// (or its rekey is moot once ours is done).
		s.respondNotify(p, h, wire.NotifyTemporaryFailure, nil)
		return
	}
	var peerSPI uint64
	for _, pr := range cp.sa.Proposals {
		if pr.Num == ch.num && len(pr.SPI) == 8 {
			peerSPI = binary.BigEndian.Uint64(pr.SPI)
		}
	}
	dh, err := suite.NewDH(ch.suite.DH, s.e.cfg.Rand)
	if err != nil || peerSPI == 0 {
		s.respondNotify(p, h, wire.NotifyNoProposalChosen, nil)
		return
	}
	shared, err := dh.Shared(cp.ke.Data)
	if err != nil {
		s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
		return
	}
	newSPI, nr := s.e.newSPI(), s.e.random(nonceLen)
	ni := slices.Clone(cp.nonce)
	finish := func(add []byte) bool {
		keys, err := suite.DeriveIKERekeyAddKE(ch.suite, s.keys.D, shared, ni, nr, add, peerSPI, newSPI)
		suite.Zero(shared)
		if err != nil {
			return false
		}
		n, err := s.successor(false, peerSPI, newSPI, ch.suite, keys, ni, nr)
		if err != nil {
			return false
		}
		if s.rekeyPending {
			s.collision = n // settled when our own rekey ends
		} else {
			s.moveChildren(n)
			s.e.stats.IKERekeys++
		}
		return true
	}
	rps := []wire.Payload{
		&wire.SA{Proposals: []wire.Proposal{{Num: ch.num, Protocol: wire.ProtoIKE, SPI: binary.BigEndian.AppendUint64(nil, newSPI), Transforms: ch.suite.Transforms()}}},
		&wire.Nonce{Data: nr},
		&wire.KE{Group: ch.suite.DH, Data: dh.Public()},
	}
	if ch.suite.HasAddKE() {
		s.awaitFollowups(p, h, rps, addKEMethods(ch.suite.AddKE), finish, func() { suite.Zero(shared) })
		return
	}
	if !finish(nil) {
		s.respondNotify(p, h, wire.NotifyNoProposalChosen, nil)
		return
	}
	s.respond(p, h, rps)
}

// successor makes the IKE SA that replaces s after a rekey.
func (s *ikeSA) successor(initiator bool, spiI, spiR uint64, st suite.IKE, keys suite.Keys, ni, nr []byte) (*ikeSA, error) {
	n := s.e.newIKESA(initiator, s.local, s.remote, s.scope)
	n.setPolicy(s.pol)
	n.spiI, n.spiR = spiI, spiR
	if err := n.useKeys(st, keys); err != nil {
		keys.Zero()
		return nil, err
	}
	n.natLocal, n.natRemote, n.fragOK = s.natLocal, s.natRemote, s.fragOK
	n.peerHashes, n.localID, n.remoteID, n.peerCert = s.peerHashes, s.localID, s.remoteID, s.peerCert
	n.ppk = s.ppk // its keys come from our SK_d, which the PPK keyed
	n.kesDone = addKEMethods(st.AddKE)
	n.state = ikeEstablished
	n.established = n.created
	n.nonces = [2][]byte{ni, nr}
	s.e.sas[n.ourSPI()] = n
	n.armEstablished()
	return n, nil
}

// moveChildren hands s's Child SAs to its successor n; s then only waits
// to be deleted.
func (s *ikeSA) moveChildren(n *ikeSA) {
	for _, c := range s.children {
		c.ike = n
		n.children = append(n.children, c)
		if c.state == childDeleting {
			n.queueChildDelete(c)
		}
		if c.state == childRekeying {
			c.state = childInstalled
			s.e.arm(&c.tRekey, s.e.now().Add(s.e.jitter(10*time.Second, 1, 2)))
		}
	}
	s.children = nil
	s.rekeyedTo = n
	s.e.disarm(&s.tRekey)
	s.e.disarm(&s.tDPD)
	if len(n.children) == 0 && s.childErr != "" {
		// Still without the policy's Child SA: the successor says why,
		// and makes the pending retry.
		n.childErr, n.childFails = s.childErr, s.childFails
		if s.tChild.idx >= 0 {
			s.e.arm(&n.tChild, s.tChild.at)
		}
	}
	s.e.disarm(&s.tChild)
}
