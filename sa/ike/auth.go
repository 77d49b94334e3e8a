package ike

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"errors"
	"fmt"
	"slices"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// IKE_AUTH (RFC 7296 §1.2, §2.15; RFC 7427): identities, certificates,
// AUTH by PSK or signature, and the first Child SA.

// idBody is RestOfIDPayload of §2.15: ID Type, three reserved octets, data.
func idBody(id ID) []byte {
	b := make([]byte, 4, 4+len(id.Data))
	b[0] = byte(id.Type)
	return append(b, id.Data...)
}

// authPayloads sorts the payloads of an IKE_AUTH message.
type authPayloads struct {
	idi, idr  *wire.ID
	certs     [][]byte
	certReq   bool
	auth      *wire.Auth
	sa        *wire.SA
	tsi, tsr  *wire.TS
	transport bool
	initial   bool
	errNote   *wire.Notify
	ppkID     []byte // PPK_IDENTITY's data (non-nil, maybe empty, if present)
	noPPKAuth []byte // NO_PPK_AUTH's data
}

func sortAuth(ps []wire.Payload) authPayloads {
	var ap authPayloads
	for _, p := range ps {
		switch x := p.(type) {
		case *wire.ID:
			if x.Responder {
				ap.idr = x
			} else {
				ap.idi = x
			}
		case *wire.Cert:
			if x.Encoding == wire.CertX509Sig && len(ap.certs) <= maxPeerCerts {
				ap.certs = append(ap.certs, x.Data)
			}
		case *wire.CertReq:
			ap.certReq = true
		case *wire.Auth:
			ap.auth = x
		case *wire.SA:
			ap.sa = x
		case *wire.TS:
			if x.Responder {
				ap.tsr = x
			} else {
				ap.tsi = x
			}
		case *wire.Notify:
			switch {
			case x.NotifyType == wire.NotifyUseTransportMode:
				ap.transport = true
			case x.NotifyType == wire.NotifyInitialContact:
				ap.initial = true
			case x.NotifyType == wire.NotifyPPKIdentity && ap.ppkID == nil:
				ap.ppkID = append([]byte{}, x.Data...)
			case x.NotifyType == wire.NotifyNoPPKAuth && ap.noPPKAuth == nil:
				ap.noPPKAuth = x.Data
			case x.NotifyType.IsError() && ap.errNote == nil:
				ap.errNote = x
			}
		}
	}
	return ap
}

// signHash picks the hash for an RFC 7427 signature with key: the one
// matching its curve, if the peer announced it, else the first the peer
// announced that we sign with.
func signHash(key crypto.Signer, peer []uint16) crypto.Hash {
	want := uint16(suite.HashSHA256)
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P384():
			want = suite.HashSHA384
		case elliptic.P521():
			want = suite.HashSHA512
		}
	case ed25519.PublicKey:
		return 0
	}
	if len(peer) > 0 && !slices.Contains(peer, want) {
		for _, h := range []uint16{suite.HashSHA256, suite.HashSHA384, suite.HashSHA512} {
			if slices.Contains(peer, h) {
				want = h
				break
			}
		}
	}
	h, _ := suite.SignatureHash(want)
	return h
}

// authData computes our AUTH payload over octets.
func (s *ikeSA) authData(pol *policyState, octets []byte) (*wire.Auth, error) {
	if !pol.usesCert() {
		return &wire.Auth{Method: wire.AuthPSK, Data: suite.PSKAuth(s.prf, pol.PSK, octets)}, nil
	}
	d, err := suite.Sign(pol.Key, signHash(pol.Key, s.peerHashes), octets, s.e.cfg.Rand)
	if err != nil {
		return nil, err
	}
	return &wire.Auth{Method: wire.AuthDigitalSignature, Data: d}, nil
}

// errAuth is wrapped by every authentication failure.
var errAuth = errors.New("authentication failed")

