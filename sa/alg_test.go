package sa_test

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
)

// The keys of the seeds' esxcli example (seed 001):
// --encryption-key for 3des-cbc and --integrity-key for hmac-sha1.
const (
	seedEncKey   = "0x6970763672656164796c6f676f336465736362636f757432"
	seedIntegKey = "0x6970763672656164796c6f67736861316f757432"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []byte
		wantErr string // substring of the error; "" means success
	}{
		{name: "seed encryption key", in: seedEncKey, want: []byte("ipv6readylogo3descbcout2")},
		{name: "seed integrity key", in: seedIntegKey, want: []byte("ipv6readylogsha1out2")},
		{name: "uppercase hex digits", in: "0xDEADbeef", want: []byte{0xde, 0xad, 0xbe, 0xef}},
		{name: "uppercase prefix", in: "0X00ff", want: []byte{0x00, 0xff}},
		{name: "odd number of digits", in: "0xabc", wantErr: "odd number of digits (3)"},
		{name: "non-hex after 0x", in: "0x12zz", wantErr: "not hex"},
		{name: "space inside hex", in: "0x12  34", wantErr: "not hex"},
		{name: "nothing after 0x", in: "0x", wantErr: "no hex digits"},
		{name: "ASCII", in: "ipv6readylogsha1out2", want: []byte("ipv6readylogsha1out2")},
		{name: "ASCII with space and symbols", in: "a b~!0x", want: []byte("a b~!0x")},
		{name: "ASCII starting with 0", in: "0abc", want: []byte("0abc")},
		{name: "ASCII that looks like hex without 0x", in: "deadbeef", want: []byte("deadbeef")},
		{name: "empty: no key (the length check refuses it where one is needed)", in: "", want: []byte{}},
		{name: "control character", in: "ab\tc", wantErr: "position 2"},
		{name: "non-ASCII", in: "clé", wantErr: "non-ASCII byte at position 2"},
		{name: "DEL", in: "\x7f", wantErr: "position 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sa.ParseKey(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseKey(%q) = %x, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != string(tc.want) {
				t.Fatalf("ParseKey(%q) = %x, %v; want %x", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestSeedSA builds the seeds' esxcli example: its keys parse, have the
// lengths 3des-cbc and hmac-sha1 need, and make a valid SA.
func TestSeedSA(t *testing.T) {
	ek, err := sa.ParseKey(seedEncKey)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := sa.ParseKey(seedIntegKey)
	if err != nil {
		t.Fatal(err)
	}
	c := sa.Config{
		Name: "sa_2", SPI: 0x1000, Mode: sa.ModeTransport,
		Src: netip.MustParseAddr("2001:DB8:1::121"), Dst: netip.MustParseAddr("2001:DB8:1::122"),
		Enc: sa.Enc3DESCBC, EncKey: ek, Integ: sa.IntegHMACSHA1, IntegKey: ik,
	}
	if _, err := sa.New(c); err != nil {
		t.Fatalf("seed SA refused: %v", err)
	}
	if !sa.Enc3DESCBC.Deprecated() {
		t.Error("3des-cbc is not reported as deprecated")
	}
}

func TestCheckSuite(t *testing.T) {
	for _, e := range sa.EncAlgs() {
		for _, i := range sa.IntegAlgs() {
			err := sa.CheckSuite(e, i)
			switch {
			case e.IsAEAD() && i == sa.IntegNone, !e.IsAEAD() && i != sa.IntegNone:
				if err != nil {
					t.Errorf("%v + %v refused: %v", e, i, err)
				}
			case e.IsAEAD():
				if err == nil || !strings.Contains(err.Error(), "--integrity-algorithm none") {
					t.Errorf("%v + %v: %v; want a refusal that names integrity none", e, i, err)
				}
			default: // a non-AEAD cipher, null included, with integrity none
				if err == nil || !strings.Contains(err.Error(), "hmac-sha2-256") || !strings.Contains(err.Error(), "never null") {
					t.Errorf("%v + none: %v; want a refusal that lists the integrity algorithms", e, err)
				}
			}
		}
	}
	if err := sa.CheckSuite(sa.EncInvalid, sa.IntegNone); err == nil || !strings.Contains(err.Error(), "aes128-gcm") {
		t.Errorf("unset encryption: %v; want a refusal listing the choices", err)
	}
	if err := sa.CheckSuite(sa.EncAES128GCM, sa.IntegInvalid); err == nil || !strings.Contains(err.Error(), "hmac-sha1") {
		t.Errorf("unset integrity: %v; want a refusal listing the choices", err)
	}
}

// TestAlgorithmParameters pins the registry to the RFCs.
func TestAlgorithmParameters(t *testing.T) {
	for _, tc := range []struct {
		enc                         sa.EncAlg
		keyLen, saltLen, ivLen, icv int
	}{
		{sa.EncNull, 0, 0, 0, 0},               // RFC 2410
		{sa.Enc3DESCBC, 24, 0, 8, 0},           // RFC 2451
		{sa.EncAES128CBC, 16, 0, 16, 0},        // RFC 3602
		{sa.EncAES256CBC, 32, 0, 16, 0},        // RFC 3602
		{sa.EncAES128GCM, 20, 4, 8, 16},        // RFC 4106 §8.1: key || 4-byte salt
		{sa.EncAES256GCM, 36, 4, 8, 16},        // RFC 4106
		{sa.EncChaCha20Poly1305, 36, 4, 8, 16}, // RFC 7634 §2
	} {
		c := satest.Config("p", satest.Suite{Enc: tc.enc, Integ: sa.IntegNone}, sa.ModeTransport, satest.V6A, satest.V6B, 0x1000)
		if !tc.enc.IsAEAD() {
			c.Integ, c.IntegKey = sa.IntegHMACSHA1, satest.Key(20, 1)
		}
		s := satest.MustNew(c)
		if tc.enc.KeyLen() != tc.keyLen || tc.enc.SaltLen() != tc.saltLen || tc.enc.IVLen() != tc.ivLen || (tc.enc.IsAEAD() && s.ICVLen() != tc.icv) {
			t.Errorf("%v: key %d salt %d IV %d ICV %d; want %d %d %d %d", tc.enc,
				tc.enc.KeyLen(), tc.enc.SaltLen(), tc.enc.IVLen(), s.ICVLen(), tc.keyLen, tc.saltLen, tc.ivLen, tc.icv)
		}
	}
	for _, tc := range []struct {
		integ       sa.IntegAlg
		keyLen, icv int
	}{
		{sa.IntegNone, 0, 0},
		{sa.IntegHMACSHA1, 20, 12},   // RFC 2404
		{sa.IntegHMACSHA256, 32, 16}, // RFC 4868 §2.1
		{sa.IntegHMACSHA384, 48, 24}, // RFC 4868
		{sa.IntegHMACSHA512, 64, 32}, // RFC 4868
	} {
		if tc.integ.KeyLen() != tc.keyLen || tc.integ.ICVLen() != tc.icv {
			t.Errorf("%v: key %d ICV %d; want %d %d", tc.integ, tc.integ.KeyLen(), tc.integ.ICVLen(), tc.keyLen, tc.icv)
		}
	}
}

// TestKeyLengthErrors: every wrong length is refused with a message that
// names the algorithm and the length it needs, in bytes and hex digits.
func TestKeyLengthErrors(t *testing.T) {
	for _, e := range sa.EncAlgs() {
		n := e.KeyLen()
		if err := sa.CheckEncKey(e, make([]byte, n)); err != nil {
			t.Errorf("%v: a %d-byte key refused: %v", e, n, err)
		}
		for _, bad := range []int{0, 1, n - 1, n + 1, 2 * n} {
			if bad == n || bad < 0 {
				continue
			}
			err := sa.CheckEncKey(e, make([]byte, bad))
			if err == nil {
				t.Errorf("%v: a %d-byte key accepted", e, bad)
				continue
			}
			msg := err.Error()
			want := []string{e.String(), fmt.Sprintf("got %d bytes", bad)}
			if n == 0 {
				want = append(want, "takes no key")
			} else {
				want = append(want, fmt.Sprintf("%d-byte key", n), fmt.Sprintf("%d hex digits", 2*n))
			}
			if e.SaltLen() > 0 {
				want = append(want, fmt.Sprintf("%d-byte salt", e.SaltLen()))
			}
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("%v, %d bytes: %q does not say %q", e, bad, msg, w)
				}
			}
		}
	}
	for _, i := range sa.IntegAlgs() {
		n := i.KeyLen()
		if err := sa.CheckIntegKey(i, make([]byte, n)); err != nil {
			t.Errorf("%v: a %d-byte key refused: %v", i, n, err)
		}
		for _, bad := range []int{0, 1, n - 1, n + 1} {
			if bad == n || bad < 0 {
				continue
			}
			err := sa.CheckIntegKey(i, make([]byte, bad))
			want := fmt.Sprintf("%d-byte key (%d hex digits)", n, 2*n)
			if n == 0 {
				want = "takes no key"
			}
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), i.String()) {
				t.Errorf("%v, %d bytes: %v; want an error naming %v and %q", i, bad, err, i, want)
			}
		}
	}
	// Through Config.Validate the message names the flag.
	c := satest.Config("k", satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}, sa.ModeTransport, satest.V6A, satest.V6B, 0x1000)
	c.EncKey = c.EncKey[:16] // the key without its salt: a common mistake
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--encryption-key") || !strings.Contains(err.Error(), "4-byte salt") {
		t.Errorf("aes128-gcm key without salt: %v", err)
	}
	c = satest.Config("k", satest.Suite{Enc: sa.EncAES128CBC, Integ: sa.IntegHMACSHA256}, sa.ModeTransport, satest.V6A, satest.V6B, 0x1000)
	c.IntegKey = c.IntegKey[:20]
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--integrity-key") || !strings.Contains(err.Error(), "32-byte key") {
		t.Errorf("hmac-sha2-256 with a 20-byte key: %v", err)
	}
}

