package suite

import (
	"reflect"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/sa"
)

func TestParseIKEProposal(t *testing.T) {
	gcm128 := IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHMODP2048}
	for _, tc := range []struct {
		in   string
		want []IKE
	}{
		{"aes128gcm16-prfsha256-modp2048", []IKE{gcm128}},
		{"AES128GCM16-PRFSHA256-MODP2048", []IKE{gcm128}},
		{"aes128gcm128-prfsha256-modp2048", []IKE{gcm128}},
		{"aes128gcm-prfsha256-modp2048", []IKE{gcm128}},
		{" aes128gcm16 - prfsha256 - modp2048 ", []IKE{gcm128}},
		{"aes256gcm16-prfsha384-ecp384", []IKE{{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA384, DH: DHECP384}}},
		// strongSwan: the PRF follows from the integrity algorithm, which
		// an AEAD-only proposal then drops.
		{"aes256gcm16-sha384-ecp384", []IKE{{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA384, DH: DHECP384}}},
		{"aes256-sha256-modp2048", []IKE{{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHMODP2048}}},
		{"aes-sha1-prfsha256-ecp256", []IKE{{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: PRFHMACSHA256, Integ: IntegHMACSHA196, DH: DHECP256}}},
		{"chacha20poly1305-prfsha256-x25519", []IKE{{Encr: EncrChaCha20Poly1305, PRF: PRFHMACSHA256, DH: DHCurve25519}}},
		{"chacha20poly1305-prfsha256-curve25519", []IKE{{Encr: EncrChaCha20Poly1305, PRF: PRFHMACSHA256, DH: DHCurve25519}}},
		{"aes256-sha512-none-ecp384", []IKE{{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA512, Integ: IntegHMACSHA512256, DH: DHECP384}}},
		// several of a kind expand, encryption varying slowest; duplicates go.
		{"aes128-aes256-sha256-sha1-ecp256-modp2048-aes128", []IKE{
			{EncrAESCBC, 128, PRFHMACSHA256, IntegHMACSHA256128, DHECP256, [MaxAddKE]uint16{}},
			{EncrAESCBC, 128, PRFHMACSHA256, IntegHMACSHA256128, DHMODP2048, [MaxAddKE]uint16{}},
			{EncrAESCBC, 128, PRFHMACSHA1, IntegHMACSHA256128, DHECP256, [MaxAddKE]uint16{}},
			{EncrAESCBC, 128, PRFHMACSHA1, IntegHMACSHA256128, DHMODP2048, [MaxAddKE]uint16{}},
			{EncrAESCBC, 128, PRFHMACSHA256, IntegHMACSHA196, DHECP256, [MaxAddKE]uint16{}},
			{EncrAESCBC, 128, PRFHMACSHA256, IntegHMACSHA196, DHMODP2048, [MaxAddKE]uint16{}},
			{EncrAESCBC, 128, PRFHMACSHA1, IntegHMACSHA196, DHECP256, [MaxAddKE]uint16{}},
			{EncrAESCBC, 128, PRFHMACSHA1, IntegHMACSHA196, DHMODP2048, [MaxAddKE]uint16{}},
			{EncrAESCBC, 256, PRFHMACSHA256, IntegHMACSHA256128, DHECP256, [MaxAddKE]uint16{}},
			{EncrAESCBC, 256, PRFHMACSHA256, IntegHMACSHA256128, DHMODP2048, [MaxAddKE]uint16{}},
			{EncrAESCBC, 256, PRFHMACSHA1, IntegHMACSHA256128, DHECP256, [MaxAddKE]uint16{}},
			{EncrAESCBC, 256, PRFHMACSHA1, IntegHMACSHA256128, DHMODP2048, [MaxAddKE]uint16{}},
			{EncrAESCBC, 256, PRFHMACSHA256, IntegHMACSHA196, DHECP256, [MaxAddKE]uint16{}},
			{EncrAESCBC, 256, PRFHMACSHA256, IntegHMACSHA196, DHMODP2048, [MaxAddKE]uint16{}},
			{EncrAESCBC, 256, PRFHMACSHA1, IntegHMACSHA196, DHECP256, [MaxAddKE]uint16{}},
			{EncrAESCBC, 256, PRFHMACSHA1, IntegHMACSHA196, DHMODP2048, [MaxAddKE]uint16{}},
		}},
		{"aes128gcm16-prfsha256-modp2048, aes256-sha256-modp2048,aes128gcm16-prfsha256-modp2048", []IKE{
			gcm128, {Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHMODP2048},
		}},
	} {
		got, err := ParseIKEProposal(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %v\nwant %v", tc.in, got, tc.want)
		}
		for _, s := range got {
			if err := s.Valid(); err != nil {
				t.Errorf("%q gave invalid %v: %v", tc.in, s, err)
			}
		}
	}
}

func TestParseIKEProposalErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"aes128gcm16-prfsha257-modp2048", `"prfsha257" is not supported; use encryption aes128, aes256, aes128gcm16, aes256gcm16, chacha20poly1305; integrity sha1, sha256, sha384, sha512; prf prfsha1, prfsha256, prfsha384, prfsha512; dh modp2048, ecp256, ecp384, curve25519 (x25519)`},
		{"aes192-sha256-modp2048", `"aes192" is not supported`},
		{"3des-sha1-modp2048", `"3des" is not supported`},
		{"aes128-sha256-modp1024", `"modp1024" is not supported`},
		{"aes128--sha256-modp2048", "empty algorithm"},
		{"aes128-sha256-modp2048,", "empty proposal"},
		{"aes128gcm16-modp2048", "needs a PRF"},
		{"aes128-prfsha256-modp2048", "needs an integrity algorithm"},
		{"aes128-sha256", "needs a DH group"},
		{"aes128-sha256-none", "needs a DH group"},
		{"sha256-modp2048", "needs an encryption algorithm"},
		{"aes128-aes128gcm16-sha256-modp2048", "classic (aes128) and AEAD (aes128gcm16)"},
		{"aes128gcm16-prfsha256-modp2048-esn", "ESP proposals only"},
		{"aes128gcm16-prfsha256-modp2048\x00", "is not supported"},
	} {
		got, err := ParseIKEProposal(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, %v; want error containing %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseESPProposal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []ESP
	}{
		{"aes128gcm16", []ESP{{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}}},
		{"aes256gcm16-ecp384", []ESP{{Enc: sa.EncAES256GCM, Integ: sa.IntegNone, DH: DHECP384}}},
		{"aes256gcm16-sha256-ecp384", []ESP{{Enc: sa.EncAES256GCM, Integ: sa.IntegNone, DH: DHECP384}}},
		{"aes256-sha256", []ESP{{Enc: sa.EncAES256CBC, Integ: sa.IntegHMACSHA256}}},
		{"aes256-sha256-prfsha256", []ESP{{Enc: sa.EncAES256CBC, Integ: sa.IntegHMACSHA256}}},
		{"chacha20poly1305-esn", []ESP{{Enc: sa.EncChaCha20Poly1305, Integ: sa.IntegNone, ESN: true}}},
		{"aes128-sha1-noesn", []ESP{{Enc: sa.EncAES128CBC, Integ: sa.IntegHMACSHA1}}},
		{"3des-sha1", []ESP{{Enc: sa.Enc3DESCBC, Integ: sa.IntegHMACSHA1}}},
		{"null-sha512", []ESP{{Enc: sa.EncNull, Integ: sa.IntegHMACSHA512}}},
		{"aes128gcm16-ecp256-none-esn-noesn", []ESP{
			{Enc: sa.EncAES128GCM, DH: DHECP256, ESN: true, Integ: sa.IntegNone},
			{Enc: sa.EncAES128GCM, DH: DHECP256, ESN: false, Integ: sa.IntegNone},
			{Enc: sa.EncAES128GCM, DH: 0, ESN: true, Integ: sa.IntegNone},
			{Enc: sa.EncAES128GCM, DH: 0, ESN: false, Integ: sa.IntegNone},
		}},
		{"aes128gcm16,aes256-sha384", []ESP{{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}, {Enc: sa.EncAES256CBC, Integ: sa.IntegHMACSHA384}}},
	} {
		got, err := ParseESPProposal(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %v\nwant %v", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"aes128", "needs an integrity algorithm"},
		{"null", "needs an integrity algorithm"},
		{"aes128gcm8", `"aes128gcm8" is not supported; use encryption 3des, aes128, aes256, aes128gcm16, aes256gcm16, chacha20poly1305, null; integrity sha1, sha256, sha384, sha512; pfs dh modp2048, ecp256, ecp384, curve25519 (x25519), none; esn, noesn`},
		{"aes128-aes128gcm16-sha1", "classic (aes128) and AEAD (aes128gcm16)"},
		{"sha1", "needs an encryption algorithm"},
		{"md5", `"md5" is not supported`},
		{"", "ESP proposal is empty"},
	} {
		got, err := ParseESPProposal(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, %v; want error containing %q", tc.in, got, err, tc.want)
		}
	}
}

// allIKE is every valid IKE suite.
func allIKE() []IKE {
	var out []IKE
	for _, e := range ikeEncrs {
		igs := []uint16{IntegNone}
		if !e.aead {
			igs = nil
			for _, i := range integs {
				igs = append(igs, i.id)
			}
		}
		for _, ig := range igs {
			for _, p := range prfs {
				for _, d := range dhs {
					out = append(out, IKE{Encr: e.id, EncrKeyBits: e.keyBits, PRF: p.id, Integ: ig, DH: d.id})
				}
			}
		}
	}
	return out
}

// allESP is every valid ESP suite.
func allESP() []ESP {
	var out []ESP
	for _, e := range sa.EncAlgs() {
		igs := []sa.IntegAlg{sa.IntegNone}
		if !e.IsAEAD() {
			igs = []sa.IntegAlg{sa.IntegHMACSHA1, sa.IntegHMACSHA256, sa.IntegHMACSHA384, sa.IntegHMACSHA512}
		}
		for _, ig := range igs {
			for _, d := range []uint16{0, DHMODP2048, DHECP256, DHECP384, DHCurve25519} {
				for _, esn := range []bool{false, true} {
					out = append(out, ESP{Enc: e, Integ: ig, DH: d, ESN: esn})
				}
			}
		}
	}
	return out
}

// String is canonical: it parses back to exactly the one suite.
func TestProposalStringRoundTrip(t *testing.T) {
	for _, s := range allIKE() {
		if err := s.Valid(); err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		got, err := ParseIKEProposal(s.String())
		if err != nil || len(got) != 1 || got[0] != s {
			t.Errorf("%+v → %q → %v, %v", s, s.String(), got, err)
		}
	}
	for _, e := range allESP() {
		if err := e.Valid(); err != nil {
			t.Fatalf("%v: %v", e, err)
		}
		got, err := ParseESPProposal(e.String())
		if err != nil || len(got) != 1 || got[0] != e {
			t.Errorf("%+v → %q → %v, %v", e, e.String(), got, err)
		}
	}
	for s, want := range map[IKE]string{
		{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHMODP2048}:                          "aes128gcm16-prfsha256-modp2048",
		{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHMODP2048}: "aes256-sha256-modp2048",
		{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA384, Integ: IntegHMACSHA256128, DH: DHECP384}:   "aes256-sha256-prfsha384-ecp384",
		{Encr: EncrChaCha20Poly1305, PRF: PRFHMACSHA512, DH: DHCurve25519}:                                  "chacha20poly1305-prfsha512-curve25519",
		{Encr: 99, EncrKeyBits: 7, PRF: 77, Integ: 66, DH: 55}:                                              "encr99_7-integ66-prf77-dh55",
	} {
		if s.String() != want {
			t.Errorf("%+v.String() = %q, want %q", s, s.String(), want)
		}
	}
	if got := (ESP{Enc: sa.EncAES256GCM, Integ: sa.IntegNone, DH: DHECP384, ESN: true}).String(); got != "aes256gcm16-ecp384-esn" {
		t.Errorf("ESP String = %q", got)
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		s    IKE
		want string
	}{
		{IKE{}, "encryption transform 0"},
		{IKE{Encr: EncrAESCBC, EncrKeyBits: 192, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHECP256}, "key length 192"},
		{IKE{Encr: EncrChaCha20Poly1305, EncrKeyBits: 256, PRF: PRFHMACSHA256, DH: DHECP256}, "key length 256"},
		{IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHECP256}, "AEAD"},
		{IKE{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHECP256}, "integrity transform 0"},
		{IKE{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: 3, Integ: IntegHMACSHA256128, DH: DHECP256}, "PRF transform 3"},
		{IKE{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: PRFHMACSHA1, Integ: IntegHMACSHA256128, DH: 2}, "DH group 2"},
	} {
		if err := tc.s.Valid(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v.Valid() = %v, want %q", tc.s, err, tc.want)
		}
	}
	for _, tc := range []struct {
		e    ESP
		want string
	}{
		{ESP{}, "not set"},
		{ESP{Enc: sa.EncAES128GCM, Integ: sa.IntegHMACSHA1}, "AEAD"},
		{ESP{Enc: sa.EncAES128CBC, Integ: sa.IntegNone}, "needs an integrity"},
		{ESP{Enc: sa.EncAES128GCM, Integ: sa.IntegNone, DH: 5}, "PFS group 5"},
	} {
		if err := tc.e.Valid(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v.Valid() = %v, want %q", tc.e, err, tc.want)
		}
	}
}
