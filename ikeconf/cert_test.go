package ikeconf

import (
	"bytes"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/pkitest"
)

// FuzzParsePEM feeds operator PEM to the certificate and CRL parsers: they
// never panic, a refusal returns nothing, and a server certificate that
// is accepted leads with the certificate its key belongs to and holds
// the key's PKCS#8 encoding.
func FuzzParsePEM(f *testing.F) {
	ca := pkitest.NewCA("vifsec test CA")
	srv := ca.Issue("gw.example.com", "gw.example.com")
	f.Add(srv.ServerPEM(ca))
	f.Add(ca.PEM())
	f.Add(ca.CRL(srv.Cert))
	f.Add(srv.ECKeyPEM())
	f.Add(append(srv.CertPEM(), pkitest.NewCA("other").Issue("x").KeyPEM()...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\ntrailing"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if l, err := ParseCRL(bytes.Clone(data)); (l == nil) == (err == nil) {
			t.Fatalf("ParseCRL = %v, %v: want a list or an error", l, err)
		}
		for _, typ := range []CertType{CertServer, CertServerCA, CertClientCA} {
			blocks, err := ReadPEM(bytes.Clone(data), "PEM")
			if err != nil {
				continue
			}
			c, _, err := ParseCertificate("t1", "c", typ, blocks, time.Now())
			switch {
			case err != nil && c != nil:
				t.Fatalf("%v: refused (%v) but returned %+v", typ, err, c)
			case err != nil:
			case typ == CertServer && (c.Key == nil || len(c.PKCS8()) == 0 || !publicKeyEqual(c.Certs[0].PublicKey, c.Key.Public())):
				t.Fatalf("server certificate accepted without its key first: %+v", c)
			case typ != CertServer && (c.Key != nil || c.PKCS8() != nil):
				t.Fatalf("%v accepted with a private key", typ)
			}
			if c != nil {
				c.Zero()
				if c.Key != nil || c.PKCS8() != nil {
					t.Fatal("Zero left the key")
				}
			}
		}
	})
}
