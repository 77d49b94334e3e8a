package suite

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// AUTH methods, RFC 7296 §3.8, RFC 4754 §3, RFC 7427 §3.
const (
	AuthRSA              = 1  // RSASSA-PKCS1-v1_5 with SHA-1
	AuthPSK              = 2  // Shared Key Message Integrity Code
	AuthECDSA256         = 9  // ECDSA P-256 with SHA-256, r | s
	AuthECDSA384         = 10 // ECDSA P-384 with SHA-384, r | s
	AuthECDSA521         = 11 // ECDSA P-521 with SHA-512, r | s
	AuthDigitalSignature = 14 // RFC 7427
)

// Hash algorithm IDs of the SIGNATURE_HASH_ALGORITHMS notify (RFC 7427
// §4, IANA "IKEv2 Hash Algorithms").
const (
	HashSHA1     = 1
	HashSHA256   = 2
	HashSHA384   = 3
	HashSHA512   = 4
	HashIdentity = 5 // RFC 8420: Ed25519 signs the octets themselves
)

// SignatureHash maps a SIGNATURE_HASH_ALGORITHMS ID to the hash Sign
// takes (crypto.Hash(0) for Identity); ok is false for IDs Sign does not
// do (SHA-1 and unknown ones).
func SignatureHash(id uint16) (h crypto.Hash, ok bool) {
	switch id {
	case HashSHA256:
		return crypto.SHA256, true
	case HashSHA384:
		return crypto.SHA384, true
	case HashSHA512:
		return crypto.SHA512, true
	case HashIdentity:
		return 0, true
	}
	return 0, false
}

// ErrAuthFailed is wrapped by every Verify error: the caller answers
// AUTHENTICATION_FAILED whatever the detail.
var ErrAuthFailed = errors.New("suite: authentication failed")

// SignedOctets is the data an AUTH payload signs or MACs (RFC 7296 §2.15):
// the first message the signer sent (IKE_SA_INIT request for the
// initiator, response for the responder), the peer's nonce data and
// prf(SK_px, IDx') which the caller computes with PRF.Sum over the body
// of its ID payload (ID Type, three reserved bytes, identification data).
func SignedOctets(firstMsg, peerNonce, prfIDKey []byte) []byte {
	b := make([]byte, 0, len(firstMsg)+len(peerNonce)+len(prfIDKey))
	return append(append(append(b, firstMsg...), peerNonce...), prfIDKey...)
}

// keyPad is the PSK pad of RFC 7296 §2.15, 17 ASCII bytes, no terminator.
var keyPad = []byte("Key Pad for IKEv2")

// PSKAuth is the AUTH data for method 2 (RFC 7296 §2.15):
// prf(prf(Shared Secret, "Key Pad for IKEv2"), octets). Compare it with
// the peer's using hmac.Equal.
func PSKAuth(prf PRF, psk, octets []byte) []byte {
	k := prf.Sum(psk, keyPad)
	defer Zero(k)
	return prf.Sum(k, octets)
}

