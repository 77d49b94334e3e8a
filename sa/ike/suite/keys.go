package suite

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Keys are the seven secrets of an IKE SA (RFC 7296 §2.14). Ai and Ar are
// empty for AEAD suites; Ei and Er include the AEAD salt.
type Keys struct {
	D, Ai, Ar, Ei, Er, Pi, Pr []byte
}

// Zero overwrites every key in k.
func (k *Keys) Zero() { Zero(k.D, k.Ai, k.Ar, k.Ei, k.Er, k.Pi, k.Pr) }

// Zero overwrites each slice with zeros. Use it on key material (SKEYSEED,
// DH shared secrets, Keys, KEYMAT) once it is no longer needed.
func Zero(b ...[]byte) {
	for _, s := range b {
		clear(s)
	}
}

// ErrBadNonce is returned for a nonce outside RFC 7296 §2.10: 16 to 256
// bytes and at least half the PRF's key size.
var ErrBadNonce = errors.New("suite: nonce must be 16-256 bytes and at least half the PRF key size")

func checkNonces(p PRF, ns ...[]byte) error {
	for _, n := range ns {
		if len(n) < 16 || len(n) > 256 || len(n) < p.Size()/2 {
			return fmt.Errorf("%w (%s: got %d bytes)", ErrBadNonce, p, len(n))
		}
	}
	return nil
}

// keyLens are the lengths of SK_d/SK_p, SK_a and SK_e for s.
func (s IKE) keyLens() (d, a, e int, err error) {
	if err := s.Valid(); err != nil {
		return 0, 0, 0, err
	}
	d = findPRF(s.PRF).hash.Size()
	if i := findInteg(s.Integ); i != nil {
		a = i.keyLen
	}
	return d, a, s.encr().keyLen, nil
}

// DeriveIKE computes SKEYSEED = prf(Ni | Nr, g^ir) and from it
// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} =
// prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14). shared is g^ir as
// DH.Shared returns it (MODP: padded to the modulus; ECP: the x coordinate;
// Curve25519: the 32-byte output). The lengths are the PRF's preferred key
// length for SK_d and SK_p, the integrity key length for SK_a (0 for
// AEADs) and the cipher key plus salt for SK_e (RFC 5282 §7.1, RFC 7634 §4).
// (The §2.14 rule about nonce halves applies only to AES-XCBC/CMAC PRFs,
// which this package does not offer.) The caller zeroes skeyseed and k.
func DeriveIKE(s IKE, ni, nr, shared []byte, spii, spir uint64) (skeyseed []byte, k Keys, err error) {
	dl, al, el, err := s.keyLens()
	if err != nil {
		return nil, Keys{}, err
	}
	p := PRF{alg: findPRF(s.PRF)}
	if err := checkNonces(p, ni, nr); err != nil {
		return nil, Keys{}, err
	}
	if len(shared) == 0 {
		return nil, Keys{}, errors.New("suite: DeriveIKE: empty DH shared secret")
	}
	nonces := make([]byte, 0, len(ni)+len(nr)+16)
	nonces = append(append(nonces, ni...), nr...)
	skeyseed = p.Sum(nonces, shared)
	k = expandIKE(p, skeyseed, nonces, spii, spir, dl, al, el)
	return skeyseed, k, nil
}

// DeriveIKERekey derives the keys of a new IKE SA made by rekeying with
// CREATE_CHILD_SA (RFC 7296 §2.18):
//
//	SKEYSEED = prf_old(SK_d (old), g^ir (new) | Ni | Nr)
//	{SK_d | …} = prf_new+(SKEYSEED, Ni | Nr | SPIi | SPIr)
//
// where s is the new SA's suite, spii and spir the new SA's SPIs and ni, nr
// the nonces of the rekey exchange. "Because the rekeying exchange belongs
// to the old IKE SA, it is the old IKE SA's PRF that is used to generate
// SKEYSEED": oldSKd's length is the old PRF's preferred key length, which
// names it among this package's PRFs (20 bytes HMAC-SHA1, 32 SHA-256, 48
// SHA-384, 64 SHA-512), so the old PRF is taken from there. SKEYSEED is
// zeroed before returning.
func DeriveIKERekey(s IKE, oldSKd, shared, ni, nr []byte, spii, spir uint64) (Keys, error) {
	return DeriveIKERekeyAddKE(s, oldSKd, shared, ni, nr, nil, spii, spir)
}

