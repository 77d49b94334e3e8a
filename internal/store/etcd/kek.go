package etcd

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// Keyring holds the key-encryption keys (KEKs) that seal every record
// value stored in etcd. The first key is current: Seal uses it. The others
// are older keys, kept so that records sealed before a rotation can still
// be opened (and rewrapped with the current key, see Cluster.Rewrap).
//
// A key's id is the hex of the first 8 bytes of SHA-256 of the key: it is
// stored beside each sealed value so the right key is found, and reveals
// nothing usable about the key.
//
// A Keyring is immutable and safe for concurrent use.
type Keyring struct {
	keys []kek
}

type kek struct {
	id   string
	aead cipher.AEAD
}

// KEKID returns the id of key.
func KEKID(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:8])
}

// NewKeyring returns a keyring of keys, the first one current. Each key
// is KEKSize bytes; ids must be distinct.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("no key-encryption key given")
	}
	k := &Keyring{}
	seen := map[string]bool{}
	for i, key := range keys {
		if len(key) != KEKSize {
			return nil, fmt.Errorf("key %d is %d bytes; a key-encryption key is %d random bytes (64 hex digits)", i+1, len(key), KEKSize)
		}
		id := KEKID(key)
		if seen[id] {
			return nil, fmt.Errorf("key %d (id %s) is given twice", i+1, id)
		}
		seen[id] = true
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, kek{id: id, aead: aead})
	}
	return k, nil
}

// ParseKEK parses the contents of a --kek-file. Two forms are accepted:
//
//   - text: one key per line, 64 hex digits (an optional 0x prefix);
//     empty lines and lines starting with '#' are ignored. The first key
//     is current, the others are older keys still accepted for reading.
//   - raw: exactly 32 bytes that are not such text, one key.
//
// Generate a key with: head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
func ParseKEK(data []byte) (*Keyring, error) {
	if len(data) == KEKSize && !isHexText(data) {
		return NewKeyring(bytes.Clone(data))
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(strings.TrimPrefix(line, "0x"), "0X")
		key, err := hex.DecodeString(line)
		if err != nil || len(key) != KEKSize {
			return nil, fmt.Errorf("line %d: not a key; write 64 hex digits (32 random bytes) per line, the current key first", i+1)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key in the file; write 64 hex digits (32 random bytes), e.g. from: head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'")
	}
	k, err := NewKeyring(keys...)
	for _, key := range keys {
		clear(key)
	}
	return k, err
}

func isHexText(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '\n', c == '\r', c == ' ', c == 'x', c == '#':
		default:
			return false
		}
	}
	return true
}

// LoadKEKFile reads and parses the --kek-file at path. The file must not
// be readable or writable by group or others.
func LoadKEKFile(path string) (*Keyring, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--kek-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("--kek-file %s has mode %v; it holds the key that protects every SA key and PSK: make it readable by root only (chmod 600)", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--kek-file: %w", err)
	}
	defer clear(data)
	k, err := ParseKEK(data)
	if err != nil {
		return nil, fmt.Errorf("--kek-file %s: %w", path, err)
	}
	return k, nil
}

// CurrentID is the id of the key Seal uses.
func (k *Keyring) CurrentID() string { return k.keys[0].id }

// IDs lists the ids of every key, the current one first.
func (k *Keyring) IDs() []string {
	out := make([]string, len(k.keys))
	for i, x := range k.keys {
		out[i] = x.id
	}
	return out
}

// envelope is a sealed record value as stored in etcd:
//
//	{"v":1,"kid":"0123456789abcdef","nonce":"<base64 12 bytes>","ct":"<base64>"}
//
// ct is AES-256-GCM of the record under the key kid, with the record's
// location (see aad) as additional data, so a sealed value cannot be
// moved to another key or host unnoticed.
type envelope struct {
	V     int    `json:"v"`
	KID   string `json:"kid"`
	Nonce []byte `json:"nonce"`
	CT    []byte `json:"ct"`
}

const envelopeVersion = 1

// aad is the additional data that binds a sealed value to its location
// (the etcd key without the prefix, e.g. "hosts/b/sa/web-out").
func aad(loc string) []byte { return []byte("vifsec-record-v1\x00" + loc) }

// Seal encrypts plain for the location loc with the current key.
func (k *Keyring) Seal(loc string, plain []byte) []byte {
	cur := k.keys[0]
	nonce := make([]byte, cur.aead.NonceSize())
	rand.Read(nonce) // never fails (Go ≥ 1.24)
	env := envelope{V: envelopeVersion, KID: cur.id, Nonce: nonce, CT: cur.aead.Seal(nil, nonce, plain, aad(loc))}
	b, err := json.Marshal(env)
	if err != nil {
		panic(fmt.Sprintf("etcd: marshal envelope: %v", err))
	}
	return b
}

// ErrUnknownKEK is wrapped by Open's error when a value is sealed with a
// key that is not in the keyring.
var ErrUnknownKEK = errors.New("sealed with a key-encryption key that is not in --kek-file")

// Open decrypts an envelope stored at loc. It returns the plaintext and the
// id of the key that sealed it.
func (k *Keyring) Open(loc string, sealed []byte) (plain []byte, kid string, err error) {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(sealed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, "", fmt.Errorf("not a sealed record: %w", err)
	}
	if env.V != envelopeVersion {
		return nil, "", fmt.Errorf("sealed record version %d; this vifsecd reads version %d", env.V, envelopeVersion)
	}
	for _, x := range k.keys {
		if x.id != env.KID {
			continue
		}
		if len(env.Nonce) != x.aead.NonceSize() {
			return nil, env.KID, fmt.Errorf("sealed record: nonce of %d bytes, want %d", len(env.Nonce), x.aead.NonceSize())
		}
		plain, err := x.aead.Open(nil, env.Nonce, env.CT, aad(loc))
		if err != nil {
			return nil, env.KID, fmt.Errorf("sealed record does not authenticate under key %s (altered, or moved from another key)", env.KID)
		}
		return plain, env.KID, nil
	}
	return nil, env.KID, fmt.Errorf("key id %q: %w (it has %s)", env.KID, ErrUnknownKEK, strings.Join(k.IDs(), ", "))
}
