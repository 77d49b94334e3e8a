package suite

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// refPRFPlus is prf+ of RFC 7296 §2.13 written out from the RFC, apart
// from PRF.Plus: T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
func refPRFPlus(h func() hash.Hash, k, s []byte, n int) []byte {
	var out, t []byte
	for i := byte(1); len(out) < n; i++ {
		m := hmac.New(h, k)
		m.Write(t)
		m.Write(s)
		m.Write([]byte{i})
		t = m.Sum(nil)
		out = append(out, t...)
	}
	return out[:n]
}

func refHMAC(h func() hash.Hash, k []byte, parts ...[]byte) []byte {
	m := hmac.New(h, k)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// TestUpdateIKEKnownAnswer checks the key update after an additional key
// exchange (RFC 9370 §2.2.2) against the formulas computed here with
// crypto/hmac alone, for an AEAD and a classic suite.
func TestUpdateIKEKnownAnswer(t *testing.T) {
	ni, nr := seq(32, 0x10), seq(32, 0x80)
	shared := seq(32, 0xc0) // an ML-KEM shared secret is 32 bytes
	const spii, spir = 0x0102030405060708, 0x1112131415161718
	for _, tc := range []struct {
		name    string
		s       IKE
		h       func() hash.Hash
		d, a, e int
	}{
		{"aes256gcm16-prfsha384", IKE{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA384, DH: DHCurve25519, AddKE: [MaxAddKE]uint16{KEMLKEM768}}, sha512.New384, 48, 0, 36},
		{"aes256-sha256", IKE{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHECP384, AddKE: [MaxAddKE]uint16{KEMLKEM1024}}, sha256.New, 32, 32, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldSKd := seq(tc.d, 0x40)
			got, err := UpdateIKE(tc.s, oldSKd, shared, ni, nr, spii, spir)
			if err != nil {
				t.Fatal(err)
			}
			skeyseed := refHMAC(tc.h, oldSKd, shared, ni, nr)
			seed := append(append(append([]byte{}, ni...), nr...), make([]byte, 16)...)
			binary.BigEndian.PutUint64(seed[64:], spii)
			binary.BigEndian.PutUint64(seed[72:], spir)
			km := refPRFPlus(tc.h, skeyseed, seed, 3*tc.d+2*tc.a+2*tc.e)
			want := Keys{D: km[:tc.d]}
			km = km[tc.d:]
			want.Ai, want.Ar, km = km[:tc.a], km[tc.a:2*tc.a], km[2*tc.a:]
			want.Ei, want.Er, km = km[:tc.e], km[tc.e:2*tc.e], km[2*tc.e:]
			want.Pi, want.Pr = km[:tc.d], km[tc.d:]
			for _, p := range [][2][]byte{{got.D, want.D}, {got.Ai, want.Ai}, {got.Ar, want.Ar}, {got.Ei, want.Ei}, {got.Er, want.Er}, {got.Pi, want.Pi}, {got.Pr, want.Pr}} {
				if !bytes.Equal(p[0], p[1]) {
					t.Fatalf("got %x\nwant %x", p[0], p[1])
				}
			}
			// The update is not the rekey formula with another order, nor a
			// no-op: a different shared secret gives other keys.
			other, _ := UpdateIKE(tc.s, oldSKd, seq(32, 0xc1), ni, nr, spii, spir)
			if bytes.Equal(other.D, got.D) || bytes.Equal(got.D, oldSKd) {
				t.Fatal("SK_d does not depend on the shared secret")
			}
		})
	}
	if _, err := UpdateIKE(IKE{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA384, DH: DHCurve25519}, seq(32, 0), shared, ni, nr, 1, 2); err == nil {
		t.Fatal("SK_d of another PRF's length accepted")
	}
}

// TestIntAuthKnownAnswer checks the IntAuth chain and the octets AUTH
// covers (RFC 9242 §3.3.2) against crypto/hmac.
func TestIntAuthKnownAnswer(t *testing.T) {
	p, _ := NewPRF(PRFHMACSHA256)
	ski, a1, p1, a2, p2 := seq(32, 1), seq(32, 0x20), seq(40, 0x50), seq(32, 0x21), seq(9, 0x90)
	i1 := IntAuth(p, ski, nil, a1, p1)
	if want := refHMAC(sha256.New, ski, a1, p1); !bytes.Equal(i1, want) {
		t.Fatalf("IntAuth_1 %x, want %x", i1, want)
	}
	i2 := IntAuth(p, ski, i1, a2, p2)
	if want := refHMAC(sha256.New, ski, i1, a2, p2); !bytes.Equal(i2, want) {
		t.Fatalf("IntAuth_2 %x, want %x", i2, want)
	}
	octets := AppendIntAuth([]byte("msg"), []byte("II"), []byte("RR"), 0x01020304)
	if want := []byte("msgIIRR\x01\x02\x03\x04"); !bytes.Equal(octets, want) {
		t.Fatalf("octets %q, want %q", octets, want)
	}
}

