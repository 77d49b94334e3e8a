package ike

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// A hostile initiator for the responder's limits: it completes
// IKE_SA_INIT (answering cookies, so it is not spoofing), then never
// authenticates, or sends fragments of an IKE_AUTH request it never
// finishes.

// roundTrip sends an IKE_SA_INIT request from src to dst and returns the
// responder's answer to src, nil if none came.
type roundTrip func(src, dst netip.AddrPort, req []byte) []byte

// attacker makes half-open IKE SAs.
type attacker struct {
	t     testing.TB
	st    suite.IKE
	frag  bool // announce IKEV2_FRAGMENTATION_SUPPORTED
	rt    roundTrip
	spi   uint64
	nonce []byte
}

func newAttacker(t testing.TB, rt roundTrip, frag bool) *attacker {
	var b [8]byte
	rand.Read(b[:])
	return &attacker{t: t, st: DefaultIKEProposals[0], frag: frag, rt: rt, spi: binary.BigEndian.Uint64(b[:]) | 1}
}

// outcome of one attempt to open a half-open IKE SA.
type outcome int

const (
	dropped  outcome = iota + 1 // no answer
	refused                     // an error notify, or a cookie asked twice
	answered                    // IKE_SA_INIT answered: half-open
)

// halfOpenSA is the attacker's side of a half-open IKE SA.
type halfOpenSA struct {
	spiI, spiR uint64
	src, dst   netip.AddrPort
	out        *suite.Protector
	cookie     bool // a cookie was asked for and given
}

func (a *attacker) initRequest(spi uint64, dh suite.DH, ni, cookie []byte) []byte {
	var ps []wire.Payload
	if cookie != nil {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyCookie, Data: cookie})
	}
	ps = append(ps, ikeProposals([]suite.IKE{a.st}, nil), &wire.KE{Group: a.st.DH, Data: dh.Public()}, &wire.Nonce{Data: ni})
	if a.frag {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyIKEv2FragmentationSupported})
	}
	m := &wire.Message{Header: wire.Header{SPIi: spi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagInitiator}, Payloads: ps}
	return m.Encode()
}

// open runs IKE_SA_INIT from src to dst.
func (a *attacker) open(src, dst netip.AddrPort) (*halfOpenSA, outcome) {
	a.t.Helper()
	a.spi++
	dh, err := suite.NewDH(a.st.DH, rand.Reader)
	if err != nil {
		a.t.Fatal(err)
	}
	ni := make([]byte, 32)
	rand.Read(ni)
	var cookie []byte
	for range 2 {
		rsp := a.rt(src, dst, a.initRequest(a.spi, dh, ni, cookie))
		if rsp == nil {
			return nil, dropped
		}
		m, err := wire.Parse(rsp)
		if err != nil {
			a.t.Fatalf("answer to IKE_SA_INIT: %v", err)
		}
		ip := sortInit(m.Payloads)
		if ip.cookie != nil && ip.sa == nil {
			if cookie != nil {
				return nil, refused
			}
			cookie = ip.cookie
			continue
		}
		if ip.sa == nil || ip.ke == nil || ip.nonce == nil {
			return nil, refused
		}
		shared, err := dh.Shared(ip.ke.Data)
		if err != nil {
			a.t.Fatal(err)
		}
		_, keys, err := suite.DeriveIKE(a.st, ni, ip.nonce, shared, a.spi, m.Header.SPIr)
		if err != nil {
			a.t.Fatal(err)
		}
		out, err := suite.NewProtector(a.st, keys.Ei, keys.Ai, rand.Reader)
		if err != nil {
			a.t.Fatal(err)
		}
		return &halfOpenSA{spiI: a.spi, spiR: m.Header.SPIr, src: src, dst: dst, out: out, cookie: cookie != nil}, answered
	}
	return nil, refused
}

// fragment returns fragment n of total of message id of exchange x,
// carrying size bytes.
func (h *halfOpenSA) fragment(x wire.ExchangeType, id uint32, n, total uint16, size int) []byte {
	hd := wire.Header{SPIi: h.spiI, SPIr: h.spiR, Next: wire.PayloadSKF, Version: wire.Version2, Exchange: x, Flags: wire.FlagInitiator, MessageID: id}
	inner := wire.PayloadNone
	if n == 1 {
		inner = wire.PayloadIDi
	}
	b := wire.AppendFragmentHeader(wire.AppendHeader(nil, hd), inner, n, total, 0)
	return h.out.Seal(b, make([]byte, size))
}