// verifyPeer checks the peer's identity and AUTH payload under pol.
func (s *ikeSA) verifyPeer(pol *policyState, peerID ID, certs [][]byte, auth *wire.Auth, octets []byte) error {
	if pol.usesCert() {
		if auth.Method == wire.AuthPSK {
			return fmt.Errorf("%w: peer used a PSK, the policy wants certificates", errAuth)
		}
		leaf, err := pol.trust.verifyChain(certs, s.e.now())
		if err != nil {
			return fmt.Errorf("%w: %v", errAuth, err)
		}
		if !pol.remoteID.IsZero() && !pol.remoteID.Matches(peerID) {
			return fmt.Errorf("%w: peer identity %q is not the policy's remote identity %q", errAuth, peerID, pol.RemoteID)
		}
		if !peerID.ProvenBy(leaf) {
			return fmt.Errorf("%w: certificate %q does not prove identity %q", errAuth, leaf.Subject, peerID)
		}
		if err := suite.Verify(leaf.PublicKey, auth.Method, auth.Data, octets); err != nil {
			return fmt.Errorf("%w: %v", errAuth, err)
		}
		s.peerCert = leaf
		return nil
	}
	if auth.Method != wire.AuthPSK {
		return fmt.Errorf("%w: peer used AUTH method %d, the policy wants a PSK", errAuth, auth.Method)
	}
	if !pol.remoteID.IsZero() && !pol.remoteID.Matches(peerID) {
		return fmt.Errorf("%w: peer identity %q is not the policy's remote identity %q", errAuth, peerID, pol.RemoteID)
	}
	want := suite.PSKAuth(s.prf, pol.PSK, octets)
	if !hmac.Equal(want, auth.Data) {
		return fmt.Errorf("%w: pre-shared key mismatch", errAuth)
	}
	return nil
}

// certPayloads are our CERT payloads: certificate, then intermediates.
func certPayloads(pol *policyState) []wire.Payload {
	if !pol.usesCert() {
		return nil
	}
	ps := []wire.Payload{&wire.Cert{Encoding: wire.CertX509Sig, Data: pol.Cert.Raw}}
	for _, c := range pol.Chain {
		ps = append(ps, &wire.Cert{Encoding: wire.CertX509Sig, Data: c.Raw})
	}
	return ps
}

// PPK (RFC 8784): PPK_IDENTITY carries PPK_ID_FIXED (2) and the
// identity; NO_PPK_AUTH the content of an AUTH payload (method, three
// reserved octets, data) computed with the SK_pi not mixed with the PPK.
const ppkIDFixed = 2

func ppkIDData(id string) []byte { return append([]byte{ppkIDFixed}, id...) }

func ppkIDMatches(data []byte, id string) bool {
	return len(data) > 1 && (data[0] == 1 || data[0] == ppkIDFixed) && string(data[1:]) == id
}

func authNoteData(a *wire.Auth) []byte { return append([]byte{a.Method, 0, 0, 0}, a.Data...) }

func authFromNote(b []byte) (*wire.Auth, bool) {
	if len(b) < 5 {
		return nil, false
	}
	return &wire.Auth{Method: b[0], Data: b[4:]}, true
}

// usePPK switches s to the SK_d mixed with the PPK once IKE_AUTH is done
// with it.
func (s *ikeSA) usePPK() {
	suite.Zero(s.keys.D)
	s.keys.D, s.ppkKeys.D = s.ppkKeys.D, nil
	s.ppk = true
}

// ---- initiator ----

