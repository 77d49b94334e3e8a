package suite

import (
	"testing"
)

// BenchmarkDH is one side's work in an IKE_SA_INIT: make a key pair and
// compute g^ir from the peer's value. An IKE setup costs this once per
// side; the numbers bound IKE setups per core.
func BenchmarkDH(b *testing.B) {
	for _, g := range dhs {
		name := g.name
		if g.id == DHCurve25519 {
			name = "x25519"
		}
		b.Run(name, func(b *testing.B) {
			peer, err := NewDH(g.id, nil)
			if err != nil {
				b.Fatal(err)
			}
			pub := peer.Public()
			b.ReportAllocs()
			for b.Loop() {
				d, err := NewDH(g.id, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.Shared(pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDeriveIKE(b *testing.B) {
	s := IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHECP256}
	ni, nr, shared := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DeriveIKE(s, ni, nr, shared, 1, 2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpen(b *testing.B) {
	for _, s := range fuzzSuites {
		b.Run(s.String(), func(b *testing.B) {
			enc, integ := testKeys(s)
			p, _ := NewProtector(s, enc, integ, nil)
			plain := make([]byte, 400)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				m := p.Seal(skHeader(1), plain)
				if _, err := p.Open(m[:32], m[32:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