// AlgorithmIdentifier DER encodings sent and understood by RFC 7427
// signatures, as in RFC 7427 Appendix A (RSA with NULL parameters).
var (
	algSHA256WithRSA   = mustHex("300d06092a864886f70d01010b0500")
	algSHA384WithRSA   = mustHex("300d06092a864886f70d01010c0500")
	algSHA512WithRSA   = mustHex("300d06092a864886f70d01010d0500")
	algECDSAWithSHA256 = mustHex("300a06082a8648ce3d040302")
	algECDSAWithSHA384 = mustHex("300a06082a8648ce3d040303")
	algECDSAWithSHA512 = mustHex("300a06082a8648ce3d040304")
	algEd25519         = mustHex("300506032b6570")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var (
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSASSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// pssParams is RSASSA-PSS-params, RFC 4055 §3.1.
type pssParams struct {
	Hash         algorithmIdentifier `asn1:"optional,explicit,tag:0"`
	MGF          algorithmIdentifier `asn1:"optional,explicit,tag:1"`
	SaltLength   int                 `asn1:"optional,explicit,tag:2,default:20"`
	TrailerField int                 `asn1:"optional,explicit,tag:3,default:1"`
}

func digest(h crypto.Hash, octets []byte) []byte {
	d := h.New()
	d.Write(octets)
	return d.Sum(nil)
}

// Sign makes RFC 7427 (method 14) AUTH data: one length byte, the DER
// AlgorithmIdentifier, the signature. RSA keys sign RSASSA-PKCS1-v1_5,
// ECDSA keys ecdsa-with-SHAx (DER signature), both with hash SHA-256,
// SHA-384 or SHA-512; Ed25519 keys (RFC 8420) take hash 0 and sign the
// octets themselves. rand nil uses the signer's default.
func Sign(key crypto.Signer, hash crypto.Hash, octets []byte, rand io.Reader) ([]byte, error) {
	if key == nil {
		return nil, errors.New("suite: Sign: no private key")
	}
	var alg []byte
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		switch hash {
		case crypto.SHA256:
			alg = algSHA256WithRSA
		case crypto.SHA384:
			alg = algSHA384WithRSA
		case crypto.SHA512:
			alg = algSHA512WithRSA
		}
	case *ecdsa.PublicKey:
		switch hash {
		case crypto.SHA256:
			alg = algECDSAWithSHA256
		case crypto.SHA384:
			alg = algECDSAWithSHA384
		case crypto.SHA512:
			alg = algECDSAWithSHA512
		}
	case ed25519.PublicKey:
		if hash != 0 {
			return nil, fmt.Errorf("suite: Sign: Ed25519 signs the octets themselves (hash Identity), got %v", hash)
		}
		sig, err := key.Sign(rand, octets, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("suite: Sign: %w", err)
		}
		return authData(algEd25519, sig), nil
	default:
		return nil, fmt.Errorf("suite: Sign: %T keys are not supported; use RSA, ECDSA or Ed25519", pub)
	}
	if alg == nil {
		return nil, fmt.Errorf("suite: Sign: hash %v is not supported; use SHA-256, SHA-384 or SHA-512", hash)
	}
	sig, err := key.Sign(rand, digest(hash, octets), hash)
	if err != nil {
		return nil, fmt.Errorf("suite: Sign: %w", err)
	}
	return authData(alg, sig), nil
}

func authData(alg, sig []byte) []byte {
	b := make([]byte, 0, 1+len(alg)+len(sig))
	b = append(b, byte(len(alg)))
	return append(append(b, alg...), sig...)
}

func authErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrAuthFailed}, a...)...)
}

// Verify checks AUTH data made with pub's private key over octets, for
// methods 1 (RSA PKCS#1 v1.5 with SHA-1), 9, 10 and 11 (ECDSA with
// SHA-256/384/512 on P-256/384/521, signature r | s, RFC 4754) and 14
// (RFC 7427: sha256/384/512WithRSAEncryption, RSASSA-PSS with SHA-256,
// SHA-384 or SHA-512 and MGF1 of the same hash, ecdsa-with-SHA256/384/512,
// Ed25519). Every error wraps ErrAuthFailed; malformed input never panics.
// PSK (method 2) is not a signature: compare PSKAuth with hmac.Equal.
func Verify(pub crypto.PublicKey, authMethod uint8, authData, octets []byte) error {
	switch authMethod {
	case AuthRSA:
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k == nil {
			return authErr("method 1 (RSA) needs an RSA public key, have %T", pub)
		}
		d := sha1.Sum(octets)
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA1, d[:], authData); err != nil {
			return authErr("RSA PKCS#1 v1.5 SHA-1 signature: %v", err)
		}
		return nil
	case AuthECDSA256:
		return verifyECDSARaw(pub, elliptic.P256(), crypto.SHA256, authData, octets)
	case AuthECDSA384:
		return verifyECDSARaw(pub, elliptic.P384(), crypto.SHA384, authData, octets)
	case AuthECDSA521:
		return verifyECDSARaw(pub, elliptic.P521(), crypto.SHA512, authData, octets)
	case AuthDigitalSignature:
		return verifyDigitalSignature(pub, authData, octets)
	case AuthPSK:
		return authErr("method 2 is a shared key, not a signature")
	}
	return authErr("AUTH method %d is not supported (use 1, 9, 10, 11 or 14)", authMethod)
}

