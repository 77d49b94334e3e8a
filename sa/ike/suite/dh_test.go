package suite

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"math/big"
	"testing"
)

// RFC 5903 §8.1 (ECP-256, group 19) and §8.2 (ECP-384, group 20): the KE
// payload data is gix | giy without SEC1's 0x04, the shared secret girx.
func TestDHRFC5903(t *testing.T) {
	for _, v := range []struct {
		name         string
		group        uint16
		curve        ecdh.Curve
		i, gi, r, gr string
		girx         string
	}{
		{
			name: "ecp256", group: DHECP256, curve: ecdh.P256(),
			i: "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
			gi: "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180" +
				"5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
			r: "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
			gr: "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63" +
				"56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
			girx: "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
		},
		{
			name: "ecp384", group: DHECP384, curve: ecdh.P384(),
			i: "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655" +
				"E35B5380 41E649EE 3FAEF896 783AB194",
			gi: "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6" +
				"DE3AC808 ACB4BDB4 C88732AE E95F41AA" +
				"9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E" +
				"EB9FCFF3 C2C947DA E69B4C63 4573A81C",
			gr: "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D" +
				"0D1AC43A 0336DEF9 6FDA41D0 774A3571" +
				"DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF" +
				"F83FA401 42209DFF 5EAAD96D B9E6386C",
			girx: "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4" +
				"D6031355 69B9E9D0 9CF5D4A2 70F59746",
		},
	} {
		t.Run(v.name, func(t *testing.T) {
			// The private key goes through NewDH's own path: a reader
			// that yields exactly i.
			d, err := NewDH(v.group, bytes.NewReader(unhex(t, v.i)))
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Public(); !bytes.Equal(got, unhex(t, v.gi)) {
				t.Errorf("KE data = %x\nwant gix|giy %x", got, unhex(t, v.gi))
			}
			s, err := d.Shared(unhex(t, v.gr))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s, unhex(t, v.girx)) {
				t.Errorf("g^ir = %x\nwant girx %x", s, unhex(t, v.girx))
			}
			if v.r != "" {
				r, err := NewDH(v.group, bytes.NewReader(unhex(t, v.r)))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(r.Public(), unhex(t, v.gr)) {
					t.Errorf("responder KE data = %x, want %x", r.Public(), unhex(t, v.gr))
				}
				s2, err := r.Shared(d.Public())
				if err != nil || !bytes.Equal(s2, s) {
					t.Errorf("responder g^ir = %x, %v; want %x", s2, err, s)
				}
			}
			// A 0x04-prefixed (SEC1) value is not the IKE encoding.
			if _, err := d.Shared(append([]byte{4}, unhex(t, v.gr)...)); !errors.Is(err, ErrBadPublic) {
				t.Errorf("SEC1-encoded peer value accepted: %v", err)
			}
			// Flip a bit of y: no longer on the curve.
			bad := unhex(t, v.gr)
			bad[len(bad)-1] ^= 1
			if _, err := d.Shared(bad); !errors.Is(err, ErrBadPublic) {
				t.Errorf("off-curve peer value: %v, want ErrBadPublic", err)
			}
			if _, err := d.Shared(make([]byte, len(bad))); !errors.Is(err, ErrBadPublic) {
				t.Errorf("all-zero peer value (the point at infinity's encoding): %v, want ErrBadPublic", err)
			}
		})
	}
}

