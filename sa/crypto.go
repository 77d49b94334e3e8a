package sa

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"hash"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Scratch is per-goroutine working memory for AEAD nonces and ESN
// additional data. The data path gives each worker one; passing a stack
// array through the cipher.AEAD interface would make it escape to the heap
// on every packet.
type Scratch struct {
	nonce [12]byte
	aad   [12]byte
}

type ivSetter interface{ SetIV([]byte) }

// suite is the keyed crypto state of an SA.
type suite struct {
	ivLen, icvLen, align int

	// AEAD (AES-GCM, ChaCha20-Poly1305): concurrent-safe, no lock.
	aead cipher.AEAD
	salt [4]byte

	// CBC or null encryption with HMAC: chaining and HMAC state are
	// stateful, so they live behind mu.
	mu       sync.Mutex
	cbcEnc   cipher.BlockMode
	cbcDec   cipher.BlockMode
	ivGen    cipher.Block // AES under a random key: IV = E(seq), unpredictable (RFC 3602 §3)
	ivBlock  [16]byte
	mac      hash.Hash
	macSum   [64]byte
	seqHiBuf [4]byte
}

func (su *suite) init(c *Config) error {
	ei := c.Enc.info()
	su.ivLen, su.align = ei.ivLen, ei.align
	if ei.aead {
		k := c.EncKey[:len(c.EncKey)-ei.saltLen]
		copy(su.salt[:], c.EncKey[len(k):])
		su.icvLen = ei.icvLen
		switch c.Enc {
		case EncAES128GCM, EncAES256GCM:
			b, err := aes.NewCipher(k)
			if err != nil {
				return fmt.Errorf("--encryption-key: %w", err)
			}
			if su.aead, err = cipher.NewGCM(b); err != nil {
				return err
			}
		case EncChaCha20Poly1305:
			a, err := chacha20poly1305.New(k)
			if err != nil {
				return fmt.Errorf("--encryption-key: %w", err)
			}
			su.aead = a
		default:
			panic(fmt.Sprintf("sa: AEAD %v has no constructor", c.Enc))
		}
		return nil
	}

	var block cipher.Block
	var err error
	switch c.Enc {
	case EncNull:
	case Enc3DESCBC:
		block, err = des.NewTripleDESCipher(c.EncKey)
	case EncAES128CBC, EncAES256CBC:
		block, err = aes.NewCipher(c.EncKey)
	default:
		panic(fmt.Sprintf("sa: cipher %v has no constructor", c.Enc))
	}
	if err != nil {
		return fmt.Errorf("--encryption-key: %w", err)
	}
	if block != nil {
		zero := make([]byte, block.BlockSize())
		su.cbcEnc = cipher.NewCBCEncrypter(block, zero)
		su.cbcDec = cipher.NewCBCDecrypter(block, zero)
		if _, ok := su.cbcEnc.(ivSetter); !ok {
			panic("sa: CBC encrypter has no SetIV; Go's crypto/cipher changed")
		}
		if _, ok := su.cbcDec.(ivSetter); !ok {
			panic("sa: CBC decrypter has no SetIV; Go's crypto/cipher changed")
		}
		var ivKey [16]byte
		if _, err := rand.Read(ivKey[:]); err != nil {
			return fmt.Errorf("IV key: %w", err)
		}
		su.ivGen, _ = aes.NewCipher(ivKey[:])
		clear(ivKey[:])
	}
	var h func() hash.Hash
	switch c.Integ {
	case IntegHMACSHA1:
		h = sha1.New
	case IntegHMACSHA256:
		h = sha256.New
	case IntegHMACSHA384:
		h = sha512.New384
	case IntegHMACSHA512:
		h = sha512.New
	default:
		panic(fmt.Sprintf("sa: integrity %v has no constructor", c.Integ))
	}
	su.mac = hmac.New(h, c.IntegKey)
	su.icvLen = c.Integ.ICVLen()
	return nil
}

