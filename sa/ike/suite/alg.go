package suite

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"strconv"
	"strings"

	"github.com/vifsec/vifsec/sa"
)

// Transform IDs, IANA "IKEv2 Parameters" (RFC 7296 §3.3.2).
const (
	EncrAESCBC           = 12
	EncrAESGCM16         = 20
	EncrChaCha20Poly1305 = 28

	PRFHMACSHA1   = 2
	PRFHMACSHA256 = 5
	PRFHMACSHA384 = 6
	PRFHMACSHA512 = 7

	IntegNone          = 0
	IntegHMACSHA196    = 2
	IntegHMACSHA256128 = 12
	IntegHMACSHA384192 = 13
	IntegHMACSHA512256 = 14

	DHMODP2048   = 14
	DHECP256     = 19
	DHECP384     = 20
	DHCurve25519 = 31

	ESNNone = 0
	ESNYes  = 1
)

// ENCR IDs only ESP uses here (the ESP core has them; IKE SAs do not).
const (
	Encr3DES = 3
	EncrNull = 11
)

// encrAlg is an IKE SA encryption transform.
type encrAlg struct {
	name    string // strongSwan keyword
	id      uint16
	keyBits uint16 // Key Length attribute; 0: none sent
	keyLen  int    // bytes of SK_e: cipher key plus salt
	saltLen int
	aead    bool
}

var ikeEncrs = []encrAlg{
	{name: "aes128", id: EncrAESCBC, keyBits: 128, keyLen: 16},
	{name: "aes256", id: EncrAESCBC, keyBits: 256, keyLen: 32},
	{name: "aes128gcm16", id: EncrAESGCM16, keyBits: 128, keyLen: 20, saltLen: 4, aead: true},
	{name: "aes256gcm16", id: EncrAESGCM16, keyBits: 256, keyLen: 36, saltLen: 4, aead: true},
	{name: "chacha20poly1305", id: EncrChaCha20Poly1305, keyLen: 36, saltLen: 4, aead: true},
}

func findEncr(id, keyBits uint16) *encrAlg {
	for i := range ikeEncrs {
		if e := &ikeEncrs[i]; e.id == id && e.keyBits == keyBits {
			return e
		}
	}
	return nil
}

type prfAlg struct {
	name string
	id   uint16
	hash crypto.Hash
	newH func() hash.Hash
}

var prfs = []prfAlg{
	{name: "prfsha1", id: PRFHMACSHA1, hash: crypto.SHA1, newH: sha1.New},
	{name: "prfsha256", id: PRFHMACSHA256, hash: crypto.SHA256, newH: sha256.New},
	{name: "prfsha384", id: PRFHMACSHA384, hash: crypto.SHA384, newH: sha512.New384},
	{name: "prfsha512", id: PRFHMACSHA512, hash: crypto.SHA512, newH: sha512.New},
}

func findPRF(id uint16) *prfAlg {
	for i := range prfs {
		if prfs[i].id == id {
			return &prfs[i]
		}
	}
	return nil
}

type integAlg struct {
	name   string
	id     uint16
	newH   func() hash.Hash
	keyLen int // RFC 4868 §2.1.1 / RFC 2404: the hash output length
	icvLen int
	prf    uint16 // the PRF strongSwan adds when a proposal names none
	esp    sa.IntegAlg
}

var integs = []integAlg{
	{name: "sha1", id: IntegHMACSHA196, newH: sha1.New, keyLen: 20, icvLen: 12, prf: PRFHMACSHA1, esp: sa.IntegHMACSHA1},
	{name: "sha256", id: IntegHMACSHA256128, newH: sha256.New, keyLen: 32, icvLen: 16, prf: PRFHMACSHA256, esp: sa.IntegHMACSHA256},
	{name: "sha384", id: IntegHMACSHA384192, newH: sha512.New384, keyLen: 48, icvLen: 24, prf: PRFHMACSHA384, esp: sa.IntegHMACSHA384},
	{name: "sha512", id: IntegHMACSHA512256, newH: sha512.New, keyLen: 64, icvLen: 32, prf: PRFHMACSHA512, esp: sa.IntegHMACSHA512},
}

func findInteg(id uint16) *integAlg {
	for i := range integs {
		if integs[i].id == id {
			return &integs[i]
		}
	}
	return nil
}

func integForESP(a sa.IntegAlg) *integAlg {
	for i := range integs {
		if integs[i].esp == a {
			return &integs[i]
		}
	}
	return nil
}

type dhAlg struct {
	name string
	id   uint16
	pub  int // length of the KE payload's key exchange data
}

var dhs = []dhAlg{
	{name: "modp2048", id: DHMODP2048, pub: 256},
	{name: "ecp256", id: DHECP256, pub: 64},
	{name: "ecp384", id: DHECP384, pub: 96},
	{name: "curve25519", id: DHCurve25519, pub: 32},
}

func findDH(id uint16) *dhAlg {
	for i := range dhs {
		if dhs[i].id == id {
			return &dhs[i]
		}
	}
	return nil
}

// DHName is the strongSwan keyword of a DH group ("modp2048", "ecp256",
// "ecp384", "curve25519"), "none" for 0, or "dh<N>" for another number.
func DHName(id uint16) string {
	if id == 0 {
		return "none"
	}
	if d := findDH(id); d != nil {
		return d.name
	}
	return "dh" + strconv.Itoa(int(id))
}

// PublicLen is the length of a group's public value in the KE payload
// (RFC 7296 §3.4, RFC 5903 §7, RFC 8031 §2), or 0 for an unknown group.
func PublicLen(group uint16) int {
	if d := findDH(group); d != nil {
		return d.pub
	}
	return 0
}

// espEncName is the strongSwan keyword for each ESP-core cipher.
func espEncName(a sa.EncAlg) string {
	switch a {
	case sa.EncNull:
		return "null"
	case sa.Enc3DESCBC:
		return "3des"
	case sa.EncAES128CBC:
		return "aes128"
	case sa.EncAES256CBC:
		return "aes256"
	case sa.EncAES128GCM:
		return "aes128gcm16"
	case sa.EncAES256GCM:
		return "aes256gcm16"
	case sa.EncChaCha20Poly1305:
		return "chacha20poly1305"
	}
	return ""
}

// espKeyBits is the Key Length attribute of an ESP cipher, 0 for none.
func espKeyBits(a sa.EncAlg) uint16 {
	switch a {
	case sa.EncAES128CBC, sa.EncAES128GCM:
		return 128
	case sa.EncAES256CBC, sa.EncAES256GCM:
		return 256
	}
	return 0
}

// Keyword aliases strongSwan accepts (proposal_keywords_static.txt) for
// the algorithms above, mapped to their canonical spelling.
var aliases = map[string]string{
	"aes":          "aes128",
	"aes128gcm128": "aes128gcm16",
	"aes128gcm":    "aes128gcm16",
	"aes256gcm128": "aes256gcm16",
	"aes256gcm":    "aes256gcm16",
	"sha":          "sha1",
	"sha2_256":     "sha256",
	"sha2_384":     "sha384",
	"sha2_512":     "sha512",
	"x25519":       "curve25519",
	"modpnone":     "none",
}

func lower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
