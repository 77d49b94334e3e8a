package suite

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// ErrNoSuite is wrapped when a received proposal holds no combination of
// transforms this package implements: the proposal is unacceptable
// (RFC 7296 §3.3.6), and if no proposal is left the answer is
// NO_PROPOSAL_CHOSEN.
var ErrNoSuite = errors.New("suite: proposal has no supported combination of transforms")

// Transforms lists s as the transforms of one IKE proposal (RFC 7296
// §3.3.2): ENCR (with Key Length for AES), PRF, INTEG (not for AEADs), DH,
// and an ADDKEn transform for each additional key exchange (RFC 9370
// §2.2.1; none for an ADDKE s does not run).
func (s IKE) Transforms() []wire.Transform {
	ts := []wire.Transform{{Type: wire.TransformENCR, ID: s.Encr, KeyLength: s.EncrKeyBits}}
	ts = append(ts, wire.Transform{Type: wire.TransformPRF, ID: s.PRF})
	if e := s.encr(); e == nil || !e.aead || s.Integ != IntegNone {
		ts = append(ts, wire.Transform{Type: wire.TransformINTEG, ID: s.Integ})
	}
	ts = append(ts, wire.Transform{Type: wire.TransformDH, ID: s.DH})
	for i, k := range s.AddKE {
		if k != 0 {
			ts = append(ts, wire.Transform{Type: wire.TransformADDKE1 + wire.TransformType(i), ID: k})
		}
	}
	return ts
}

var ikeTransformTypes = []wire.TransformType{wire.TransformENCR, wire.TransformPRF, wire.TransformINTEG, wire.TransformDH,
	wire.TransformADDKE1, wire.TransformADDKE1 + 1, wire.TransformADDKE1 + 2, wire.TransformADDKE1 + 3,
	wire.TransformADDKE1 + 4, wire.TransformADDKE1 + 5, wire.TransformADDKE7}

// maxAddKECombos bounds the combinations of additional key exchanges
// IKEFromTransforms expands one proposal into.
const maxAddKECombos = 16

// addKEOffers reads a proposal's ADDKE transforms: for each type, the
// supported methods listed and 0 if NONE is listed; a type the proposal
// does not list is [0] (RFC 9370 §2.2.1). ok is false if a listed type
// holds nothing usable.
func addKEOffers(m map[wire.TransformType][]wire.Transform) (lists [MaxAddKE][]uint16, ok bool) {
	for i := range lists {
		l := m[wire.TransformADDKE1+wire.TransformType(i)]
		if len(l) == 0 {
			lists[i] = []uint16{0}
			continue
		}
		for _, t := range l {
			if t.KeyLength == 0 && (t.ID == 0 || validKE(t.ID)) {
				lists[i] = append(lists[i], t.ID)
			}
		}
		if len(lists[i]) == 0 {
			return lists, false
		}
	}
	return lists, true
}

// IKEOffered returns the suites of ours that the received IKE proposal ts
// offers: in the peer's order of the classical transforms (as
// IKEFromTransforms), and for one classical combination in our order of
// additional key exchanges. Unlike IKEFromTransforms it never expands the
// peer's additional key exchanges, so its cost is bounded by ours.
func IKEOffered(ts []wire.Transform, ours []IKE) ([]IKE, error) {
	m, err := byType(ts, ikeTransformTypes...)
	if err != nil {
		return nil, err
	}
	lists, ok := addKEOffers(m)
	if !ok {
		return nil, fmt.Errorf("%w: IKE proposal %s: an additional key exchange type lists no supported method", ErrNoSuite, describe(ts))
	}
	classic := make([]wire.Transform, 0, len(ts))
	for _, t := range ts {
		if t.Type < wire.TransformADDKE1 {
			classic = append(classic, t)
		}
	}
	base, err := IKEFromTransforms(classic)
	if err != nil {
		return nil, err
	}
	var out []IKE
	for _, b := range base {
		for _, o := range ours {
			if o.Base() != b {
				continue
			}
			offered := true
			for i, k := range o.AddKE {
				offered = offered && slices.Contains(lists[i], k)
			}
			if offered {
				out = addOnce(out, o)
			}
		}
	}
	return out, nil
}

// Transforms lists e as the transforms of one ESP proposal: ENCR (with
// Key Length for AES), INTEG (not for AEADs), DH if e asks for PFS, and
// ESN, which is mandatory in ESP proposals (RFC 7296 §3.3.3).
func (e ESP) Transforms() []wire.Transform {
	ts := []wire.Transform{{Type: wire.TransformENCR, ID: e.Enc.IKEID(), KeyLength: espKeyBits(e.Enc)}}
	if !e.Enc.IsAEAD() || e.Integ != sa.IntegNone {
		ts = append(ts, wire.Transform{Type: wire.TransformINTEG, ID: e.Integ.IKEID()})
	}
	if e.DH != 0 {
		ts = append(ts, wire.Transform{Type: wire.TransformDH, ID: e.DH})
	}
	for i, k := range e.AddKE {
		if k != 0 {
			ts = append(ts, wire.Transform{Type: wire.TransformADDKE1 + wire.TransformType(i), ID: k})
		}
	}
	esn := uint16(ESNNone)
	if e.ESN {
		esn = ESNYes
	}
	return append(ts, wire.Transform{Type: wire.TransformESN, ID: esn})
}

