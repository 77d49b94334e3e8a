package suite

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"math/big"
	"reflect"
	"slices"
	"testing"

	"github.com/vifsec/vifsec/sa/ike/wire"
)

var fuzzSuites = []IKE{
	{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHECP256},
	{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA256, DH: DHECP256},
	{Encr: EncrChaCha20Poly1305, PRF: PRFHMACSHA256, DH: DHECP256},
}

// FuzzOpen: any aad/body never panics; a sealed message opens to its
// plaintext, and a changed one does not.
func FuzzOpen(f *testing.F) {
	ps := make([]*Protector, len(fuzzSuites))
	for i, s := range fuzzSuites {
		enc, integ := testKeys(s)
		ps[i], _ = NewProtector(s, enc, integ, &seqReader{})
	}
	f.Add(uint8(0), skHeader(1), []byte{})
	f.Add(uint8(1), skHeader(1), make([]byte, 25))
	for i, p := range ps {
		m := p.Seal(skHeader(2), []byte("payloads"))
		f.Add(uint8(i), m[:32], m[32:])
	}
	f.Fuzz(func(t *testing.T, which uint8, aad, body []byte) {
		p := ps[int(which)%len(ps)]
		plain, err := p.Open(aad, body)
		if err == nil {
			// Only the seeds authenticate; re-sealing with the same IV
			// is not possible from outside, so check the framing.
			if len(plain) > len(body) {
				t.Fatalf("plaintext %d bytes from a %d-byte body", len(plain), len(body))
			}
		} else if !errors.Is(err, ErrShort) && !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrPadding) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(aad) >= 28 && len(body) < 1000 {
			hdr := skHeader(7)
			msg := p.Seal(hdr, body)
			got, err := p.Open(msg[:32], msg[32:])
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("round trip of %d bytes: %v", len(body), err)
			}
		}
	})
}

func FuzzParseIKEProposal(f *testing.F) {
	for _, s := range []string{"aes128gcm16-prfsha256-modp2048", "aes256-sha256-modp2048", "chacha20poly1305-prfsha256-x25519",
		"aes128-aes256-sha1-sha256-ecp256-modp2048,aes128gcm16-prfsha384-curve25519", "", "-", ",", "AES-SHA-none-ECP384"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ss, err := ParseIKEProposal(s)
		if err != nil {
			return
		}
		if len(ss) == 0 {
			t.Fatal("no suites and no error")
		}
		for _, x := range ss {
			if err := x.Valid(); err != nil {
				t.Fatalf("%q gave invalid %+v: %v", s, x, err)
			}
			back, err := ParseIKEProposal(x.String())
			if err != nil || len(back) != 1 || back[0] != x {
				t.Fatalf("%+v does not round-trip through %q", x, x.String())
			}
		}
	})
}

func FuzzParseESPProposal(f *testing.F) {
	for _, s := range []string{"aes128gcm16", "aes256-sha256", "aes256gcm16-ecp384", "chacha20poly1305-esn", "3des-sha1-noesn-esn-none-modp2048", "null-sha512", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		es, err := ParseESPProposal(s)
		if err != nil {
			return
		}
		if len(es) == 0 {
			t.Fatal("no suites and no error")
		}
		for _, x := range es {
			if err := x.Valid(); err != nil {
				t.Fatalf("%q gave invalid %+v: %v", s, x, err)
			}
			back, err := ParseESPProposal(x.String())
			if err != nil || len(back) != 1 || back[0] != x {
				t.Fatalf("%+v does not round-trip through %q", x, x.String())
			}
		}
	})
}

