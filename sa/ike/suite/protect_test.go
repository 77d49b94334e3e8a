package suite

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
)

// RFC 7634 Appendix B: an INFORMATIONAL request carrying one Notify
// (SET_WINDOW_SIZE 10) under ChaCha20-Poly1305, with key 80..9f, salt
// a0a1a2a3 and IV 1011121314151617.
func TestProtectorRFC7634(t *testing.T) {
	s := IKE{Encr: EncrChaCha20Poly1305, PRF: PRFHMACSHA256, DH: DHCurve25519}
	key := unhex(t, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3")
	p, err := NewProtector(s, key, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.ctr.Store(0x1011121314151616) // Seal uses the next value
	hdr := unhex(t, `c0c1c2c3c4c5c6c7 d0d1d2d3d4d5d6d7 2e 20 25 00 00000009 00000000
		29 00 0000`)
	plain := unhex(t, "0000000c 00 00 4001 0000000a")
	want := unhex(t, `c0c1c2c3c4c5c6c7 d0d1d2d3d4d5d6d7 2e202500 00000009 00000045
		29000029 1011121314151617
		610394701f8d017f7c12924889 6b71bfe25236efd7cdc670669063 15b2`)
	got := p.Seal(hdr, plain)
	if !bytes.Equal(got, want) {
		t.Fatalf("Seal:\n got %x\nwant %x", got, want)
	}
	if hdr[27] != 0 {
		t.Error("Seal modified hdr")
	}
	out, err := p.Open(want[:32], want[32:])
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("Open = %x, %v; want %x", out, err, plain)
	}
}

// testKeys gives fixed keys of the right lengths for s.
func testKeys(s IKE) (enc, integ []byte) {
	_, al, el, err := s.keyLens()
	if err != nil {
		panic(err)
	}
	enc, integ = make([]byte, el), make([]byte, al)
	for i := range enc {
		enc[i] = byte(i + 1)
	}
	for i := range integ {
		integ[i] = byte(0x80 + i)
	}
	return enc, integ
}

func skHeader(msgID uint32) []byte {
	h := make([]byte, 32)
	binary.BigEndian.PutUint64(h[0:], 0x1122334455667788)
	binary.BigEndian.PutUint64(h[8:], 0x99aabbccddeeff00)
	h[16], h[17], h[18], h[19] = payloadSK, 0x20, 35, 0x08
	binary.BigEndian.PutUint32(h[20:], msgID)
	h[28] = 36 // first inner payload: IDi
	return h
}

func TestProtectorRoundTrip(t *testing.T) {
	for _, s := range []IKE{
		{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: PRFHMACSHA1, Integ: IntegHMACSHA196, DH: DHECP256},
		{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHECP256},
		{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA384, Integ: IntegHMACSHA384192, DH: DHECP256},
		{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA512, Integ: IntegHMACSHA512256, DH: DHECP256},
		{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHECP256},
		{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA256, DH: DHECP256},
		{Encr: EncrChaCha20Poly1305, PRF: PRFHMACSHA256, DH: DHECP256},
	} {
		t.Run(s.String(), func(t *testing.T) {
			enc, integ := testKeys(s)
			p, err := NewProtector(s, enc, integ, &seqReader{})
			if err != nil {
				t.Fatal(err)
			}
			other, _ := NewProtector(s, enc, integ, &seqReader{b: 7})
			for n := 0; n < 70; n++ {
				plain := bytes.Repeat([]byte{byte(n)}, n)
				hdr := skHeader(uint32(n))
				msg := p.Seal(hdr, plain)
				if len(msg) != len(hdr)+n+p.Overhead(n) {
					t.Fatalf("%d bytes: message %d, want %d+%d+%d", n, len(msg), len(hdr), n, p.Overhead(n))
				}
				if int(binary.BigEndian.Uint32(msg[24:])) != len(msg) || int(binary.BigEndian.Uint16(msg[30:])) != len(msg)-28 {
					t.Fatalf("%d bytes: lengths not fixed up: %x", n, msg[:32])
				}
				if !bytes.Equal(msg[:24], hdr[:24]) || !bytes.Equal(msg[28:30], hdr[28:30]) {
					t.Fatal("header changed beyond the lengths")
				}
				got, err := other.Open(msg[:32], msg[32:])
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("%d bytes: Open = %x, %v", n, got, err)
				}
				if n == 33 {
					tamperAll(t, other, msg)
				}
			}
		})
	}
}

