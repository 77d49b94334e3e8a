package ike

import (
	"bytes"
	"math"
	"time"

	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// IKE_FOLLOWUP_KE (RFC 9370 §2.2.2, §2.2.4). A CREATE_CHILD_SA that
// negotiated additional key exchanges (ADDKE transforms, for a Child SA
// with PFS or an IKE SA rekey) is followed by one IKE_FOLLOWUP_KE
// exchange per additional key exchange, in order of type, each with one
// KE payload per side. The responder's CREATE_CHILD_SA answer and each
// IKE_FOLLOWUP_KE answer but the last carry ADDITIONAL_KEY_EXCHANGE with
// a link the next request returns. The new SA is keyed once the last is
// done, from SK(0) | Ni | Nr | SK(1) | ... | SK(n)
// (suite.ChildKeysAddKE, suite.DeriveIKERekeyAddKE); the nonces of a
// rekey collision are those of CREATE_CHILD_SA.
//
// The engine runs one exchange at a time each way: the initiator sends
// its follow-ups before any other request it has queued, and a responder
// keeps one exchange in progress (ikeSA.fu); a new CREATE_CHILD_SA with
// additional key exchanges replaces it, and an IKE_FOLLOWUP_KE whose link
// is not the current one is answered STATE_NOT_FOUND.

// linkLen is the size of the links we hand out (random, so that a
// follow-up cannot be confused with an earlier exchange's).
const linkLen = 8

// addKEMethods lists the additional key exchanges of a suite in order.
func addKEMethods(ks [suite.MaxAddKE]uint16) []uint16 {
	var out []uint16
	for _, k := range ks {
		if k != 0 {
			out = append(out, k)
		}
	}
	return out
}

// addKELink is the data of the first ADDITIONAL_KEY_EXCHANGE notify.
func addKELink(ps []wire.Payload) []byte {
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType == wire.NotifyAdditionalKeyExchange {
			return n.Data
		}
	}
	return nil
}

// ---- initiator ----

// followups runs our IKE_FOLLOWUP_KE exchanges for methods, the first
// with the responder's link; acc holds the shared secrets so far. done
// gets SK(1) | ... | SK(n), or why they failed (add nil); it is called
// once.
func (s *ikeSA) followups(methods []uint16, link []byte, acc []byte, done func(add []byte, why string)) {
	if len(methods) == 0 {
		done(acc, "")
		return
	}
	fail := func(why string) {
		suite.Zero(acc)
		done(nil, why)
	}
	if len(link) == 0 {
		fail("the answer lacks ADDITIONAL_KEY_EXCHANGE for the next additional key exchange")
		return
	}
	method := methods[0]
	ke, err := suite.NewKE(method, s.e.cfg.Rand)
	if err != nil {
		fail("additional key exchange: " + err.Error())
		return
	}
	link = bytes.Clone(link)
	s.enqueue(&request{
		exch: wire.ExchangeFollowupKE,
		build: func() []wire.Payload {
			if s.state != ikeEstablished || s.rekeyedTo != nil {
				fail("the IKE SA went")
				return nil
			}
			return []wire.Payload{&wire.KE{Group: method, Data: ke.Public()}, &wire.Notify{NotifyType: wire.NotifyAdditionalKeyExchange, Data: link}}
		},
		onResp: func(_ wire.Header, ps []wire.Payload) {
			rke, errNote := firstKE(ps)
			switch {
			case errNote != nil:
				fail("peer refused IKE_FOLLOWUP_KE: " + errNote.NotifyType.String())
				return
			case rke == nil || rke.Group != method:
				fail("IKE_FOLLOWUP_KE answer without the KE payload of " + suite.KEName(method))
				return
			}
			shared, err := ke.Shared(rke.Data)
			if err != nil {
				fail("responder's KE payload in IKE_FOLLOWUP_KE: " + err.Error())
				return
			}
			acc = append(acc, shared...)
			suite.Zero(shared)
			s.followups(methods[1:], addKELink(ps), acc, done)
		},
		onFail: func() {
			fail("no answer to IKE_FOLLOWUP_KE")
			s.dead("no answer to IKE_FOLLOWUP_KE")
		},
	}, true)
}

// ---- responder ----

