package ike

import (
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of
// RFC 9370: after IKE_SA_INIT the initiator runs one exchange per
// negotiated ADDKE transform, in order of type, each with one KE payload
// (the initiator's public value or ML-KEM encapsulation key, the
// responder's public value or ciphertext). After each exchange both sides
// replace all seven keys (suite.UpdateIKE). Every IKE_INTERMEDIATE
// message is chained into IntAuth under the SK_p keys that protected it,
// and IKE_AUTH's AUTH payloads sign the chain (suite.AppendIntAuth), so a
// tampered or dropped intermediate message fails authentication.

// nextAddKE is the index in the suite of the next additional key
// exchange to run, -1 when none is left.
func (s *ikeSA) nextAddKE() int {
	for i := s.addKE; i < len(s.suite.AddKE); i++ {
		if s.suite.AddKE[i] != 0 {
			return i
		}
	}
	return -1
}

// intAuthA is IntAuth_A of RFC 9242 §3.3.2 for a message with header h
// whose plaintext inner payloads, first of type first, are n bytes: the
// IKE header and the Encrypted payload's generic header with lengths as if
// the message were unencrypted and unfragmented.
func intAuthA(h wire.Header, first wire.PayloadType, n int) []byte {
	h.Next = wire.PayloadSK
	h.Length = uint32(wire.HeaderLen + 4 + n)
	b := wire.AppendHeader(make([]byte, 0, wire.HeaderLen+4), h)
	return wire.AppendEncryptedHeader(b, first, n)
}

// chainIntAuth adds one IKE_INTERMEDIATE message to the IntAuth chain of
// its sender (fromInitiator: the original initiator) under the current
// SK_pi or SK_pr, which are the keys that protect it.
func (s *ikeSA) chainIntAuth(fromInitiator bool, h wire.Header, first wire.PayloadType, plain []byte) {
	if s.keys.Pi == nil || s.state == ikeEstablished {
		return // IKE_INTERMEDIATE after IKE_AUTH is not ours to authenticate
	}
	a := intAuthA(h, first, len(plain))
	if fromInitiator {
		s.intI = suite.IntAuth(s.prf, s.keys.Pi, s.intI, a, plain)
	} else {
		s.intR = suite.IntAuth(s.prf, s.keys.Pr, s.intR, a, plain)
	}
}

// authOctets adds the IntAuth chains to the octets an AUTH payload
// covers, if IKE_INTERMEDIATE exchanges took place.
func (s *ikeSA) authOctets(octets []byte, authMsgID uint32) []byte {
	if s.intExchanges == 0 {
		return octets
	}
	return suite.AppendIntAuth(octets, s.intI, s.intR, authMsgID)
}

// updateKeys replaces the IKE SA's keys after an additional key exchange
// with shared secret shared (zeroed here).
func (s *ikeSA) updateKeys(shared []byte) error {
	keys, err := suite.UpdateIKE(s.suite, s.keys.D, shared, s.ni, s.nr, s.spiI, s.spiR)
	suite.Zero(shared)
	if err != nil {
		return err
	}
	old, oldIn := s.keys, s.in
	if err := s.useKeys(s.suite, keys); err != nil {
		return err
	}
	old.Zero()
	if !s.initiator {
		// A retransmission of the request just answered still comes
		// under the old keys; it must find the cached answer.
		s.prevIn = oldIn
	}
	s.intExchanges++
	s.kesDone = append(s.kesDone, s.suite.AddKE[s.addKE])
	s.addKE++
	return nil
}

// ---- initiator ----

// afterInit continues the setup once IKE_SA_INIT is done or an
// IKE_INTERMEDIATE exchange is: the next additional key exchange, or
// IKE_AUTH.
func (s *ikeSA) afterInit() {
	i := s.nextAddKE()
	if i < 0 {
		s.sendAuth()
		return
	}
	s.addKE = i
	method := s.suite.AddKE[i]
	ke, err := suite.NewKE(method, s.e.cfg.Rand)
	if err != nil {
		s.dead("additional key exchange: " + err.Error())
		return
	}
	s.state = ikeIntermediate
	s.enqueue(&request{
		exch:   wire.ExchangeIntermediate,
		build:  func() []wire.Payload { return []wire.Payload{&wire.KE{Group: method, Data: ke.Public()}} },
		onResp: func(_ wire.Header, ps []wire.Payload) { s.intermediateResponse(ke, ps) },
		onFail: func() { s.dead("no answer to IKE_INTERMEDIATE") },
	}, false)
}

func firstKE(ps []wire.Payload) (*wire.KE, *wire.Notify) {
	var ke *wire.KE
	var errNote *wire.Notify
	for _, p := range ps {
		switch x := p.(type) {
		case *wire.KE:
			if ke == nil {
				ke = x
			}
		case *wire.Notify:
			if x.NotifyType.IsError() && errNote == nil {
				errNote = x
			}
		}
	}
	return ke, errNote
}

// intermediateResponse completes an additional key exchange (initiator).
func (s *ikeSA) intermediateResponse(ke suite.DH, ps []wire.Payload) {
	rke, errNote := firstKE(ps)
	switch {
	case errNote != nil:
		s.lwarn("IKE SA not established", "reason", "peer refused IKE_INTERMEDIATE: "+errNote.NotifyType.String())
		s.dead("peer refused IKE_INTERMEDIATE: " + errNote.NotifyType.String())
		return
	case rke == nil || rke.Group != ke.Group():
		s.dead("IKE_INTERMEDIATE answer without the KE payload of " + suite.KEName(ke.Group()))
		return
	}
	shared, err := ke.Shared(rke.Data)
	if err != nil {
		s.dead("responder's KE payload in IKE_INTERMEDIATE: " + err.Error())
		return
	}
	if err := s.updateKeys(shared); err != nil {
		s.dead(err.Error())
		return
	}
	s.afterInit()
}

// ---- responder ----

// intermediateRequest answers one IKE_INTERMEDIATE request while the
// IKE SA is half-open: it must carry the next additional key exchange.
func (s *ikeSA) intermediateRequest(p Packet, h wire.Header, ps []wire.Payload) {
	fail := func(why string) {
		s.e.log.Warn("IKE_INTERMEDIATE refused", "remote", p.Remote, "reason", why)
		s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
		s.destroy(why)
	}
	i := s.nextAddKE()
	if i < 0 {
		fail("IKE_INTERMEDIATE request beyond the negotiated additional key exchanges")
		return
	}
	s.addKE = i
	method := s.suite.AddKE[i]
	ke, _ := firstKE(ps)
	if ke == nil || ke.Group != method {
		fail("IKE_INTERMEDIATE request without the KE payload of " + suite.KEName(method))
		return
	}
	pub, shared, err := suite.RespondKE(method, ke.Data, s.e.cfg.Rand)
	if err != nil {
		fail("initiator's KE payload in IKE_INTERMEDIATE: " + err.Error())
		return
	}
	s.respond(p, h, []wire.Payload{&wire.KE{Group: method, Data: pub}})
	if err := s.updateKeys(shared); err != nil {
		s.destroy(err.Error())
	}
}
