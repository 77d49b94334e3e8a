package daemon

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/vifsec/vifsec/internal/store"
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

func (c *Certificate) key() string { return c.Tenant + "/" + c.Name }

// zero drops the private key (Go cannot zero the key schedule inside
// crypto/rsa or crypto/ecdsa; vifsec zeroes its own copy).
func (c *Certificate) zero() {
	clear(c.keyDER)
	c.keyDER, c.Key = nil, nil
}

// signerOf returns the certificate of c that signed l.
func (c *Certificate) signerOf(l *x509.RevocationList) (*x509.Certificate, error) {
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

// certRecord is a certificate as stored: DER, and the key as PKCS#8.
type certRecord struct {
	Tenant  string   `json:"tenant"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Certs   [][]byte `json:"certs"`
	Key     []byte   `json:"key,omitempty"`
	IPsecCA bool     `json:"ipsec_ca,omitempty"`
}

func encodeCertificate(c *Certificate) []byte {
	r := certRecord{Tenant: c.Tenant, Name: c.Name, Type: c.Type.String(), Key: c.keyDER, IPsecCA: c.IPsecCA}
	for _, x := range c.Certs {
		r.Certs = append(r.Certs, x.Raw)
	}
	return mustJSON(r)
}

func decodeCertificate(b []byte) (*Certificate, error) {
	var r certRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	defer clear(r.Key)
	t, err := ParseCertType(r.Type)
	if err != nil {
		return nil, err
	}
	var blocks []*pem.Block
	for _, d := range r.Certs {
		blocks = append(blocks, &pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	if r.Key != nil {
		blocks = append(blocks, &pem.Block{Type: "PRIVATE KEY", Bytes: r.Key})
	}
	c, _, err := parseCertificate(r.Tenant, r.Name, t, blocks, time.Time{})
	if err != nil {
		return nil, err
	}
	c.IPsecCA = r.IPsecCA
	if c.IPsecCA && !c.Type.IsCA() {
		c.zero()
		return nil, fmt.Errorf("a %s certificate is marked as an IPsec CA", c.Type)
	}
	return c, nil
}

// readPEM splits PEM text into blocks, refusing anything else in it.
func readPEM(data []byte, what string) ([]*pem.Block, error) {
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

// parseCertificate builds and checks a certificate of type t from PEM
// blocks (CERTIFICATE, and for a server one private key block). now, if
// not zero, is the time to warn about validity against. It zeroes the
// key blocks it was given.
func parseCertificate(tenantName, name string, t CertType, blocks []*pem.Block, now time.Time) (c *Certificate, warnings []string, err error) {
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

// CertInfo describes an installed certificate for listing: never the
// private key, only whether there is one.
type CertInfo struct {
	Tenant, Name string
	Type         CertType
	// Subject, Issuer, Serial, NotBefore and NotAfter are those of the
	// first certificate (a server certificate's own).
	Subject, Issuer     string
	Serial              *big.Int
	NotBefore, NotAfter time.Time
	Count               int // certificates in the install
	KeySet              bool
	IPsecCA             bool
	UsedBy              []string // PKI policies naming it
}

// InstallCertificate installs a certificate of the tenant from PEM: for
// CertServer a certificate chain and its private key (PKCS#8, EC or
// RSA), for the CA types one or more CA certificates. It returns warnings
// (expired, not yet valid, no digitalSignature). The private key bytes in
// pemData are zeroed. Equivalent to: `vifsec certificate install --tenant
// NAME --type server|server-ca|client-ca --cert-name NAME < PEM`.
func (d *Daemon) InstallCertificate(tenantName, name string, t CertType, pemData []byte) (warnings []string, err error) {
	defer clear(pemData)
	what := "the CA certificates"
	if t == CertServer {
		what = "the certificate, its chain and its private key"
	}
	blocks, err := readPEM(pemData, what)
	if err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	c, warnings, err := parseCertificate(tenantName, name, t, blocks, time.Now())
	if err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[tenantName]; !ok {
		c.zero()
		return nil, errf(CodeNotFound, "--tenant: no tenant named %q; add it first (vifsec tenant add --tenant %s) or see vifsec tenant list", tenantName, tenantName)
	}
	if old := d.ike.certs[c.key()]; old != nil {
		c.zero()
		return nil, errf(CodeExists, "--cert-name: tenant %s already has a certificate named %q (%s); delete it first (vifsec certificate delete) or choose another name", tenantName, name, old.Type)
	}
	rec := encodeCertificate(c)
	err = d.commit([]store.Op{store.Put(store.KindCertificate, c.key(), rec)})
	clear(rec)
	if err != nil {
		c.zero()
		return nil, err
	}
	d.ike.certs[c.key()] = c
	d.changed()
	d.log.Info("certificate installed", "tenant", tenantName, "cert", name, "type", t.String(), "subject", c.Certs[0].Subject.String(), "count", len(c.Certs))
	if t.IsCA() {
		warnings = append(warnings, fmt.Sprintf("IKE trusts CA certificate %s only once it is added: vifsec ca-certificate add --tenant %s --ca-certs %s", name, tenantName, name))
	}
	return warnings, nil
}

// DeleteCertificate removes an installed certificate; the CRLs of a CA
// certificate go with it. It refuses while a PKI policy names it (*(ext)*:
// ONTAP `security certificate delete`).
func (d *Daemon) DeleteCertificate(tenantName, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := tenantName + "/" + name
	c := d.ike.certs[k]
	if c == nil {
		return d.noCertLocked(tenantName, name)
	}
	if users := d.certUsersLocked(c); len(users) > 0 {
		return errf(CodeInUse, "--cert-name: certificate %s is used by policy %s; change or delete the policy first (vifsec policy modify/delete)", name, strings.Join(users, ", "))
	}
	ops := []store.Op{store.Delete(store.KindCertificate, k)}
	var crls []string
	for _, ck := range sortedKeys(d.ike.crls) {
		if l := d.ike.crls[ck]; l.Tenant == tenantName && l.CAName == name {
			ops = append(ops, store.Delete(store.KindCRL, ck))
			crls = append(crls, ck)
		}
	}
	if err := d.commit(ops); err != nil {
		return err
	}
	for _, ck := range crls {
		delete(d.ike.crls, ck)
	}
	c.zero()
	delete(d.ike.certs, k)
	d.changed()
	d.log.Info("certificate deleted", "tenant", tenantName, "cert", name, "crls_deleted", len(crls))
	return nil
}

func (d *Daemon) noCertLocked(tenantName, name string) error {
	if _, ok := d.tenants[tenantName]; !ok {
		return errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
	}
	return errf(CodeNotFound, "--cert-name: tenant %s has no certificate named %q (see vifsec certificate show --tenant %s)", tenantName, name, tenantName)
}

// certUsersLocked lists the PKI policies naming c.
func (d *Daemon) certUsersLocked(c *Certificate) []string {
	var out []string
	for _, k := range sortedKeys(d.ike.policies) {
		p := d.ike.policies[k]
		if p.Tenant == c.Tenant && p.Auth == AuthPKI && p.CertName == c.Name {
			out = append(out, p.Name)
		}
	}
	return out
}

func (d *Daemon) hasIPsecCALocked(tenantName string) bool {
	for _, c := range d.ike.certs {
		if c.Tenant == tenantName && c.IPsecCA {
			return true
		}
	}
	return false
}

// AddCACertificates makes the tenant's IKE trust the installed CA
// certificates named (all or none). Equivalent to: `vifsec ca-certificate
// add --tenant NAME --ca-certs NAME[,NAME...]` (ONTAP `security ipsec
// ca-certificate add`).
func (d *Daemon) AddCACertificates(tenantName string, names []string) (warnings []string, err error) {
	if len(names) == 0 {
		return nil, errf(CodeInvalid, "--ca-certs: required; name one or more installed CA certificates, comma separated")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[tenantName]; !ok {
		return nil, errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
	}
	var ops []store.Op
	var todo []*Certificate
	for _, n := range names {
		c := d.ike.certs[tenantName+"/"+n]
		switch {
		case c == nil:
			return nil, errf(CodeNotFound, "--ca-certs: tenant %s has no certificate named %q; install it first (vifsec certificate install --tenant %s --type server-ca --cert-name %s < ca.pem)", tenantName, n, tenantName, n)
		case !c.Type.IsCA():
			return nil, errf(CodeInvalid, "--ca-certs: %q is a %s certificate; only server-ca and client-ca certificates can be IPsec CAs", n, c.Type)
		case c.IPsecCA || slices.Contains(todo, c):
			warnings = append(warnings, fmt.Sprintf("CA certificate %s is already an IPsec CA of tenant %s", n, tenantName))
			continue
		}
		todo = append(todo, c)
		cp := *c
		cp.IPsecCA = true
		ops = append(ops, store.Put(store.KindCertificate, c.key(), encodeCertificate(&cp)))
	}
	if len(ops) == 0 {
		return warnings, nil
	}
	if err := d.commit(ops); err != nil {
		return nil, err
	}
	for _, c := range todo {
		c.IPsecCA = true
	}
	d.changed()
	d.log.Info("ipsec CA certificates added", "tenant", tenantName, "certs", strings.Join(names, ","))
	return warnings, nil
}

// RemoveCACertificate makes the tenant's IKE stop trusting the CA
// certificate named; it stays installed. Equivalent to: `vifsec
// ca-certificate remove --tenant NAME --ca-certs NAME` *(ext)*.
func (d *Daemon) RemoveCACertificate(tenantName, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.ike.certs[tenantName+"/"+name]
	if c == nil {
		return d.noCertLocked(tenantName, name)
	}
	if !c.IPsecCA {
		return errf(CodeNotFound, "--ca-certs: certificate %s is not an IPsec CA of tenant %s (see vifsec ca-certificate show)", name, tenantName)
	}
	cp := *c
	cp.IPsecCA = false
	if err := d.commit([]store.Op{store.Put(store.KindCertificate, c.key(), encodeCertificate(&cp))}); err != nil {
		return err
	}
	c.IPsecCA = false
	d.changed()
	d.log.Info("ipsec CA certificate removed", "tenant", tenantName, "cert", name)
	return nil
}

// Certificates lists the installed certificates of the tenant, or of all
// tenants if tenantName is "", sorted by tenant then name.
func (d *Daemon) Certificates(tenantName string) ([]CertInfo, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if tenantName != "" {
		if _, ok := d.tenants[tenantName]; !ok {
			return nil, errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
		}
	}
	var out []CertInfo
	for _, k := range sortedKeys(d.ike.certs) {
		c := d.ike.certs[k]
		if tenantName != "" && c.Tenant != tenantName {
			continue
		}
		x := c.Certs[0]
		out = append(out, CertInfo{Tenant: c.Tenant, Name: c.Name, Type: c.Type, Subject: x.Subject.String(), Issuer: x.Issuer.String(),
			Serial: new(big.Int).Set(x.SerialNumber), NotBefore: x.NotBefore, NotAfter: x.NotAfter, Count: len(c.Certs),
			KeySet: c.Key != nil, IPsecCA: c.IPsecCA, UsedBy: d.certUsersLocked(c)})
	}
	return out, nil
}

// CRL is a certificate revocation list of one of a tenant's CAs.
// Equivalent to: `vifsec crl add --tenant NAME < CRL.pem` *(ext)*.
type CRL struct {
	Tenant string
	// CAName is the installed CA certificate that signed it.
	CAName string
	list   *x509.RevocationList
}

// key names a CRL by tenant and issuer: a newer CRL of the same issuer
// replaces it.
func (l *CRL) key() string {
	h := sha256.Sum256(l.list.RawIssuer)
	return l.Tenant + "/" + hex.EncodeToString(h[:8])
}

// List returns the parsed list (read only).
func (l *CRL) List() *x509.RevocationList { return l.list }

type crlRecord struct {
	Tenant string `json:"tenant"`
	CA     string `json:"ca"`
	DER    []byte `json:"der"`
}

func decodeCRL(b []byte) (*CRL, error) {
	var r crlRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	l, err := x509.ParseRevocationList(r.DER)
	if err != nil {
		return nil, err
	}
	return &CRL{Tenant: r.Tenant, CAName: r.CA, list: l}, nil
}

// CRLInfo describes an installed CRL for listing.
type CRLInfo struct {
	Tenant, CAName, Issuer string
	Number                 *big.Int // nil if the CRL has none
	ThisUpdate, NextUpdate time.Time
	Revoked                int
}

// AddCRL installs a CRL (PEM "X509 CRL") of the tenant. It must be signed
// by one of the tenant's installed CA certificates; it replaces the CRL
// of the same issuer unless that one is newer (a higher CRL number).
// Equivalent to: `vifsec crl add --tenant NAME < CRL.pem` *(ext)*.
func (d *Daemon) AddCRL(tenantName string, pemData []byte) (warnings []string, err error) {
	blocks, err := readPEM(pemData, "the CRL")
	if err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	if len(blocks) != 1 || blocks[0].Type != "X509 CRL" {
		return nil, errf(CodeInvalid, "PEM: give exactly one X509 CRL block (-----BEGIN X509 CRL-----); add several CRLs one at a time")
	}
	l, err := x509.ParseRevocationList(blocks[0].Bytes)
	if err != nil {
		return nil, errf(CodeInvalid, "PEM X509 CRL: %v", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[tenantName]; !ok {
		return nil, errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
	}
	var ca *Certificate
	var reasons []string
	for _, k := range sortedKeys(d.ike.certs) {
		c := d.ike.certs[k]
		if c.Tenant != tenantName || !c.Type.IsCA() {
			continue
		}
		if _, err := c.signerOf(l); err == nil {
			ca = c
			break
		} else if slices.ContainsFunc(c.Certs, func(x *x509.Certificate) bool { return bytes.Equal(x.RawSubject, l.RawIssuer) }) {
			reasons = append(reasons, fmt.Sprintf("%s: %v", c.Name, err))
		}
	}
	if ca == nil {
		msg := fmt.Sprintf("the CRL of %s is signed by none of tenant %s's CA certificates", l.Issuer, tenantName)
		if len(reasons) > 0 {
			msg += " (" + strings.Join(reasons, "; ") + ")"
		}
		return nil, errf(CodeInvalid, "%s; install its CA first (vifsec certificate install --tenant %s --type client-ca --cert-name NAME < ca.pem)", msg, tenantName)
	}
	crl := &CRL{Tenant: tenantName, CAName: ca.Name, list: l}
	if old := d.ike.crls[crl.key()]; old != nil && old.list.Number != nil && l.Number != nil && l.Number.Cmp(old.list.Number) < 0 {
		return nil, errf(CodeInvalid, "the CRL given has number %v, older than the installed CRL of %s (number %v); nothing changed", l.Number, l.Issuer, old.list.Number)
	}
	if !l.NextUpdate.IsZero() && time.Now().After(l.NextUpdate) {
		warnings = append(warnings, fmt.Sprintf("the CRL of %s was due for an update on %s; install a fresh one", l.Issuer, l.NextUpdate.UTC().Format(time.RFC3339)))
	}
	if !ca.IPsecCA {
		warnings = append(warnings, fmt.Sprintf("CA certificate %s is not an IPsec CA yet; the CRL applies once it is (vifsec ca-certificate add --tenant %s --ca-certs %s)", ca.Name, tenantName, ca.Name))
	}
	if err := d.commit([]store.Op{store.Put(store.KindCRL, crl.key(), mustJSON(crlRecord{Tenant: tenantName, CA: ca.Name, DER: l.Raw}))}); err != nil {
		return nil, err
	}
	d.ike.crls[crl.key()] = crl
	d.changed()
	d.log.Info("crl added", "tenant", tenantName, "ca", ca.Name, "issuer", l.Issuer.String(), "number", l.Number, "revoked", len(l.RevokedCertificateEntries))
	return warnings, nil
}

// CRLs lists the installed CRLs of the tenant, or of all tenants if
// tenantName is "", sorted by tenant then CA name.
func (d *Daemon) CRLs(tenantName string) ([]CRLInfo, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if tenantName != "" {
		if _, ok := d.tenants[tenantName]; !ok {
			return nil, errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
		}
	}
	var out []CRLInfo
	for _, k := range sortedKeys(d.ike.crls) {
		l := d.ike.crls[k]
		if tenantName != "" && l.Tenant != tenantName {
			continue
		}
		i := CRLInfo{Tenant: l.Tenant, CAName: l.CAName, Issuer: l.list.Issuer.String(), ThisUpdate: l.list.ThisUpdate,
			NextUpdate: l.list.NextUpdate, Revoked: len(l.list.RevokedCertificateEntries)}
		if l.list.Number != nil {
			i.Number = new(big.Int).Set(l.list.Number)
		}
		out = append(out, i)
	}
	slices.SortStableFunc(out, func(a, b CRLInfo) int {
		if a.Tenant != b.Tenant {
			return strings.Compare(a.Tenant, b.Tenant)
		}
		return strings.Compare(a.CAName, b.CAName)
	})
	return out, nil
}
