package daemon

import (
	"crypto"
	"crypto/x509"
	"net/netip"
	"slices"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/sa"
)

// IKEConfig is what the IKE glue (internal/ikectl) needs to run the
// policies: each with its secrets and certificates resolved. It holds
// secrets: never log it.
type IKEConfig struct {
	Gen uint64
	// Enabled is the global IPsec switch; IKE runs no policy while off.
	Enabled bool
	// Underlay is the uplink's underlay address (--vxlan-local) and the
	// namespace of the uplink, where policies without --vm speak from.
	Underlay      netip.Addr
	UnderlayNetns string
	Policies      []IKEPolicyConfig
}

// IKEPolicyConfig is one policy ready for the IKE engine.
type IKEPolicyConfig struct {
	Policy ikeconf.Policy // PSK is a copy the caller owns
	// Scope is the VM's (vlan, mac), zero without --vm. Local is the
	// address IKE speaks from; invalid: the policy waits (no uplink
	// address yet, or the VM's address cannot be told).
	Scope sa.Scope
	Local netip.Addr
	// PKI: the server certificate, the chain above it and its key; the
	// tenant's IPsec CAs (`ca-certificate add`) and their CRLs.
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
	Roots []*x509.Certificate
	CRLs  []*x509.RevocationList
}

// IKEConfig returns the policies as the IKE engine needs them, sorted by
// tenant then name. Certificates and keys are shared, read-only.
func (d *Daemon) IKEConfig() IKEConfig {
	d.mu.RLock()
	defer d.mu.RUnlock()
	c := IKEConfig{Gen: d.gen.Load(), Enabled: d.enabled, Underlay: underlayIKEAddr(d.uplink)}
	if d.uplink != nil {
		c.UnderlayNetns = d.uplink.Netns
	}
	for _, k := range sortedKeys(d.ike.policies) {
		p := d.ike.policies[k]
		pc := IKEPolicyConfig{Policy: p.Clone(), Local: d.ikeAddrLocked(p)}
		if p.VM != "" {
			if e := d.vms[p.VM]; e != nil {
				pc.Scope = e.scope()
			}
		}
		if p.Auth == ikeconf.AuthPKI {
			if cert := d.ike.certs[p.Tenant+"/"+p.CertName]; cert != nil {
				pc.Cert, pc.Chain, pc.Key = cert.Certs[0], slices.Clone(cert.Certs[1:]), cert.Key
			}
			for _, ck := range sortedKeys(d.ike.certs) {
				if ca := d.ike.certs[ck]; ca.Tenant == p.Tenant && ca.IPsecCA {
					pc.Roots = append(pc.Roots, ca.Certs...)
				}
			}
			for _, lk := range sortedKeys(d.ike.crls) {
				l := d.ike.crls[lk]
				if ca := d.ike.certs[l.Tenant+"/"+l.CAName]; l.Tenant == p.Tenant && ca != nil && ca.IPsecCA {
					pc.CRLs = append(pc.CRLs, l.List())
				}
			}
		}
		c.Policies = append(c.Policies, pc)
	}
	return c
}
