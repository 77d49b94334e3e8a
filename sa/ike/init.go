package ike

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"

	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// IKE_SA_INIT (RFC 7296 §1.2): SA, KE, nonces, NAT detection (§2.23),
// cookies (§2.6), INVALID_KE_PAYLOAD (§1.3), and the announcements of
// RFC 7383 fragmentation and RFC 7427 signature hashes.

const (
	nonceLen        = 32
	maxInitRetries  = 4
	minNonce        = 16
	maxNonce        = 256
	maxCookieLength = 64
)

// ourHashes is our SIGNATURE_HASH_ALGORITHMS: SHA2-256, -384, -512 and
// Identity (Ed25519).
var ourHashes = []uint16{suite.HashSHA256, suite.HashSHA384, suite.HashSHA512, suite.HashIdentity}

func hashAlgsData(hs []uint16) []byte {
	b := make([]byte, 0, 2*len(hs))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint16(b, h)
	}
	return b
}

func parseHashAlgs(b []byte) []uint16 {
	var out []uint16
	for i := 0; i+2 <= len(b) && len(out) < 16; i += 2 {
		out = append(out, binary.BigEndian.Uint16(b[i:]))
	}
	return out
}

// natHash is SHA-1(SPIi | SPIr | IP | Port) of a NAT_DETECTION_*_IP
// notify.
func natHash(spiI, spiR uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], spiI)
	binary.BigEndian.PutUint64(b[8:], spiR)
	h.Write(b[:])
	h.Write(ap.Addr().Unmap().AsSlice())
	binary.BigEndian.PutUint16(b[:2], ap.Port())
	h.Write(b[:2])
	return h.Sum(nil)
}

// initPayloads sorts the payloads of an IKE_SA_INIT message.
type initPayloads struct {
	sa       *wire.SA
	ke       *wire.KE
	nonce    []byte
	cookie   []byte
	natSrc   [][]byte
	natDst   [][]byte
	frag     bool
	inter    bool // INTERMEDIATE_EXCHANGE_SUPPORTED
	usePPK   bool
	hashes   []uint16
	certReq  bool
	errNote  *wire.Notify
	caHashes []byte
}

func sortInit(ps []wire.Payload) initPayloads {
	var ip initPayloads
	for _, p := range ps {
		switch x := p.(type) {
		case *wire.SA:
			if ip.sa == nil {
				ip.sa = x
			}
		case *wire.KE:
			if ip.ke == nil {
				ip.ke = x
			}
		case *wire.Nonce:
			if ip.nonce == nil {
				ip.nonce = x.Data
			}
		case *wire.CertReq:
			ip.certReq = true
			ip.caHashes = append(ip.caHashes, x.Data...)
		case *wire.Notify:
			switch x.NotifyType {
			case wire.NotifyCookie:
				ip.cookie = x.Data
			case wire.NotifyNATDetectionSourceIP:
				ip.natSrc = append(ip.natSrc, x.Data)
			case wire.NotifyNATDetectionDestinationIP:
				ip.natDst = append(ip.natDst, x.Data)
			case wire.NotifyIKEv2FragmentationSupported:
				ip.frag = true
			case wire.NotifyIntermediateExchangeSupported:
				ip.inter = true
			case wire.NotifyUsePPK:
				ip.usePPK = true
			case wire.NotifySignatureHashAlgorithms:
				ip.hashes = parseHashAlgs(x.Data)
			default:
				if x.NotifyType.IsError() && ip.errNote == nil {
					ip.errNote = x
				}
			}
		}
	}
	return ip
}

