package suite

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"hash"
	"math/big"
	"strings"
	"sync"
	"testing"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey is made once: 2048-bit generation costs a good part of a
// second on a loaded machine.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// RFC 7427 Appendix A prints the AlgorithmIdentifier encodings; the ones
// Sign sends must be those bytes, and DER of the same structure.
func TestAlgorithmIdentifiers(t *testing.T) {
	null := asn1.RawValue{FullBytes: []byte{5, 0}}
	for _, tc := range []struct {
		got  []byte
		rfc  string
		want pkix.AlgorithmIdentifier
	}{
		{algSHA256WithRSA, "300d06092a864886f70d01010b0500", pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA, Parameters: null}},
		{algSHA384WithRSA, "300d06092a864886f70d01010c0500", pkix.AlgorithmIdentifier{Algorithm: oidSHA384WithRSA, Parameters: null}},
		{algSHA512WithRSA, "300d06092a864886f70d01010d0500", pkix.AlgorithmIdentifier{Algorithm: oidSHA512WithRSA, Parameters: null}},
		{algECDSAWithSHA256, "300a06082a8648ce3d040302", pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}},
		{algECDSAWithSHA384, "300a06082a8648ce3d040303", pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA384}},
		{algECDSAWithSHA512, "300a06082a8648ce3d040304", pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA512}},
		{algEd25519, "300506032b6570", pkix.AlgorithmIdentifier{Algorithm: oidEd25519}},
	} {
		der, err := asn1.Marshal(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tc.got, unhex(t, tc.rfc)) || !bytes.Equal(tc.got, der) {
			t.Errorf("%v: have %x, RFC %s, DER %x", tc.want.Algorithm, tc.got, tc.rfc, der)
		}
	}
}

// rfc7427PSSSHA256 is RFC 7427 A.4.1: RSASSA-PSS, SHA-256, MGF1-SHA-256,
// salt 32 bytes.
const rfc7427PSSSHA256 = "304106092a864886f70d01010a3034a00f300d06096086480165030402010500" +
	"a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120"

func TestSignVerify(t *testing.T) {
	octets := []byte("RealMessage1 | NonceRData | prf(SK_pi, IDi')")
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		hash crypto.Hash
		alg  []byte
	}{
		{"rsa-sha256", testRSAKey(t), crypto.SHA256, algSHA256WithRSA},
		{"rsa-sha384", testRSAKey(t), crypto.SHA384, algSHA384WithRSA},
		{"rsa-sha512", testRSAKey(t), crypto.SHA512, algSHA512WithRSA},
		{"p256-sha256", ec256, crypto.SHA256, algECDSAWithSHA256},
		{"p256-sha512", ec256, crypto.SHA512, algECDSAWithSHA512},
		{"p384-sha384", ec384, crypto.SHA384, algECDSAWithSHA384},
		{"ed25519", ed, 0, algEd25519},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ad, err := Sign(tc.key, tc.hash, octets, nil)
			if err != nil {
				t.Fatal(err)
			}
			if int(ad[0]) != len(tc.alg) || !bytes.Equal(ad[1:1+len(tc.alg)], tc.alg) {
				t.Fatalf("auth data starts %x, want %02x%x", ad[:1+len(tc.alg)], len(tc.alg), tc.alg)
			}
			pub := tc.key.Public()
			if err := Verify(pub, AuthDigitalSignature, ad, octets); err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(octets)
			bad[0] ^= 1
			if err := Verify(pub, AuthDigitalSignature, ad, bad); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("other octets verified: %v", err)
			}
			sigBad := bytes.Clone(ad)
			sigBad[len(sigBad)-1] ^= 1
			if err := Verify(pub, AuthDigitalSignature, sigBad, octets); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("changed signature verified: %v", err)
			}
			for _, other := range []crypto.PublicKey{testRSAKey(t).Public(), ec256.Public(), ec384.Public(), ed.Public()} {
				if keysEqual(other, pub) {
					continue
				}
				if err := Verify(other, AuthDigitalSignature, ad, octets); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("verified with another key %T: %v", other, err)
				}
			}
		})
	}
	if _, err := Sign(ec256, crypto.SHA1, octets, nil); err == nil {
		t.Error("SHA-1 signature made")
	}
	if _, err := Sign(ed, crypto.SHA256, octets, nil); err == nil {
		t.Error("Ed25519 with a hash accepted")
	}
	if _, err := Sign(nil, crypto.SHA256, octets, nil); err == nil {
		t.Error("nil key accepted")
	}
}

func keysEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(eq)
	return ok && e.Equal(b)
}