// RFC 7748 §6.1: X25519 between Alice and Bob.
func TestDHRFC7748(t *testing.T) {
	const (
		aPriv = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
		aPub  = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
		bPriv = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
		bPub  = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
		k     = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
	)
	a, err := NewDH(DHCurve25519, bytes.NewReader(unhex(t, aPriv)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDH(DHCurve25519, bytes.NewReader(unhex(t, bPriv)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Public(), unhex(t, aPub)) || !bytes.Equal(b.Public(), unhex(t, bPub)) {
		t.Fatalf("public keys %x %x, want %s %s", a.Public(), b.Public(), aPub, bPub)
	}
	for _, x := range []struct {
		d    DH
		peer string
	}{{a, bPub}, {b, aPub}} {
		s, err := x.d.Shared(unhex(t, x.peer))
		if err != nil || !bytes.Equal(s, unhex(t, k)) {
			t.Errorf("K = %x, %v; want %s", s, err, k)
		}
	}
	// Low-order points give an all-zero secret (RFC 7748 §6.1, RFC 8031 §2.3).
	for _, lo := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	} {
		if _, err := a.Shared(unhex(t, lo)); !errors.Is(err, ErrBadPublic) {
			t.Errorf("low-order point %s: %v, want ErrBadPublic", lo, err)
		}
	}
	if _, err := a.Shared(unhex(t, aPub)[:31]); !errors.Is(err, ErrBadPublic) {
		t.Errorf("31-byte value: %v", err)
	}
}

// piBits returns floor(pi × 2^n), from Machin's formula
// pi = 16 atan(1/5) - 4 atan(1/239) in fixed point with 64 guard bits.
func piBits(n uint) *big.Int {
	one := new(big.Int).Lsh(big.NewInt(1), n+64)
	atanInv := func(x int64) *big.Int {
		sum := new(big.Int)
		xx := big.NewInt(x * x)
		term := new(big.Int).Quo(one, big.NewInt(x)) // 1/x^(2k+1)
		for k := int64(0); term.Sign() != 0; k++ {
			q := new(big.Int).Quo(term, big.NewInt(2*k+1))
			if k%2 == 0 {
				sum.Add(sum, q)
			} else {
				sum.Sub(sum, q)
			}
			term.Quo(term, xx)
		}
		return sum
	}
	pi := new(big.Int).Mul(big.NewInt(16), atanInv(5))
	pi.Sub(pi, new(big.Int).Mul(big.NewInt(4), atanInv(239)))
	return pi.Rsh(pi, 64)
}

// The group 14 prime is what RFC 3526 §3 defines, 2^2048 - 2^1984 - 1 +
// 2^64 × { [2^1918 pi] + 124476 }, computed here from pi rather than
// compared with another copy of the hex; and it is a safe prime.
func TestMODP2048Prime(t *testing.T) {
	p := new(big.Int).Lsh(big.NewInt(1), 2048)
	p.Sub(p, new(big.Int).Lsh(big.NewInt(1), 1984))
	p.Sub(p, big.NewInt(1))
	f := piBits(1918)
	f.Add(f, big.NewInt(124476))
	p.Add(p, f.Lsh(f, 64))
	if p.Cmp(modp2048P) != 0 {
		t.Fatalf("modp2048 prime differs from RFC 3526's formula:\n got %x\nwant %x", modp2048P, p)
	}
	q := new(big.Int).Rsh(p, 1)
	if !p.ProbablyPrime(4) || !q.ProbablyPrime(4) {
		t.Fatal("p or (p-1)/2 not prime")
	}
}

func TestDHMODP(t *testing.T) {
	a, err := NewDH(DHMODP2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDH(DHMODP2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Public()) != 256 {
		t.Fatalf("public value %d bytes, want 256", len(a.Public()))
	}
	sa, err1 := a.Shared(b.Public())
	sb, err2 := b.Shared(a.Public())
	if err1 != nil || err2 != nil || !bytes.Equal(sa, sb) || len(sa) != 256 {
		t.Fatalf("shared secrets differ or fail: %v %v", err1, err2)
	}
	// g^xy computed independently from the exponents.
	want := new(big.Int).Exp(new(big.Int).SetBytes(b.Public()), a.(*modpDH).x, modp2048P)
	if new(big.Int).SetBytes(sa).Cmp(want) != 0 {
		t.Fatal("shared secret is not y^x mod p")
	}
	pb := modp2048P.FillBytes(make([]byte, 256))
	pm1 := new(big.Int).Sub(modp2048P, big.NewInt(1)).FillBytes(make([]byte, 256))
	one := big.NewInt(1).FillBytes(make([]byte, 256))
	two := big.NewInt(2).FillBytes(make([]byte, 256))
	for name, v := range map[string][]byte{
		"0": make([]byte, 256), "1": one, "p-1": pm1, "p": pb,
		"all ones": bytes.Repeat([]byte{0xff}, 256), "short": a.Public()[1:], "long": append([]byte{0}, a.Public()...),
	} {
		if _, err := a.Shared(v); !errors.Is(err, ErrBadPublic) {
			t.Errorf("peer value %s: %v, want ErrBadPublic", name, err)
		}
	}
	if _, err := a.Shared(two); err != nil {
		t.Errorf("peer value 2 (the generator) refused: %v", err)
	}
	// A small public value still encodes as 256 bytes, leading zeros kept.
	d := newMODPFrom(big.NewInt(3))
	if len(d.Public()) != 256 || d.Public()[255] != 8 {
		t.Errorf("2^3 encoded as %x", d.Public())
	}
}

func TestDHDeterministicAndErrors(t *testing.T) {
	for _, g := range dhs {
		d1, err := NewDH(g.id, &seqReader{})
		if err != nil {
			t.Fatal(err)
		}
		d2, _ := NewDH(g.id, &seqReader{})
		if !bytes.Equal(d1.Public(), d2.Public()) || d1.Group() != g.id || len(d1.Public()) != g.pub || PublicLen(g.id) != g.pub {
			t.Errorf("%s: deterministic rand gave different keys, or wrong group/length", g.name)
		}
		d3, _ := NewDH(g.id, nil)
		s1, err1 := d1.Shared(d3.Public())
		s3, err3 := d3.Shared(d1.Public())
		if err1 != nil || err3 != nil || !bytes.Equal(s1, s3) {
			t.Errorf("%s: agreement failed: %v %v", g.name, err1, err3)
		}
		if _, err := NewDH(g.id, bytes.NewReader([]byte{1, 2, 3})); err == nil {
			t.Errorf("%s: short randomness accepted", g.name)
		}
	}
	if _, err := NewDH(2, nil); err == nil {
		t.Error("group 2 accepted")
	}
	// A P-256 scalar ≥ n is drawn again, not used.
	r := bytes.NewReader(append(bytes.Repeat([]byte{0xff}, 32), unhex(t, "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433")...))
	d, err := NewDH(DHECP256, r)
	if err != nil || !bytes.Equal(d.Public()[:4], []byte{0xda, 0xd0, 0xb6, 0x53}) {
		t.Errorf("redraw after an invalid scalar: %v %x", err, d.Public()[:4])
	}
}
