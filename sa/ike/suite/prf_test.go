package suite

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"strings"
	"testing"
)

// HMAC known answers: RFC 2202 §3 (HMAC-SHA-1) and RFC 4231 §4 (HMAC-SHA-256,
// -384, -512) test cases 1, 2, 3, 4 and 6; case 6 has a 131-byte key, longer
// than the hash block, as Ni | Nr keys of prf(Ni | Nr, g^ir) can be.
func TestPRFKnownAnswers(t *testing.T) {
	tc := []struct{ name, key, data string }{
		{"1", strings.Repeat("0b", 20), hex.EncodeToString([]byte("Hi There"))},
		{"2", hex.EncodeToString([]byte("Jefe")), hex.EncodeToString([]byte("what do ya want for nothing?"))},
		{"3", strings.Repeat("aa", 20), strings.Repeat("dd", 50)},
		{"4", "0102030405060708090a0b0c0d0e0f10111213141516171819", strings.Repeat("cd", 50)},
		{"6", strings.Repeat("aa", 131), hex.EncodeToString([]byte("Test Using Larger Than Block-Size Key - Hash Key First"))},
	}
	want := map[uint16][]string{
		// RFC 2202 test cases 1-4; its case 6 has an 80-byte key, so the
		// 131-byte RFC 4231 case is not in RFC 2202 (left empty).
		PRFHMACSHA1: {
			"b617318655057264e28bc0b6fb378c8ef146be00",
			"effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
			"125d7342b9ac11cd91a39af48aa17b4f63f175d3",
			"4c9007f4026250c6bc8414f9bf50c86c2d7235da",
			"",
		},
		PRFHMACSHA256: {
			"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
			"773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
			"82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
			"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
		},
		PRFHMACSHA384: {
			"afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
			"af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
			"88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27",
			"3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb",
			"4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
		},
		PRFHMACSHA512: {
			"87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
			"164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
			"fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
			"b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
			"80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
		},
	}
	for id, ws := range want {
		p, err := NewPRF(id)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range ws {
			if w == "" {
				continue
			}
			got := p.Sum(unhex(t, tc[i].key), unhex(t, tc[i].data))
			if hex.EncodeToString(got) != w {
				t.Errorf("%s test case %s: got %x, want %s", p, tc[i].name, got, w)
			}
			if p.Size() != len(got) {
				t.Errorf("%s Size() = %d, output %d bytes", p, p.Size(), len(got))
			}
		}
	}
}

// prfPlusRef is RFC 7296 §2.13's prf+ written out literally, block by
// block, as an independent reference for Plus.
func prfPlusRef(p PRF, key, seed []byte, n int) []byte {
	var out, t []byte
	for i := byte(1); len(out) < n; i++ {
		m := hmac.New(p.alg.newH, key)
		in := append(append(append([]byte{}, t...), seed...), i)
		m.Write(in)
		t = m.Sum(nil)
		out = append(out, t...)
	}
	return out[:n]
}

func TestPRFPlus(t *testing.T) {
	key, seed := []byte("key of prf+"), bytes.Repeat([]byte{0x5a}, 77)
	for _, a := range prfs {
		p, _ := NewPRF(a.id)
		for _, n := range []int{0, 1, p.Size() - 1, p.Size(), p.Size() + 1, 3*p.Size() + 7, 255 * p.Size()} {
			got := p.Plus(key, seed, n)
			if want := prfPlusRef(p, key, seed, n); !bytes.Equal(got, want) {
				t.Errorf("%s prf+ %d bytes differs from the reference", p, n)
			}
			if len(got) != n || cap(got) != n {
				t.Errorf("%s prf+ %d bytes: len %d cap %d", p, n, len(got), cap(got))
			}
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s prf+ of 255×size+1 bytes did not panic", p)
				}
			}()
			p.Plus(key, seed, 255*p.Size()+1)
		}()
	}
}

func TestNewPRFUnsupported(t *testing.T) {
	for _, id := range []uint16{0, 1, 3, 4, 8, 9999} {
		if _, err := NewPRF(id); err == nil || !strings.Contains(err.Error(), "prfsha256") {
			t.Errorf("NewPRF(%d) = %v, want an error listing the PRFs", id, err)
		}
	}
	if got := (PRF{}).String(); got != "prf(invalid)" {
		t.Errorf("zero PRF String() = %q", got)
	}
}
