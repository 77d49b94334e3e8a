package suite

import (
	"crypto/hmac"
	"fmt"
)

// PRF is one of the HMAC-based pseudorandom functions of RFC 7296 §3.3.2
// (RFC 2104, RFC 4868 §2.1.2). It is a small value, safe for concurrent
// use; the zero PRF is invalid and its methods panic.
type PRF struct {
	alg *prfAlg
}

// NewPRF returns the PRF with IANA transform ID id.
func NewPRF(id uint16) (PRF, error) {
	a := findPRF(id)
	if a == nil {
		return PRF{}, fmt.Errorf("PRF transform %d is not supported; use %s", id, prfNames())
	}
	return PRF{alg: a}, nil
}

func (p PRF) must() *prfAlg {
	if p.alg == nil {
		panic("suite: zero PRF used; get one from NewPRF")
	}
	return p.alg
}

// ID is the PRF's IANA transform ID.
func (p PRF) ID() uint16 { return p.must().id }

// String is the strongSwan keyword ("prfsha256").
func (p PRF) String() string {
	if p.alg == nil {
		return "prf(invalid)"
	}
	return p.alg.name
}

// Size is the output length in bytes, which for these HMAC PRFs is also
// the preferred key length (RFC 7296 §2.13, RFC 4868 §2.1.2): the length
// of SK_d, SK_pi and SK_pr.
func (p PRF) Size() int { return p.must().hash.Size() }

// Sum is prf(key, data): HMAC with the full, untruncated output.
func (p PRF) Sum(key, data []byte) []byte {
	m := hmac.New(p.must().newH, key)
	m.Write(data)
	return m.Sum(nil)
}

// Plus is prf+(key, seed) of RFC 7296 §2.13 cut to n bytes:
//
//	T1 = prf(K, S | 0x01), Tk = prf(K, Tk-1 | S | k), prf+ = T1 | T2 | …
//
// n may be at most 255 × Size(); more is a programming error and panics.
func (p PRF) Plus(key, seed []byte, n int) []byte {
	a := p.must()
	size := a.hash.Size()
	if n < 0 || n > 255*size {
		panic(fmt.Sprintf("suite: prf+ of %d bytes asked of %s; at most 255 × %d", n, a.name, size))
	}
	out := make([]byte, 0, n+size)
	m := hmac.New(a.newH, key)
	var t []byte
	for i := 1; len(out) < n; i++ {
		m.Reset()
		m.Write(t)
		m.Write(seed)
		m.Write([]byte{byte(i)})
		out = m.Sum(out)
		t = out[len(out)-size:]
	}
	clear(out[n:cap(out)])
	return out[:n:n]
}
