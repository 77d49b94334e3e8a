package suite

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// A strongSwan vector is what two charons (strongSwan 5.9.8, debug level 4
// for ike, chd and net) logged while setting up an IKE SA and its first
// Child SA: the IKE_SA_INIT messages and the encrypted IKE_AUTH request as
// they went over the wire, g^ir, SKEYSEED and every key charon derived, the
// initiator's IDi', signed octets and (PSK) AUTH data or (certificates)
// certificate, and the Child SA keys.
// TestIntegrationStrongSwanVectors records them (testdata/strongswan-*.txt)
// and checks them live; TestStrongSwanVectors checks the recorded ones.
type swVector struct {
	name string
	f    map[string]string
}

var swVectorKeys = []string{
	"ike", "esp", "auth", "psk", "cert_i", "octets_i",
	"init_request", "init_response", "auth_request",
	"shared", "skeyseed", "sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr",
	"idi", "auth_i",
	"child_enc_i", "child_integ_i", "child_enc_r", "child_integ_r",
}

func (v *swVector) bytes(t *testing.T, k string) []byte {
	t.Helper()
	s, ok := v.f[k]
	if !ok {
		t.Fatalf("vector %s: no %s", v.name, k)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("vector %s: %s: %v", v.name, k, err)
	}
	return b
}