// byType sorts a proposal's transforms by type, in the order received,
// without duplicates. It fails on a transform type RFC 7296 does not
// define for proto.
func byType(ts []wire.Transform, allowed ...wire.TransformType) (map[wire.TransformType][]wire.Transform, error) {
	m := make(map[wire.TransformType][]wire.Transform)
	seen := make(map[wire.Transform]bool, len(ts))
	for _, t := range ts {
		if !slices.Contains(allowed, t.Type) {
			return nil, fmt.Errorf("%w: transform type %d is not allowed here", ErrNoSuite, t.Type)
		}
		if !seen[t] {
			seen[t] = true
			m[t.Type] = append(m[t.Type], t)
		}
	}
	return m, nil
}

// IKEFromTransforms reads the transforms of one received IKE proposal and
// returns every combination this package implements, in the order the
// peer listed them (encryption first, then integrity, PRF, DH).
// Unsupported transforms are skipped; a proposal with an unknown
// transform type, a missing mandatory type, or nothing supported is an
// error wrapping ErrNoSuite. ChaCha20-Poly1305 is accepted with or without
// a 256-bit Key Length attribute (strongSwan's chacha20poly1305compat).
// Additional key exchanges (ADDKE1..7, RFC 9370) multiply the
// combinations, ADDKE1 varying slowest; a type not listed is none, and a
// proposal with more than 16 combinations of them is refused (to choose
// from a peer's offer use IKEOffered, which does not expand).
// Without them at most 5 × 4 × 4 × 4 suites come back.
func IKEFromTransforms(ts []wire.Transform) ([]IKE, error) {
	m, err := byType(ts, ikeTransformTypes...)
	if err != nil {
		return nil, err
	}
	lists, ok := addKEOffers(m)
	if !ok {
		return nil, fmt.Errorf("%w: IKE proposal %s: an additional key exchange type lists no supported method", ErrNoSuite, describe(ts))
	}
	n := 1
	for _, l := range lists {
		n *= len(l)
		if n > maxAddKECombos {
			return nil, fmt.Errorf("%w: IKE proposal %s: more than %d combinations of additional key exchanges", ErrNoSuite, describe(ts), maxAddKECombos)
		}
	}
	addKEs := addKECombos(lists)
	for _, t := range []wire.TransformType{wire.TransformENCR, wire.TransformPRF, wire.TransformDH} {
		if len(m[t]) == 0 {
			return nil, fmt.Errorf("%w: IKE proposal without a %v transform", ErrNoSuite, t)
		}
	}
	// Keep only what is supported before combining, so that a proposal of
	// thousands of unknown transforms costs one pass.
	var prfIDs, dhIDs, integIDs []uint16
	integNone := len(m[wire.TransformINTEG]) == 0
	for _, t := range m[wire.TransformPRF] {
		if t.KeyLength == 0 && findPRF(t.ID) != nil {
			prfIDs = append(prfIDs, t.ID)
		}
	}
	for _, t := range m[wire.TransformDH] {
		if t.KeyLength == 0 && findDH(t.ID) != nil {
			dhIDs = append(dhIDs, t.ID)
		}
	}
	for _, t := range m[wire.TransformINTEG] {
		switch {
		case t.KeyLength != 0:
		case t.ID == IntegNone:
			integNone = true
		case findInteg(t.ID) != nil:
			integIDs = append(integIDs, t.ID)
		}
	}
	var out []IKE
	for _, et := range m[wire.TransformENCR] {
		e := ikeEncrFromTransform(et)
		if e == nil {
			continue
		}
		igs := integIDs
		if e.aead {
			igs = nil
			if integNone {
				igs = []uint16{IntegNone}
			}
		}
		for _, ig := range igs {
			for _, p := range prfIDs {
				for _, d := range dhIDs {
					for _, ak := range addKEs {
						out = addOnce(out, IKE{Encr: e.id, EncrKeyBits: e.keyBits, PRF: p, Integ: ig, DH: d, AddKE: ak})
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: IKE proposal %s", ErrNoSuite, describe(ts))
	}
	return out, nil
}

func ikeEncrFromTransform(t wire.Transform) *encrAlg {
	if t.ID == EncrChaCha20Poly1305 && t.KeyLength == 256 {
		return findEncr(t.ID, 0)
	}
	return findEncr(t.ID, t.KeyLength)
}

func espEncFromTransform(t wire.Transform) sa.EncAlg {
	for _, a := range sa.EncAlgs() {
		if a.IKEID() != t.ID {
			continue
		}
		kl := t.KeyLength
		if a == sa.EncChaCha20Poly1305 && kl == 256 {
			kl = 0
		}
		if espKeyBits(a) == kl {
			return a
		}
	}
	return sa.EncInvalid
}

// ESPFromTransforms reads the transforms of one received ESP proposal and
// returns every combination the ESP core implements, in the order the
// peer listed them. DH NONE (or no DH transform) is a suite without PFS;
// a proposal without an ESN transform is read as ESN NONE. Errors wrap
// ErrNoSuite.
func ESPFromTransforms(ts []wire.Transform) ([]ESP, error) {
	m, err := byType(ts, wire.TransformENCR, wire.TransformINTEG, wire.TransformDH, wire.TransformESN)
	if err != nil {
		return nil, err
	}
	if len(m[wire.TransformENCR]) == 0 {
		return nil, fmt.Errorf("%w: ESP proposal without an encryption transform", ErrNoSuite)
	}
	dhs := []uint16{0}
	if l := m[wire.TransformDH]; len(l) > 0 {
		dhs = dhs[:0]
		for _, t := range l {
			if t.KeyLength == 0 && (t.ID == 0 || findDH(t.ID) != nil) {
				dhs = append(dhs, t.ID)
			}
		}
	}
	esns := []bool{false}
	if l := m[wire.TransformESN]; len(l) > 0 {
		esns = esns[:0]
		for _, t := range l {
			if t.KeyLength == 0 && (t.ID == ESNNone || t.ID == ESNYes) {
				esns = append(esns, t.ID == ESNYes)
			}
		}
	}
	var integs []sa.IntegAlg
	integNone := len(m[wire.TransformINTEG]) == 0
	for _, t := range m[wire.TransformINTEG] {
		if t.KeyLength != 0 {
			continue
		}
		if t.ID == IntegNone {
			integNone = true
		} else if i := findInteg(t.ID); i != nil {
			integs = append(integs, i.esp)
		}
	}
	var out []ESP
	for _, et := range m[wire.TransformENCR] {
		enc := espEncFromTransform(et)
		if enc == sa.EncInvalid {
			continue
		}
		igs := integs
		if enc.IsAEAD() {
			igs = nil
			if integNone {
				igs = []sa.IntegAlg{sa.IntegNone}
			}
		}
		for _, ig := range igs {
			for _, d := range dhs {
				for _, esn := range esns {
					out = addOnce(out, ESP{Enc: enc, Integ: ig, DH: d, ESN: esn})
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: ESP proposal %s", ErrNoSuite, describe(ts))
	}
	return out, nil
}

// splitAddKE separates a proposal's ADDKE transforms from the others.
func splitAddKE(ts []wire.Transform) (classic, addke []wire.Transform) {
	for _, t := range ts {
		if t.Type >= wire.TransformADDKE1 && t.Type <= wire.TransformADDKE7 {
			addke = append(addke, t)
		} else {
			classic = append(classic, t)
		}
	}
	return classic, addke
}

// ESPOffered returns the suites of ours that the received ESP proposal ts
// offers, in the peer's order of the classical transforms (as
// ESPFromTransforms) and, for one classical combination, in our order of
// additional key exchanges; like IKEOffered it never expands the peer's
// additional key exchanges. A type of ADDKE transform the proposal does
// not list is NONE (RFC 9370 §2.2.1).
func ESPOffered(ts []wire.Transform, ours []ESP) ([]ESP, error) {
	classic, addke := splitAddKE(ts)
	m, err := byType(addke, ikeTransformTypes[4:]...)
	if err != nil {
		return nil, err
	}
	lists, ok := addKEOffers(m)
	if !ok {
		return nil, fmt.Errorf("%w: ESP proposal %s: an additional key exchange type lists no supported method", ErrNoSuite, describe(ts))
	}
	base, err := ESPFromTransforms(classic)
	if err != nil {
		return nil, err
	}
	var out []ESP
	for _, b := range base {
		for _, o := range ours {
			if o.Base() != b {
				continue
			}
			offered := true
			for i, k := range o.AddKE {
				offered = offered && slices.Contains(lists[i], k)
			}
			if offered {
				out = addOnce(out, o)
			}
		}
	}
	return out, nil
}

// ESPChosen reads a responder's answer: exactly one suite, additional key
// exchanges included (one transform per ADDKE type listed). ok is false
// for anything else.
func ESPChosen(ts []wire.Transform) (ESP, bool) {
	classic, addke := splitAddKE(ts)
	ss, err := ESPFromTransforms(classic)
	if err != nil || len(ss) != 1 {
		return ESP{}, false
	}
	e := ss[0]
	for _, t := range addke {
		i := int(t.Type - wire.TransformADDKE1)
		if t.ID == 0 && t.KeyLength == 0 && e.AddKE[i] == 0 {
			continue // NONE chosen
		}
		if e.AddKE[i] != 0 || t.KeyLength != 0 || !validKE(t.ID) {
			return ESP{}, false
		}
		e.AddKE[i] = t.ID
	}
	return e, true
}

func describe(ts []wire.Transform) string {
	b := make([]byte, 0, 16*len(ts))
	for i, t := range ts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = fmt.Appendf(b, "%v:%d", t.Type, t.ID)
		if t.KeyLength != 0 {
			b = fmt.Appendf(b, "/%d", t.KeyLength)
		}
		if i == 15 && len(ts) > 16 {
			b = fmt.Appendf(b, " … (%d transforms)", len(ts))
			break
		}
	}
	return string(b)
}
