package ike

import (
	"slices"

	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Proposal selection (RFC 7296 §2.7, §3.3.6).
//
// As responder the engine follows strongSwan's default
// (charon.prefer_configured_proposals = yes): it walks its own proposals
// in its configured order and takes the first the initiator offers in any
// of its proposals. Config.PreferInitiatorProposals walks the initiator's
// proposals in the initiator's order instead. Among the acceptable
// suites, one whose DH group is the group of the KE payload the initiator
// already sent wins over the order, which saves an INVALID_KE_PAYLOAD
// round trip (both are acceptable to us, so this costs no security); only
// if none matches the KE group is the first acceptable suite chosen and
// the initiator asked to retry with its group.

// ikeChoice is a chosen IKE proposal: the peer's proposal it came from
// and the suite.
type ikeChoice struct {
	num   uint8
	suite suite.IKE
}

// peerIKESuites decodes a peer's IKE proposals into the suites of ours
// each offers (wrong protocol or SPI size: skipped).
func peerIKESuites(props []wire.Proposal, spiLen int, ours []suite.IKE) [][]suite.IKE {
	out := make([][]suite.IKE, len(props))
	for i, p := range props {
		if p.Protocol != wire.ProtoIKE || len(p.SPI) != spiLen {
			continue
		}
		out[i], _ = suite.IKEOffered(p.Transforms, ours)
	}
	return out
}

// selectIKE picks an IKE suite from the peer's proposals; ke is the group
// of the peer's KE payload. ok is false if nothing is acceptable.
func selectIKE(props []wire.Proposal, spiLen int, ours []suite.IKE, ke uint16, preferPeer bool) (ikeChoice, bool) {
	peer := peerIKESuites(props, spiLen, ours)
	var cands []ikeChoice
	if preferPeer {
		for i, ps := range peer {
			for _, s := range ps {
				if slices.Contains(ours, s) {
					cands = append(cands, ikeChoice{props[i].Num, s})
				}
			}
		}
	} else {
		for _, s := range ours {
			for i, ps := range peer {
				if slices.Contains(ps, s) {
					cands = append(cands, ikeChoice{props[i].Num, s})
				}
			}
		}
	}
	if len(cands) == 0 {
		return ikeChoice{}, false
	}
	for _, c := range cands {
		if c.suite.DH == ke {
			return c, true
		}
	}
	return cands[0], true
}

// ikeProposals builds our IKE SA payload: one proposal per suite.
func ikeProposals(ours []suite.IKE, spi []byte) *wire.SA {
	p := &wire.SA{}
	for i, s := range ours {
		p.Proposals = append(p.Proposals, wire.Proposal{Num: uint8(i + 1), Protocol: wire.ProtoIKE, SPI: spi, Transforms: s.Transforms()})
	}
	return p
}

// acceptedIKE checks the responder's answer: exactly one proposal, one
// suite, one of ours.
func acceptedIKE(sa *wire.SA, spiLen int, ours []suite.IKE) (suite.IKE, bool) {
	if sa == nil || len(sa.Proposals) != 1 {
		return suite.IKE{}, false
	}
	p := sa.Proposals[0]
	if p.Protocol != wire.ProtoIKE || len(p.SPI) != spiLen {
		return suite.IKE{}, false
	}
	ss, err := suite.IKEFromTransforms(p.Transforms)
	if err != nil || len(ss) != 1 || !slices.Contains(ours, ss[0]) {
		return suite.IKE{}, false
	}
	return ss[0], true
}

// espChoice is a chosen ESP proposal.
type espChoice struct {
	num   uint8
	spi   []byte // the peer's inbound SPI
	suite suite.ESP
}

// noPFS strips the PFS group and the additional key exchanges: Child SAs
// made in IKE_AUTH take their keys from the IKE SA's (RFC 7296 §1.2, RFC
// 9370 §2.2.3: DH and ADDKE transforms there are ignored).
func noPFS(es []suite.ESP) []suite.ESP {
	out := make([]suite.ESP, 0, len(es))
	for _, e := range es {
		e.DH = 0
		e.AddKE = [suite.MaxAddKE]uint16{}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// peerESPSuites decodes a peer's ESP proposals into the suites of ours
// each offers; in IKE_AUTH (auth, ours without PFS) the proposals' DH and
// ADDKE transforms are ignored.
func peerESPSuites(props []wire.Proposal, ours []suite.ESP, auth bool) [][]suite.ESP {
	out := make([][]suite.ESP, len(props))
	for i, p := range props {
		if p.Protocol != wire.ProtoESP || len(p.SPI) != 4 {
			continue
		}
		ts := p.Transforms
		if auth {
			ts = slices.DeleteFunc(slices.Clone(ts), func(t wire.Transform) bool {
				return t.Type == wire.TransformDH || (t.Type >= wire.TransformADDKE1 && t.Type <= wire.TransformADDKE7)
			})
		}
		out[i], _ = suite.ESPOffered(ts, ours)
	}
	return out
}

// selectESP picks an ESP suite; auth is true in IKE_AUTH (PFS groups are
// ignored on both sides); ke is the group of the peer's KE payload in
// CREATE_CHILD_SA (0: none sent).
func selectESP(props []wire.Proposal, ours []suite.ESP, auth bool, ke uint16, preferPeer bool) (espChoice, bool) {
	if auth {
		ours = noPFS(ours)
	}
	peer := peerESPSuites(props, ours, auth)
	var cands []espChoice
	add := func(i int, s suite.ESP) {
		cands = append(cands, espChoice{props[i].Num, props[i].SPI, s})
	}
	if preferPeer {
		for i, ps := range peer {
			for _, s := range ps {
				if slices.Contains(ours, s) {
					add(i, s)
				}
			}
		}
	} else {
		for _, s := range ours {
			for i, ps := range peer {
				if slices.Contains(ps, s) {
					add(i, s)
				}
			}
		}
	}
	if len(cands) == 0 {
		return espChoice{}, false
	}
	for _, c := range cands {
		if c.suite.DH == ke {
			return c, true
		}
	}
	return cands[0], true
}

// espProposals builds our ESP SA payload with our inbound SPI.
func espProposals(ours []suite.ESP, spi uint32, auth bool) *wire.SA {
	if auth {
		ours = noPFS(ours)
	}
	b := spiBytes(spi)
	p := &wire.SA{}
	for i, s := range ours {
		p.Proposals = append(p.Proposals, wire.Proposal{Num: uint8(i + 1), Protocol: wire.ProtoESP, SPI: b, Transforms: s.Transforms()})
	}
	return p
}

// acceptedESP checks the responder's ESP answer.
func acceptedESP(sa *wire.SA, ours []suite.ESP, auth bool) (espChoice, bool) {
	if sa == nil || len(sa.Proposals) != 1 {
		return espChoice{}, false
	}
	if auth {
		ours = noPFS(ours)
	}
	p := sa.Proposals[0]
	if p.Protocol != wire.ProtoESP || len(p.SPI) != 4 {
		return espChoice{}, false
	}
	e, ok := suite.ESPChosen(p.Transforms)
	if !ok {
		return espChoice{}, false
	}
	if auth {
		e = noPFS([]suite.ESP{e})[0]
	}
	if !slices.Contains(ours, e) {
		return espChoice{}, false
	}
	return espChoice{p.Num, p.SPI, e}, true
}

func spiBytes(spi uint32) []byte {
	return []byte{byte(spi >> 24), byte(spi >> 16), byte(spi >> 8), byte(spi)}
}

func spiFrom(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