// DeriveIKERekeyAddKE is DeriveIKERekey for a rekey followed by
// additional key exchanges in IKE_FOLLOWUP_KE exchanges (RFC 9370
// §2.2.4):
//
//	SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n))
//
// where add is SK(1) | ... | SK(n), nil for none.
func DeriveIKERekeyAddKE(s IKE, oldSKd, shared, ni, nr, add []byte, spii, spir uint64) (Keys, error) {
	if s.HasAddKE() && len(add) == 0 {
		return Keys{}, fmt.Errorf("suite: DeriveIKERekey: %s runs additional key exchanges but no shared secret of theirs was given", s)
	}
	dl, al, el, err := s.keyLens()
	if err != nil {
		return Keys{}, err
	}
	var old PRF
	for i := range prfs {
		if prfs[i].hash.Size() == len(oldSKd) {
			old = PRF{alg: &prfs[i]}
		}
	}
	if old.alg == nil {
		return Keys{}, fmt.Errorf("suite: DeriveIKERekey: old SK_d of %d bytes is not the key of any supported PRF (20, 32, 48 or 64 bytes)", len(oldSKd))
	}
	p := PRF{alg: findPRF(s.PRF)}
	if err := checkNonces(p, ni, nr); err != nil {
		return Keys{}, err
	}
	if err := checkNonces(old, ni, nr); err != nil {
		return Keys{}, err
	}
	if len(shared) == 0 {
		return Keys{}, errors.New("suite: DeriveIKERekey: empty DH shared secret (an IKE SA rekey always does a new DH, RFC 7296 §2.18)")
	}
	data := make([]byte, 0, len(shared)+len(ni)+len(nr)+len(add))
	data = append(append(append(append(data, shared...), ni...), nr...), add...)
	skeyseed := old.Sum(oldSKd, data)
	Zero(data)
	nonces := append(append(make([]byte, 0, len(ni)+len(nr)+16), ni...), nr...)
	k := expandIKE(p, skeyseed, nonces, spii, spir, dl, al, el)
	Zero(skeyseed)
	return k, nil
}

// expandIKE runs prf+(skeyseed, Ni | Nr | SPIi | SPIr) and splits the
// stream. nonces must have room for the 16 bytes of SPIs.
func expandIKE(p PRF, skeyseed, nonces []byte, spii, spir uint64, dl, al, el int) Keys {
	seed := binary.BigEndian.AppendUint64(nonces, spii)
	seed = binary.BigEndian.AppendUint64(seed, spir)
	km := p.Plus(skeyseed, seed, 3*dl+2*al+2*el)
	var k Keys
	take := func(n int) []byte {
		b := km[:n:n]
		km = km[n:]
		return b
	}
	k.D = take(dl)
	k.Ai, k.Ar = take(al), take(al)
	k.Ei, k.Er = take(el), take(el)
	k.Pi, k.Pr = take(dl), take(dl)
	return k
}

// ChildKeys computes KEYMAT for a Child SA (RFC 7296 §2.17):
//
//	KEYMAT = prf+(SK_d, Ni | Nr)              without PFS
//	KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr) with PFS (e.DH != 0)
//
// taken in the order encryption then integrity key for the SA carrying
// initiator→responder traffic, then the same for responder→initiator.
// Each key has the length the ESP core's sa.Config wants: AEAD keys with
// their 4-byte salt (RFC 4106 §8.1, RFC 7634 §2), none for null
// encryption or AEAD integrity. ni and nr are the nonces of the exchange
// that creates the Child SA (for the first one, those of IKE_SA_INIT).
func ChildKeys(s IKE, skd []byte, e ESP, sharedPFS, ni, nr []byte) (iEnc, iInteg, rEnc, rInteg []byte, err error) {
	return ChildKeysAddKE(s, skd, e, sharedPFS, ni, nr, nil)
}

