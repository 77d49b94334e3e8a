package ike

import (
	"bytes"
	"testing"
)

// Post-quantum preshared keys (RFC 8784): every combination of a
// missing, optional and required PPK on each side, and a PPK that
// differs.
func TestPPK(t *testing.T) {
	ppk := bytes.Repeat([]byte{0x5a}, 32)
	type side struct {
		ppk      []byte
		id       string
		required bool
	}
	none := side{}
	opt := side{ppk: ppk, id: "ppk-1"}
	req := side{ppk: ppk, id: "ppk-1", required: true}
	otherKey := side{ppk: bytes.Repeat([]byte{0xa5}, 32), id: "ppk-1"}
	otherID := side{ppk: ppk, id: "ppk-2"}
	for _, tc := range []struct {
		name string
		a, b side
		up   bool
		ppk  bool
	}{
		{"neither", none, none, true, false},
		{"both optional", opt, opt, true, true},
		{"both required", req, req, true, true},
		{"initiator required, responder optional", req, opt, true, true},
		{"initiator optional, responder required", opt, req, true, true},
		{"initiator optional, responder none", opt, none, true, false},
		{"initiator none, responder optional", none, opt, true, false},
		{"initiator required, responder none", req, none, false, false},
		{"initiator none, responder required", none, req, false, false},
		{"optional, responder has another ID", opt, otherID, true, false},
		{"required, responder has another ID", req, otherID, false, false},
		// A PPK that differs under the same ID: AUTH fails (RFC 8784 §3
		// has no fallback for it).
		{"another key", opt, otherKey, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa, pb := pskPair()
			pa.PPK, pa.PPKID, pa.PPKRequired = tc.a.ppk, tc.a.id, tc.a.required
			pb.PPK, pb.PPKID, pb.PPKRequired = tc.b.ppk, tc.b.id, tc.b.required
			pa.IKE = mustIKE(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
			pb.IKE = pa.IKE
			_, a, b := establish(t, pa, pb, nil, nil)
			if !tc.up {
				if len(a.established()) != 0 || len(b.established()) != 0 || len(a.children()) != 0 || len(b.children()) != 0 {
					t.Fatalf("established: a %+v, b %+v", a.e.IKESAs(), b.e.IKESAs())
				}
				return
			}
			wantUp(t, a, b, 1) // also: both derived the same Child SA keys from SK_d
			if ga, gb := a.established()[0].PPK, b.established()[0].PPK; ga != tc.ppk || gb != tc.ppk {
				t.Fatalf("PPK: initiator %v, responder %v, want %v", ga, gb, tc.ppk)
			}
		})
	}
}

// The SK_d mixed with the PPK keys the Child SAs, and rekeys keep the
// mark (the new SA's keys come from it).
func TestPPKKeysChildren(t *testing.T) {
	// The same randomness on both runs: the only difference is the PPK.
	pa, pb := pskPair()
	c1 := &Config{Rand: &countingReader{}}
	_, a, b := establish(t, pa, pb, c1, c1)
	wantUp(t, a, b, 1)
	plain := onlyChild(t, a).In.EncKey

	pa.PPK, pa.PPKID = bytes.Repeat([]byte{1}, 32), "k"
	pb.PPK, pb.PPKID = pa.PPK, pa.PPKID
	c2 := &Config{Rand: &countingReader{}}
	n, a, b := establish(t, pa, pb, c2, c2)
	wantUp(t, a, b, 1)
	if bytes.Equal(onlyChild(t, a).In.EncKey, plain) {
		t.Fatal("the same child key with and without the PPK: SK_d was not mixed")
	}
	if a.e.RekeyIKE("acme", "p1") != 1 {
		t.Fatal("no rekey")
	}
	n.pump()
	wantUp(t, a, b, 1)
	if !a.established()[0].PPK || !b.established()[0].PPK {
		t.Fatalf("rekeyed SA lost the PPK mark: %+v", a.established())
	}
}

type countingReader struct{ n byte }

func (r *countingReader) Read(b []byte) (int, error) {
	for i := range b {
		r.n++
		b[i] = r.n
	}
	return len(b), nil
}