func containsBytes(l [][]byte, b []byte) bool {
	for _, x := range l {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

// ---- initiator ----

// initiate starts a new IKE SA for policy p.
func (e *Engine) initiate(p *policyState) {
	s := e.newIKESA(true, netip.AddrPortFrom(p.Local, e.cfg.Port), netip.AddrPortFrom(p.Remote, e.cfg.Port), p.Scope)
	s.setPolicy(p)
	s.spiI = e.newSPI()
	e.sas[s.spiI] = s
	s.ni = e.random(nonceLen)
	s.ldebug("initiating IKE SA")
	s.sendInit(p.IKE[0].DH)
}

// sendInit sends (or sends again, after a COOKIE or INVALID_KE_PAYLOAD)
// the IKE_SA_INIT request with a KE payload of group.
func (s *ikeSA) sendInit(group uint16) {
	if s.dh == nil || s.dh.Group() != group {
		dh, err := suite.NewDH(group, s.e.cfg.Rand)
		if err != nil {
			s.dead("DH: " + err.Error())
			return
		}
		s.dh = dh
	}
	var ps []wire.Payload
	if s.cookie != nil {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyCookie, Data: s.cookie})
	}
	natSrc := natHash(s.spiI, 0, s.local)
	if s.pol.ForceEncap {
		// RFC 7296 §2.23: a host may send a value that cannot match to
		// make the peer see a NAT and use UDP encapsulation.
		natSrc = s.e.random(len(natSrc))
	}
	ps = append(ps,
		ikeProposals(s.pol.IKE, nil),
		&wire.KE{Group: group, Data: s.dh.Public()},
		&wire.Nonce{Data: s.ni},
		&wire.Notify{NotifyType: wire.NotifyNATDetectionSourceIP, Data: natSrc},
		&wire.Notify{NotifyType: wire.NotifyNATDetectionDestinationIP, Data: natHash(s.spiI, 0, s.remote)},
		&wire.Notify{NotifyType: wire.NotifyIKEv2FragmentationSupported},
		&wire.Notify{NotifyType: wire.NotifySignatureHashAlgorithms, Data: hashAlgsData(ourHashes)},
	)
	if anyAddKE(s.pol.IKE) {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyIntermediateExchangeSupported})
	}
	if len(s.pol.PPK) > 0 {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyUsePPK})
	}
	m := &wire.Message{Header: wire.Header{SPIi: s.spiI, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagInitiator}, Payloads: ps}
	s.initReq = m.Encode()
	s.state = ikeInitSent
	s.req = nil
	s.e.disarm(&s.tRetrans)
	s.enqueue(&request{
		exch:   wire.ExchangeIKESAInit,
		raw:    s.initReq,
		onFail: func() { s.e.fail(FailureTimeout); s.dead("no answer to IKE_SA_INIT") },
	}, true)
}