// ChildKeysAddKE is ChildKeys for a Child SA whose CREATE_CHILD_SA was
// followed by additional key exchanges in IKE_FOLLOWUP_KE exchanges (RFC
// 9370 §2.2.4):
//
//	KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))
//
// where sharedPFS is SK(0) and add is SK(1) | ... | SK(n).
func ChildKeysAddKE(s IKE, skd []byte, e ESP, sharedPFS, ni, nr, add []byte) (iEnc, iInteg, rEnc, rInteg []byte, err error) {
	if err := s.Valid(); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := e.Valid(); err != nil {
		return nil, nil, nil, nil, err
	}
	p := PRF{alg: findPRF(s.PRF)}
	if len(skd) != p.Size() {
		return nil, nil, nil, nil, fmt.Errorf("suite: ChildKeys: SK_d is %d bytes, %s needs %d", len(skd), p, p.Size())
	}
	if err := checkNonces(p, ni, nr); err != nil {
		return nil, nil, nil, nil, err
	}
	if e.DH != 0 && len(sharedPFS) == 0 {
		return nil, nil, nil, nil, fmt.Errorf("suite: ChildKeys: %s asks for PFS with %s but no DH shared secret was given", e, DHName(e.DH))
	}
	if e.DH == 0 && len(sharedPFS) != 0 {
		return nil, nil, nil, nil, fmt.Errorf("suite: ChildKeys: a DH shared secret was given but %s has no PFS group", e)
	}
	if e.HasAddKE() != (len(add) != 0) {
		return nil, nil, nil, nil, fmt.Errorf("suite: ChildKeys: %s and %d bytes of additional shared secrets do not fit", e, len(add))
	}
	seed := make([]byte, 0, len(sharedPFS)+len(ni)+len(nr)+len(add))
	seed = append(append(append(append(seed, sharedPFS...), ni...), nr...), add...)
	el, il := e.Enc.KeyLen(), e.Integ.KeyLen()
	km := p.Plus(skd, seed, 2*(el+il))
	Zero(seed)
	take := func(n int) []byte {
		b := km[:n:n]
		km = km[n:]
		return b
	}
	iEnc, iInteg = take(el), take(il)
	rEnc, rInteg = take(el), take(il)
	return iEnc, iInteg, rEnc, rInteg, nil
}

// UpdateIKE derives the keys of an IKE SA after its n-th additional key
// exchange in an IKE_INTERMEDIATE exchange (RFC 9370 §2.2.2):
//
//	SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
//	{SK_d(n) | SK_ai(n) | SK_ar(n) | SK_ei(n) | SK_er(n) | SK_pi(n) | SK_pr(n)}
//	    = prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr)
//
// with the SA's own PRF, SK_d(n-1) the SA's current SK_d, SK(n) the
// shared secret of the exchange, and Ni, Nr, SPIi, SPIr those of
// IKE_SA_INIT. SKEYSEED(n) is zeroed before returning; the caller zeroes
// the old keys and shared.
func UpdateIKE(s IKE, oldSKd, shared, ni, nr []byte, spii, spir uint64) (Keys, error) {
	dl, al, el, err := s.keyLens()
	if err != nil {
		return Keys{}, err
	}
	p := PRF{alg: findPRF(s.PRF)}
	if len(oldSKd) != p.Size() {
		return Keys{}, fmt.Errorf("suite: UpdateIKE: SK_d is %d bytes, %s needs %d", len(oldSKd), p, p.Size())
	}
	if err := checkNonces(p, ni, nr); err != nil {
		return Keys{}, err
	}
	if len(shared) == 0 {
		return Keys{}, errors.New("suite: UpdateIKE: empty shared secret")
	}
	data := make([]byte, 0, len(shared)+len(ni)+len(nr))
	data = append(append(append(data, shared...), ni...), nr...)
	skeyseed := p.Sum(oldSKd, data)
	Zero(data)
	nonces := append(append(make([]byte, 0, len(ni)+len(nr)+16), ni...), nr...)
	k := expandIKE(p, skeyseed, nonces, spii, spir, dl, al, el)
	Zero(skeyseed)
	return k, nil
}

// MixPPK mixes a post-quantum preshared key into SK_d, SK_pi and SK_pr
// (RFC 8784 §3):
//
//	SK_d' = prf+(PPK, SK_d), SK_pi' = prf+(PPK, SK_pi), SK_pr' = prf+(PPK, SK_pr)
//
// each as long as the key it replaces. The inputs are left alone.
func MixPPK(p PRF, ppk []byte, d, pi, pr []byte) (d2, pi2, pr2 []byte) {
	return p.Plus(ppk, d, len(d)), p.Plus(ppk, pi, len(pi)), p.Plus(ppk, pr, len(pr))
}