func TestParseAlgCaseInsensitive(t *testing.T) {
	for _, e := range sa.EncAlgs() {
		for _, s := range []string{e.String(), strings.ToUpper(e.String()), algMixCase(e.String())} {
			if got, err := sa.ParseEncAlg(s); err != nil || got != e {
				t.Errorf("ParseEncAlg(%q) = %v, %v; want %v", s, got, err, e)
			}
		}
	}
	for _, i := range sa.IntegAlgs() {
		for _, s := range []string{i.String(), strings.ToUpper(i.String())} {
			if got, err := sa.ParseIntegAlg(s); err != nil || got != i {
				t.Errorf("ParseIntegAlg(%q) = %v, %v; want %v", s, got, err, i)
			}
		}
	}
	for _, s := range []string{"", "aes192-gcm", "aes128gcm", "aes128-gcm ", "des-cbc", "EncAlg(0)"} {
		if got, err := sa.ParseEncAlg(s); err == nil || !strings.Contains(err.Error(), "aes128-gcm, aes256-gcm") {
			t.Errorf("ParseEncAlg(%q) = %v, %v; want an error listing the algorithms", s, got, err)
		}
	}
	for _, s := range []string{"", "hmac-md5", "sha1", "null", "hmac-sha256"} {
		if got, err := sa.ParseIntegAlg(s); err == nil || !strings.Contains(err.Error(), "hmac-sha2-256") {
			t.Errorf("ParseIntegAlg(%q) = %v, %v; want an error listing the algorithms", s, got, err)
		}
	}
	if s := sa.EncInvalid.String(); s != "EncAlg(0)" {
		t.Errorf("EncInvalid.String() = %q", s)
	}
	if s := sa.IntegInvalid.String(); s != "IntegAlg(0)" {
		t.Errorf("IntegInvalid.String() = %q", s)
	}
}

