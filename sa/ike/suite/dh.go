package suite

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// DH is one side of an ephemeral Diffie-Hellman exchange. Public is the
// key exchange data of the KE payload; Shared validates the peer's KE data
// and returns g^ir in the form RFC 7296 §2.14 feeds to the PRF. A DH is
// used by one goroutine; it holds its private key until garbage collected.
type DH interface {
	Group() uint16
	Public() []byte
	Shared(peer []byte) ([]byte, error)
}

// ErrBadPublic is returned by DH.Shared for a peer value that is the
// wrong length, not in the group, or that would give a degenerate secret
// (RFC 7296 §2.12, RFC 6989). The exchange must fail (INVALID_SYNTAX).
var ErrBadPublic = errors.New("suite: invalid DH public value")

// NewDH generates a key pair in group, reading randomness from rand
// (nil: crypto/rand). Groups: 14 (MODP-2048), 19 (ECP-256), 20 (ECP-384),
// 31 (Curve25519). The private key is drawn here from rand rather than by
// crypto/ecdh, so a deterministic rand gives a deterministic key in tests.
func NewDH(group uint16, r io.Reader) (DH, error) {
	if r == nil {
		r = rand.Reader
	}
	switch group {
	case DHMODP2048:
		return newMODP(r)
	case DHECP256:
		return newECDH(group, ecdh.P256(), 32, r)
	case DHECP384:
		return newECDH(group, ecdh.P384(), 48, r)
	case DHCurve25519:
		return newECDH(group, ecdh.X25519(), 32, r)
	}
	return nil, fmt.Errorf("DH group %d is not supported; use %s", group, dhNames(false))
}

// ecdhDH is ECP-256, ECP-384 (RFC 5903) or Curve25519 (RFC 8031).
type ecdhDH struct {
	group uint16
	curve ecdh.Curve
	priv  *ecdh.PrivateKey
	pub   []byte
}

func newECDH(group uint16, c ecdh.Curve, n int, r io.Reader) (*ecdhDH, error) {
	b := make([]byte, n)
	defer clear(b)
	// NIST curves: a scalar ≥ the group order (or zero) is refused; that
	// happens with probability < 2^-32, so a few draws always suffice.
	for range 16 {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("suite: DH %s: reading randomness: %w", DHName(group), err)
		}
		if k, err := c.NewPrivateKey(b); err == nil {
			return newECDHFrom(group, k), nil
		}
	}
	return nil, fmt.Errorf("suite: DH %s: no valid private key from 16 draws of randomness", DHName(group))
}

func newECDHFrom(group uint16, k *ecdh.PrivateKey) *ecdhDH {
	pub := k.PublicKey().Bytes()
	if group != DHCurve25519 {
		pub = pub[1:] // RFC 5903 §7: x | y, without SEC1's 0x04
	}
	return &ecdhDH{group: group, curve: k.Curve(), priv: k, pub: pub}
}

func (d *ecdhDH) Group() uint16  { return d.group }
func (d *ecdhDH) Public() []byte { return d.pub }

// Shared returns the x coordinate for the NIST curves (RFC 5903 §7) and
// the X25519 output for Curve25519 (RFC 8031 §2.1). The peer point must be
// on the curve (crypto/ecdh checks it, RFC 6989 §2.3) and, for X25519, the
// result must not be all zero (RFC 8031 §2.3).
func (d *ecdhDH) Shared(peer []byte) ([]byte, error) {
	if len(peer) != len(d.pub) {
		return nil, fmt.Errorf("%w: %s public value is %d bytes, want %d", ErrBadPublic, DHName(d.group), len(peer), len(d.pub))
	}
	enc := peer
	if d.group != DHCurve25519 {
		enc = make([]byte, 1+len(peer))
		enc[0] = 4
		copy(enc[1:], peer)
	}
	pk, err := d.curve.NewPublicKey(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPublic, DHName(d.group), err)
	}
	s, err := d.priv.ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPublic, DHName(d.group), err)
	}
	if subtle.ConstantTimeCompare(s, make([]byte, len(s))) == 1 {
		return nil, fmt.Errorf("%w: %s shared secret is all zero", ErrBadPublic, DHName(d.group))
	}
	return s, nil
}

// modp2048P is the prime of group 14, RFC 3526 §3:
// 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 }; the generator is 2.
var modp2048P, _ = new(big.Int).SetString(
	"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"+
		"29024E088A67CC74020BBEA63B139B22514A08798E3404DD"+
		"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245"+
		"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"+
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D"+
		"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"+
		"83655D23DCA3AD961C62F356208552BB9ED529077096966D"+
		"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"+
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9"+
		"DE2BCBF6955817183995497CEA956AE515D2261898FA0510"+
		"15728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)

var (
	bigTwo         = big.NewInt(2)
	modp2048PMinus = new(big.Int).Sub(modp2048P, big.NewInt(1))
)

// modpExpBits is the private exponent length: twice the group's 112-bit
// security strength rounded up (NIST SP 800-56A r3 §5.6.1.1.1 asks ≥ 224
// for a 2048-bit safe-prime group). p is a safe prime, so every exponent
// below q = (p-1)/2 is as good as any other, and a short one makes
// the two exponentiations about eight times faster than a full-size one.
const modpExpBits = 256

type modpDH struct {
	x   *big.Int
	pub []byte
}

func newMODP(r io.Reader) (*modpDH, error) {
	b := make([]byte, modpExpBits/8)
	defer clear(b)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("suite: DH modp2048: reading randomness: %w", err)
	}
	b[0] |= 0x80 // full length, never 0 or 1
	return newMODPFrom(new(big.Int).SetBytes(b)), nil
}

func newMODPFrom(x *big.Int) *modpDH {
	y := new(big.Int).Exp(bigTwo, x, modp2048P)
	return &modpDH{x: x, pub: y.FillBytes(make([]byte, 256))}
}

func (d *modpDH) Group() uint16  { return DHMODP2048 }
func (d *modpDH) Public() []byte { return d.pub }

// Shared checks 1 < y < p-1 (RFC 6989 §2.1: with a safe prime that
// excludes the small subgroups) and returns y^x mod p padded to 256 bytes.
func (d *modpDH) Shared(peer []byte) ([]byte, error) {
	if len(peer) != 256 {
		return nil, fmt.Errorf("%w: modp2048 public value is %d bytes, want 256", ErrBadPublic, len(peer))
	}
	y := new(big.Int).SetBytes(peer)
	if y.Cmp(bigTwo) < 0 || y.Cmp(modp2048PMinus) >= 0 {
		return nil, fmt.Errorf("%w: modp2048 public value not in 2..p-2", ErrBadPublic)
	}
	z := new(big.Int).Exp(y, d.x, modp2048P)
	if z.Cmp(bigTwo) < 0 || z.Cmp(modp2048PMinus) >= 0 {
		// Cannot happen for y in range and 1 < x < q; checked anyway.
		return nil, fmt.Errorf("%w: modp2048 degenerate shared secret", ErrBadPublic)
	}
	return z.FillBytes(make([]byte, 256)), nil
}