// followup is the responder's side of a CREATE_CHILD_SA whose additional
// key exchanges run.
type followup struct {
	link    []byte
	methods []uint16 // those still to run
	add     []byte   // SK(1) | ... so far
	// finish keys and makes the SA from SK(1) | ... | SK(n); false if it
	// could not. abort releases what the CREATE_CHILD_SA reserved.
	finish func(add []byte) bool
	abort  func()
	// expire drops the exchange once an initiator still retransmitting
	// its next IKE_FOLLOWUP_KE would have given up (followupTimeout).
	expire timer
}

// followupTimeout is how long a responder waits for the next
// IKE_FOLLOWUP_KE: the initiator's whole retransmission schedule of the
// request before it (about 165 s with the defaults).
func (e *Engine) followupTimeout() time.Duration {
	var d float64
	for n := 0; n <= e.cfg.RetransmitTries; n++ {
		d += float64(e.cfg.RetransmitTimeout) * math.Pow(e.cfg.RetransmitBase, float64(n))
	}
	return time.Duration(d)
}

// awaitFollowups answers CREATE_CHILD_SA with ps and a link to the first
// IKE_FOLLOWUP_KE, and keeps finish for the last.
func (s *ikeSA) awaitFollowups(p Packet, h wire.Header, ps []wire.Payload, methods []uint16, finish func([]byte) bool, abort func()) {
	s.dropFollowup()
	f := &followup{link: s.e.random(linkLen), methods: methods, finish: finish, abort: abort}
	f.expire = newTimer(func() {
		if s.fu == f {
			s.lwarn("additional key exchange abandoned", "reason", "no IKE_FOLLOWUP_KE from the initiator")
			s.dropFollowup()
		}
	})
	s.fu = f
	s.e.arm(&f.expire, s.e.now().Add(s.e.followupTimeout()))
	s.respond(p, h, append(ps, &wire.Notify{NotifyType: wire.NotifyAdditionalKeyExchange, Data: f.link}))
}

// dropFollowup forgets the exchange in progress, if any.
func (s *ikeSA) dropFollowup() {
	f := s.fu
	if f == nil {
		return
	}
	s.fu = nil
	s.e.disarm(&f.expire)
	suite.Zero(f.add)
	if f.abort != nil {
		f.abort()
	}
}

// followupRequest answers IKE_FOLLOWUP_KE.
func (s *ikeSA) followupRequest(p Packet, h wire.Header, ps []wire.Payload) {
	f := s.fu
	link := addKELink(ps)
	if f == nil || link == nil || !bytes.Equal(link, f.link) || s.state != ikeEstablished || s.rekeyedTo != nil {
		s.lwarn("IKE_FOLLOWUP_KE refused", "reason", "no additional key exchange in progress with its link")
		s.respondNotify(p, h, wire.NotifyStateNotFound, nil)
		return
	}
	method := f.methods[0]
	ke, _ := firstKE(ps)
	if ke == nil || ke.Group != method {
		s.dropFollowup()
		s.lwarn("IKE_FOLLOWUP_KE refused", "reason", "no KE payload of "+suite.KEName(method))
		s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
		return
	}
	pub, shared, err := suite.RespondKE(method, ke.Data, s.e.cfg.Rand)
	if err != nil {
		s.dropFollowup()
		s.lwarn("IKE_FOLLOWUP_KE refused", "reason", "initiator's KE payload: "+err.Error())
		s.respondNotify(p, h, wire.NotifyInvalidSyntax, nil)
		return
	}
	f.add = append(f.add, shared...)
	suite.Zero(shared)
	f.methods = f.methods[1:]
	rps := []wire.Payload{&wire.KE{Group: method, Data: pub}}
	if len(f.methods) > 0 {
		f.link = s.e.random(linkLen)
		s.e.arm(&f.expire, s.e.now().Add(s.e.followupTimeout()))
		s.respond(p, h, append(rps, &wire.Notify{NotifyType: wire.NotifyAdditionalKeyExchange, Data: f.link}))
		return
	}
	s.fu = nil
	s.e.disarm(&f.expire)
	ok := f.finish(f.add)
	suite.Zero(f.add)
	if !ok {
		s.respondNotify(p, h, wire.NotifyNoProposalChosen, nil)
		return
	}
	s.respond(p, h, rps)
}