// sendAuth sends the IKE_AUTH request with the first Child SA.
func (s *ikeSA) sendAuth() {
	pol := s.pol
	s.localID = pol.localIDFor(s.local.Addr())
	ps := []wire.Payload{&wire.ID{IDType: s.localID.Type, Data: s.localID.Data}}
	ps = append(ps, certPayloads(pol)...)
	if pol.trust != nil && len(pol.trust.caHashes) > 0 {
		ps = append(ps, &wire.CertReq{Encoding: wire.CertX509Sig, Data: pol.trust.caHashes})
	}
	if !pol.remoteID.IsZero() && !pol.AnyRemoteID && !hasWildcard(pol.RemoteID) {
		ps = append(ps, &wire.ID{Responder: true, IDType: pol.remoteID.Type, Data: pol.remoteID.Data})
	}
	s.authMsgID = s.msgIDOut + uint32(len(s.queue))
	if s.req != nil {
		s.authMsgID++
	}
	pi := s.keys.Pi
	var ppkNotes []wire.Payload
	if len(pol.PPK) > 0 {
		switch {
		case s.ppkOK:
			d, ppi, ppr := suite.MixPPK(s.prf, pol.PPK, s.keys.D, s.keys.Pi, s.keys.Pr)
			s.ppkKeys = suite.Keys{D: d, Pi: ppi, Pr: ppr}
			pi = ppi
			ppkNotes = append(ppkNotes, &wire.Notify{NotifyType: wire.NotifyPPKIdentity, Data: ppkIDData(pol.PPKID)})
			if !pol.PPKRequired {
				plain := s.authOctets(suite.SignedOctets(s.initReq, s.nr, s.prf.Sum(s.keys.Pi, idBody(s.localID))), s.authMsgID)
				noPPK, err := s.authData(pol, plain)
				if err != nil {
					s.dead("signing AUTH: " + err.Error())
					return
				}
				ppkNotes = append(ppkNotes, &wire.Notify{NotifyType: wire.NotifyNoPPKAuth, Data: authNoteData(noPPK)})
			}
		case pol.PPKRequired:
			s.lwarn("IKE SA not established", "reason", "the policy requires a post-quantum preshared key and the peer did not announce USE_PPK")
			s.dead("peer does not support the required post-quantum preshared key")
			return
		}
	}
	octets := s.authOctets(suite.SignedOctets(s.initReq, s.nr, s.prf.Sum(pi, idBody(s.localID))), s.authMsgID)
	auth, err := s.authData(pol, octets)
	if err != nil {
		s.dead("signing AUTH: " + err.Error())
		return
	}
	ps = append(ps, auth)
	ps = append(ps, ppkNotes...)
	if s.onlySA() {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyInitialContact})
	}
	if pol.Mode == sa.ModeTransport {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyUseTransportMode})
	}
	inSPI, err := s.e.allocSPI(pol.Scope)
	if err != nil {
		s.dead("allocating an SPI: " + err.Error())
		return
	}
	ps = append(ps, espProposals(pol.ESP, inSPI, true),
		&wire.TS{Selectors: pol.localSel}, &wire.TS{Responder: true, Selectors: pol.remSel})
	s.state = ikeAuthSent
	s.enqueue(&request{
		exch:   wire.ExchangeIKEAuth,
		build:  func() []wire.Payload { return ps },
		onResp: func(_ wire.Header, rps []wire.Payload) { s.authResponse(rps, inSPI) },
		onFail: func() {
			s.e.freeSPI(pol.Scope, inSPI)
			s.e.fail(FailureTimeout)
			s.dead("no answer to IKE_AUTH")
		},
	}, false)
}

// onlySA reports whether s is our only IKE SA with its peer (from the
// same VM): then IKE_AUTH carries INITIAL_CONTACT (RFC 7296 §2.4: "the
// only IKE SA currently active between the authenticated identities").
func (s *ikeSA) onlySA() bool {
	for _, x := range s.e.sas {
		if x != s && x.state != ikeDead && x.scope == s.scope && x.remote.Addr() == s.remote.Addr() {
			return false
		}
	}
	return true
}

func hasWildcard(id string) bool {
	for i := 0; i < len(id); i++ {
		if id[i] == '*' {
			return true
		}
	}
	return false
}