func TestVerifyPSSAndLegacy(t *testing.T) {
	k := testRSAKey(t)
	octets := []byte("signed octets")
	d256 := sha256.Sum256(octets)
	sig, err := rsa.SignPSS(rand.Reader, k, crypto.SHA256, d256[:], &rsa.PSSOptions{SaltLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	alg := unhex(t, rfc7427PSSSHA256)
	ad := append(append([]byte{byte(len(alg))}, alg...), sig...)
	if err := Verify(&k.PublicKey, AuthDigitalSignature, ad, octets); err != nil {
		t.Fatalf("RFC 7427 A.4.1 PSS: %v", err)
	}
	// The same parameters with the NULLs left out (RFC 4055 allows both).
	noNull := unhex(t, "303d06092a864886f70d01010a3030a00d300b0609608648016503040201a11a301806092a864886f70d010108300b0609608648016503040201a203020120")
	if err := Verify(&k.PublicKey, AuthDigitalSignature, append(append([]byte{byte(len(noNull))}, noNull...), sig...), octets); err != nil {
		t.Fatalf("PSS without NULL parameters: %v", err)
	}
	// Declared salt 20 with a 32-byte-salt signature fails.
	salt20 := bytes.Clone(alg)
	salt20[len(salt20)-1] = 20
	if err := Verify(&k.PublicKey, AuthDigitalSignature, append(append([]byte{byte(len(salt20))}, salt20...), sig...), octets); err == nil {
		t.Error("PSS salt length mismatch verified")
	}
	// PSS with default (SHA-1) parameters is refused.
	sha1PSS := unhex(t, "300d06092a864886f70d01010a3000")
	if err := Verify(&k.PublicKey, AuthDigitalSignature, append(append([]byte{byte(len(sha1PSS))}, sha1PSS...), sig...), octets); err == nil {
		t.Error("PSS with SHA-1 defaults verified")
	}

	// Method 1: PKCS#1 v1.5 over SHA-1, bare signature.
	d1 := sha1.Sum(octets)
	s1, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA1, d1[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(&k.PublicKey, AuthRSA, s1, octets); err != nil {
		t.Fatalf("method 1: %v", err)
	}
	if err := Verify(&k.PublicKey, AuthRSA, s1, []byte("other")); err == nil {
		t.Error("method 1 with other octets verified")
	}

	// Methods 9, 10, 11: ECDSA r | s, each coordinate padded to the field size.
	for _, c := range []struct {
		method uint8
		curve  elliptic.Curve
		h      func() hash.Hash
	}{
		{AuthECDSA256, elliptic.P256(), crypto.SHA256.New},
		{AuthECDSA384, elliptic.P384(), crypto.SHA384.New},
		{AuthECDSA521, elliptic.P521(), crypto.SHA512.New},
	} {
		ek, _ := ecdsa.GenerateKey(c.curve, rand.Reader)
		h := c.h()
		h.Write(octets)
		r, s, err := ecdsa.Sign(rand.Reader, ek, h.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		n := (c.curve.Params().BitSize + 7) / 8
		raw := append(r.FillBytes(make([]byte, n)), s.FillBytes(make([]byte, n))...)
		if err := Verify(&ek.PublicKey, c.method, raw, octets); err != nil {
			t.Errorf("method %d: %v", c.method, err)
		}
		if err := Verify(&ek.PublicKey, c.method, raw[1:], octets); err == nil {
			t.Errorf("method %d: short signature verified", c.method)
		}
		other := AuthECDSA256
		if c.method == AuthECDSA256 {
			other = AuthECDSA384
		}
		if err := Verify(&ek.PublicKey, uint8(other), raw, octets); err == nil {
			t.Errorf("method %d signature verified as method %d", c.method, other)
		}
		// The DER form is method 14's, not 9/10/11's.
		der, _ := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err := Verify(&ek.PublicKey, c.method, der, octets); err == nil {
			t.Errorf("method %d accepted a DER signature", c.method)
		}
	}
	for _, m := range []uint8{0, AuthPSK, 3, 12, 13, 255} {
		if err := Verify(&k.PublicKey, m, s1, octets); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("method %d: %v", m, err)
		}
	}
}

func TestVerifyMalformed(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	octets := []byte("x")
	good, _ := Sign(ek, crypto.SHA256, octets, nil)
	for name, ad := range map[string][]byte{
		"empty":             nil,
		"zero length":       {0},
		"length too long":   {200, 0x30, 0x0a},
		"trailing in algid": append(append([]byte{13}, algECDSAWithSHA256...), 0),
		"not DER":           {3, 1, 2, 3},
		"params on ecdsa":   append(append([]byte{14}, unhex(t, "300c06082a8648ce3d0403020500")...), good[13:]...),
		"unknown algorithm": append([]byte{11}, unhex(t, "300906072a8648ce3d0401")...),
		"sha1 rsa":          append([]byte{15}, unhex(t, "300d06092a864886f70d0101050500")...),
		"rsa alg on ec key": append(append([]byte{15}, algSHA256WithRSA...), good[13:]...),
		"no signature":      good[:13],
	} {
		if err := Verify(ek.Public(), AuthDigitalSignature, ad, octets); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := Verify(nil, AuthDigitalSignature, good, octets); err == nil {
		t.Error("nil key")
	}
	if err := Verify((*rsa.PublicKey)(nil), AuthRSA, good, octets); err == nil {
		t.Error("nil RSA key")
	}
	if err := Verify(ek.Public(), AuthDigitalSignature, good, octets); err != nil {
		t.Fatal(err)
	}
}

// PSK AUTH, RFC 7296 §2.15, written out with HMAC-SHA-256 directly.
func TestPSKAuthAndOctets(t *testing.T) {
	p, _ := NewPRF(PRFHMACSHA256)
	octets := SignedOctets([]byte("msg"), []byte("nonce"), []byte("macid"))
	if string(octets) != "msgnoncemacid" {
		t.Fatalf("octets %q", octets)
	}
	k := p.Sum([]byte("secret"), []byte("Key Pad for IKEv2"))
	want := p.Sum(k, octets)
	if got := PSKAuth(p, []byte("secret"), octets); !bytes.Equal(got, want) {
		t.Fatal("PSKAuth")
	}
	if h, ok := SignatureHash(HashSHA384); !ok || h != crypto.SHA384 {
		t.Error("SignatureHash(3)")
	}
	if h, ok := SignatureHash(HashIdentity); !ok || h != 0 {
		t.Error("SignatureHash(5)")
	}
	if _, ok := SignatureHash(HashSHA1); ok {
		t.Error("SignatureHash(1) offered")
	}
	if !strings.Contains(Verify(nil, AuthPSK, nil, nil).Error(), "shared key") {
		t.Error("PSK method error")
	}
}