func verifyECDSARaw(pub crypto.PublicKey, c elliptic.Curve, h crypto.Hash, sig, octets []byte) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil || k.Curve != c {
		return authErr("ECDSA method for %s needs a %s public key, have %s", c.Params().Name, c.Params().Name, keyDesc(pub))
	}
	n := (c.Params().BitSize + 7) / 8
	if len(sig) != 2*n {
		return authErr("ECDSA %s signature is %d bytes, want %d (r | s)", c.Params().Name, len(sig), 2*n)
	}
	r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
	if !ecdsa.Verify(k, digest(h, octets), r, s) {
		return authErr("ECDSA %s signature does not verify", c.Params().Name)
	}
	return nil
}

func keyDesc(pub crypto.PublicKey) string {
	if k, ok := pub.(*ecdsa.PublicKey); ok && k != nil && k.Curve != nil {
		return "ECDSA " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", pub)
}

var asn1Null = []byte{5, 0}

// nullOrAbsent reports parameters that are NULL or missing, as RFC 4055
// §5 allows for the hash and RSA PKCS#1 v1.5 algorithm identifiers.
func nullOrAbsent(p asn1.RawValue) bool {
	return len(p.FullBytes) == 0 || bytes.Equal(p.FullBytes, asn1Null)
}

func verifyDigitalSignature(pub crypto.PublicKey, data, octets []byte) error {
	if len(data) < 1 {
		return authErr("RFC 7427 AUTH data is empty")
	}
	n := int(data[0])
	if n == 0 || len(data) < 1+n {
		return authErr("RFC 7427 AUTH data: AlgorithmIdentifier length %d, have %d bytes", n, len(data)-1)
	}
	var ai algorithmIdentifier
	rest, err := asn1.Unmarshal(data[1:1+n], &ai)
	if err != nil || len(rest) != 0 {
		return authErr("RFC 7427 AUTH data: AlgorithmIdentifier is not DER")
	}
	sig := data[1+n:]
	switch {
	case ai.Algorithm.Equal(oidSHA256WithRSA), ai.Algorithm.Equal(oidSHA384WithRSA), ai.Algorithm.Equal(oidSHA512WithRSA):
		h := crypto.SHA256
		if ai.Algorithm.Equal(oidSHA384WithRSA) {
			h = crypto.SHA384
		} else if ai.Algorithm.Equal(oidSHA512WithRSA) {
			h = crypto.SHA512
		}
		if !nullOrAbsent(ai.Parameters) {
			return authErr("%v with parameters", ai.Algorithm)
		}
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k == nil {
			return authErr("RSA signature but the peer's key is %s", keyDesc(pub))
		}
		if err := rsa.VerifyPKCS1v15(k, h, digest(h, octets), sig); err != nil {
			return authErr("RSA PKCS#1 v1.5 %v signature: %v", h, err)
		}
		return nil
	case ai.Algorithm.Equal(oidRSASSAPSS):
		h, salt, err := parsePSS(ai.Parameters)
		if err != nil {
			return err
		}
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k == nil {
			return authErr("RSASSA-PSS signature but the peer's key is %s", keyDesc(pub))
		}
		// Go reads SaltLength 0 as "detect"; a declared 0 is accepted that way.
		if err := rsa.VerifyPSS(k, h, digest(h, octets), sig, &rsa.PSSOptions{SaltLength: salt, Hash: h}); err != nil {
			return authErr("RSASSA-PSS %v signature: %v", h, err)
		}
		return nil
	case ai.Algorithm.Equal(oidECDSAWithSHA256), ai.Algorithm.Equal(oidECDSAWithSHA384), ai.Algorithm.Equal(oidECDSAWithSHA512):
		h := crypto.SHA256
		if ai.Algorithm.Equal(oidECDSAWithSHA384) {
			h = crypto.SHA384
		} else if ai.Algorithm.Equal(oidECDSAWithSHA512) {
			h = crypto.SHA512
		}
		if len(ai.Parameters.FullBytes) != 0 {
			return authErr("%v with parameters (RFC 5758 §3.2 forbids them)", ai.Algorithm)
		}
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k == nil {
			return authErr("ECDSA signature but the peer's key is %s", keyDesc(pub))
		}
		if !ecdsa.VerifyASN1(k, digest(h, octets), sig) {
			return authErr("ECDSA %v signature does not verify", h)
		}
		return nil
	case ai.Algorithm.Equal(oidEd25519):
		if len(ai.Parameters.FullBytes) != 0 {
			return authErr("Ed25519 with parameters (RFC 8410 §3 forbids them)")
		}
		k, ok := pub.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return authErr("Ed25519 signature but the peer's key is %s", keyDesc(pub))
		}
		if !ed25519.Verify(k, octets, sig) {
			return authErr("Ed25519 signature does not verify")
		}
		return nil
	}
	return authErr("RFC 7427 signature algorithm %v is not supported (use sha256/384/512WithRSAEncryption, RSASSA-PSS, ecdsa-with-SHA256/384/512, Ed25519)", ai.Algorithm)
}