// Seal protects one ESP packet in place. p is the whole ESP packet as it
// will go on the wire (RFC 4303 §2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|               Security Parameters Index (SPI)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Sequence Number                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 IV (IVLen bytes, written here)                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Payload, Padding, Pad Length, Next Header (clear on entry)  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  ICV (ICVLen bytes, written here)             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The caller has written SPI and the low 32 bits of seq, and padded the
// payload to Align. seq is the full (ESN) sequence number.
func (s *SA) Seal(p []byte, seq uint64, sc *Scratch) {
	su := &s.suite
	iv := p[8 : 8+su.ivLen]
	body := p[8+su.ivLen : len(p)-su.icvLen]
	if su.aead != nil {
		// RFC 4106 §3.1 / RFC 7634 §2: the IV only has to be unique per key;
		// the sequence number is.
		binary.BigEndian.PutUint64(iv, seq)
		copy(sc.nonce[:4], su.salt[:])
		copy(sc.nonce[4:], iv)
		su.aead.Seal(body[:0], sc.nonce[:], body, s.aad(p, seq, sc))
		return
	}
	su.mu.Lock()
	if su.cbcEnc != nil {
		binary.BigEndian.PutUint64(su.ivBlock[:8], seq)
		binary.BigEndian.PutUint64(su.ivBlock[8:], uint64(s.cfg.SPI))
		su.ivGen.Encrypt(su.ivBlock[:], su.ivBlock[:])
		copy(iv, su.ivBlock[:])
		su.cbcEnc.(ivSetter).SetIV(iv)
		su.cbcEnc.CryptBlocks(body, body)
	}
	icv := su.hmac(p[:len(p)-su.icvLen], seq, s.cfg.ESN)
	copy(p[len(p)-su.icvLen:], icv)
	su.mu.Unlock()
}

// ConcurrentCrypto reports whether Seal and Open of this SA run on
// several goroutines at once without serialising (AEAD suites); CBC and
// null encryption with HMAC take the SA's lock for each packet.
func (s *SA) ConcurrentCrypto() bool { return s.suite.aead != nil }

// Open verifies and decrypts one ESP packet in place (the same layout as
// Seal) and returns the plaintext: payload, padding, pad length, next
// header. seq is the full sequence number from ReplayCheck.
func (s *SA) Open(p []byte, seq uint64, sc *Scratch) ([]byte, drop.Reason) {
	su := &s.suite
	if len(p) < 8+su.ivLen+su.icvLen+2 {
		return nil, drop.Malformed
	}
	iv := p[8 : 8+su.ivLen]
	body := p[8+su.ivLen:]
	if su.aead != nil {
		copy(sc.nonce[:4], su.salt[:])
		copy(sc.nonce[4:], iv)
		pt, err := su.aead.Open(body[:0], sc.nonce[:], body, s.aad(p, seq, sc))
		if err != nil {
			return nil, drop.AuthFailed
		}
		return pt, drop.None
	}
	body = body[:len(body)-su.icvLen]
	if len(body)%su.align != 0 {
		return nil, drop.Malformed
	}
	su.mu.Lock()
	icv := su.hmac(p[:len(p)-su.icvLen], seq, s.cfg.ESN)
	if subtle.ConstantTimeCompare(icv[:su.icvLen], p[len(p)-su.icvLen:]) != 1 {
		su.mu.Unlock()
		return nil, drop.AuthFailed
	}
	if su.cbcDec != nil {
		su.cbcDec.(ivSetter).SetIV(iv)
		su.cbcDec.CryptBlocks(body, body)
	}
	su.mu.Unlock()
	return body, drop.None
}

// aad is the AEAD additional data: SPI and sequence number, with the high
// 32 bits inserted when ESN is on (RFC 4106 §5, RFC 7634 §2.1).
func (s *SA) aad(p []byte, seq uint64, sc *Scratch) []byte {
	if !s.cfg.ESN {
		return p[:8]
	}
	copy(sc.aad[:4], p[:4])
	binary.BigEndian.PutUint64(sc.aad[4:], seq)
	return sc.aad[:]
}

// hmac computes the full HMAC over the ESP header and ciphertext, plus the
// high sequence bits with ESN (RFC 4303 §2.2.1: authenticated, not sent).
// Caller holds su.mu.
func (su *suite) hmac(authed []byte, seq uint64, esn bool) []byte {
	su.mac.Reset()
	su.mac.Write(authed)
	if esn {
		binary.BigEndian.PutUint32(su.seqHiBuf[:], uint32(seq>>32))
		su.mac.Write(su.seqHiBuf[:])
	}
	return su.mac.Sum(su.macSum[:0])
}
