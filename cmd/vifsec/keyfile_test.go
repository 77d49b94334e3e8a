package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

const (
	cbcKey  = "0x000102030405060708090a0b0c0d0e0f" // aes128-cbc
	hmacKey = "0x6970763672656164796c6f67736861316f757432"
)

// keyRig is a CLI rig with VM vm1 (no --ip: any SA address is its own).
func keyRig(t *testing.T) *cliRig {
	r := newCLIRig(t)
	if err := r.d.AddTenant(tenant.Tenant{Name: "t1"}); err != nil {
		t.Fatal(err)
	}
	mac, _ := tenant.ParseMAC("52:54:00:00:00:01")
	if err := r.d.AttachVM(tenant.VM{Name: "vm1", Tenant: "t1", Dev: "tap1", MAC: mac}); err != nil {
		t.Fatal(err)
	}
	return r
}

func saArgs(name, spi string, keys ...string) []string {
	return append([]string{"sa", "add", "--vm", "vm1", "--sa-source", "2001:db8::1", "--sa-destination", "2001:db8::2",
		"--sa-mode", "transport", "--sa-spi", spi, "--encryption-algorithm", "aes128-cbc",
		"--integrity-algorithm", "hmac-sha1", "--sa-name", name}, keys...)
}

// installedKeys returns the keys the daemon holds for SA name.
func installedKeys(t *testing.T, d *daemon.Daemon, name string) (enc, integ []byte) {
	t.Helper()
	s := d.SADB().Get(name)
	if s == nil {
		t.Fatalf("SA %q not installed", name)
	}
	c := s.ConfigWithKeys()
	return c.EncKey, c.IntegKey
}

// TestSAKeyFiles: --encryption-key-file and --integrity-key-file read the
// keys from files (one line, 0x-hex or text) or from stdin with -; the
// daemon gets exactly those keys, and nothing warns. The esxcli flags
// still work and warn on stderr that the key is visible to other users.
func TestSAKeyFiles(t *testing.T) {
	r := keyRig(t)
	dir := t.TempDir()
	encFile, integFile := filepath.Join(dir, "enc"), filepath.Join(dir, "integ")
	os.WriteFile(encFile, []byte(cbcKey+"\n"), 0o600)
	os.WriteFile(integFile, []byte(hmacKey+"\r\n"), 0o600)
	wantEnc, _ := sa.ParseKey(cbcKey)
	wantInteg, _ := sa.ParseKey(hmacKey)

	for _, tc := range []struct {
		sa, spi, stdin string
		keys           []string
	}{
		{"files", "0x1000", "", []string{"--encryption-key-file", encFile, "--integrity-key-file", integFile}},
		{"stdin-for-one", "0x1001", hmacKey + "\n", []string{"--encryption-key-file", encFile, "--integrity-key-file", "-"}},
		{"stdin-for-both", "0x1002", cbcKey + "\n" + hmacKey, []string{"--encryption-key-file=-", "--integrity-key-file=-"}},
	} {
		code, _, stderr := r.vifsec(tc.stdin, saArgs(tc.sa, tc.spi, tc.keys...)...)
		if code != exitOK || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q; want 0 and no warning", tc.sa, code, stderr)
		}
		enc, integ := installedKeys(t, r.d, tc.sa)
		if !bytes.Equal(enc, wantEnc) || !bytes.Equal(integ, wantInteg) {
			t.Errorf("%s: installed keys differ from the files'", tc.sa)
		}
		// The next case installs the same keys: two SAs under one key
		// would be warned about.
		if code, _, stderr := r.vifsec("", "sa", "remove", "--sa-name", tc.sa); code != exitOK {
			t.Fatalf("sa remove %s: exit %d %q", tc.sa, code, stderr)
		}
	}

	// The esxcli flags: accepted, with a warning per key on stderr.
	code, _, stderr := r.vifsec("", saArgs("flags", "0x2000", "--encryption-key", cbcKey, "--integrity-key", hmacKey)...)
	if code != exitOK || !strings.Contains(stderr, "warning: --encryption-key: a key on the command line is visible") ||
		!strings.Contains(stderr, "warning: --integrity-key: a key on the command line is visible") || !strings.Contains(stderr, "--encryption-key-file") {
		t.Errorf("keys as flags: exit %d, stderr %q; want 0 with a warning naming each flag and its -file", code, stderr)
	}
	if enc, integ := installedKeys(t, r.d, "flags"); !bytes.Equal(enc, wantEnc) || !bytes.Equal(integ, wantInteg) {
		t.Errorf("keys as flags: installed keys differ")
	}

	// A key file others may read: accepted, with a warning.
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte(cbcKey), 0o644)
	os.Chmod(loose, 0o644)
	if code, _, stderr := r.vifsec("", saArgs("loose", "0x3000", "--encryption-key-file", loose, "--integrity-key-file", integFile)...); code != exitOK ||
		!strings.Contains(stderr, "--encryption-key-file "+loose+" is readable by other users") {
		t.Errorf("mode 0644 key file: exit %d, stderr %q", code, stderr)
	}
}

// TestSAKeyFileRefusals: a key given both ways is a usage error; a key
// file that is missing, empty or not one line, or nothing on stdin, is
// refused naming the flag; nothing is added.
func TestSAKeyFileRefusals(t *testing.T) {
	r := keyRig(t)
	dir := t.TempDir()
	integFile := filepath.Join(dir, "integ")
	os.WriteFile(integFile, []byte(hmacKey), 0o600)
	empty, twoLines := filepath.Join(dir, "empty"), filepath.Join(dir, "two")
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(twoLines, []byte(cbcKey+"\n"+cbcKey+"\n"), 0o600)
	for _, tc := range []struct {
		name, stdin string
		keys        []string
		code        int
		want        string
	}{
		{"both ways", "", []string{"--encryption-key", cbcKey, "--encryption-key-file", empty, "--integrity-key-file", integFile}, exitUsage, "--encryption-key and --encryption-key-file exclude each other"},
		{"missing file", "", []string{"--encryption-key-file", filepath.Join(dir, "nosuch"), "--integrity-key-file", integFile}, exitRejected, "--encryption-key-file: open"},
		{"empty file", "", []string{"--encryption-key-file", empty, "--integrity-key-file", integFile}, exitRejected, "--encryption-key-file " + empty + ": empty"},
		{"two lines", "", []string{"--encryption-key-file", twoLines, "--integrity-key-file", integFile}, exitRejected, "more than one line"},
		{"empty stdin", "", []string{"--encryption-key-file", "-", "--integrity-key-file", integFile}, exitRejected, "--encryption-key-file -: no key on stdin"},
		{"one line for two", cbcKey + "\n", []string{"--encryption-key-file", "-", "--integrity-key-file", "-"}, exitRejected, "--integrity-key-file -: no key on stdin"},
	} {
		code, _, stderr := r.vifsec(tc.stdin, saArgs("x", "0x4000", tc.keys...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d with %q", tc.name, code, stderr, tc.code, tc.want)
		}
		if strings.Contains(stderr, strings.TrimPrefix(cbcKey, "0x")) {
			t.Errorf("%s: the key appears in the message", tc.name)
		}
	}
	if n := len(r.d.SAs()); n != 0 {
		t.Errorf("%d SAs added by refused requests", n)
	}
}
