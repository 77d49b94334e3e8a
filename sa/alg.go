package sa

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// EncAlg is an ESP encryption transform. Names are the CLI's
// (docs/cli.md `--encryption-algorithm`).
type EncAlg uint8

const (
	EncInvalid EncAlg = iota
	EncNull
	Enc3DESCBC
	EncAES128CBC
	EncAES256CBC
	EncAES128GCM
	EncAES256GCM
	EncChaCha20Poly1305
	numEnc
)

type encInfo struct {
	name       string
	keyLen     int  // bytes of key material the operator gives, salt included
	saltLen    int  // trailing salt bytes inside keyLen (RFC 4106 §8.1, RFC 7634 §2)
	ivLen      int  // bytes of IV on the wire
	align      int  // block size the padded payload aligns to (≥ 4, RFC 4303 §2.4)
	icvLen     int  // AEAD tag length; 0 for non-AEAD (the integrity transform sets it)
	aead       bool // combined mode: integrity must be none
	deprecated bool
	ikeID      uint16 // IKEv2 transform ID (RFC 7296 §3.3.2, IANA), for sa/ike
	tshark     string // tshark 4.0 uat:esp_sa encryption name; "" if tshark cannot decrypt
}

var encTable = [numEnc]encInfo{
	EncNull:             {name: "null", align: 4, ikeID: 11, tshark: "NULL"},
	Enc3DESCBC:          {name: "3des-cbc", keyLen: 24, ivLen: 8, align: 8, deprecated: true, ikeID: 3, tshark: "TripleDES-CBC [RFC2451]"},
	EncAES128CBC:        {name: "aes128-cbc", keyLen: 16, ivLen: 16, align: 16, ikeID: 12, tshark: "AES-CBC [RFC3602]"},
	EncAES256CBC:        {name: "aes256-cbc", keyLen: 32, ivLen: 16, align: 16, ikeID: 12, tshark: "AES-CBC [RFC3602]"},
	EncAES128GCM:        {name: "aes128-gcm", keyLen: 20, saltLen: 4, ivLen: 8, align: 4, icvLen: 16, aead: true, ikeID: 20, tshark: "AES-GCM with 16 octet ICV [RFC4106]"},
	EncAES256GCM:        {name: "aes256-gcm", keyLen: 36, saltLen: 4, ivLen: 8, align: 4, icvLen: 16, aead: true, ikeID: 20, tshark: "AES-GCM with 16 octet ICV [RFC4106]"},
	EncChaCha20Poly1305: {name: "chacha20-poly1305", keyLen: 36, saltLen: 4, ivLen: 8, align: 4, icvLen: 16, aead: true, ikeID: 28},
}

func (a EncAlg) info() *encInfo {
	if a == EncInvalid || a >= numEnc {
		return &encTable[EncInvalid]
	}
	return &encTable[a]
}

func (a EncAlg) String() string {
	if n := a.info().name; n != "" {
		return n
	}
	return fmt.Sprintf("EncAlg(%d)", uint8(a))
}

// KeyLen is the key length in bytes the operator supplies (AEAD: with salt).
func (a EncAlg) KeyLen() int { return a.info().keyLen }

// SaltLen is the part of KeyLen that is the nonce salt (AEAD only).
func (a EncAlg) SaltLen() int { return a.info().saltLen }

// IVLen is the explicit IV carried in each ESP packet.
func (a EncAlg) IVLen() int { return a.info().ivLen }

// Align is the block size the ESP payload+trailer is padded to.
func (a EncAlg) Align() int { return a.info().align }

// IsAEAD reports a combined-mode cipher (integrity must be none).
func (a EncAlg) IsAEAD() bool { return a.info().aead }

// Deprecated reports an algorithm kept for ESXi examples' peers only (RFC 8221).
func (a EncAlg) Deprecated() bool { return a.info().deprecated }

// IKEID is the IKEv2 ENCR transform ID (RFC 7296 §3.3.2).
func (a EncAlg) IKEID() uint16 { return a.info().ikeID }

// TsharkName is the name tshark's ESP dissector uses, or "" if it cannot decrypt a.
func (a EncAlg) TsharkName() string { return a.info().tshark }

// EncAlgs lists every valid encryption algorithm in CLI order.
func EncAlgs() []EncAlg {
	return []EncAlg{Enc3DESCBC, EncAES128CBC, EncAES256CBC, EncAES128GCM, EncAES256GCM, EncChaCha20Poly1305, EncNull}
}

// ParseEncAlg parses an --encryption-algorithm value.
func ParseEncAlg(s string) (EncAlg, error) {
	for _, a := range EncAlgs() {
		if asciiEqualFold(s, a.String()) {
			return a, nil
		}
	}
	return EncInvalid, fmt.Errorf("%q is not an encryption algorithm; use one of %s", s, joinNames(EncAlgs()))
}

// IntegAlg is an ESP integrity transform.
type IntegAlg uint8

const (
	IntegInvalid IntegAlg = iota
	IntegNone
	IntegHMACSHA1
	IntegHMACSHA256
	IntegHMACSHA384
	IntegHMACSHA512
	numInteg
)

type integInfo struct {
	name   string
	keyLen int // RFC 2404 / RFC 4868 §2.1.1: key length = hash output length
	icvLen int // truncated ICV on the wire
	ikeID  uint16
	tshark string
}