// authResponse handles the responder's IKE_AUTH answer.
func (s *ikeSA) authResponse(ps []wire.Payload, inSPI uint32) {
	pol := s.pol
	ap := sortAuth(ps)
	if ap.idr == nil || ap.auth == nil {
		s.e.freeSPI(pol.Scope, inSPI)
		reason := "IKE_AUTH answer without identity or AUTH"
		f := FailureOther
		if ap.errNote != nil {
			f = failureOf(ap.errNote.NotifyType)
			reason = "peer refused IKE_AUTH: " + ap.errNote.NotifyType.String()
		}
		s.e.fail(f)
		s.lwarn("IKE SA not established", "reason", reason)
		s.dead(reason)
		return
	}
	peerID := ID{Type: ap.idr.IDType, Data: ap.idr.Data}
	pr := s.keys.Pr
	usedPPK := s.ppkKeys.D != nil && ap.ppkID != nil
	if usedPPK {
		pr = s.ppkKeys.Pr
	}
	octets := s.authOctets(suite.SignedOctets(s.initRsp, s.ni, s.prf.Sum(pr, idBody(peerID))), s.authMsgID)
	err := s.verifyPeer(pol, peerID, ap.certs, ap.auth, octets)
	if err == nil && !usedPPK && pol.PPKRequired {
		err = fmt.Errorf("%w: the responder did not use the required post-quantum preshared key", errAuth)
	}
	if err != nil {
		s.e.freeSPI(pol.Scope, inSPI)
		s.e.fail(FailureAuth)
		s.lwarn("IKE SA not established: the responder did not authenticate", "err", err)
		// RFC 7296 §2.21.2: tell the responder, once, then go.
		s.state = ikeDeleting
		s.enqueue(&request{
			exch: wire.ExchangeInformational,
			build: func() []wire.Payload {
				return []wire.Payload{&wire.Notify{NotifyType: wire.NotifyAuthenticationFailed}}
			},
			once:   true,
			onResp: func(wire.Header, []wire.Payload) { s.destroy(err.Error()); s.e.failed(pol) },
			onFail: func() { s.destroy(err.Error()); s.e.failed(pol) },
		}, true)
		return
	}
	if usedPPK {
		s.usePPK()
	}
	s.remoteID = peerID
	s.established = s.e.now()
	s.state = ikeEstablished
	pol.fails = 0
	s.linfo("IKE SA established", "suite", s.suite.String(), "remote_id", peerID.String(), "ppk", s.ppk)
	s.childFromAuth(ap, inSPI)
	s.clearInit()
	s.armEstablished()
}

// childFromAuth installs the first Child SA from the IKE_AUTH answer.
func (s *ikeSA) childFromAuth(ap authPayloads, inSPI uint32) {
	pol := s.pol
	if ap.errNote != nil || ap.sa == nil {
		s.e.freeSPI(pol.Scope, inSPI)
		why, f := "no SA payload", FailureOther
		if ap.errNote != nil {
			why, f = ap.errNote.NotifyType.String(), failureOf(ap.errNote.NotifyType)
		}
		s.e.fail(f)
		s.lwarn("first Child SA not created; the IKE SA stands", "reason", why)
		s.childFailed(why)
		return
	}
	ch, ok := acceptedESP(ap.sa, pol.ESP, true)
	reason, bad := "", FailureNoProposal
	switch {
	case !ok:
		reason = "responder chose an ESP proposal we did not offer"
	case ap.tsi == nil || ap.tsr == nil || !within(ap.tsi.Selectors, pol.localSel) || !within(ap.tsr.Selectors, pol.remSel):
		reason, bad = "responder's traffic selectors are not within ours", FailureTSUnacceptable
	case ap.transport != (pol.Mode == sa.ModeTransport):
		reason = "responder chose another mode"
	case spiFrom(ch.spi) < 0x100:
		reason = "responder chose a reserved SPI"
	}
	if reason != "" {
		s.e.fail(bad)
		s.lwarn("first Child SA refused; the IKE SA stands", "reason", reason)
		s.e.freeSPI(pol.Scope, inSPI)
		s.sendChildDelete(inSPI)
		s.childFailed(reason)
		return
	}
	iE, iI, rE, rI, err := suite.ChildKeys(s.suite, s.keys.D, ch.suite, nil, s.ni, s.nr)
	if err != nil {
		s.lwarn("first Child SA: key derivation failed", "err", err)
		s.e.freeSPI(pol.Scope, inSPI)
		s.sendChildDelete(inSPI)
		s.childFailed("key derivation: " + err.Error())
		return
	}
	c := s.newChild(inSPI, spiFrom(ch.spi), ch.suite, pol.Mode, ap.tsi.Selectors, ap.tsr.Selectors, rE, rI, iE, iI)
	c.nonces = [2][]byte{s.ni, s.nr}
	s.installChild(c, true)
}