func TestKEMRoundTrip(t *testing.T) {
	for _, m := range []uint16{KEMLKEM768, KEMLKEM1024, DHCurve25519, DHECP384} {
		t.Run(KEName(m), func(t *testing.T) {
			i, err := NewKE(m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(i.Public()) != KEDataLen(m, true) {
				t.Fatalf("initiator data %d bytes, want %d", len(i.Public()), KEDataLen(m, true))
			}
			pub, rs, err := RespondKE(m, i.Public(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(pub) != KEDataLen(m, false) {
				t.Fatalf("responder data %d bytes, want %d", len(pub), KEDataLen(m, false))
			}
			is, err := i.Shared(pub)
			if err != nil || !bytes.Equal(is, rs) {
				t.Fatalf("shared secrets differ: %x %x %v", is, rs, err)
			}
			if _, _, err := RespondKE(m, i.Public()[1:], nil); err == nil {
				t.Fatal("short initiator data accepted")
			}
			if _, err := i.Shared(pub[1:]); err == nil {
				t.Fatal("short responder data accepted")
			}
		})
	}
	if _, err := NewKE(35, nil); err == nil || !strings.Contains(err.Error(), "mlkem768") {
		t.Fatalf("ML-KEM-512: %v", err)
	}
}

func TestParseAddKE(t *testing.T) {
	base := IKE{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA384, DH: DHCurve25519}
	with := func(ks ...uint16) IKE {
		s := base
		copy(s.AddKE[:], ks)
		return s
	}
	for _, tc := range []struct {
		in   string
		want []IKE
	}{
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", []IKE{with(KEMLKEM768)}},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", []IKE{with(KEMLKEM768), base}},
		{"aes256gcm16-prfsha384-x25519-KE1_MLKEM1024-ke2_ecp384", []IKE{with(KEMLKEM1024, DHECP384)}},
		{"aes256gcm16-prfsha384-x25519-ke3_mlkem768", []IKE{with(0, 0, KEMLKEM768)}},
	} {
		got, err := ParseIKEProposal(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v, %v\nwant %v", tc.in, got, err, tc.want)
			continue
		}
		if s := got[0].String(); s != strings.ToLower(strings.Replace(strings.Split(tc.in, "-ke1_none")[0], "x25519", "curve25519", 1)) {
			t.Errorf("%q: String %q", tc.in, s)
		}
		back, err := IKEFromTransforms(got[0].Transforms())
		if err != nil || len(back) != 1 || back[0] != got[0] {
			t.Errorf("%q: transforms round trip: %v %v", tc.in, back, err)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"aes256gcm16-prfsha384-x25519-ke8_mlkem768", "ke1 to ke7"},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem512", "not supported"},
		{"aes256gcm16-prfsha384-mlkem768", "additional key exchange only"},
	} {
		if _, err := ParseIKEProposal(tc.in); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.msg)
		}
	}
	if _, err := ParseESPProposal("aes256gcm16-ke1_mlkem768"); err == nil || !strings.Contains(err.Error(), "after a PFS group") {
		t.Errorf("ESP with ke1 and no PFS group: %v", err)
	}
}

func TestIKEOffered(t *testing.T) {
	tr := func(ty wire.TransformType, id uint16) wire.Transform { return wire.Transform{Type: ty, ID: id} }
	classic := []wire.Transform{tr(wire.TransformENCR, EncrAESGCM16), tr(wire.TransformPRF, PRFHMACSHA384), tr(wire.TransformDH, DHCurve25519)}
	classic[0].KeyLength = 256
	ours, _ := ParseIKEProposal("aes256gcm16-prfsha384-x25519-ke1_mlkem1024-ke1_mlkem768-ke1_none")
	for _, tc := range []struct {
		name string
		add  []wire.Transform
		want []IKE
	}{
		{"no ADDKE", nil, ours[2:]},
		{"mlkem768 required", []wire.Transform{tr(wire.TransformADDKE1, KEMLKEM768)}, ours[1:2]},
		{"both, ours first", []wire.Transform{tr(wire.TransformADDKE1, KEMLKEM768), tr(wire.TransformADDKE1, KEMLKEM1024), tr(wire.TransformADDKE1, 0)}, ours},
		{"ADDKE2 we do not run", []wire.Transform{tr(wire.TransformADDKE1+1, KEMLKEM768)}, nil},
		{"ADDKE2 optional", []wire.Transform{tr(wire.TransformADDKE1+1, KEMLKEM768), tr(wire.TransformADDKE1+1, 0)}, ours[2:]},
	} {
		got, err := IKEOffered(append(append([]wire.Transform{}, classic...), tc.add...), ours)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, %v, want %v", tc.name, got, err, tc.want)
		}
	}
	// A peer listing every method in all seven types costs nothing and
	// expands to nothing but ours.
	var many []wire.Transform
	for ty := wire.TransformADDKE1; ty <= wire.TransformADDKE7; ty++ {
		for _, id := range []uint16{0, 14, 19, 20, 31, 36, 37} {
			many = append(many, tr(ty, id))
		}
	}
	if got, err := IKEOffered(append(classic, many...), ours); err != nil || len(got) != 3 {
		t.Fatalf("all methods: %v, %v", got, err)
	}
	if _, err := IKEFromTransforms(append(classic, many...)); err == nil {
		t.Fatal("IKEFromTransforms expanded 7^7 combinations")
	}
}

