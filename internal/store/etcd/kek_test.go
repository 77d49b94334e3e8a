package etcd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KEKSize) }

func TestParseKEK(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	raw := make([]byte, KEKSize)
	for i := range raw {
		raw[i] = byte(0x80 + i) // not hex text
	}
	tests := []struct {
		name    string
		data    string
		ids     []string
		wantErr string
	}{
		{"one hex line", hex.EncodeToString(k1) + "\n", []string{KEKID(k1)}, ""},
		{"current then old, comments, 0x", "# rotated\n0x" + hex.EncodeToString(k2) + "\n\n" + strings.ToUpper(hex.EncodeToString(k1)) + "\n", []string{KEKID(k2), KEKID(k1)}, ""},
		{"raw 32 bytes", string(raw), []string{KEKID(raw)}, ""},
		{"short", "abcd\n", nil, "line 1: not a key"},
		{"empty", "\n# nothing\n", nil, "no key"},
		{"twice", hex.EncodeToString(k1) + "\n" + hex.EncodeToString(k1), nil, "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKEK([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(k.IDs(), ","); got != strings.Join(tt.ids, ",") {
				t.Errorf("ids %s, want %s", got, strings.Join(tt.ids, ","))
			}
		})
	}
	// The id is the first 8 bytes of SHA-256 of the key, in hex.
	if id := KEKID(k1); len(id) != 16 {
		t.Errorf("id %q: want 16 hex digits", id)
	}
}

func TestLoadKEKFileMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(p, []byte(hex.EncodeToString(testKey(3))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEKFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable --kek-file accepted: %v", err)
	}
	os.Chmod(p, 0o600)
	if _, err := LoadKEKFile(p); err != nil {
		t.Fatal(err)
	}
}

func TestSealOpen(t *testing.T) {
	old, _ := NewKeyring(testKey(1))
	rotated, _ := NewKeyring(testKey(2), testKey(1))
	onlyNew, _ := NewKeyring(testKey(2))
	secret := []byte(`{"enc_key":"c2VjcmV0LWtleS1ieXRlcw=="}`)
	sealed := old.Seal("hosts/a/sa/x", secret)
	if bytes.Contains(sealed, secret) || bytes.Contains(sealed, []byte("c2VjcmV0")) {
		t.Fatalf("sealed value shows the plaintext: %s", sealed)
	}
	// An older key of the ring opens it, and says which key it was.
	got, kid, err := rotated.Open("hosts/a/sa/x", sealed)
	if err != nil || !bytes.Equal(got, secret) || kid != old.CurrentID() {
		t.Fatalf("Open = %q, %s, %v", got, kid, err)
	}
	// Moved to another location: refused.
	if _, _, err := rotated.Open("hosts/b/sa/x", sealed); err == nil {
		t.Error("a sealed value moved to another key opened")
	}
	// A ring without the key.
	if _, _, err := onlyNew.Open("hosts/a/sa/x", sealed); !errors.Is(err, ErrUnknownKEK) {
		t.Errorf("Open without the key: %v, want ErrUnknownKEK", err)
	}
	// Altered ciphertext.
	bad := bytes.Replace(sealed, []byte(`"ct":"`), []byte(`"ct":"AA`), 1)
	if _, _, err := old.Open("hosts/a/sa/x", bad); err == nil {
		t.Error("altered ciphertext opened")
	}
	// Two seals of the same value differ (random nonce).
	if bytes.Equal(old.Seal("l", secret), old.Seal("l", secret)) {
		t.Error("two seals are equal")
	}
	// Seal uses the current key.
	if _, kid, _ := rotated.Open("l", rotated.Seal("l", secret)); kid != onlyNew.CurrentID() {
		t.Errorf("sealed with %s, want the current key %s", kid, onlyNew.CurrentID())
	}
}

// FuzzOpen feeds arbitrary bytes as a sealed value: Open must not panic,
// and must never return plaintext for bytes it did not seal.
func FuzzOpen(f *testing.F) {
	k, _ := NewKeyring(testKey(7))
	f.Add(k.Seal("fleet/tenant/acme", []byte(`{"name":"acme"}`)))
	f.Add([]byte(`{"v":1,"kid":"0000000000000000","nonce":"AAAAAAAAAAAAAAAA","ct":""}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, _, err := k.Open("fleet/tenant/acme", b)
		if err == nil && !bytes.Equal(plain, []byte(`{"name":"acme"}`)) {
			t.Fatalf("opened forged value %q → %q", b, plain)
		}
	})
}

// FuzzParseKEK: arbitrary --kek-file contents never panic; a keyring it
// returns seals and opens.
func FuzzParseKEK(f *testing.F) {
	f.Add([]byte(hex.EncodeToString(testKey(1))))
	f.Add([]byte("# c\n0x" + hex.EncodeToString(testKey(1)) + "\n" + hex.EncodeToString(testKey(2))))
	f.Add(testKey(0x90))
	f.Add([]byte("zz"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKEK(b)
		if err != nil {
			return
		}
		got, _, err := k.Open("x", k.Seal("x", []byte("v")))
		if err != nil || string(got) != "v" {
			t.Fatalf("round trip: %q %v", got, err)
		}
	})
}
