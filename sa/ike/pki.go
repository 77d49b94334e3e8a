package ike

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// maxPeerCerts bounds the CERT payloads taken from one peer (end entity
// plus intermediates).
const maxPeerCerts = 8

// trust is a policy's parsed PKI state, built once per SetPolicies.
type trust struct {
	roots *x509.CertPool
	crls  []*x509.RevocationList
	// caHashes are the SHA-1 hashes of the roots' SubjectPublicKeyInfo,
	// concatenated, for CERTREQ (RFC 7296 §3.7).
	caHashes []byte
}

func newTrust(roots []*x509.Certificate, crls []*x509.RevocationList) *trust {
	t := &trust{roots: x509.NewCertPool(), crls: crls}
	for _, r := range roots {
		t.roots.AddCert(r)
		h := sha1.Sum(r.RawSubjectPublicKeyInfo)
		t.caHashes = append(t.caHashes, h[:]...)
	}
	return t
}

// errRevoked is returned, wrapped, for a revoked certificate.
var errRevoked = errors.New("certificate revoked")

// verifyChain checks the peer's certificates (DER, end entity first) against
// the roots at time now and the CRLs, and returns the end-entity
// certificate.
//
// Revocation: a CRL counts for a certificate when its issuer name is the
// certificate's issuer and its signature verifies with the issuing
// certificate of the chain. A serial listed in such a CRL is refused even
// if the CRL is past its NextUpdate (a stale CRL still proves a
// revocation). A certificate no valid CRL covers is accepted: this is
// strongSwan's default (non-strict) revocation policy; a CRL whose
// signature does not verify is ignored, as if absent.
func (t *trust) verifyChain(ders [][]byte, now time.Time) (*x509.Certificate, error) {
	if len(ders) == 0 {
		return nil, errors.New("no certificate from peer")
	}
	if len(ders) > maxPeerCerts {
		return nil, fmt.Errorf("peer sent %d certificates; at most %d are accepted", len(ders), maxPeerCerts)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return nil, fmt.Errorf("peer certificate: %w", err)
	}
	inter := x509.NewCertPool()
	for _, d := range ders[1:] {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("peer intermediate certificate: %w", err)
		}
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", leaf.Subject, err)
	}
	var revErr error
	for _, ch := range chains {
		if err := t.checkRevocation(ch, now); err != nil {
			revErr = err
			continue
		}
		return leaf, nil
	}
	return nil, revErr
}

func (t *trust) checkRevocation(chain []*x509.Certificate, now time.Time) error {
	for i := 0; i+1 < len(chain); i++ {
		c, issuer := chain[i], chain[i+1]
		for _, crl := range t.crls {
			if !bytes.Equal(crl.RawIssuer, c.RawIssuer) {
				continue
			}
			if crl.CheckSignatureFrom(issuer) != nil {
				continue
			}
			for _, r := range crl.RevokedCertificateEntries {
				if r.SerialNumber != nil && r.SerialNumber.Cmp(c.SerialNumber) == 0 {
					return fmt.Errorf("%w: %q serial %s by the CRL of %q (revoked %s)",
						errRevoked, c.Subject, c.SerialNumber, issuer.Subject, r.RevocationTime.UTC().Format(time.RFC3339))
				}
			}
		}
	}
	return nil
}