// FuzzFromTransforms: transforms as a received SA payload may carry them
// (3 bytes a transform: type, ID, key length selector).
func FuzzFromTransforms(f *testing.F) {
	f.Add([]byte{1, 20, 1, 2, 5, 0, 4, 14, 0}, false)
	f.Add([]byte{1, 12, 2, 3, 12, 0, 5, 0, 0, 4, 0, 0}, true)
	// ADDKE1 ML-KEM-768 or none, ADDKE2 ML-KEM-1024 (types 6, 7).
	f.Add([]byte{1, 20, 1, 2, 6, 0, 4, 31, 0, 6, 36, 0, 6, 0, 0, 7, 37, 0}, false)
	// ESP with PFS x25519 and ADDKE1 ML-KEM-768.
	f.Add([]byte{1, 20, 3, 4, 31, 0, 6, 36, 0, 5, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, esp bool) {
		var ts []wire.Transform
		for ; len(b) >= 3; b = b[3:] {
			ts = append(ts, wire.Transform{Type: wire.TransformType(b[0] % 13), ID: uint16(b[1]), KeyLength: uint16(b[2]%4) * 64})
		}
		if esp {
			es, err := ESPFromTransforms(ts)
			for _, e := range es {
				if e.Valid() != nil {
					t.Fatalf("invalid %+v", e)
				}
			}
			if err == nil && len(es) == 0 {
				t.Fatal("nothing and no error")
			}
			// Offered suites are ours; a chosen suite is valid and reads
			// back from its own transforms.
			ours, _ := ParseESPProposal("aes256gcm16-x25519-ke1_mlkem768-ke1_none-ke2_mlkem1024-ke2_none,aes128gcm16")
			offered, _ := ESPOffered(ts, ours)
			for _, o := range offered {
				if !slices.Contains(ours, o) {
					t.Fatalf("offered %+v is not ours", o)
				}
			}
			if e, ok := ESPChosen(ts); ok && e.Valid() == nil {
				if back, ok := ESPChosen(e.Transforms()); !ok || back != e {
					t.Fatalf("chosen %+v reads back as %+v, %v", e, back, ok)
				}
			}
			return
		}
		ss, err := IKEFromTransforms(ts)
		for _, s := range ss {
			if s.Valid() != nil {
				t.Fatalf("invalid %+v", s)
			}
		}
		// Every suite expanded is offered, and nothing else.
		if err == nil {
			off, err := IKEOffered(ts, ss)
			if err != nil || !reflect.DeepEqual(off, ss) {
				t.Fatalf("IKEOffered(ts, IKEFromTransforms(ts)) = %v, %v; want %v", off, err, ss)
			}
		}
		if err == nil && len(ss) == 0 {
			t.Fatal("nothing and no error")
		}
	})
}

// FuzzVerify: malformed AUTH data never panics and never verifies.
func FuzzVerify(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), &seqReader{})
	edPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	rsaK := testRSAKey(f)
	octets := []byte("octets")
	good := map[string]bool{}
	for _, k := range []crypto.Signer{ec, edPriv, rsaK} {
		h := crypto.SHA256
		if _, ok := k.(ed25519.PrivateKey); ok {
			h = 0
		}
		ad, err := Sign(k, h, octets, nil)
		if err != nil {
			f.Fatal(err)
		}
		good[string(ad)] = true
		f.Add(uint8(AuthDigitalSignature), ad)
	}
	r, s, _ := ecdsa.Sign(&seqReader{}, ec, digest(crypto.SHA256, octets))
	raw := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	good["9"+string(raw)] = true
	f.Add(uint8(AuthECDSA256), raw)
	f.Add(uint8(AuthDigitalSignature), append([]byte{byte(len(unhex(f, rfc7427PSSSHA256)))}, unhex(f, rfc7427PSSSHA256)...))
	f.Add(uint8(AuthRSA), make([]byte, 256))
	//lint:ignore SA1019 an off-curve public key can only be made from raw coordinates
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}
	keys := []crypto.PublicKey{ec.Public(), edPriv.Public(), rsaK.Public(), nil, offCurve}
	f.Fuzz(func(t *testing.T, method uint8, ad []byte) {
		for _, k := range keys {
			err := Verify(k, method, ad, octets)
			if err == nil && !good[string(ad)] && !(method == AuthECDSA256 && good["9"+string(ad)]) {
				t.Fatalf("method %d: unexpected success for %x", method, ad)
			}
			if err != nil && !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("error not ErrAuthFailed: %v", err)
			}
		}
	})
}
