// Package pkitest makes throw-away certificate authorities, certificates
// and CRLs for tests of vifsec's IKE configuration (`vifsec certificate
// install`, `ca-certificate add`, `crl add`) and of IKE authentication.
//
// It must not be used outside tests: its keys are generated on the fly and
// never protected.
package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync/atomic"
	"time"
)

var serial atomic.Int64

func nextSerial() *big.Int { return big.NewInt(1000 + serial.Add(1)) }

// CA is a certificate authority with its key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	crl  int64
}

// NewCA returns a self-signed ECDSA P-256 CA named CN=cn, valid from an
// hour ago for a year.
func NewCA(cn string) *CA {
	k := mustKey()
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"vifsec test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &CA{Cert: c, Key: k}
}

// PEM is the CA certificate as PEM.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Leaf is an end-entity certificate and its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Issue returns a certificate for CN=cn signed by ca, with dnsNames as
// subjectAltName DNS names, valid from an hour ago for a year.
func (ca *CA) Issue(cn string, dnsNames ...string) *Leaf {
	return ca.IssueValid(cn, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour), dnsNames...)
}

// IssueValid is Issue with explicit validity.
func (ca *CA) IssueValid(cn string, notBefore, notAfter time.Time, dnsNames ...string) *Leaf {
	k := mustKey()
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"vifsec test"}},
		DNSNames:     dnsNames,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, k.Public(), ca.Key)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &Leaf{Cert: c, Key: k}
}

// CertPEM is the certificate alone as PEM.
func (l *Leaf) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.Cert.Raw})
}

// KeyPEM is the private key as PKCS#8 PEM.
func (l *Leaf) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ECKeyPEM is the private key as SEC 1 ("EC PRIVATE KEY") PEM.
func (l *Leaf) ECKeyPEM() []byte {
	der, err := x509.MarshalECPrivateKey(l.Key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// ServerPEM is what `vifsec certificate install --type server` reads: the
// certificate, the chain above it (the CAs given) and the key.
func (l *Leaf) ServerPEM(chain ...*CA) []byte {
	out := l.CertPEM()
	for _, ca := range chain {
		out = append(out, ca.PEM()...)
	}
	return append(out, l.KeyPEM()...)
}

// CRL returns a PEM CRL of ca revoking certs; each call has a higher CRL
// number than the last.
func (ca *CA) CRL(revoked ...*x509.Certificate) []byte {
	ca.crl++
	return ca.CRLNumber(ca.crl, revoked...)
}

// CRLNumber returns a PEM CRL of ca with the given number.
func (ca *CA) CRLNumber(number int64, revoked ...*x509.Certificate) []byte {
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(24 * time.Hour),
	}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func mustKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}