// clearInit drops what only IKE_AUTH needed.
func (s *ikeSA) clearInit() {
	s.initReq, s.initRsp, s.dh, s.cookie = nil, nil, nil, nil
	s.intI, s.intR, s.prevIn = nil, nil, nil
	s.ppkKeys.Zero()
	s.ppkKeys = suite.Keys{}
	// SK_pi and SK_pr only authenticate IKE_AUTH.
	suite.Zero(s.keys.Pi, s.keys.Pr)
	s.keys.Pi, s.keys.Pr = nil, nil
}

// ---- responder ----

// pickPolicy chooses the policy for an IKE_AUTH request: the first
// candidate whose authentication method and identities fit, preferring
// one whose traffic selectors meet the peer's.
func (s *ikeSA) pickPolicy(peerID, wantLocal ID, method uint8, tsi, tsr *wire.TS) *policyState {
	var first *policyState
	for _, c := range s.cands {
		if c.removed || c.usesCert() == (method == wire.AuthPSK) || !slices.Contains(c.IKE, s.suite) {
			continue
		}
		if !c.remoteID.IsZero() && !c.remoteID.Matches(peerID) {
			continue
		}
		if !wantLocal.IsZero() {
			our := c.localIDFor(s.local.Addr())
			if !our.Matches(wantLocal) && !wantLocal.Matches(our) {
				continue
			}
		}
		if first == nil {
			first = c
		}
		if tsi != nil && tsr != nil && len(narrow(tsi.Selectors, c.remSel)) > 0 && len(narrow(tsr.Selectors, c.localSel)) > 0 {
			return c
		}
	}
	return first
}

