package suite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

// Errors of Protector.Open. The caller drops the message silently (RFC
// 7296 §2.21.2 for a request, §2.21.1 otherwise) and may count the reason.
var (
	ErrShort     = errors.New("suite: encrypted payload too short or not a whole number of blocks")
	ErrIntegrity = errors.New("suite: encrypted payload failed its integrity check")
	ErrPadding   = errors.New("suite: encrypted payload has an impossible pad length")
)

// Payload types and offsets Seal needs, RFC 7296 §3.1-3.2, RFC 7383 §2.5.
const (
	payloadSK      = 46
	payloadSKF     = 53
	ikeHeaderLen   = 28
	ikeLengthOff   = 24
	ikeNextOff     = 16
	genericHdrLen  = 4
	skfExtraHdrLen = 4
)

// Protector encrypts and authenticates (Seal) or checks and decrypts
// (Open) the contents of SK and SKF payloads for one direction of an IKE
// SA: build one with SK_ei/SK_ai for messages the original initiator
// sends and one with SK_er/SK_ar for the other direction. A Protector is
// safe for concurrent use.
//
// AES-CBC (RFC 7296 §3.14): IV of one block, payloads padded to the block
// size with zeros plus the pad-length byte, then an HMAC over everything
// from the IKE header through the ciphertext, truncated to the ICV length.
// IVs are AES encryptions, under a random key of this Protector, of a
// counter starting at a random value: unpredictable as §3.14 requires and
// never repeated (NIST SP 800-38A appendix C).
//
// AES-GCM-16 (RFC 5282) and ChaCha20-Poly1305 (RFC 7634): an 8-byte
// explicit IV, the nonce salt | IV, additional data from the first octet
// of the IKE header through the SK (or SKF) payload header, payloads
// followed by a zero pad length, and a 16-byte ICV. The IV is a counter
// starting at a random value, so a nonce never repeats under one key.
type Protector struct {
	ivLen, icvLen, block int

	// AEAD
	aead cipher.AEAD
	salt [4]byte

	// AES-CBC + HMAC
	cbc      cipher.Block
	ivGen    cipher.Block
	integ    *integAlg
	integKey []byte

	ctr atomic.Uint64
}

// NewProtector keys a Protector for suite s. encKey is SK_e (AEAD: key
// followed by the 4-byte salt), integKey is SK_a (empty for AEADs). It
// keeps its own copy of integKey and reads rand (nil: crypto/rand) only
// here, to seed its IV generator.
func NewProtector(s IKE, encKey, integKey []byte, r io.Reader) (*Protector, error) {
	if err := s.Valid(); err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.Reader
	}
	e := s.encr()
	if len(encKey) != e.keyLen {
		return nil, fmt.Errorf("suite: %s needs a %d-byte encryption key, got %d", e.name, e.keyLen, len(encKey))
	}
	var seed [24]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("suite: seeding IV generator: %w", err)
	}
	p := &Protector{}
	p.ctr.Store(binary.BigEndian.Uint64(seed[16:]))
	if e.aead {
		if len(integKey) != 0 {
			return nil, fmt.Errorf("suite: %s is an AEAD and takes no integrity key, got %d bytes", e.name, len(integKey))
		}
		k := encKey[:len(encKey)-e.saltLen]
		copy(p.salt[:], encKey[len(k):])
		p.ivLen, p.icvLen, p.block = 8, 16, 1
		switch e.id {
		case EncrAESGCM16:
			b, err := aes.NewCipher(k)
			if err != nil {
				return nil, err
			}
			if p.aead, err = cipher.NewGCM(b); err != nil {
				return nil, err
			}
		case EncrChaCha20Poly1305:
			a, err := chacha20poly1305.New(k)
			if err != nil {
				return nil, err
			}
			p.aead = a
		default:
			panic(fmt.Sprintf("suite: AEAD %s has no constructor", e.name))
		}
		return p, nil
	}
	ig := findInteg(s.Integ)
	if len(integKey) != ig.keyLen {
		return nil, fmt.Errorf("suite: %s needs a %d-byte integrity key, got %d", ig.name, ig.keyLen, len(integKey))
	}
	var err error
	if p.cbc, err = aes.NewCipher(encKey); err != nil {
		return nil, err
	}
	if p.ivGen, err = aes.NewCipher(seed[:16]); err != nil {
		return nil, err
	}
	p.integ, p.integKey = ig, append([]byte(nil), integKey...)
	p.ivLen, p.icvLen, p.block = aes.BlockSize, ig.icvLen, aes.BlockSize
	return p, nil
}

// padded is the length of plain plus padding plus the pad-length byte.
func (p *Protector) padded(plain int) int {
	n := plain + 1
	return (n + p.block - 1) / p.block * p.block
}

// Overhead is how many bytes Seal adds to plain bytes of payloads, besides
// the headers: IV, padding, pad length and ICV.
func (p *Protector) Overhead(plain int) int {
	return p.ivLen + p.padded(plain) - plain + p.icvLen
}

