package suite

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/vifsec/vifsec/sa"
)

// hm is HMAC with the PRF's hash, straight from crypto/hmac.
func hm(p PRF, key []byte, data ...[]byte) []byte {
	m := hmac.New(p.alg.newH, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

func spis(i, r uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, i)
	return binary.BigEndian.AppendUint64(b, r)
}

func TestDeriveIKELengths(t *testing.T) {
	ni, nr := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	shared := bytes.Repeat([]byte{3}, 256)
	for _, s := range allIKE() {
		seed, k, err := DeriveIKE(s, ni, nr, shared, 1, 2)
		if err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		p, _ := NewPRF(s.PRF)
		if !bytes.Equal(seed, hm(p, append(bytes.Clone(ni), nr...), shared)) {
			t.Fatalf("%v: SKEYSEED", s)
		}
		d, a, e, _ := s.keyLens()
		stream := prfPlusRef(p, seed, bytes.Join([][]byte{ni, nr, spis(1, 2)}, nil), 3*d+2*a+2*e)
		want := bytes.Join([][]byte{k.D, k.Ai, k.Ar, k.Ei, k.Er, k.Pi, k.Pr}, nil)
		if !bytes.Equal(stream, want) {
			t.Fatalf("%v: keys are not prf+ taken in order", s)
		}
		if len(k.D) != p.Size() || len(k.Pi) != p.Size() || len(k.Pr) != p.Size() {
			t.Errorf("%v: SK_d/SK_p %d bytes, want %d", s, len(k.D), p.Size())
		}
		enc, integ := testKeys(s)
		if len(k.Ei) != len(enc) || len(k.Ai) != len(integ) {
			t.Errorf("%v: SK_e %d SK_a %d", s, len(k.Ei), len(k.Ai))
		}
		if _, err := NewProtector(s, k.Ei, k.Ai, nil); err != nil {
			t.Errorf("%v: keys do not fit a Protector: %v", s, err)
		}
		k.Zero()
		if !bytes.Equal(k.D, make([]byte, len(k.D))) || !bytes.Equal(k.Pr, make([]byte, len(k.Pr))) {
			t.Error("Zero left key bytes")
		}
	}
	// Lengths of the AEAD keys, RFC 5282 §7.1 and RFC 7634 §4.
	for s, want := range map[string]int{"aes128gcm16-prfsha256-ecp256": 20, "aes256gcm16-prfsha256-ecp256": 36, "chacha20poly1305-prfsha256-ecp256": 36, "aes128-sha1-ecp256": 16, "aes256-sha512-ecp256": 32} {
		ss, _ := ParseIKEProposal(s)
		_, k, _ := DeriveIKE(ss[0], ni, nr, shared, 1, 2)
		if len(k.Ei) != want {
			t.Errorf("%s: SK_ei %d bytes, want %d", s, len(k.Ei), want)
		}
	}
}

func TestDeriveErrors(t *testing.T) {
	s := IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA512, DH: DHECP256}
	n32, n16 := make([]byte, 32), make([]byte, 16)
	for name, f := range map[string]func() error{
		"invalid suite": func() error { _, _, err := DeriveIKE(IKE{}, n32, n32, n32, 1, 2); return err },
		"short nonce":   func() error { _, _, err := DeriveIKE(s, make([]byte, 15), n32, n32, 1, 2); return err },
		"long nonce":    func() error { _, _, err := DeriveIKE(s, n32, make([]byte, 257), n32, 1, 2); return err },
		// prfsha512's key is 64 bytes: nonces of at least 32.
		"nonce under half the PRF key": func() error { _, _, err := DeriveIKE(s, n16, n32, n32, 1, 2); return err },
		"no shared secret":             func() error { _, _, err := DeriveIKE(s, n32, n32, nil, 1, 2); return err },
		"rekey bad SK_d":               func() error { _, err := DeriveIKERekey(s, make([]byte, 33), n32, n32, n32, 1, 2); return err },
		"rekey no DH":                  func() error { _, err := DeriveIKERekey(s, make([]byte, 64), nil, n32, n32, 1, 2); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		} else if name[:5] == "short" && !errors.Is(err, ErrBadNonce) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// §2.18: SKEYSEED with the OLD SA's PRF, the key stream with the new one.
func TestDeriveIKERekey(t *testing.T) {
	oldPRF, _ := NewPRF(PRFHMACSHA1)
	newS := IKE{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA384, Integ: IntegHMACSHA256128, DH: DHECP384}
	newPRF, _ := NewPRF(newS.PRF)
	oldSKd := bytes.Repeat([]byte{0xd0}, 20)
	shared := bytes.Repeat([]byte{0x5e}, 48)
	ni, nr := bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0xb2}, 40)
	k, err := DeriveIKERekey(newS, oldSKd, shared, ni, nr, 0x1111, 0x2222)
	if err != nil {
		t.Fatal(err)
	}
	seed := hm(oldPRF, oldSKd, shared, ni, nr)
	stream := prfPlusRef(newPRF, seed, bytes.Join([][]byte{ni, nr, spis(0x1111, 0x2222)}, nil), 3*48+2*32+2*32)
	if !bytes.Equal(stream, bytes.Join([][]byte{k.D, k.Ai, k.Ar, k.Ei, k.Er, k.Pi, k.Pr}, nil)) {
		t.Fatal("rekeyed keys differ from prf_new+(prf_old(SK_d, g^ir | Ni | Nr), Ni | Nr | SPIi | SPIr)")
	}
}