// TestMixPPKKnownAnswer checks RFC 8784 §3 against prf+ written out here.
func TestMixPPKKnownAnswer(t *testing.T) {
	p, _ := NewPRF(PRFHMACSHA384)
	ppk, d, pi, pr := seq(32, 0xa0), seq(48, 1), seq(48, 2), seq(48, 3)
	d2, pi2, pr2 := MixPPK(p, ppk, d, pi, pr)
	for _, c := range [][2][]byte{{d2, refPRFPlus(sha512.New384, ppk, d, 48)}, {pi2, refPRFPlus(sha512.New384, ppk, pi, 48)}, {pr2, refPRFPlus(sha512.New384, ppk, pr, 48)}} {
		if !bytes.Equal(c[0], c[1]) {
			t.Fatalf("got %x, want %x", c[0], c[1])
		}
	}
	if !bytes.Equal(d, seq(48, 1)) {
		t.Fatal("input changed")
	}
}

// ESP proposals with additional key exchanges (RFC 9370 §2.2.4: run in
// IKE_FOLLOWUP_KE after CREATE_CHILD_SA's PFS group).
func TestESPAddKE(t *testing.T) {
	got, err := ParseESPProposal("aes256gcm16-x25519-ke1_mlkem768-ke1_none")
	if err != nil || len(got) != 2 {
		t.Fatalf("parse: %v %v", got, err)
	}
	want := ESP{Enc: sa.EncAES256GCM, Integ: sa.IntegNone, DH: DHCurve25519}
	want.AddKE[0] = KEMLKEM768
	if got[0] != want || got[1] != want.Base() {
		t.Fatalf("parsed %v, want %v and %v", got, want, want.Base())
	}
	if s := got[0].String(); s != "aes256gcm16-curve25519-ke1_mlkem768" {
		t.Errorf("String %q", s)
	}
	if err := got[0].Valid(); err != nil {
		t.Errorf("Valid: %v", err)
	}
	noPFS := want
	noPFS.DH = 0
	if err := noPFS.Valid(); err == nil {
		t.Error("Valid accepts additional key exchanges without a PFS group")
	}
	// "none" as the group beside a required keN_: a suite without PFS
	// could not run it, so only the one with PFS is left; with ke1_none
	// too, the suite without either.
	if opt, err := ParseESPProposal("aes256gcm16-x25519-none-ke1_mlkem768"); err != nil || len(opt) != 1 || opt[0] != want {
		t.Errorf("optional PFS, required ke1: %v %v", opt, err)
	}
	if opt, err := ParseESPProposal("aes256gcm16-x25519-none-ke1_mlkem768-ke1_none"); err != nil || len(opt) != 3 || opt[2] != (ESP{Enc: sa.EncAES256GCM, Integ: sa.IntegNone}) {
		t.Errorf("optional PFS, optional ke1: %v %v", opt, err)
	}
	// The answer a responder sends reads back as the suite.
	if e, ok := ESPChosen(want.Transforms()); !ok || e != want {
		t.Errorf("ESPChosen(%v) = %v, %v", want.Transforms(), e, ok)
	}
	two := append(want.Transforms(), wire.Transform{Type: wire.TransformADDKE1, ID: KEMLKEM1024})
	if _, ok := ESPChosen(two); ok {
		t.Error("ESPChosen accepts two methods of one type")
	}
	// A peer's proposal offers the suites of ours it lists: required,
	// optional, absent.
	for _, tc := range []struct {
		name string
		peer []ESP
		want []ESP
	}{
		{"peer requires", []ESP{want}, []ESP{want}},
		{"peer classic", []ESP{want.Base()}, []ESP{want.Base()}},
		{"peer other method", func() []ESP { o := want; o.AddKE[0] = KEMLKEM1024; return []ESP{o} }(), nil},
	} {
		offered, err := ESPOffered(tc.peer[0].Transforms(), got)
		if err != nil || !slices.Equal(offered, tc.want) {
			t.Errorf("%s: ESPOffered = %v, %v; want %v", tc.name, offered, err, tc.want)
		}
	}
	// Only ours with the classic suite: a peer that requires ke1 offers
	// nothing acceptable.
	if offered, _ := ESPOffered(want.Transforms(), []ESP{want.Base()}); len(offered) != 0 {
		t.Errorf("classic ours accepted a required ke1: %v", offered)
	}
}