// initResponse handles the responder's IKE_SA_INIT answer.
func (s *ikeSA) initResponse(p Packet, h wire.Header) {
	if s.req == nil || s.req.raw == nil || h.MessageID != 0 {
		return
	}
	m, err := wire.Parse(p.Data)
	if err != nil {
		return
	}
	ip := sortInit(m.Payloads)
	pol := s.pol
	switch {
	case ip.cookie != nil && ip.sa == nil:
		if s.initRetries >= maxInitRetries || len(ip.cookie) == 0 || len(ip.cookie) > maxCookieLength {
			s.dead("responder keeps asking for cookies")
			return
		}
		s.initRetries++
		s.cookie = slices.Clone(ip.cookie)
		s.ldebug("retrying IKE_SA_INIT with the responder's cookie")
		s.sendInit(s.dh.Group())
		return
	case ip.errNote != nil && ip.errNote.NotifyType == wire.NotifyInvalidKEPayload:
		if len(ip.errNote.Data) != 2 {
			return
		}
		g := binary.BigEndian.Uint16(ip.errNote.Data)
		ok := false
		for _, x := range pol.IKE {
			ok = ok || x.DH == g
		}
		if !ok || g == s.dh.Group() || s.initRetries >= maxInitRetries {
			s.e.fail(FailureNoProposal)
			s.dead("responder wants DH group " + suite.DHName(g) + ", which we did not propose")
			return
		}
		s.initRetries++
		s.ldebug("retrying IKE_SA_INIT with the responder's DH group", "group", suite.DHName(g))
		s.sendInit(g)
		return
	case ip.errNote != nil:
		s.lwarn("IKE_SA_INIT refused by peer", "notify", ip.errNote.NotifyType)
		s.e.fail(failureOf(ip.errNote.NotifyType))
		s.dead("IKE_SA_INIT refused: " + ip.errNote.NotifyType.String())
		return
	}
	if ip.sa == nil || ip.ke == nil || ip.nonce == nil || h.SPIr == 0 {
		return // not an answer we can use; a forged one perhaps
	}
	st, ok := acceptedIKE(ip.sa, 0, pol.IKE)
	if !ok || ip.ke.Group != st.DH || st.DH != s.dh.Group() {
		s.e.fail(FailureNoProposal)
		s.dead("responder chose a proposal we did not offer")
		return
	}
	if st.HasAddKE() && !ip.inter {
		s.dead("responder chose additional key exchanges without announcing IKE_INTERMEDIATE support")
		return
	}
	if len(ip.nonce) < minNonce || len(ip.nonce) > maxNonce {
		s.dead("responder's nonce has a bad length")
		return
	}
	shared, err := s.dh.Shared(ip.ke.Data)
	if err != nil {
		s.dead("responder's KE payload: " + err.Error())
		return
	}
	nr := slices.Clone(ip.nonce)
	if err := s.setKeys(st, s.ni, nr, shared, s.spiI, h.SPIr); err != nil {
		s.dead(err.Error())
		return
	}
	s.spiR = h.SPIr
	s.nr = nr
	s.initRsp = p.Data
	if len(ip.natSrc) > 0 && len(ip.natDst) > 0 {
		s.natRemote = !containsBytes(ip.natSrc, natHash(s.spiI, s.spiR, p.Remote))
		// With ForceEncap we pretend to be behind the NAT our detection
		// payload made up (and so keep it alive, as one would).
		s.natLocal = pol.ForceEncap || !containsBytes(ip.natDst, natHash(s.spiI, s.spiR, p.Local))
	}
	s.fragOK = ip.frag
	s.intOK = ip.inter
	s.ppkOK = ip.usePPK && len(pol.PPK) > 0
	s.peerHashes = ip.hashes
	s.peerCertReq = ip.certReq
	s.req = nil
	s.msgIDOut = 1
	s.e.disarm(&s.tRetrans)
	s.dh = nil
	if s.natLocal || s.natRemote {
		// RFC 7296 §2.23: float to the NAT-T port.
		s.local = netip.AddrPortFrom(s.local.Addr(), s.e.cfg.NATPort)
		s.remote = netip.AddrPortFrom(s.remote.Addr(), s.e.cfg.NATPort)
		s.ldebug("NAT detected", "we_behind_nat", s.natLocal, "peer_behind_nat", s.natRemote)
	}
	s.afterInit()
}

// anyAddKE reports whether any of ss runs additional key exchanges.
func anyAddKE(ss []suite.IKE) bool {
	for _, x := range ss {
		if x.HasAddKE() {
			return true
		}
	}
	return false
}

// setKeys derives the IKE SA's keys (RFC 7296 §2.14) and its protectors.
func (s *ikeSA) setKeys(st suite.IKE, ni, nr, shared []byte, spiI, spiR uint64) error {
	seed, keys, err := suite.DeriveIKE(st, ni, nr, shared, spiI, spiR)
	suite.Zero(shared, seed)
	if err != nil {
		return err
	}
	return s.useKeys(st, keys)
}

func (s *ikeSA) useKeys(st suite.IKE, keys suite.Keys) error {
	prf, err := suite.NewPRF(st.PRF)
	if err != nil {
		return err
	}
	pi, err := suite.NewProtector(st, keys.Ei, keys.Ai, s.e.cfg.Rand)
	if err != nil {
		return err
	}
	pr, err := suite.NewProtector(st, keys.Er, keys.Ar, s.e.cfg.Rand)
	if err != nil {
		return err
	}
	if s.initiator {
		s.out, s.in = pi, pr
	} else {
		s.out, s.in = pr, pi
	}
	// The protectors keep their own keys; SK_d and SK_p stay.
	suite.Zero(keys.Ei, keys.Ai, keys.Er, keys.Ar)
	keys.Ei, keys.Ai, keys.Er, keys.Ar = nil, nil, nil, nil
	s.suite, s.prf, s.keys = st, prf, keys
	return nil
}