// skHeaderEnd walks the payload chain of hdr to the SK or SKF payload
// header, which must end hdr, and returns that payload's offset.
func skHeaderEnd(hdr []byte) (int, error) {
	if len(hdr) < ikeHeaderLen {
		return 0, fmt.Errorf("header is %d bytes, want at least %d", len(hdr), ikeHeaderLen)
	}
	next, off := hdr[ikeNextOff], ikeHeaderLen
	for {
		switch next {
		case payloadSK:
			if len(hdr) != off+genericHdrLen {
				return 0, fmt.Errorf("SK payload header at %d: hdr is %d bytes, want %d", off, len(hdr), off+genericHdrLen)
			}
			return off, nil
		case payloadSKF:
			if len(hdr) != off+genericHdrLen+skfExtraHdrLen {
				return 0, fmt.Errorf("SKF payload header at %d: hdr is %d bytes, want %d", off, len(hdr), off+genericHdrLen+skfExtraHdrLen)
			}
			return off, nil
		}
		if off+genericHdrLen > len(hdr) {
			return 0, fmt.Errorf("payload chain ends at %d without an SK or SKF payload", off)
		}
		n := int(binary.BigEndian.Uint16(hdr[off+2:]))
		if n < genericHdrLen || off+n > len(hdr) {
			return 0, fmt.Errorf("payload at %d has length %d", off, n)
		}
		next, off = hdr[off], off+n
	}
}

// Seal protects plaintext (the encoded inner payloads) and returns the
// whole datagram: hdr || IV || ciphertext || ICV, with the IKE header's
// Length and the SK/SKF payload's length set. hdr is the IKE header, any
// cleartext payloads, and the SK payload's generic header (SKF: with its
// Fragment Number and Total Fragments); a hdr whose chain does not end in
// that header is a programming error and panics. hdr is not modified.
func (p *Protector) Seal(hdr, plaintext []byte) []byte {
	sk, err := skHeaderEnd(hdr)
	if err != nil {
		panic("suite: Seal: " + err.Error())
	}
	padded := p.padded(len(plaintext))
	total := len(hdr) + p.ivLen + padded + p.icvLen
	if total > 0xffff || total-sk > 0xffff {
		// Lengths beyond 64 KiB cannot be encoded in the payload header.
		panic(fmt.Sprintf("suite: Seal: message of %d bytes; the SK payload length is 16 bits", total))
	}
	out := make([]byte, total)
	copy(out, hdr)
	binary.BigEndian.PutUint32(out[ikeLengthOff:], uint32(total))
	binary.BigEndian.PutUint16(out[sk+2:], uint16(total-sk))
	iv := out[len(hdr) : len(hdr)+p.ivLen]
	body := out[len(hdr)+p.ivLen : len(hdr)+p.ivLen+padded]
	copy(body, plaintext)
	// The padding is already zero; the last byte is the pad length.
	body[padded-1] = byte(padded - len(plaintext) - 1)
	n := p.ctr.Add(1)
	if p.aead != nil {
		binary.BigEndian.PutUint64(iv, n)
		var nonce [12]byte
		copy(nonce[:4], p.salt[:])
		copy(nonce[4:], iv)
		p.aead.Seal(body[:0], nonce[:], body, out[:len(hdr)])
		return out
	}
	var ctr [16]byte
	binary.BigEndian.PutUint64(ctr[8:], n)
	p.ivGen.Encrypt(iv, ctr[:])
	cipher.NewCBCEncrypter(p.cbc, iv).CryptBlocks(body, body)
	m := hmac.New(p.integ.newH, p.integKey)
	m.Write(out[:total-p.icvLen])
	var sum [64]byte
	copy(out[total-p.icvLen:], m.Sum(sum[:0]))
	return out
}

// Open checks and decrypts body (IV || ciphertext || ICV of an SK or SKF
// payload) with aad (every byte of the datagram before the IV) and returns
// the inner payloads, padding removed, in a new slice. The ICV is checked
// in constant time before anything is decrypted; padding is checked after
// (any padding content is accepted, RFC 7296 §3.14). It never panics on
// any input; errors are ErrShort, ErrIntegrity or ErrPadding.
func (p *Protector) Open(aad, body []byte) ([]byte, error) {
	if p.aead != nil {
		if len(body) < p.ivLen+1+p.icvLen {
			return nil, ErrShort
		}
		var nonce [12]byte
		copy(nonce[:4], p.salt[:])
		copy(nonce[4:], body[:p.ivLen])
		plain, err := p.aead.Open(nil, nonce[:], body[p.ivLen:], aad)
		if err != nil {
			return nil, ErrIntegrity
		}
		return unpad(plain)
	}
	ct := len(body) - p.ivLen - p.icvLen
	if ct < p.block || ct%p.block != 0 {
		return nil, ErrShort
	}
	m := hmac.New(p.integ.newH, p.integKey)
	m.Write(aad)
	m.Write(body[:len(body)-p.icvLen])
	var sum [64]byte
	if !hmac.Equal(m.Sum(sum[:0])[:p.icvLen], body[len(body)-p.icvLen:]) {
		return nil, ErrIntegrity
	}
	plain := make([]byte, ct)
	cipher.NewCBCDecrypter(p.cbc, body[:p.ivLen]).CryptBlocks(plain, body[p.ivLen:p.ivLen+ct])
	return unpad(plain)
}

func unpad(plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, ErrPadding
	}
	pad := int(plain[len(plain)-1])
	if pad+1 > len(plain) {
		return nil, ErrPadding
	}
	return plain[: len(plain)-1-pad : len(plain)-1-pad], nil
}
