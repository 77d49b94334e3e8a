package daemon

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/store"
)

// certRecord is a certificate as stored: DER, and the key as PKCS#8.
type certRecord struct {
	Tenant  string   `json:"tenant"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Certs   [][]byte `json:"certs"`
	Key     []byte   `json:"key,omitempty"`
	IPsecCA bool     `json:"ipsec_ca,omitempty"`
}

func encodeCertificate(c *ikeconf.Certificate) []byte {
	r := certRecord{Tenant: c.Tenant, Name: c.Name, Type: c.Type.String(), Key: c.PKCS8(), IPsecCA: c.IPsecCA}
	for _, x := range c.Certs {
		r.Certs = append(r.Certs, x.Raw)
	}
	return mustJSON(r)
}

func decodeCertificate(b []byte) (*ikeconf.Certificate, error) {
	var r certRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	defer clear(r.Key)
	t, err := ikeconf.ParseCertType(r.Type)
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
	c, _, err := ikeconf.ParseCertificate(r.Tenant, r.Name, t, blocks, time.Time{})
	if err != nil {
		return nil, err
	}
	c.IPsecCA = r.IPsecCA
	if c.IPsecCA && !c.Type.IsCA() {
		c.Zero()
		return nil, fmt.Errorf("a %s certificate is marked as an IPsec CA", c.Type)
	}
	return c, nil
}

// CertInfo describes an installed certificate for listing: never the
// private key, only whether there is one.
type CertInfo struct {
	Tenant, Name string
	Type         ikeconf.CertType
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
func (d *Daemon) InstallCertificate(tenantName, name string, t ikeconf.CertType, pemData []byte) (warnings []string, err error) {
	defer clear(pemData)
	what := "the CA certificates"
	if t == ikeconf.CertServer {
		what = "the certificate, its chain and its private key"
	}
	blocks, err := ikeconf.ReadPEM(pemData, what)
	if err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	c, warnings, err := ikeconf.ParseCertificate(tenantName, name, t, blocks, time.Now())
	if err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[tenantName]; !ok {
		c.Zero()
		return nil, errf(CodeNotFound, "--tenant: no tenant named %q; add it first (vifsec tenant add --tenant %s) or see vifsec tenant list", tenantName, tenantName)
	}
	if old := d.ike.certs[c.ID()]; old != nil {
		c.Zero()
		return nil, errf(CodeExists, "--cert-name: tenant %s already has a certificate named %q (%s); delete it first (vifsec certificate delete) or choose another name", tenantName, name, old.Type)
	}
	rec := encodeCertificate(c)
	err = d.commit([]store.Op{store.Put(store.KindCertificate, c.ID(), rec)})
	clear(rec)
	if err != nil {
		c.Zero()
		return nil, err
	}
	d.ike.certs[c.ID()] = c
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
	c.Zero()
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
func (d *Daemon) certUsersLocked(c *ikeconf.Certificate) []string {
	var out []string
	for _, k := range sortedKeys(d.ike.policies) {
		p := d.ike.policies[k]
		if p.Tenant == c.Tenant && p.Auth == ikeconf.AuthPKI && p.CertName == c.Name {
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
	var todo []*ikeconf.Certificate
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
		ops = append(ops, store.Put(store.KindCertificate, c.ID(), encodeCertificate(&cp)))
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
	if err := d.commit([]store.Op{store.Put(store.KindCertificate, c.ID(), encodeCertificate(&cp))}); err != nil {
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

type crlRecord struct {
	Tenant string `json:"tenant"`
	CA     string `json:"ca"`
	DER    []byte `json:"der"`
}

func decodeCRL(b []byte) (*ikeconf.CRL, error) {
	var r crlRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	l, err := x509.ParseRevocationList(r.DER)
	if err != nil {
		return nil, err
	}
	return ikeconf.NewCRL(r.Tenant, r.CA, l), nil
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
	l, err := ikeconf.ParseCRL(pemData)
	if err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[tenantName]; !ok {
		return nil, errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
	}
	var ca *ikeconf.Certificate
	var reasons []string
	for _, k := range sortedKeys(d.ike.certs) {
		c := d.ike.certs[k]
		if c.Tenant != tenantName || !c.Type.IsCA() {
			continue
		}
		if _, err := c.SignerOf(l); err == nil {
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
	crl := ikeconf.NewCRL(tenantName, ca.Name, l)
	if old := d.ike.crls[crl.ID()]; old != nil && old.List().Number != nil && l.Number != nil && l.Number.Cmp(old.List().Number) < 0 {
		return nil, errf(CodeInvalid, "the CRL given has number %v, older than the installed CRL of %s (number %v); nothing changed", l.Number, l.Issuer, old.List().Number)
	}
	if !l.NextUpdate.IsZero() && time.Now().After(l.NextUpdate) {
		warnings = append(warnings, fmt.Sprintf("the CRL of %s was due for an update on %s; install a fresh one", l.Issuer, l.NextUpdate.UTC().Format(time.RFC3339)))
	}
	if !ca.IPsecCA {
		warnings = append(warnings, fmt.Sprintf("CA certificate %s is not an IPsec CA yet; the CRL applies once it is (vifsec ca-certificate add --tenant %s --ca-certs %s)", ca.Name, tenantName, ca.Name))
	}
	if err := d.commit([]store.Op{store.Put(store.KindCRL, crl.ID(), mustJSON(crlRecord{Tenant: tenantName, CA: ca.Name, DER: l.Raw}))}); err != nil {
		return nil, err
	}
	d.ike.crls[crl.ID()] = crl
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
		i := CRLInfo{Tenant: l.Tenant, CAName: l.CAName, Issuer: l.List().Issuer.String(), ThisUpdate: l.List().ThisUpdate,
			NextUpdate: l.List().NextUpdate, Revoked: len(l.List().RevokedCertificateEntries)}
		if l.List().Number != nil {
			i.Number = new(big.Int).Set(l.List().Number)
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