// algMixCase upper-cases every other letter: "aEs128-gCm".
func algMixCase(s string) string {
	b := []byte(s)
	for i := 1; i < len(b); i += 2 {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

func TestConfigValidate(t *testing.T) {
	base := func() sa.Config {
		return satest.Config("v", satest.Suite{Enc: sa.EncAES128GCM, Integ: sa.IntegNone}, sa.ModeTransport, satest.V6A, satest.V6B, 0x1000)
	}
	for _, tc := range []struct {
		name    string
		mod     func(*sa.Config)
		wantErr string // "" means valid
	}{
		{"base", func(*sa.Config) {}, ""},
		{"SPI 0", func(c *sa.Config) { c.SPI = 0 }, "--sa-spi: 0x0 is reserved"},
		{"SPI 0xff", func(c *sa.Config) { c.SPI = 0xff }, "--sa-spi: 0xff is reserved"},
		{"SPI 0x100", func(c *sa.Config) { c.SPI = 0x100 }, ""},
		{"SPI 0xffffffff", func(c *sa.Config) { c.SPI = 0xffffffff }, ""},
		{"no name", func(c *sa.Config) { c.Name = "" }, "--sa-name"},
		{"VLAN 4094", func(c *sa.Config) { c.Scope.VLAN = 4094 }, ""},
		{"VLAN 4095", func(c *sa.Config) { c.Scope.VLAN = 4095 }, "--vlan"},
		{"no mode", func(c *sa.Config) { c.Mode = sa.ModeInvalid }, "--sa-mode"},
		{"bad direction", func(c *sa.Config) { c.Dir = 7 }, "direction"},
		{"no source", func(c *sa.Config) { c.Src = netip.Addr{} }, "--sa-source"},
		{"no destination", func(c *sa.Config) { c.Dst = netip.Addr{} }, "--sa-destination"},
		{"zone", func(c *sa.Config) { c.Src = c.Src.WithZone("eth0") }, "zones"},
		{"v6 to v4", func(c *sa.Config) { c.Dst = satest.V4B }, "different address families"},
		{"v4 to v6", func(c *sa.Config) { c.Src, c.Dst = satest.V4A, satest.V6B }, "different address families"},
		{"v4-mapped v6 to v4", func(c *sa.Config) {
			c.Src, c.Dst = netip.AddrFrom16(satest.V4A.As16()), satest.V4B
		}, ""},
		{"AEAD with integrity", func(c *sa.Config) {
			c.Integ, c.IntegKey = sa.IntegHMACSHA256, satest.Key(32, 1)
		}, "--integrity-algorithm none"},
		{"null with none", func(c *sa.Config) { c.Enc, c.EncKey = sa.EncNull, nil }, "never null"},
		{"replay window 0 (default)", func(c *sa.Config) { c.ReplayWindow = 0 }, ""},
		{"replay window 31", func(c *sa.Config) { c.ReplayWindow = 31 }, "--replay-window: 31 out of range; use 32-4096"},
		{"replay window 32", func(c *sa.Config) { c.ReplayWindow = 32 }, ""},
		{"replay window 4096", func(c *sa.Config) { c.ReplayWindow = 4096 }, ""},
		{"replay window 4097", func(c *sa.Config) { c.ReplayWindow = 4097 }, "--replay-window: 4097"},
		{"replay window -1", func(c *sa.Config) { c.ReplayWindow = -1 }, "--replay-window"},
		{"soft bytes > hard", func(c *sa.Config) {
			c.Lifetime = sa.Lifetime{Soft: sa.Limits{Bytes: 2000}, Hard: sa.Limits{Bytes: 1000}}
		},
			"--lifetime-bytes: soft limit 2000 exceeds hard limit 1000"},
		{"soft packets > hard", func(c *sa.Config) {
			c.Lifetime = sa.Lifetime{Soft: sa.Limits{Packets: 11}, Hard: sa.Limits{Packets: 10}}
		},
			"--lifetime-packets"},
		{"soft seconds > hard", func(c *sa.Config) {
			c.Lifetime = sa.Lifetime{Soft: sa.Limits{Seconds: 3600}, Hard: sa.Limits{Seconds: 60}}
		},
			"--lifetime-seconds"},
		{"soft = hard", func(c *sa.Config) { c.Lifetime = sa.Lifetime{Soft: sa.Limits{Bytes: 10}, Hard: sa.Limits{Bytes: 10}} }, ""},
		{"soft without hard", func(c *sa.Config) { c.Lifetime = sa.Lifetime{Soft: sa.Limits{Seconds: 60}} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v; want error containing %q", err, tc.wantErr)
			}
			if _, nerr := sa.New(c); nerr == nil {
				t.Fatalf("New accepted a config Validate refuses")
			}
		})
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{seedEncKey, seedIntegKey, "0xDEADbeef", "0X00", "0x", "0xabc", "0xzz",
		"ipv6readylogsha1out2", "", "0", "0abc", "ab\tc", "clé", "\x7f", "0x0x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := sa.ParseKey(s)
		isHex := len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')
		printable := true
		for i := 0; i < len(s); i++ {
			printable = printable && s[i] >= 0x20 && s[i] <= 0x7e
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			if !isHex && printable {
				t.Fatalf("printable ASCII key %q refused: %v", s, err)
			}
			return
		}
		if isHex {
			if got := hex.EncodeToString(k); got != strings.ToLower(s[2:]) {
				t.Fatalf("ParseKey(%q) = %x: not the hex after 0x", s, k)
			}
		} else {
			if !printable || string(k) != s {
				t.Fatalf("ASCII key %q came back as %q", s, k)
			}
		}
		// Whatever was accepted can be written back as 0x-hex.
		if len(k) > 0 {
			back, err := sa.ParseKey("0x" + hex.EncodeToString(k))
			if err != nil || string(back) != string(k) {
				t.Fatalf("hex round trip of %x: %x, %v", k, back, err)
			}
		}
	})
}

func FuzzParseEncAlg(f *testing.F) {
	for _, e := range sa.EncAlgs() {
		f.Add(e.String())
	}
	f.Add("AES128-GCM")
	f.Add("aes192-gcm")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := sa.ParseEncAlg(s)
		if err != nil {
			for _, a := range sa.EncAlgs() {
				if strings.EqualFold(s, a.String()) {
					t.Fatalf("ParseEncAlg(%q) refused %v: %v", s, a, err)
				}
			}
			return
		}
		if !strings.EqualFold(s, e.String()) {
			t.Fatalf("ParseEncAlg(%q) = %v", s, e)
		}
		if back, err := sa.ParseEncAlg(e.String()); err != nil || back != e {
			t.Fatalf("round trip of %v: %v, %v", e, back, err)
		}
	})
}

func FuzzParseIntegAlg(f *testing.F) {
	for _, i := range sa.IntegAlgs() {
		f.Add(i.String())
	}
	f.Add("HMAC-SHA2-512")
	f.Add("hmac-md5")
	f.Fuzz(func(t *testing.T, s string) {
		i, err := sa.ParseIntegAlg(s)
		if err != nil {
			for _, a := range sa.IntegAlgs() {
				if strings.EqualFold(s, a.String()) {
					t.Fatalf("ParseIntegAlg(%q) refused %v: %v", s, a, err)
				}
			}
			return
		}
		if !strings.EqualFold(s, i.String()) {
			t.Fatalf("ParseIntegAlg(%q) = %v", s, i)
		}
		if back, err := sa.ParseIntegAlg(i.String()); err != nil || back != i {
			t.Fatalf("round trip of %v: %v, %v", i, back, err)
		}
	})
}
