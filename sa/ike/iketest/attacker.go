package iketest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// RoundTrip sends an IKE_SA_INIT request from src to dst and returns the
// responder's answer to it, nil if none came.
type RoundTrip func(src, dst netip.AddrPort, req []byte) []byte

// Attacker makes half-open IKE SAs on a responder. It is not safe for
// concurrent use.
type Attacker struct {
	Suite suite.IKE // what it proposes
	Frag  bool      // announce IKEV2_FRAGMENTATION_SUPPORTED
	rt    RoundTrip
	spi   uint64
}

// NewAttacker returns an attacker proposing st over rt.
func NewAttacker(rt RoundTrip, st suite.IKE, frag bool) *Attacker {
	var b [8]byte
	rand.Read(b[:])
	return &Attacker{Suite: st, Frag: frag, rt: rt, spi: binary.BigEndian.Uint64(b[:])>>1 | 1}
}

// Outcome is how an attempt to open a half-open IKE SA ended.
type Outcome int

const (
	Dropped  Outcome = iota + 1 // no answer
	Refused                     // an error notify, or a cookie asked twice
	Answered                    // IKE_SA_INIT answered: half-open
)

func (o Outcome) String() string {
	switch o {
	case Dropped:
		return "dropped"
	case Refused:
		return "refused"
	case Answered:
		return "answered"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// HalfOpen is the attacker's side of a half-open IKE SA.
type HalfOpen struct {
	SPIi, SPIr uint64
	Src, Dst   netip.AddrPort
	Cookie     bool // a cookie was asked for and given
	out        *suite.Protector
}

// InitRequest encodes an IKE_SA_INIT request with SPIi spi proposing st,
// with KE data pub, nonce ni and, if not nil, a cookie.
func InitRequest(spi uint64, st suite.IKE, pub, ni, cookie []byte, frag bool) []byte {
	var ps []wire.Payload
	if cookie != nil {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyCookie, Data: cookie})
	}
	ps = append(ps,
		&wire.SA{Proposals: []wire.Proposal{{Num: 1, Protocol: wire.ProtoIKE, Transforms: st.Transforms()}}},
		&wire.KE{Group: st.DH, Data: pub}, &wire.Nonce{Data: ni})
	if frag {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyIKEv2FragmentationSupported})
	}
	m := &wire.Message{Header: wire.Header{SPIi: spi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagInitiator}, Payloads: ps}
	return m.Encode()
}

// Open runs IKE_SA_INIT from src to dst, answering one cookie request.
func (a *Attacker) Open(src, dst netip.AddrPort) (*HalfOpen, Outcome, error) {
	a.spi++
	dh, err := suite.NewDH(a.Suite.DH, rand.Reader)
	if err != nil {
		return nil, 0, err
	}
	ni := make([]byte, 32)
	rand.Read(ni)
	var cookie []byte
	for range 2 {
		rsp := a.rt(src, dst, InitRequest(a.spi, a.Suite, dh.Public(), ni, cookie, a.Frag))
		if rsp == nil {
			return nil, Dropped, nil
		}
		m, err := wire.Parse(rsp)
		if err != nil {
			return nil, 0, fmt.Errorf("answer to IKE_SA_INIT: %w", err)
		}
		var (
			sa      *wire.SA
			ke      *wire.KE
			nr, got []byte
		)
		for _, p := range m.Payloads {
			switch x := p.(type) {
			case *wire.SA:
				sa = x
			case *wire.KE:
				ke = x
			case *wire.Nonce:
				nr = x.Data
			case *wire.Notify:
				if x.NotifyType == wire.NotifyCookie {
					got = x.Data
				}
			}
		}
		if got != nil && sa == nil {
			if cookie != nil {
				return nil, Refused, nil
			}
			cookie = got
			continue
		}
		if sa == nil || ke == nil || nr == nil {
			return nil, Refused, nil
		}
		shared, err := dh.Shared(ke.Data)
		if err != nil {
			return nil, 0, err
		}
		_, keys, err := suite.DeriveIKE(a.Suite, ni, nr, shared, a.spi, m.Header.SPIr)
		if err != nil {
			return nil, 0, err
		}
		out, err := suite.NewProtector(a.Suite, keys.Ei, keys.Ai, rand.Reader)
		if err != nil {
			return nil, 0, err
		}
		return &HalfOpen{SPIi: a.spi, SPIr: m.Header.SPIr, Src: src, Dst: dst, out: out, Cookie: cookie != nil}, Answered, nil
	}
	return nil, Refused, nil
}

// Fragment returns fragment n of total (RFC 7383) of the initiator's
// message id of exchange x on h, carrying size zero bytes, sealed with
// the SA's keys.
func (h *HalfOpen) Fragment(x wire.ExchangeType, id uint32, n, total uint16, size int) []byte {
	hd := wire.Header{SPIi: h.SPIi, SPIr: h.SPIr, Next: wire.PayloadSKF, Version: wire.Version2, Exchange: x, Flags: wire.FlagInitiator, MessageID: id}
	inner := wire.PayloadNone
	if n == 1 {
		inner = wire.PayloadIDi
	}
	b := wire.AppendFragmentHeader(wire.AppendHeader(nil, hd), inner, n, total, 0)
	return h.out.Seal(b, make([]byte, size))
}
