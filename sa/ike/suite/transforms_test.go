package suite

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

func TestTransformsRoundTrip(t *testing.T) {
	for _, s := range allIKE() {
		got, err := IKEFromTransforms(s.Transforms())
		if err != nil || len(got) != 1 || got[0] != s {
			t.Errorf("%v → %v → %v, %v", s, s.Transforms(), got, err)
		}
	}
	for _, e := range allESP() {
		got, err := ESPFromTransforms(e.Transforms())
		if err != nil || len(got) != 1 || got[0] != e {
			t.Errorf("%v → %v → %v, %v", e, e.Transforms(), got, err)
		}
	}
}

func tr(typ wire.TransformType, id, kl uint16) wire.Transform {
	return wire.Transform{Type: typ, ID: id, KeyLength: kl}
}

const (
	tENCR  = wire.TransformENCR
	tPRF   = wire.TransformPRF
	tINTEG = wire.TransformINTEG
	tDH    = wire.TransformDH
	tESN   = wire.TransformESN
)

func TestTransformsWire(t *testing.T) {
	// The exact transforms, as RFC 7296 §3.3.2 and RFC 5282/7634 want them.
	for s, want := range map[string][]wire.Transform{
		"aes128gcm16-prfsha256-modp2048":        {tr(tENCR, 20, 128), tr(tPRF, 5, 0), tr(tDH, 14, 0)},
		"aes256-sha384-ecp384":                  {tr(tENCR, 12, 256), tr(tPRF, 6, 0), tr(tINTEG, 13, 0), tr(tDH, 20, 0)},
		"chacha20poly1305-prfsha512-curve25519": {tr(tENCR, 28, 0), tr(tPRF, 7, 0), tr(tDH, 31, 0)},
	} {
		ss, err := ParseIKEProposal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := ss[0].Transforms(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string][]wire.Transform{
		"aes128gcm16":             {tr(tENCR, 20, 128), tr(tESN, 0, 0)},
		"aes256-sha256-esn":       {tr(tENCR, 12, 256), tr(tINTEG, 12, 0), tr(tESN, 1, 0)},
		"aes256gcm16-ecp384":      {tr(tENCR, 20, 256), tr(tDH, 20, 0), tr(tESN, 0, 0)},
		"3des-sha1":               {tr(tENCR, 3, 0), tr(tINTEG, 2, 0), tr(tESN, 0, 0)},
		"null-sha512":             {tr(tENCR, 11, 0), tr(tINTEG, 14, 0), tr(tESN, 0, 0)},
		"chacha20poly1305-x25519": {tr(tENCR, 28, 0), tr(tDH, 31, 0), tr(tESN, 0, 0)},
	} {
		es, err := ParseESPProposal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := es[0].Transforms(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}

func TestFromTransformsReceived(t *testing.T) {
	// A strongSwan-style default proposal: many of each, some unknown.
	got, err := IKEFromTransforms([]wire.Transform{
		tr(tENCR, 12, 128), tr(tENCR, 12, 192), tr(tENCR, 13, 128), tr(tENCR, 12, 256),
		tr(tINTEG, 12, 0), tr(tINTEG, 5, 0),
		tr(tPRF, 5, 0), tr(tPRF, 4, 0),
		tr(tDH, 19, 0), tr(tDH, 21, 0), tr(tDH, 14, 0),
	})
	want := []IKE{
		{EncrAESCBC, 128, PRFHMACSHA256, IntegHMACSHA256128, DHECP256, [MaxAddKE]uint16{}},
		{EncrAESCBC, 128, PRFHMACSHA256, IntegHMACSHA256128, DHMODP2048, [MaxAddKE]uint16{}},
		{EncrAESCBC, 256, PRFHMACSHA256, IntegHMACSHA256128, DHECP256, [MaxAddKE]uint16{}},
		{EncrAESCBC, 256, PRFHMACSHA256, IntegHMACSHA256128, DHMODP2048, [MaxAddKE]uint16{}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v\nwant %v", got, err, want)
	}
	// AEAD with INTEG NONE, and chacha with strongSwan's "compat" 256-bit attribute.
	got, err = IKEFromTransforms([]wire.Transform{tr(tENCR, 20, 256), tr(tENCR, 28, 256), tr(tENCR, 28, 0), tr(tPRF, 7, 0), tr(tINTEG, 0, 0), tr(tDH, 31, 0)})
	want = []IKE{{EncrAESGCM16, 256, PRFHMACSHA512, IntegNone, DHCurve25519, [MaxAddKE]uint16{}}, {EncrChaCha20Poly1305, 0, PRFHMACSHA512, IntegNone, DHCurve25519, [MaxAddKE]uint16{}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("AEAD: got %v, %v\nwant %v", got, err, want)
	}
	// AEAD with a real INTEG only: no AEAD suite.
	if got, err := IKEFromTransforms([]wire.Transform{tr(tENCR, 20, 128), tr(tPRF, 5, 0), tr(tINTEG, 12, 0), tr(tDH, 19, 0)}); !errors.Is(err, ErrNoSuite) {
		t.Errorf("GCM with HMAC integrity: %v %v", got, err)
	}
	for name, ts := range map[string][]wire.Transform{
		"empty":          nil,
		"no PRF":         {tr(tENCR, 12, 128), tr(tINTEG, 12, 0), tr(tDH, 19, 0)},
		"no DH":          {tr(tENCR, 12, 128), tr(tINTEG, 12, 0), tr(tPRF, 5, 0)},
		"ESN in IKE":     {tr(tENCR, 20, 128), tr(tPRF, 5, 0), tr(tDH, 19, 0), tr(tESN, 0, 0)},
		"unknown type":   {tr(tENCR, 20, 128), tr(tPRF, 5, 0), tr(tDH, 19, 0), tr(6, 1, 0)},
		"AES without KL": {tr(tENCR, 12, 0), tr(tPRF, 5, 0), tr(tINTEG, 12, 0), tr(tDH, 19, 0)},
		"only DH NONE":   {tr(tENCR, 20, 128), tr(tPRF, 5, 0), tr(tDH, 0, 0)},
		"PRF with KL":    {tr(tENCR, 20, 128), tr(tPRF, 5, 128), tr(tDH, 19, 0)},
	} {
		if got, err := IKEFromTransforms(ts); !errors.Is(err, ErrNoSuite) {
			t.Errorf("IKE %s: %v, %v", name, got, err)
		}
	}

	// ESP: PFS optional (DH NONE), both ESN values, no INTEG for GCM.
	gotE, err := ESPFromTransforms([]wire.Transform{tr(tENCR, 20, 128), tr(tDH, 19, 0), tr(tDH, 0, 0), tr(tESN, 1, 0), tr(tESN, 0, 0)})
	wantE := []ESP{
		{Enc: sa.EncAES128GCM, Integ: sa.IntegNone, DH: 19, ESN: true},
		{Enc: sa.EncAES128GCM, Integ: sa.IntegNone, DH: 19},
		{Enc: sa.EncAES128GCM, Integ: sa.IntegNone, ESN: true},
		{Enc: sa.EncAES128GCM, Integ: sa.IntegNone},
	}
	if err != nil || !reflect.DeepEqual(gotE, wantE) {
		t.Errorf("ESP: got %v, %v\nwant %v", gotE, err, wantE)
	}
	// No ESN transform at all reads as no ESN.
	gotE, err = ESPFromTransforms([]wire.Transform{tr(tENCR, 12, 256), tr(tINTEG, 14, 0)})
	if err != nil || !reflect.DeepEqual(gotE, []ESP{{Enc: sa.EncAES256CBC, Integ: sa.IntegHMACSHA512}}) {
		t.Errorf("ESP without ESN: %v %v", gotE, err)
	}
	for name, ts := range map[string][]wire.Transform{
		"no ENCR":      {tr(tINTEG, 12, 0), tr(tESN, 0, 0)},
		"CBC no INTEG": {tr(tENCR, 12, 128), tr(tESN, 0, 0)},
		"PRF in ESP":   {tr(tENCR, 20, 128), tr(tPRF, 5, 0), tr(tESN, 0, 0)},
		"unknown ESN":  {tr(tENCR, 20, 128), tr(tESN, 2, 0)},
		"unknown DH":   {tr(tENCR, 20, 128), tr(tDH, 2, 0), tr(tESN, 0, 0)},
		"AES-192":      {tr(tENCR, 12, 192), tr(tINTEG, 12, 0), tr(tESN, 0, 0)},
	} {
		if got, err := ESPFromTransforms(ts); !errors.Is(err, ErrNoSuite) {
			t.Errorf("ESP %s: %v, %v", name, got, err)
		}
	}
}

// A hostile proposal of thousands of transforms costs one pass and gives
// at most the supported combinations.
func TestFromTransformsLarge(t *testing.T) {
	var ts []wire.Transform
	for i := 0; i < 8000; i++ {
		ts = append(ts, tr(wire.TransformType(1+i%4), uint16(i), uint16(i%3*128)))
	}
	ts = append(ts, allIKE()[0].Transforms()...)
	start := time.Now()
	got, err := IKEFromTransforms(ts)
	if err != nil || len(got) == 0 || len(got) > 5*4*4*4 {
		t.Fatalf("%d suites, %v", len(got), err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("8000 transforms took %v", d)
	}
}