// write stores v's fields among keys, in that order, under comment's
// lines.
func (v *swVector) write(path string, comment, keys []string) error {
	var b strings.Builder
	for _, c := range comment {
		fmt.Fprintf(&b, "# %s\n", c)
	}
	for _, k := range keys {
		if s, ok := v.f[k]; ok {
			fmt.Fprintf(&b, "%s = %s\n", k, s)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func readVector(path string) (*swVector, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	v := &swVector{name: filepath.Base(path), f: map[string]string{}}
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		v.f[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return v, sc.Err()
}

// payloadOf walks an IKE message's cleartext chain (or a decrypted one
// from first at offset 0) and returns the body of the first payload of
// type want, after its 4-byte generic header.
func payloadOf(t *testing.T, msg []byte, first byte, off int, want byte) []byte {
	t.Helper()
	next := first
	for next != 0 {
		if off+4 > len(msg) {
			break
		}
		n := int(binary.BigEndian.Uint16(msg[off+2:]))
		if n < 4 || off+n > len(msg) {
			t.Fatalf("payload at %d has length %d of %d", off, n, len(msg))
		}
		if next == want {
			return msg[off+4 : off+n]
		}
		next, off = msg[off], off+n
	}
	t.Fatalf("no payload of type %d", want)
	return nil
}

// checkVector checks this package against everything charon derived.
func checkVector(t *testing.T, v *swVector) {
	ss, err := ParseIKEProposal(v.f["ike"])
	if err != nil || len(ss) != 1 {
		t.Fatalf("ike proposal %q: %v %v", v.f["ike"], ss, err)
	}
	s := ss[0]
	es, err := ParseESPProposal(v.f["esp"])
	if err != nil || len(es) != 1 {
		t.Fatalf("esp proposal %q: %v %v", v.f["esp"], es, err)
	}
	req, resp := v.bytes(t, "init_request"), v.bytes(t, "init_response")
	spii, spir := binary.BigEndian.Uint64(req), binary.BigEndian.Uint64(resp[8:])
	ni := payloadOf(t, req, req[16], 28, 40)
	nr := payloadOf(t, resp, resp[16], 28, 40)
	ke := payloadOf(t, resp, resp[16], 28, 34)
	if g := binary.BigEndian.Uint16(ke); g != s.DH || len(ke)-4 != PublicLen(s.DH) {
		t.Errorf("KEr: group %d, %d bytes; suite says %s with %d", g, len(ke)-4, DHName(s.DH), PublicLen(s.DH))
	}

	// RFC 7296 §2.14.
	seed, k, err := DeriveIKE(s, ni, nr, v.bytes(t, "shared"), spii, spir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seed, v.bytes(t, "skeyseed")) {
		t.Errorf("SKEYSEED %x, charon %x", seed, v.bytes(t, "skeyseed"))
	}
	for name, got := range map[string][]byte{"sk_d": k.D, "sk_ai": k.Ai, "sk_ar": k.Ar, "sk_ei": k.Ei, "sk_er": k.Er, "sk_pi": k.Pi, "sk_pr": k.Pr} {
		want := []byte{}
		if _, ok := v.f[name]; ok {
			want = v.bytes(t, name)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s %x, charon %x", name, got, want)
		}
	}

	// The IKE_AUTH request charon sent opens with SK_ei/SK_ai.
	auth := v.bytes(t, "auth_request")
	if auth[16] != payloadSK {
		t.Fatalf("IKE_AUTH request's first payload is %d, not SK", auth[16])
	}
	in, err := NewProtector(s, k.Ei, k.Ai, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := in.Open(auth[:32], auth[32:])
	if err != nil {
		t.Fatalf("opening charon's IKE_AUTH request: %v", err)
	}
	idi := payloadOf(t, plain, auth[28], 0, 35)
	authP := payloadOf(t, plain, auth[28], 0, 39)
	if !bytes.Equal(idi, v.bytes(t, "idi")) {
		t.Errorf("decrypted IDi %x, charon's IDx' %x", idi, v.bytes(t, "idi"))
	}
	// A message sealed here opens there: same framing, same length.
	out, _ := NewProtector(s, k.Ei, k.Ai, nil)
	again := out.Seal(auth[:32], plain)
	if len(again) != len(auth) {
		t.Errorf("resealed IKE_AUTH is %d bytes, charon's %d", len(again), len(auth))
	}

	// RFC 7296 §2.15: the octets the initiator's AUTH covers.
	prf, _ := NewPRF(s.PRF)
	octets := SignedOctets(req, nr, prf.Sum(k.Pi, idi))
	if _, ok := v.f["octets_i"]; ok && !bytes.Equal(octets, v.bytes(t, "octets_i")) {
		t.Errorf("signed octets differ from charon's")
	}
	if v.f["auth"] == "psk" {
		if authP[0] != AuthPSK || !bytes.Equal(authP[4:], v.bytes(t, "auth_i")) {
			t.Errorf("decrypted AUTH %x, charon %x", authP, v.bytes(t, "auth_i"))
		}
		if got := PSKAuth(prf, []byte(v.f["psk"]), octets); !hmac.Equal(got, v.bytes(t, "auth_i")) {
			t.Errorf("PSK AUTH %x, charon %x", got, v.bytes(t, "auth_i"))
		}
	} else {
		// charon's signature (RFC 7427, method 14) verifies with its
		// certificate's key, and not over other octets.
		cert, err := x509.ParseCertificate(v.bytes(t, "cert_i"))
		if err != nil {
			t.Fatal(err)
		}
		if authP[0] != AuthDigitalSignature {
			t.Errorf("charon used AUTH method %d, want 14", authP[0])
		}
		if err := Verify(cert.PublicKey, authP[0], authP[4:], octets); err != nil {
			t.Errorf("charon's %s signature: %v", v.f["auth"], err)
		}
		octets[len(octets)-1] ^= 1
		if err := Verify(cert.PublicKey, authP[0], authP[4:], octets); err == nil {
			t.Errorf("charon's signature verified over other octets")
		}
	}

	// RFC 7296 §2.17: the first Child SA's keys, from the IKE_SA_INIT nonces.
	ie, ii, re, ri, err := ChildKeys(s, k.D, es[0], nil, ni, nr)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"child_enc_i": ie, "child_integ_i": ii, "child_enc_r": re, "child_integ_r": ri} {
		want := []byte{}
		if _, ok := v.f[name]; ok {
			want = v.bytes(t, name)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s %x, charon %x", name, got, want)
		}
	}
}

func TestStrongSwanVectors(t *testing.T) {
	files, _ := filepath.Glob("testdata/strongswan-*.txt")
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no testdata/strongswan-*.txt vectors")
	}
	for _, f := range files {
		v, err := readVector(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(v.name, func(t *testing.T) { checkVector(t, v) })
	}
}

// A strongSwan 6 vector is what two charons (strongSwan 6.1, debug level 4
// for ike, chd and net) logged while setting up an IKE SA with an
// additional key exchange (RFC 9370) in IKE_INTERMEDIATE (RFC 9242),
// optionally with a PPK (RFC 8784), and its first Child SA: the messages
// as they went over the wire, each key exchange's shared secret (the
// inputs, with the nonces and SPIs in the messages), and everything charon
// derived from them: SKEYSEED and the seven keys after IKE_SA_INIT and
// again after the additional exchange (suffix _1), the PPK-mixed SK_d,
// SK_pi and SK_pr (_ppk), each side's IntAuth, signed octets and AUTH, and
// the Child SA keys. TestIntegrationStrongSwan6Vectors records them
// (testdata/strongswan6-*.txt).
var sw6VectorKeys = []string{
	"ike", "esp", "auth", "psk", "ppk_id", "ppk",
	"init_request", "init_response", "int_request", "int_response", "auth_request", "auth_response",
	"shared", "skeyseed", "sk_d", "sk_ei", "sk_er", "sk_pi", "sk_pr",
	"intauth_i", "intauth_r",
	"shared_1", "skeyseed_1", "sk_d_1", "sk_ei_1", "sk_er_1", "sk_pi_1", "sk_pr_1",
	"sk_d_ppk", "sk_pi_ppk", "sk_pr_ppk",
	"idi", "octets_i", "auth_i", "idr", "octets_r", "auth_r",
	"child_enc_i", "child_enc_r",
}

// checkVector6 recomputes a strongSwan 6 vector's key schedule from its
// inputs with this package and returns every difference from what charon
// logged; nil when all agree. Charon's values are compared, never
// trusted: each key is derived from the previous stage's as this package
// derives it.
func checkVector6(v *swVector) (errs []string) {
	bad := func(format string, args ...any) { errs = append(errs, v.name+": "+fmt.Sprintf(format, args...)) }
	get := func(k string) []byte {
		b, err := hex.DecodeString(v.f[k])
		if _, ok := v.f[k]; !ok || err != nil {
			bad("field %s missing or not hex (%v)", k, err)
		}
		return b
	}
	same := func(what string, got []byte, k string) {
		if want := get(k); !bytes.Equal(got, want) {
			bad("%s: computed %x, charon %x", what, got, want)
		}
	}
	ss, err := ParseIKEProposal(v.f["ike"])
	if err != nil || len(ss) != 1 || !ss[0].HasAddKE() {
		bad("ike proposal %q: %v %v, want one suite with an additional key exchange", v.f["ike"], ss, err)
		return errs
	}
	s := ss[0]
	es, err := ParseESPProposal(v.f["esp"])
	if err != nil || len(es) != 1 {
		bad("esp proposal %q: %v %v", v.f["esp"], es, err)
		return errs
	}
	prf, err := NewPRF(s.PRF)
	if err != nil {
		bad("%v", err)
		return errs
	}
	req, resp := get("init_request"), get("init_response")
	if len(errs) > 0 || len(req) < 28 || len(resp) < 28 {
		return errs
	}
	spii, spir := binary.BigEndian.Uint64(req), binary.BigEndian.Uint64(resp[8:])
	ni, nr, ke := payload(req, req[16], 28, 40), payload(resp, resp[16], 28, 40), payload(resp, resp[16], 28, 34)
	if ni == nil || nr == nil || len(ke) < 4 || binary.BigEndian.Uint16(ke) != s.DH || len(ke)-4 != PublicLen(s.DH) {
		bad("IKE_SA_INIT: Ni %d bytes, Nr %d bytes, KEr %x: want nonces and %s", len(ni), len(nr), ke, DHName(s.DH))
		return errs
	}

	// IKE_SA_INIT (RFC 7296 §2.14).
	seed, k0, err := DeriveIKE(s, ni, nr, get("shared"), spii, spir)
	if err != nil {
		bad("DeriveIKE: %v", err)
		return errs
	}
	same("SKEYSEED", seed, "skeyseed")
	sameKeys := func(k Keys, sfx string) {
		for name, got := range map[string][]byte{"sk_d": k.D, "sk_ei": k.Ei, "sk_er": k.Er, "sk_pi": k.Pi, "sk_pr": k.Pr} {
			same(name+sfx, got, name+sfx)
		}
		if len(k.Ai) != 0 || len(k.Ar) != 0 {
			bad("SK_a%s of %d bytes for an AEAD suite", sfx, len(k.Ai))
		}
	}
	sameKeys(k0, "")

	// IKE_INTERMEDIATE under the IKE_SA_INIT keys: the additional key
	// exchange's KE payloads, and each message chained into IntAuth
	// (RFC 9242 §3.3.2) under the SK_p of its sender.
	method := s.AddKE[0]
	var intAuth [2][]byte
	for i, m := range []struct {
		field        string
		enc, integ   []byte
		skp          []byte
		initiator    bool
		intauthField string
	}{
		{"int_request", k0.Ei, k0.Ai, k0.Pi, true, "intauth_i"},
		{"int_response", k0.Er, k0.Ar, k0.Pr, false, "intauth_r"},
	} {
		msg := get(m.field)
		plain, ok := openSK(msg, s, m.enc, m.integ)
		if !ok {
			bad("%s does not open under the IKE_SA_INIT keys", m.field)
			return errs
		}
		if msg[18] != 43 {
			bad("%s: exchange type %d, want IKE_INTERMEDIATE (43)", m.field, msg[18])
		}
		kep := payload(plain, msg[28], 0, 34)
		if len(kep) < 4 || binary.BigEndian.Uint16(kep) != method || len(kep)-4 != KEDataLen(method, m.initiator) {
			bad("%s: KE payload %d bytes, want %s with %d bytes of data", m.field, len(kep), KEName(method), KEDataLen(method, m.initiator))
		}
		// IntAuth_A: the IKE header and the Encrypted payload's header
		// with lengths as if the message were not encrypted.
		a := append([]byte{}, msg[:32]...)
		binary.BigEndian.PutUint32(a[24:], uint32(32+len(plain)))
		binary.BigEndian.PutUint16(a[30:], uint16(4+len(plain)))
		intAuth[i] = IntAuth(prf, m.skp, nil, a, plain)
		same("IntAuth of "+m.field, intAuth[i], m.intauthField)
	}

	// The additional key exchange (RFC 9370 §2.2.2): SKEYSEED(1) =
	// prf(SK_d(0), SK(1) | Ni | Nr) and seven new keys.
	shared1 := get("shared_1")
	same("SKEYSEED(1)", prf.Sum(k0.D, append(append(append([]byte{}, shared1...), ni...), nr...)), "skeyseed_1")
	k1, err := UpdateIKE(s, k0.D, shared1, ni, nr, spii, spir)
	if err != nil {
		bad("UpdateIKE: %v", err)
		return errs
	}
	sameKeys(k1, "_1")
	k := k1
	if _, ok := v.f["ppk"]; ok {
		// RFC 8784 §3: the PPK replaces SK_d, SK_pi and SK_pr.
		k.D, k.Pi, k.Pr = MixPPK(prf, get("ppk"), k1.D, k1.Pi, k1.Pr)
		same("SK_d'", k.D, "sk_d_ppk")
		same("SK_pi'", k.Pi, "sk_pi_ppk")
		same("SK_pr'", k.Pr, "sk_pr_ppk")
	}

	// IKE_AUTH under the updated keys; each AUTH covers its signed
	// octets (RFC 7296 §2.15) and both IntAuth chains with IKE_AUTH's
	// Message ID.
	for _, m := range []struct {
		field, who       string
		enc, integ, skp  []byte
		first, peerNonce []byte
	}{
		{"auth_request", "i", k.Ei, k.Ai, k.Pi, req, nr},
		{"auth_response", "r", k.Er, k.Ar, k.Pr, resp, ni},
	} {
		msg := get(m.field)
		plain, ok := openSK(msg, s, m.enc, m.integ)
		if !ok {
			bad("%s does not open under the keys after the additional key exchange", m.field)
			continue
		}
		id := payload(plain, msg[28], 0, map[string]byte{"i": 35, "r": 36}[m.who])
		authP := payload(plain, msg[28], 0, 39)
		same("ID"+m.who+" of "+m.field, id, "id"+m.who)
		octets := AppendIntAuth(SignedOctets(m.first, m.peerNonce, prf.Sum(m.skp, id)), intAuth[0], intAuth[1], binary.BigEndian.Uint32(msg[20:]))
		same("signed octets of "+m.field, octets, "octets_"+m.who)
		auth := PSKAuth(prf, []byte(v.f["psk"]), octets)
		same("PSK AUTH of "+m.field, auth, "auth_"+m.who)
		if len(authP) < 4 || authP[0] != AuthPSK || !bytes.Equal(authP[4:], auth) {
			bad("%s carries AUTH %x, computed %x", m.field, authP, auth)
		}
	}

	// RFC 7296 §2.17: the first Child SA's keys, from SK_d (the PPK's
	// where there is one) and the IKE_SA_INIT nonces.
	ie, _, re, _, err := ChildKeys(s, k.D, es[0], nil, ni, nr)
	if err != nil {
		bad("ChildKeys: %v", err)
		return errs
	}
	same("Child SA initiator key", ie, "child_enc_i")
	same("Child SA responder key", re, "child_enc_r")
	return errs
}

// payload is payloadOf returning nil where the chain is broken or has no
// payload of type want.
func payload(msg []byte, first byte, off int, want byte) []byte {
	for next := first; next != 0; {
		if off+4 > len(msg) {
			return nil
		}
		n := int(binary.BigEndian.Uint16(msg[off+2:]))
		if n < 4 || off+n > len(msg) {
			return nil
		}
		if next == want {
			return msg[off+4 : off+n]
		}
		next, off = msg[off], off+n
	}
	return nil
}

// openSK decrypts an IKE message whose only payload is SK.
func openSK(msg []byte, s IKE, enc, integ []byte) ([]byte, bool) {
	if len(msg) < 32 || msg[16] != payloadSK {
		return nil, false
	}
	p, err := NewProtector(s, enc, integ, nil)
	if err != nil {
		return nil, false
	}
	plain, err := p.Open(msg[:32], msg[32:])
	return plain, err == nil
}

func TestStrongSwan6Vectors(t *testing.T) {
	files, _ := filepath.Glob("testdata/strongswan6-*.txt")
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no testdata/strongswan6-*.txt vectors")
	}
	for _, f := range files {
		v, err := readVector(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(v.name, func(t *testing.T) {
			for _, e := range checkVector6(v) {
				t.Error(e)
			}
			// Each input and each recorded value counts: one flipped
			// bit in any field fails the check.
			for k, val := range v.f {
				b, err := hex.DecodeString(val)
				if err != nil || len(b) == 0 {
					continue // the proposals, the PSK
				}
				b[len(b)/2] ^= 0x01
				flipped := &swVector{name: v.name, f: maps.Clone(v.f)}
				flipped.f[k] = hex.EncodeToString(b)
				if len(checkVector6(flipped)) == 0 {
					t.Errorf("%s with one bit flipped: no difference found", k)
				}
			}
		})
	}
}