var integTable = [numInteg]integInfo{
	IntegNone:       {name: "none", tshark: "NULL"},
	IntegHMACSHA1:   {name: "hmac-sha1", keyLen: 20, icvLen: 12, ikeID: 2, tshark: "HMAC-SHA-1-96 [RFC2404]"},
	IntegHMACSHA256: {name: "hmac-sha2-256", keyLen: 32, icvLen: 16, ikeID: 12, tshark: "HMAC-SHA-256-128 [RFC4868]"},
	IntegHMACSHA384: {name: "hmac-sha2-384", keyLen: 48, icvLen: 24, ikeID: 13, tshark: "HMAC-SHA-384-192 [RFC4868]"},
	IntegHMACSHA512: {name: "hmac-sha2-512", keyLen: 64, icvLen: 32, ikeID: 14, tshark: "HMAC-SHA-512-256 [RFC4868]"},
}

func (a IntegAlg) info() *integInfo {
	if a == IntegInvalid || a >= numInteg {
		return &integTable[IntegInvalid]
	}
	return &integTable[a]
}

func (a IntegAlg) String() string {
	if n := a.info().name; n != "" {
		return n
	}
	return fmt.Sprintf("IntegAlg(%d)", uint8(a))
}

// KeyLen is the HMAC key length in bytes.
func (a IntegAlg) KeyLen() int { return a.info().keyLen }

// ICVLen is the truncated ICV length on the wire.
func (a IntegAlg) ICVLen() int { return a.info().icvLen }

// IKEID is the IKEv2 INTEG transform ID (RFC 7296 §3.3.2).
func (a IntegAlg) IKEID() uint16 { return a.info().ikeID }

// TsharkName is the name tshark's ESP dissector uses.
func (a IntegAlg) TsharkName() string { return a.info().tshark }

// IntegAlgs lists every valid integrity algorithm in CLI order.
func IntegAlgs() []IntegAlg {
	return []IntegAlg{IntegHMACSHA1, IntegHMACSHA256, IntegHMACSHA384, IntegHMACSHA512, IntegNone}
}

// ParseIntegAlg parses an --integrity-algorithm value.
func ParseIntegAlg(s string) (IntegAlg, error) {
	for _, a := range IntegAlgs() {
		if asciiEqualFold(s, a.String()) {
			return a, nil
		}
	}
	return IntegInvalid, fmt.Errorf("%q is not an integrity algorithm; use one of %s", s, joinNames(IntegAlgs()))
}

// CheckSuite checks the combination rules of docs/cli.md: an AEAD takes
// integrity none; every other cipher (null included) needs a real integrity
// algorithm, because ESP without authentication is never allowed here.
func CheckSuite(enc EncAlg, integ IntegAlg) error {
	if enc.info().name == "" {
		return fmt.Errorf("encryption algorithm not set; use one of %s", joinNames(EncAlgs()))
	}
	if integ.info().name == "" {
		return fmt.Errorf("integrity algorithm not set; use one of %s", joinNames(IntegAlgs()))
	}
	if enc.IsAEAD() && integ != IntegNone {
		return fmt.Errorf("%s is an AEAD and authenticates itself: use --integrity-algorithm none (got %s)", enc, integ)
	}
	if !enc.IsAEAD() && integ == IntegNone {
		return fmt.Errorf("%s needs an integrity algorithm (hmac-sha1, hmac-sha2-256, hmac-sha2-384, hmac-sha2-512): authentication is never null", enc)
	}
	return nil
}

// CheckEncKey checks an encryption key's length for enc.
func CheckEncKey(enc EncAlg, key []byte) error {
	want := enc.KeyLen()
	if len(key) == want {
		return nil
	}
	if want == 0 {
		return fmt.Errorf("%s takes no key (got %d bytes)", enc, len(key))
	}
	if enc.SaltLen() > 0 {
		return fmt.Errorf("%s needs a %d-byte key (%d-byte key + %d-byte salt, %d hex digits), got %d bytes",
			enc, want, want-enc.SaltLen(), enc.SaltLen(), 2*want, len(key))
	}
	return fmt.Errorf("%s needs a %d-byte key (%d hex digits), got %d bytes", enc, want, 2*want, len(key))
}

// CheckIntegKey checks an integrity key's length for integ.
func CheckIntegKey(integ IntegAlg, key []byte) error {
	want := integ.KeyLen()
	if len(key) == want {
		return nil
	}
	if want == 0 {
		return fmt.Errorf("%s takes no key (got %d bytes)", integ, len(key))
	}
	return fmt.Errorf("%s needs a %d-byte key (%d hex digits), got %d bytes", integ, want, 2*want, len(key))
}

// ParseKey parses a key as esxcli takes it: "0x" followed by hex digits
// (either case), or otherwise ASCII text taken byte for byte
// (esxcli: "as ASCII text, or as a hexadecimal number prefixed with 0x").
func ParseKey(s string) ([]byte, error) {
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		h := s[2:]
		if len(h) == 0 {
			return nil, fmt.Errorf("key %q has no hex digits after 0x", "0x")
		}
		if len(h)%2 != 0 {
			return nil, fmt.Errorf("hex key has an odd number of digits (%d); write whole bytes after 0x", len(h))
		}
		k, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("key starts with 0x but is not hex: use only 0-9 a-f after 0x, or give the key as ASCII text")
		}
		return k, nil
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return nil, fmt.Errorf("ASCII key contains a non-printable or non-ASCII byte at position %d; use 0x-prefixed hex for binary keys", i)
		}
	}
	return []byte(s), nil
}

func joinNames[T fmt.Stringer](as []T) string {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// asciiEqualFold is strings.EqualFold for ASCII only: Unicode folding
// would accept "hmac-\u017fha1" (long s) as hmac-sha1.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
