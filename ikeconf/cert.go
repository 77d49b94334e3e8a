package ikeconf

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vifsec/vifsec/tenant"
)

// CertType is what an installed certificate is for (ONTAP `security
// certificate install -type`). The zero value is invalid.
type CertType uint8

const (
	CertInvalid CertType = iota
	// CertServer is our own certificate chain with its private key.
	CertServer
	// CertServerCA is a CA of the server side (ours or a peer gateway's).
	CertServerCA
	// CertClientCA is a CA of client peers.
	CertClientCA
)

func (t CertType) String() string {
	switch t {
	case CertServer:
		return "server"
	case CertServerCA:
		return "server-ca"
	case CertClientCA:
		return "client-ca"
	}
	return fmt.Sprintf("CertType(%d)", uint8(t))
}

// IsCA reports whether t holds CA certificates.
func (t CertType) IsCA() bool { return t == CertServerCA || t == CertClientCA }

// ParseCertType parses `--type`: server, server-ca or client-ca.
func ParseCertType(s string) (CertType, error) {
	switch s {
	case "server":
		return CertServer, nil
	case "server-ca":
		return CertServerCA, nil
	case "client-ca":
		return CertClientCA, nil
	}
	return CertInvalid, fmt.Errorf("%q is not a certificate type; use server (a certificate chain and its private key), server-ca or client-ca (CA certificates)", s)
}

// maxCerts bounds how many certificates one install may hold.
const maxCerts = 16

// Certificate is an installed certificate of a tenant. Equivalent to:
// `vifsec certificate install --tenant NAME --type TYPE --cert-name NAME`
// with PEM on stdin.
//
// A server certificate is Certs[0] (the one its key belongs to) and the
// chain above it; Key is its private key (PKCS#8 DER), a secret: stored,
// never logged nor listed. A CA install is one or more CA certificates;
// IPsecCA says the tenant's IKE trusts them (`vifsec ca-certificate add`).
type Certificate struct {
	Tenant  string
	Name    string
	Type    CertType
	Certs   []*x509.Certificate
	Key     crypto.Signer // server only
	keyDER  []byte        // Key as PKCS#8, server only
	IPsecCA bool
}

// ID is the certificate's name in the store and in the daemon's maps:
// "TENANT/NAME".
func (c *Certificate) ID() string { return c.Tenant + "/" + c.Name }

// PKCS8 is the private key as PKCS#8 DER, nil but for a server
// certificate: a secret, to be stored and never logged. The bytes are the
// certificate's own; Zero clears them.
func (c *Certificate) PKCS8() []byte { return c.keyDER }

// Zero drops the private key (Go cannot zero the key schedule inside
// crypto/rsa or crypto/ecdsa; vifsec zeroes its own copy).
func (c *Certificate) Zero() {
	clear(c.keyDER)
	c.keyDER, c.Key = nil, nil
}

// SignerOf returns the certificate of c that signed l.
func (c *Certificate) SignerOf(l *x509.RevocationList) (*x509.Certificate, error) {
	var errs []error
	for _, x := range c.Certs {
		if !bytes.Equal(x.RawSubject, l.RawIssuer) {
			continue
		}
		err := l.CheckSignatureFrom(x)
		if err == nil {
			return x, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("its issuer is none of %s", c.subjects())
	}
	return nil, errors.Join(errs...)
}

func (c *Certificate) subjects() string {
	s := make([]string, len(c.Certs))
	for i, x := range c.Certs {
		s[i] = x.Subject.String()
	}
	return strings.Join(s, "; ")
}

// ReadPEM splits PEM text read from stdin into blocks, refusing anything
// else in it; what names what the operator should give, for the errors.
func ReadPEM(data []byte, what string) ([]*pem.Block, error) {
	var out []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		out = append(out, b)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		for _, b := range out {
			clear(b.Bytes)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("stdin holds no PEM; give %s as PEM text (-----BEGIN ...-----)", what)
		}
		return nil, fmt.Errorf("stdin has text after the last PEM block that is not PEM; give %s as PEM text only", what)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("stdin is empty; give %s as PEM text on stdin", what)
	}
	return out, nil
}