// ---- responder ----

// candidates are the policies that may answer an IKE_SA_INIT from p.
func (e *Engine) candidates(p Packet) []*policyState {
	var out []*policyState
	for _, ps := range e.order {
		if ps.removed || ps.Scope != p.Scope {
			continue
		}
		if ps.Local.IsValid() && ps.Local.Unmap() != p.Local.Addr().Unmap() {
			continue
		}
		if ps.Remote.IsValid() && ps.Remote.Unmap() != p.Remote.Addr().Unmap() {
			continue
		}
		out = append(out, ps)
	}
	return out
}

// initNotify answers an IKE_SA_INIT request with one unencrypted notify,
// keeping no state.
func (e *Engine) initNotify(p Packet, h wire.Header, t wire.NotifyType, data []byte) {
	m := &wire.Message{
		Header:   wire.Header{SPIi: h.SPIi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagResponse},
		Payloads: []wire.Payload{&wire.Notify{NotifyType: t, Data: data}},
	}
	e.send(Packet{Local: p.Local, Remote: p.Remote, Scope: p.Scope, Data: m.Encode()})
}

// initRequest answers an IKE_SA_INIT request (responder).
func (e *Engine) initRequest(p Packet, h wire.Header) {
	if h.SPIr != 0 || h.MessageID != 0 || h.Flags&wire.FlagInitiator == 0 || h.SPIi == 0 {
		return
	}
	k := halfOpenKey{remote: p.Remote, spiI: h.SPIi}
	if s := e.halfOpen[k]; s != nil {
		if bytes.Equal(s.initReq, p.Data) && s.lastRsp != nil {
			s.sendPkts(s.lastRsp, p.Local, p.Remote) // a retransmission
		}
		return
	}
	// The cheap limits first: a flood refused here costs no parsing.
	src := sourceOf(p)
	switch {
	case len(p.Data) > maxInitRequest:
		e.drop(LimitInitSize, "IKE_SA_INIT dropped: request too large", "remote", p.Remote, "bytes", len(p.Data))
		return
	case e.halfBySource[src] >= e.cfg.MaxHalfOpenPerSource:
		e.drop(LimitHalfOpenSource, "IKE_SA_INIT dropped: too many half-open IKE SAs from its source", "remote", p.Remote)
		return
	case e.nHalf >= e.cfg.MaxHalfOpen:
		e.drop(LimitHalfOpenTotal, "IKE_SA_INIT dropped: too many half-open IKE SAs", "remote", p.Remote)
		return
	}
	m, err := wire.Parse(p.Data)
	if err != nil {
		var uc *wire.UnsupportedCriticalError
		if errors.As(err, &uc) {
			e.initNotify(p, h, wire.NotifyUnsupportedCriticalPayload, []byte{byte(uc.Type)})
		}
		return
	}
	ip := sortInit(m.Payloads)
	if ip.sa == nil || ip.ke == nil || ip.nonce == nil || len(ip.nonce) < minNonce || len(ip.nonce) > maxNonce {
		return
	}
	cands := e.candidates(p)
	if len(cands) == 0 {
		e.log.Info("IKE_SA_INIT from a peer no policy covers", "remote", p.Remote, "local", p.Local, "scope", p.Scope)
		e.fail(FailureNoProposal)
		e.initNotify(p, h, wire.NotifyNoProposalChosen, nil)
		return
	}
	cands, needCookie := e.admitHalfOpen(src, cands)
	if len(cands) == 0 {
		return
	}
	if needCookie {
		if ip.cookie == nil || !e.cookies.valid(e, ip.cookie, ip.nonce, p.Remote.Addr(), h.SPIi) {
			e.stats.CookiesSent++
			e.initNotify(p, h, wire.NotifyCookie, e.cookies.make(e, ip.nonce, p.Remote.Addr(), h.SPIi))
			return
		}
	}
	var ours []suite.IKE
	var caHashes []byte
	certs, ppk := false, false
	for _, c := range cands {
		ppk = ppk || len(c.PPK) > 0
		for _, x := range c.IKE {
			// Additional key exchanges need IKE_INTERMEDIATE (RFC 9370 §2.2).
			if !slices.Contains(ours, x) && (ip.inter || !x.HasAddKE()) {
				ours = append(ours, x)
			}
		}
		if c.trust != nil {
			certs = true
			for i := 0; i+20 <= len(c.trust.caHashes); i += 20 {
				hh := c.trust.caHashes[i : i+20]
				if !bytes.Contains(caHashes, hh) {
					caHashes = append(caHashes, hh...)
				}
			}
		}
	}
	ch, ok := selectIKE(ip.sa.Proposals, 0, ours, ip.ke.Group, e.cfg.PreferInitiatorProposals)
	if !ok {
		e.log.Info("IKE_SA_INIT: no acceptable proposal", "remote", p.Remote)
		e.fail(FailureNoProposal)
		e.initNotify(p, h, wire.NotifyNoProposalChosen, nil)
		return
	}
	if ch.suite.DH != ip.ke.Group {
		e.initNotify(p, h, wire.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, ch.suite.DH))
		return
	}
	dh, err := suite.NewDH(ch.suite.DH, e.cfg.Rand)
	if err != nil {
		return
	}
	shared, err := dh.Shared(ip.ke.Data)
	if err != nil {
		e.log.Debug("IKE_SA_INIT: bad KE payload", "remote", p.Remote, "err", err)
		return
	}
	s := e.newIKESA(false, p.Local, p.Remote, p.Scope)
	s.cands = cands
	s.spiI, s.spiR = h.SPIi, e.newSPI()
	s.ni, s.nr = slices.Clone(ip.nonce), e.random(nonceLen)
	if err := s.setKeys(ch.suite, s.ni, s.nr, shared, s.spiI, s.spiR); err != nil {
		e.log.Debug("IKE_SA_INIT: key derivation failed", "err", err)
		return
	}
	natD := len(ip.natSrc) > 0 && len(ip.natDst) > 0
	if natD {
		s.natRemote = !containsBytes(ip.natSrc, natHash(s.spiI, 0, p.Remote))
		s.natLocal = !containsBytes(ip.natDst, natHash(s.spiI, 0, p.Local))
	}
	s.fragOK = ip.frag
	s.intOK = ip.inter
	s.ppkOK = ip.usePPK && ppk
	s.peerHashes = ip.hashes
	ps := []wire.Payload{
		&wire.SA{Proposals: []wire.Proposal{{Num: ch.num, Protocol: wire.ProtoIKE, Transforms: ch.suite.Transforms()}}},
		&wire.KE{Group: ch.suite.DH, Data: dh.Public()},
		&wire.Nonce{Data: s.nr},
	}
	if natD {
		ps = append(ps,
			&wire.Notify{NotifyType: wire.NotifyNATDetectionSourceIP, Data: natHash(s.spiI, s.spiR, p.Local)},
			&wire.Notify{NotifyType: wire.NotifyNATDetectionDestinationIP, Data: natHash(s.spiI, s.spiR, p.Remote)})
	}
	if certs && len(caHashes) > 0 {
		ps = append(ps, &wire.CertReq{Encoding: wire.CertX509Sig, Data: caHashes})
	}
	if ip.frag {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyIKEv2FragmentationSupported})
	}
	if ip.inter {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyIntermediateExchangeSupported})
	}
	if s.ppkOK {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyUsePPK})
	}
	ps = append(ps, &wire.Notify{NotifyType: wire.NotifySignatureHashAlgorithms, Data: hashAlgsData(ourHashes)})
	rsp := &wire.Message{Header: wire.Header{SPIi: s.spiI, SPIr: s.spiR, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagResponse}, Payloads: ps}
	s.initReq = p.Data
	s.initRsp = rsp.Encode()
	s.lastRsp = [][]byte{s.initRsp}
	s.msgIDIn = 1
	e.sas[s.spiR] = s
	e.enterHalfOpen(s, k)
	s.sendPkts(s.lastRsp, p.Local, p.Remote)
}