func parsePSS(p asn1.RawValue) (crypto.Hash, int, error) {
	var pp pssParams
	rest, err := asn1.Unmarshal(p.FullBytes, &pp)
	if err != nil || len(rest) != 0 {
		return 0, 0, authErr("RSASSA-PSS parameters are not DER")
	}
	var h crypto.Hash
	switch {
	case pp.Hash.Algorithm.Equal(oidSHA256):
		h = crypto.SHA256
	case pp.Hash.Algorithm.Equal(oidSHA384):
		h = crypto.SHA384
	case pp.Hash.Algorithm.Equal(oidSHA512):
		h = crypto.SHA512
	default:
		return 0, 0, authErr("RSASSA-PSS hash %v is not supported (SHA-256, SHA-384, SHA-512)", pp.Hash.Algorithm)
	}
	if !nullOrAbsent(pp.Hash.Parameters) {
		return 0, 0, authErr("RSASSA-PSS hash algorithm with parameters")
	}
	if !pp.MGF.Algorithm.Equal(oidMGF1) {
		return 0, 0, authErr("RSASSA-PSS mask generation %v is not MGF1", pp.MGF.Algorithm)
	}
	var mh algorithmIdentifier
	if rest, err := asn1.Unmarshal(pp.MGF.Parameters.FullBytes, &mh); err != nil || len(rest) != 0 ||
		!mh.Algorithm.Equal(pp.Hash.Algorithm) || !nullOrAbsent(mh.Parameters) {
		return 0, 0, authErr("RSASSA-PSS MGF1 must use the signature's hash %v", h)
	}
	if pp.TrailerField != 1 {
		return 0, 0, authErr("RSASSA-PSS trailer field %d, want 1", pp.TrailerField)
	}
	if pp.SaltLength < 0 || pp.SaltLength > 1024 {
		return 0, 0, authErr("RSASSA-PSS salt length %d", pp.SaltLength)
	}
	return h, pp.SaltLength, nil
}

// IntAuth chains one IKE_INTERMEDIATE message into the authentication
// of IKE_AUTH (RFC 9242 §3.3.2):
//
//	IntAuth_n = prf(SK_p, IntAuth_(n-1) | IntAuth_nA | IntAuth_nP)
//
// skp is the SK_pi (for the initiator's messages) or SK_pr (for the
// responder's) that protected the message, prev the previous value of the
// chain (nil for the first message), a the message from the IKE header to
// the end of the Encrypted payload's generic header, with both Length
// fields counting only the header and the plaintext payloads (as if the
// message were neither encrypted nor fragmented), and plain the
// plaintext inner payloads.
func IntAuth(prf PRF, skp, prev, a, plain []byte) []byte {
	b := make([]byte, 0, len(prev)+len(a)+len(plain))
	b = append(append(append(b, prev...), a...), plain...)
	return prf.Sum(skp, b)
}

// AppendIntAuth appends to the octets of SignedOctets what RFC 9242
// §3.3.2 adds once IKE_INTERMEDIATE exchanges took place:
// IntAuth_iN | IntAuth_rN | IKE_AUTH_MID (the Message ID of the IKE_AUTH
// exchange, 4 octets in network order). Both sides append the same.
func AppendIntAuth(octets, intI, intR []byte, authMsgID uint32) []byte {
	octets = append(append(octets, intI...), intR...)
	return append(octets, byte(authMsgID>>24), byte(authMsgID>>16), byte(authMsgID>>8), byte(authMsgID))
}