// authRequest answers the initiator's IKE_AUTH request.
func (s *ikeSA) authRequest(p Packet, h wire.Header, ps []wire.Payload) {
	ap := sortAuth(ps)
	fail := func(why string, t wire.NotifyType) {
		s.e.fail(failureOf(t))
		s.e.log.Warn("IKE_AUTH refused", "remote", p.Remote, "reason", why)
		s.respondNotify(p, h, t, nil)
		s.destroy(why)
	}
	if ap.idi == nil || ap.auth == nil {
		fail("IKE_AUTH request without identity or AUTH", wire.NotifyInvalidSyntax)
		return
	}
	if i := s.nextAddKE(); i >= 0 {
		fail("IKE_AUTH request before the additional key exchange "+suite.KEName(s.suite.AddKE[i]), wire.NotifyInvalidSyntax)
		return
	}
	peerID := ID{Type: ap.idi.IDType, Data: ap.idi.Data}
	var want ID
	if ap.idr != nil {
		want = ID{Type: ap.idr.IDType, Data: ap.idr.Data}
	}
	pol := s.pickPolicy(peerID, want, ap.auth.Method, ap.tsi, ap.tsr)
	if pol == nil {
		fail(fmt.Sprintf("no policy for identity %q", peerID), wire.NotifyAuthenticationFailed)
		return
	}
	s.setPolicy(pol)
	auth := ap.auth
	pi, pr := s.keys.Pi, s.keys.Pr
	switch {
	case ap.ppkID != nil && s.ppkOK && len(pol.PPK) > 0 && ppkIDMatches(ap.ppkID, pol.PPKID):
		d, ppi, ppr := suite.MixPPK(s.prf, pol.PPK, s.keys.D, s.keys.Pi, s.keys.Pr)
		s.ppkKeys = suite.Keys{D: d, Pi: ppi, Pr: ppr}
		pi, pr = ppi, ppr
	case pol.PPKRequired:
		fail("the policy requires a post-quantum preshared key and the initiator did not use it", wire.NotifyAuthenticationFailed)
		return
	case ap.ppkID != nil:
		// The initiator used a PPK this policy does not have: its
		// NO_PPK_AUTH, if it sent one, authenticates it without.
		a, ok := authFromNote(ap.noPPKAuth)
		if !ok {
			fail("the initiator used a post-quantum preshared key this policy does not have, and sent no NO_PPK_AUTH", wire.NotifyAuthenticationFailed)
			return
		}
		auth = a
	}
	octets := s.authOctets(suite.SignedOctets(s.initReq, s.nr, s.prf.Sum(pi, idBody(peerID))), h.MessageID)
	if err := s.verifyPeer(pol, peerID, ap.certs, auth, octets); err != nil {
		fail(err.Error(), wire.NotifyAuthenticationFailed)
		return
	}
	s.localID = pol.localIDFor(p.Local.Addr())
	rps := []wire.Payload{&wire.ID{Responder: true, IDType: s.localID.Type, Data: s.localID.Data}}
	rps = append(rps, certPayloads(pol)...)
	rOctets := s.authOctets(suite.SignedOctets(s.initRsp, s.ni, s.prf.Sum(pr, idBody(s.localID))), h.MessageID)
	rAuth, err := s.authData(pol, rOctets)
	if err != nil {
		fail("signing AUTH: "+err.Error(), wire.NotifyAuthenticationFailed)
		return
	}
	rps = append(rps, rAuth)
	if s.ppkKeys.D != nil {
		rps = append(rps, &wire.Notify{NotifyType: wire.NotifyPPKIdentity})
		s.usePPK()
	}

	// Authenticated.
	s.remoteID = peerID
	s.cands = nil
	s.state = ikeEstablished
	s.established = s.e.now()
	s.e.leaveHalfOpen(s)
	s.linfo("IKE SA established", "suite", s.suite.String(), "remote_id", peerID.String(), "ppk", s.ppk)
	if ap.initial {
		s.e.initialContact(s)
	}
	if ap.sa != nil && ap.tsi != nil && ap.tsr != nil {
		cps, c := s.respondChild(childOffer{sa: ap.sa, tsi: ap.tsi, tsr: ap.tsr, transport: ap.transport}, true, nil)
		rps = append(rps, cps...)
		if c != nil {
			s.installChild(c, true)
		} else if n, ok := firstNotify(cps); ok {
			s.childErr = n.NotifyType.String() // we refused it; the initiator may try again
		}
	}
	s.respond(p, h, rps)
	s.clearInit()
	s.armEstablished()
}

// initialContact drops the IKE SAs we answered earlier for the same peer
// and policy: the peer says it has no state for them (RFC 7296 §2.4).
// SAs we initiated are left to DPD and rekeying, so that two peers that
// both initiate cannot tear each other's SAs down.
func (e *Engine) initialContact(s *ikeSA) {
	for x := range s.pol.sas {
		if x != s && !x.initiator && x.state == ikeEstablished && x.rekeyedTo == nil &&
			x.remote.Addr() == s.remote.Addr() && x.remoteID.Equal(s.remoteID) {
			x.destroy("peer sent INITIAL_CONTACT")
		}
	}
}

// firstNotify returns the Notify that starts ps, a refusal's answer.
func firstNotify(ps []wire.Payload) (*wire.Notify, bool) {
	if len(ps) == 0 {
		return nil, false
	}
	n, ok := ps[0].(*wire.Notify)
	return n, ok
}