// tamperAll flips each bit position of a sealed message in turn: every
// change, in the header (AAD) or the body, must fail the ICV.
func tamperAll(t *testing.T, p *Protector, msg []byte) {
	t.Helper()
	for i := range msg {
		m := bytes.Clone(msg)
		m[i] ^= 0x10
		if _, err := p.Open(m[:32], m[32:]); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("byte %d changed: %v, want ErrIntegrity", i, err)
		}
	}
	if _, err := p.Open(msg[:31], msg[32:]); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("shortened AAD: %v", err)
	}
}

// The CBC construction, rebuilt from crypto/aes and crypto/hmac: RFC 7296
// §3.14 with the IV Seal chose.
func TestProtectorCBCConstruction(t *testing.T) {
	s := IKE{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHECP256}
	enc, integ := testKeys(s)
	p, _ := NewProtector(s, enc, integ, nil)
	plain := []byte("twenty-one bytes long")
	msg := p.Seal(skHeader(1), plain)
	// 21 bytes + pad length = 22 → 32: 10 bytes of padding, pad length 10.
	if len(msg) != 32+16+32+16 {
		t.Fatalf("length %d", len(msg))
	}
	iv, ct := msg[32:48], msg[48:80]
	b, _ := aes.NewCipher(enc)
	pt := make([]byte, 32)
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(pt, ct)
	want := append(append(bytes.Clone(plain), make([]byte, 10)...), 10)
	if !bytes.Equal(pt, want) {
		t.Fatalf("decrypted %x, want %x", pt, want)
	}
	m := hmac.New(integs[1].newH, integ)
	m.Write(msg[:80])
	if !bytes.Equal(m.Sum(nil)[:16], msg[80:]) {
		t.Fatal("ICV is not HMAC-SHA-256 over header..ciphertext truncated to 16")
	}
	// IVs differ message to message.
	if bytes.Equal(iv, p.Seal(skHeader(2), plain)[32:48]) {
		t.Fatal("IV repeated")
	}
}

func TestProtectorShortAndPadding(t *testing.T) {
	cbc := IKE{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHECP256}
	gcm := IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHECP256}
	for _, s := range []IKE{cbc, gcm} {
		enc, integ := testKeys(s)
		p, _ := NewProtector(s, enc, integ, nil)
		for n := 0; n < 16+16+16+1; n++ {
			body := make([]byte, n)
			_, err := p.Open(nil, body)
			if err == nil {
				t.Fatalf("%v: %d zero bytes opened", s, n)
			}
			isShort := n < p.ivLen+p.block+p.icvLen || (s == cbc && (n-p.ivLen-p.icvLen)%16 != 0)
			if isShort != errors.Is(err, ErrShort) {
				t.Errorf("%v: %d bytes: %v", s, n, err)
			}
		}
	}
	// Pad length larger than what was decrypted, with a valid ICV.
	enc, _ := testKeys(gcm)
	p, _ := NewProtector(gcm, enc, nil, nil)
	aad := skHeader(3)
	iv := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	nonce := append(bytes.Clone(p.salt[:]), iv...)
	body := append(iv, p.aead.Seal(nil, nonce, []byte{0, 0, 3}, aad)...)
	if _, err := p.Open(aad, body); !errors.Is(err, ErrPadding) {
		t.Errorf("pad length 3 of 3 bytes: %v, want ErrPadding", err)
	}
	body = append(iv, p.aead.Seal(nil, nonce, []byte{0, 0, 1}, aad)...)
	if got, err := p.Open(aad, body); err != nil || !bytes.Equal(got, []byte{0}) {
		t.Errorf("pad length 1 of 3 bytes: %x, %v", got, err)
	}
	// CBC: any padding content is accepted, the pad length is checked.
	encC, integC := testKeys(cbc)
	pc, _ := NewProtector(cbc, encC, integC, nil)
	for _, last := range []byte{15, 16, 255} {
		pt := make([]byte, 16)
		pt[0], pt[15] = 0xee, last
		ivc := bytes.Repeat([]byte{9}, 16)
		b, _ := aes.NewCipher(encC)
		ct := make([]byte, 16)
		cipher.NewCBCEncrypter(b, ivc).CryptBlocks(ct, pt)
		m := hmac.New(integs[1].newH, integC)
		m.Write(aad)
		m.Write(ivc)
		m.Write(ct)
		body := append(append(ivc, ct...), m.Sum(nil)[:16]...)
		got, err := pc.Open(aad, body)
		if last == 15 {
			if err != nil || len(got) != 0 {
				t.Errorf("pad length 15: %x, %v", got, err)
			}
		} else if !errors.Is(err, ErrPadding) {
			t.Errorf("pad length %d in one block: %v, want ErrPadding", last, err)
		}
	}
}