func TestChildKeys(t *testing.T) {
	s := IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHECP256}
	p, _ := NewPRF(s.PRF)
	skd := bytes.Repeat([]byte{0x0d}, 32)
	ni, nr := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 24)
	for _, e := range allESP() {
		var pfs []byte
		if e.DH != 0 {
			pfs = bytes.Repeat([]byte{0xee}, 32)
		}
		ie, ii, re, ri, err := ChildKeys(s, skd, e, pfs, ni, nr)
		if err != nil {
			t.Fatalf("%v: %v", e, err)
		}
		el, il := e.Enc.KeyLen(), e.Integ.KeyLen()
		km := prfPlusRef(p, skd, bytes.Join([][]byte{pfs, ni, nr}, nil), 2*(el+il))
		if !bytes.Equal(km, bytes.Join([][]byte{ie, ii, re, ri}, nil)) || len(ie) != el || len(ri) != il {
			t.Fatalf("%v: KEYMAT order/lengths wrong", e)
		}
		for _, c := range []sa.Config{{Enc: e.Enc, EncKey: ie, Integ: e.Integ, IntegKey: ii}, {Enc: e.Enc, EncKey: re, Integ: e.Integ, IntegKey: ri}} {
			if err := sa.CheckEncKey(c.Enc, c.EncKey); err != nil {
				t.Errorf("%v: %v", e, err)
			}
			if err := sa.CheckIntegKey(c.Integ, c.IntegKey); err != nil {
				t.Errorf("%v: %v", e, err)
			}
		}
	}
	gcm := ESP{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}
	pfs := ESP{Enc: sa.EncAES128GCM, Integ: sa.IntegNone, DH: DHECP256}
	for name, f := range map[string]func() error{
		"PFS without secret": func() error { _, _, _, _, err := ChildKeys(s, skd, pfs, nil, ni, nr); return err },
		"secret without PFS": func() error { _, _, _, _, err := ChildKeys(s, skd, gcm, []byte{1}, ni, nr); return err },
		"SK_d length":        func() error { _, _, _, _, err := ChildKeys(s, skd[:20], gcm, nil, ni, nr); return err },
		"bad ESP":            func() error { _, _, _, _, err := ChildKeys(s, skd, ESP{}, nil, ni, nr); return err },
		"bad IKE":            func() error { _, _, _, _, err := ChildKeys(IKE{}, skd, gcm, nil, ni, nr); return err },
		"short nonce":        func() error { _, _, _, _, err := ChildKeys(s, skd, gcm, nil, ni[:8], nr); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// RFC 9370 §2.2.4: the shared secrets of the additional key exchanges
// follow the nonces: SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1)
// | ... | SK(n)) for an IKE SA rekey, KEYMAT = prf+(SK_d, SK(0) | Ni |
// Nr | SK(1) | ... | SK(n)) for a Child SA.
func TestAddKERekeyKeys(t *testing.T) {
	p, _ := NewPRF(PRFHMACSHA256)
	s := IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHCurve25519}
	s.AddKE[0], s.AddKE[2] = KEMLKEM768, DHECP256
	skd := bytes.Repeat([]byte{0xd0}, 32)
	sk0, sk1, sk3 := bytes.Repeat([]byte{0x50}, 32), bytes.Repeat([]byte{0x51}, 32), bytes.Repeat([]byte{0x53}, 32)
	add := bytes.Join([][]byte{sk1, sk3}, nil)
	ni, nr := bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0xb2}, 32)
	k, err := DeriveIKERekeyAddKE(s, skd, sk0, ni, nr, add, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	seed := hm(p, skd, sk0, ni, nr, sk1, sk3)
	stream := prfPlusRef(p, seed, bytes.Join([][]byte{ni, nr, spis(1, 2)}, nil), 3*32+2*20)
	if !bytes.Equal(stream, bytes.Join([][]byte{k.D, k.Ai, k.Ar, k.Ei, k.Er, k.Pi, k.Pr}, nil)) {
		t.Fatal("rekeyed keys differ from prf+(prf(SK_d, SK(0) | Ni | Nr | SK(1) | SK(3)), Ni | Nr | SPIi | SPIr)")
	}
	if _, err := DeriveIKERekeyAddKE(s, skd, sk0, ni, nr, nil, 1, 2); err == nil {
		t.Error("a suite with additional key exchanges keyed without their secrets")
	}
	e := ESP{Enc: sa.EncAES256GCM, Integ: sa.IntegNone, DH: DHCurve25519}
	e.AddKE[0] = KEMLKEM768
	ie, ii, re, ri, err := ChildKeysAddKE(s.Base(), skd, e, sk0, ni, nr, sk1)
	if err != nil {
		t.Fatal(err)
	}
	km := prfPlusRef(p, skd, bytes.Join([][]byte{sk0, ni, nr, sk1}, nil), 2*e.Enc.KeyLen())
	if !bytes.Equal(km, bytes.Join([][]byte{ie, ii, re, ri}, nil)) {
		t.Fatal("KEYMAT differs from prf+(SK_d, SK(0) | Ni | Nr | SK(1))")
	}
	if _, _, _, _, err := ChildKeysAddKE(s.Base(), skd, e, sk0, ni, nr, nil); err == nil {
		t.Error("a Child SA with an additional key exchange keyed without its secret")
	}
	if _, _, _, _, err := ChildKeysAddKE(s.Base(), skd, e.Base(), sk0, ni, nr, sk1); err == nil {
		t.Error("a secret of an additional key exchange the suite does not run was accepted")
	}
}