// ParseCertificate builds and checks a certificate of type t from PEM
// blocks (CERTIFICATE, and for a server one private key block). now, if
// not zero, is the time to warn about validity against. It zeroes the
// key blocks it was given.
func ParseCertificate(tenantName, name string, t CertType, blocks []*pem.Block, now time.Time) (c *Certificate, warnings []string, err error) {
	c = &Certificate{Tenant: tenantName, Name: name, Type: t}
	var keyDER []byte
	defer func() {
		for _, b := range blocks {
			if b.Type != "CERTIFICATE" {
				clear(b.Bytes)
			}
		}
		if err != nil {
			clear(keyDER)
			c = nil
		}
	}()
	if err := tenant.ValidName(tenantName); err != nil {
		return nil, nil, fmt.Errorf("--tenant: %w", err)
	}
	if err := tenant.ValidName(name); err != nil {
		return nil, nil, fmt.Errorf("--cert-name: %w", err)
	}
	if t != CertServer && !t.IsCA() {
		return nil, nil, fmt.Errorf("--type: not set; use server, server-ca or client-ca")
	}
	var keys int
	for i, b := range blocks {
		switch b.Type {
		case "CERTIFICATE":
			x, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM certificate %d: %w", i+1, err)
			}
			c.Certs = append(c.Certs, x)
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			keys++
			if keys > 1 {
				return nil, nil, fmt.Errorf("PEM: more than one private key; give the server certificate's key only")
			}
			if _, enc := b.Headers["Proc-Type"]; enc {
				return nil, nil, fmt.Errorf("PEM: the private key is encrypted; give it unencrypted (openssl pkey -in key.pem)")
			}
			k, err := parseKey(b)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM private key: %w", err)
			}
			c.Key = k
			if keyDER, err = x509.MarshalPKCS8PrivateKey(k); err != nil {
				return nil, nil, fmt.Errorf("PEM private key: %w", err)
			}
		case "ENCRYPTED PRIVATE KEY":
			return nil, nil, fmt.Errorf("PEM: the private key is encrypted; give it unencrypted (openssl pkey -in key.pem)")
		default:
			return nil, nil, fmt.Errorf("PEM block %d is %q; give CERTIFICATE blocks and, for --type server, one PRIVATE KEY", i+1, b.Type)
		}
	}
	switch {
	case len(c.Certs) == 0:
		return nil, nil, fmt.Errorf("PEM: no CERTIFICATE block")
	case len(c.Certs) > maxCerts:
		return nil, nil, fmt.Errorf("PEM: %d certificates; one install holds at most %d", len(c.Certs), maxCerts)
	}
	if t == CertServer {
		if c.Key == nil {
			return nil, nil, fmt.Errorf("--type server: PEM has no private key; give the certificate, its chain and its private key (PKCS#8, EC or RSA)")
		}
		// The certificate the key belongs to goes first.
		i := slices.IndexFunc(c.Certs, func(x *x509.Certificate) bool { return publicKeyEqual(x.PublicKey, c.Key.Public()) })
		if i < 0 {
			return nil, nil, fmt.Errorf("--type server: the private key belongs to none of the %d certificates given", len(c.Certs))
		}
		c.Certs[0], c.Certs[i] = c.Certs[i], c.Certs[0]
		if err := checkSigningKey(c.Key); err != nil {
			return nil, nil, fmt.Errorf("--type server: %w", err)
		}
		leaf := c.Certs[0]
		if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			warnings = append(warnings, fmt.Sprintf("certificate %s (%s) does not allow digitalSignature; peers may refuse it for IKE", name, leaf.Subject))
		}
		c.keyDER = keyDER
	} else {
		if keys > 0 {
			return nil, nil, fmt.Errorf("--type %s takes CA certificates only; PEM has a private key (a CA's key never belongs on a gateway)", t)
		}
		for _, x := range c.Certs {
			if !x.BasicConstraintsValid || !x.IsCA {
				return nil, nil, fmt.Errorf("--type %s: %s is not a CA certificate (no basicConstraints CA:TRUE); install it with --type server if it is yours", t, x.Subject)
			}
		}
	}
	if !now.IsZero() {
		for _, x := range c.Certs {
			switch {
			case now.After(x.NotAfter):
				warnings = append(warnings, fmt.Sprintf("certificate %s (%s) expired on %s", name, x.Subject, x.NotAfter.UTC().Format(time.RFC3339)))
			case now.Before(x.NotBefore):
				warnings = append(warnings, fmt.Sprintf("certificate %s (%s) is not valid before %s", name, x.Subject, x.NotBefore.UTC().Format(time.RFC3339)))
			}
		}
	}
	return c, warnings, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T cannot sign", k)
	}
	return s, nil
}

// checkSigningKey accepts what IKE AUTH can sign with here: RSA of at
// least 2048 bits, ECDSA on P-256, P-384 or P-521.
func checkSigningKey(k crypto.Signer) error {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < 2048 {
			return fmt.Errorf("the RSA key has %d bits; use at least 2048", n)
		}
		return nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not supported; use P-256, P-384 or P-521", k.Curve.Params().Name)
	}
	return fmt.Errorf("a %T key is not supported for IKE; use RSA (2048 bits or more) or ECDSA (P-256, P-384, P-521)", k)
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	x, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && x.Equal(b)
}

// CRL is a certificate revocation list of one of a tenant's CAs.
// Equivalent to: `vifsec crl add --tenant NAME < CRL.pem` *(ext)*.
type CRL struct {
	Tenant string
	// CAName is the installed CA certificate that signed it.
	CAName string
	list   *x509.RevocationList
}

// NewCRL is list, signed by the tenant's CA certificate caName.
func NewCRL(tenantName, caName string, list *x509.RevocationList) *CRL {
	return &CRL{Tenant: tenantName, CAName: caName, list: list}
}

// ID names a CRL by tenant and issuer, in the store and in the daemon's
// maps: a newer CRL of the same issuer replaces it.
func (l *CRL) ID() string {
	h := sha256.Sum256(l.list.RawIssuer)
	return l.Tenant + "/" + hex.EncodeToString(h[:8])
}

// List returns the parsed list (read only).
func (l *CRL) List() *x509.RevocationList { return l.list }

// ParseCRL parses a CRL given as PEM text on stdin: exactly one X509 CRL
// block.
func ParseCRL(pemData []byte) (*x509.RevocationList, error) {
	blocks, err := ReadPEM(pemData, "the CRL")
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 || blocks[0].Type != "X509 CRL" {
		return nil, errors.New("PEM: give exactly one X509 CRL block (-----BEGIN X509 CRL-----); add several CRLs one at a time")
	}
	l, err := x509.ParseRevocationList(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("PEM X509 CRL: %v", err)
	}
	return l, nil
}