func TestProtectorHeaders(t *testing.T) {
	s := IKE{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA256, DH: DHECP256}
	enc, _ := testKeys(s)
	p, _ := NewProtector(s, enc, nil, nil)
	// A cleartext payload (Notify, 8 bytes) before SK.
	hdr := skHeader(5)
	hdr[16] = 41
	hdr = append(hdr[:28], append([]byte{payloadSK, 0, 0, 8, 0, 0, 0x40, 0x00}, hdr[28:]...)...)
	msg := p.Seal(hdr, []byte("inner"))
	if binary.BigEndian.Uint16(msg[38:]) != uint16(len(msg)-36) || binary.BigEndian.Uint16(msg[30:]) != 8 {
		t.Fatalf("lengths: SK %d, notify %d", binary.BigEndian.Uint16(msg[38:]), binary.BigEndian.Uint16(msg[30:]))
	}
	if got, err := p.Open(msg[:40], msg[40:]); err != nil || string(got) != "inner" {
		t.Fatalf("Open: %q %v", got, err)
	}
	// SKF: 8-byte payload header, fragment 2 of 3, all of it authenticated.
	hdr = skHeader(6)
	hdr[16] = payloadSKF
	hdr = append(hdr, 0, 2, 0, 3)
	hdr[28] = 0
	msg = p.Seal(hdr, []byte("fragment"))
	if binary.BigEndian.Uint16(msg[30:]) != uint16(len(msg)-28) {
		t.Fatal("SKF length")
	}
	if got, err := p.Open(msg[:36], msg[36:]); err != nil || string(got) != "fragment" {
		t.Fatalf("SKF Open: %q %v", got, err)
	}
	m := bytes.Clone(msg)
	m[35] = 2 // total fragments is authenticated
	if _, err := p.Open(m[:36], m[36:]); !errors.Is(err, ErrIntegrity) {
		t.Fatal("SKF Total Fragments not authenticated")
	}
	for name, bad := range map[string][]byte{
		"short":          make([]byte, 27),
		"no SK":          append(append(skHeader(1)[:16:16], 41), append(make([]byte, 11), 0, 0, 0, 4)...),
		"SK not last":    append(skHeader(1), 0),
		"bad length":     append(append(skHeader(1)[:16:16], 41), append(make([]byte, 11), 0, 0, 0, 2)...),
		"length overrun": append(append(skHeader(1)[:16:16], 41), append(make([]byte, 11), 0, 0, 0, 9)...),
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Seal with %s header did not panic", name)
				}
			}()
			p.Seal(bad, nil)
		}()
	}
}

func TestNewProtectorErrors(t *testing.T) {
	cbc := IKE{Encr: EncrAESCBC, EncrKeyBits: 128, PRF: PRFHMACSHA256, Integ: IntegHMACSHA256128, DH: DHECP256}
	gcm := IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHECP256}
	for _, tc := range []struct {
		s          IKE
		enc, integ int
	}{
		{cbc, 15, 32}, {cbc, 16, 31}, {cbc, 16, 0}, {gcm, 16, 0}, {gcm, 20, 32}, {IKE{}, 16, 0},
	} {
		if _, err := NewProtector(tc.s, make([]byte, tc.enc), make([]byte, tc.integ), nil); err == nil {
			t.Errorf("%v with %d/%d-byte keys accepted", tc.s, tc.enc, tc.integ)
		}
	}
	if _, err := NewProtector(gcm, make([]byte, 20), nil, bytes.NewReader(nil)); err == nil {
		t.Error("failing rand accepted")
	}
}

// Seal from many goroutines: no IV repeats (the AEAD counter is atomic).
func TestProtectorConcurrentIVs(t *testing.T) {
	s := IKE{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHECP256}
	enc, _ := testKeys(s)
	p, _ := NewProtector(s, enc, nil, nil)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				iv := string(p.Seal(skHeader(0), nil)[32:40])
				mu.Lock()
				if seen[iv] {
					t.Error("IV repeated")
				}
				seen[iv] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
