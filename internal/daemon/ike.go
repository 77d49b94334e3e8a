package daemon

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// ikeState is the IKE part of the Daemon: the operator's policies,
// certificates and CRLs (stored), and the SAs IKE installed (memory only:
// they are derived from IKE SAs, which do not survive a restart either).
// Every field is guarded by Daemon.mu.
type ikeState struct {
	policies map[string]*ikeconf.Policy      // "TENANT/NAME"
	certs    map[string]*ikeconf.Certificate // "TENANT/CERT-NAME"
	crls     map[string]*ikeconf.CRL         // "TENANT/ISSUER-HASH"

	children map[string]*ikeChild // by the inbound SA's name
	saChild  map[string]*ikeChild // SA name (both directions) → its child
	seq      uint64               // install order of children
	reserved map[sa.Key]int64     // SPIs handed out by AllocIKESPI, not yet installed → unix nano of expiry

	rekey atomic.Pointer[func(tenant, name string, ikeSA bool) int] // SetIKERekey (ikerekey.go); not guarded by Daemon.mu
}

func newIKEState() *ikeState {
	return &ikeState{
		policies: map[string]*ikeconf.Policy{}, certs: map[string]*ikeconf.Certificate{}, crls: map[string]*ikeconf.CRL{},
		children: map[string]*ikeChild{}, saChild: map[string]*ikeChild{}, reserved: map[sa.Key]int64{},
	}
}

// policyRecord is an IKE policy as stored, pre-shared keys (PSK, PPK)
// included: the state file is mode 0600, a fleet store seals the whole
// record with the KEK; these bytes are never logged. Enums are
// stored by their CLI names.
type policyRecord struct {
	Tenant         string            `json:"tenant"`
	Name           string            `json:"name"`
	VM             string            `json:"vm,omitempty"`
	LocalSubnets   []netip.Prefix    `json:"local_ip_subnets"`
	RemoteSubnets  []netip.Prefix    `json:"remote_ip_subnets"`
	Protocol       uint8             `json:"protocol"`
	LocalPorts     ikeconf.PortRange `json:"local_ports"`
	RemotePorts    ikeconf.PortRange `json:"remote_ports"`
	RemoteAddress  netip.Addr        `json:"remote_address,omitzero"`
	Mode           string            `json:"mode"`
	Auth           string            `json:"auth_method"`
	PSK            []byte            `json:"psk,omitempty"`
	PPK            []byte            `json:"ppk,omitempty"`
	PPKID          string            `json:"ppk_id,omitempty"`
	PPKRequired    bool              `json:"ppk_required,omitempty"`
	CertName       string            `json:"cert_name,omitempty"`
	LocalIdentity  string            `json:"local_identity,omitempty"`
	RemoteIdentity string            `json:"remote_identity,omitempty"`
	IKEProposals   []string          `json:"ike_proposals,omitempty"`
	ESPProposals   []string          `json:"esp_proposals,omitempty"`
	// Timers as written by FormatTimer ("4h", "30s"); absent: default.
	IKELifetime string `json:"ike_lifetime,omitempty"`
	ESPLifetime string `json:"esp_lifetime,omitempty"`
	DPDInterval string `json:"dpd_interval,omitempty"`
	DPDAction   string `json:"dpd_action,omitempty"`
	ForceEncap  bool   `json:"force_encap,omitempty"`
}

// timerRecord is d as stored: "" for 0.
func timerRecord(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return ikeconf.FormatTimer(d)
}

// timerField parses a stored timer ("" is 0).
func timerField(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := ikeconf.ParseTimerValue(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

func encodePolicy(p *ikeconf.Policy) []byte {
	return mustJSON(policyRecord{
		Tenant: p.Tenant, Name: p.Name, VM: p.VM, LocalSubnets: p.LocalSubnets, RemoteSubnets: p.RemoteSubnets,
		Protocol: p.Protocol, LocalPorts: p.LocalPorts, RemotePorts: p.RemotePorts, RemoteAddress: p.RemoteAddress,
		Mode: p.Mode.String(), Auth: p.Auth.String(), PSK: p.PSK, CertName: p.CertName,
		PPK: p.PPK, PPKID: p.PPKID, PPKRequired: p.PPKRequired,
		LocalIdentity: p.LocalIdentity, RemoteIdentity: p.RemoteIdentity, IKEProposals: p.IKEProposals, ESPProposals: p.ESPProposals,
		IKELifetime: timerRecord(p.IKELifetime), ESPLifetime: timerRecord(p.ESPLifetime), DPDInterval: timerRecord(p.DPDInterval),
		DPDAction: p.DPDAction.String(), ForceEncap: p.ForceEncap,
	})
}

func decodePolicy(b []byte) (ikeconf.Policy, error) {
	var r policyRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return ikeconf.Policy{}, err
	}
	p := ikeconf.Policy{
		Tenant: r.Tenant, Name: r.Name, VM: r.VM, LocalSubnets: r.LocalSubnets, RemoteSubnets: r.RemoteSubnets,
		Protocol: r.Protocol, LocalPorts: r.LocalPorts, RemotePorts: r.RemotePorts, RemoteAddress: r.RemoteAddress,
		PSK: r.PSK, CertName: r.CertName, LocalIdentity: r.LocalIdentity, RemoteIdentity: r.RemoteIdentity,
		PPK: r.PPK, PPKID: r.PPKID, PPKRequired: r.PPKRequired,
		IKEProposals: r.IKEProposals, ESPProposals: r.ESPProposals, ForceEncap: r.ForceEncap,
	}
	var err error
	if p.Mode, err = sa.ParseMode(r.Mode); err != nil {
		p.ClearSecrets()
		return ikeconf.Policy{}, err
	}
	if p.Auth, err = ikeconf.ParseAuthMethod(r.Auth); err != nil {
		p.ClearSecrets()
		return ikeconf.Policy{}, err
	}
	for _, t := range [...]struct {
		name string
		s    string
		d    *time.Duration
	}{{"ike_lifetime", r.IKELifetime, &p.IKELifetime}, {"esp_lifetime", r.ESPLifetime, &p.ESPLifetime}, {"dpd_interval", r.DPDInterval, &p.DPDInterval}} {
		if *t.d, err = timerField(t.name, t.s); err != nil {
			p.ClearSecrets()
			return ikeconf.Policy{}, err
		}
	}
	if p.DPDAction, err = ikeconf.ParseDPDAction(r.DPDAction); err != nil {
		p.ClearSecrets()
		return ikeconf.Policy{}, fmt.Errorf("dpd_action: %w", err)
	}
	return p, nil
}

// restoreIKE restores one stored policy, certificate or CRL; the caller
// holds no lock (New has not published d yet). Kinds() orders
// certificates before CRLs before policies, so references resolve.
func (d *Daemon) restoreIKE(r store.Record) error {
	switch r.Kind {
	case store.KindCertificate:
		c, err := decodeCertificate(r.Value)
		if err != nil {
			return err
		}
		if c.ID() != r.Name {
			c.Zero()
			return fmt.Errorf("holds certificate %q", c.ID())
		}
		if _, ok := d.tenants[c.Tenant]; !ok {
			c.Zero()
			return fmt.Errorf("tenant %q is not stored", c.Tenant)
		}
		d.ike.certs[r.Name] = c
	case store.KindCRL:
		l, err := decodeCRL(r.Value)
		if err != nil {
			return err
		}
		if l.ID() != r.Name {
			return fmt.Errorf("holds the CRL of %q", l.ID())
		}
		ca := d.ike.certs[l.Tenant+"/"+l.CAName]
		if ca == nil || !ca.Type.IsCA() {
			return fmt.Errorf("CA certificate %q of tenant %q is not stored", l.CAName, l.Tenant)
		}
		if _, err := ca.SignerOf(l.List()); err != nil {
			return fmt.Errorf("not signed by CA certificate %q: %w", l.CAName, err)
		}
		d.ike.crls[r.Name] = l
	case store.KindPolicy:
		p, err := decodePolicy(r.Value)
		if err != nil {
			return err
		}
		if p.ID() != r.Name {
			p.ClearSecrets()
			return fmt.Errorf("holds policy %q", p.ID())
		}
		if err := p.Validate(); err != nil {
			p.ClearSecrets()
			return err
		}
		if p.VM != "" && d.vms[p.VM] == nil {
			// With a fleet store, policies are fleet-wide and a VM is on
			// one host: elsewhere its policy is dormant, and wakes when
			// the VM is attached here (a move). The IKE controller leaves
			// it out meanwhile ("VM not attached").
			if _, ok := d.tenants[p.Tenant]; !ok {
				p.ClearSecrets()
				return fmt.Errorf("tenant %q is not stored", p.Tenant)
			}
			d.ike.policies[r.Name] = &p
			return nil
		}
		if _, err := d.checkPolicyLocked(&p); err != nil {
			p.ClearSecrets()
			return err
		}
		d.ike.policies[r.Name] = &p
	}
	return nil
}

// checkPolicyLocked checks p against the other objects: its tenant, VM
// and certificate. It returns warnings for the operator. The caller holds
// d.mu (or is New) and has called p.Validate.
func (d *Daemon) checkPolicyLocked(p *ikeconf.Policy) (warnings []string, err error) {
	if _, ok := d.tenants[p.Tenant]; !ok {
		return nil, errf(CodeNotFound, "--tenant: no tenant named %q; add it first (vifsec tenant add --tenant %s) or see vifsec tenant list", p.Tenant, p.Tenant)
	}
	if p.VM != "" {
		e := d.vms[p.VM]
		if e == nil {
			// A policy may name a VM before it is attached (a libvirt
			// domain not started yet): it waits for the VM.
			return []string{fmt.Sprintf("VM %s is not attached: policy %s waits for it (vifsec vm attach, or the libvirt hook when its domain starts)", p.VM, p.Name)}, nil
		}
		if e.vm.Tenant != p.Tenant {
			return nil, errf(CodeInvalid, "--vm: VM %q belongs to tenant %s, not %s; a policy protects VMs of its own tenant", p.VM, e.vm.Tenant, p.Tenant)
		}
		if ips := e.vm.IPs; len(ips) > 0 {
			for _, s := range p.LocalSubnets {
				if !slices.ContainsFunc(ips, s.Contains) {
					return nil, errf(CodeInvalid, "--local-ip-subnets: %v holds none of VM %s's addresses (--ip %s); the VM can only send from those, so each local subnet must hold one", s, p.VM, joinAddrs(ips))
				}
			}
		}
		if _, err := vmIKEAddr(p, &e.vm); err != nil {
			return nil, wrap(CodeInvalid, err)
		}
		if err := vmSelectorsExpressible(p); err != nil {
			return nil, wrap(CodeInvalid, err)
		}
	} else {
		switch local := underlayIKEAddr(d.uplink); {
		case !local.IsValid():
			warnings = append(warnings, fmt.Sprintf("policy %s has no --vm: IKE speaks from the uplink's underlay address, and none is set; it waits until one is (vifsec uplink set --dev IFNAME --overlay vxlan --vxlan-local ADDR)", p.Name))
		case p.RemoteAddress.IsValid() && local.Is4() != p.RemoteAddress.Is4():
			warnings = append(warnings, fmt.Sprintf("--remote-address %v and the uplink's --vxlan-local %v are of different address families: policy %s waits until they match", p.RemoteAddress, local, p.Name))
		case d.uplink.Protect != ProtectUnderlay:
			warnings = append(warnings, fmt.Sprintf("policy %s has no --vm: its SAs are underlay SAs of tenant %s, used only once the uplink protects the underlay (vifsec uplink set ... --protect underlay)", p.Name, p.Tenant))
		}
		if w := d.underlayClashLocked(p); w != "" {
			warnings = append(warnings, w)
		}
	}
	if p.Auth == ikeconf.AuthPKI {
		c := d.ike.certs[p.Tenant+"/"+p.CertName]
		switch {
		case c == nil:
			return nil, errf(CodeNotFound, "--cert-name: tenant %s has no certificate named %q; install it first (vifsec certificate install --tenant %s --type server --cert-name %s < cert-and-key.pem)", p.Tenant, p.CertName, p.Tenant, p.CertName)
		case c.Type != ikeconf.CertServer:
			return nil, errf(CodeInvalid, "--cert-name: %q is a %s certificate; PKI authentication needs a server certificate with its private key (--type server)", p.CertName, c.Type)
		}
		if !d.hasIPsecCALocked(p.Tenant) {
			warnings = append(warnings, fmt.Sprintf("tenant %s has no IPsec CA: peers' certificates cannot be verified until one is added (vifsec ca-certificate add --tenant %s --ca-certs NAME)", p.Tenant, p.Tenant))
		}
	}
	if p.Auth == ikeconf.AuthPSK && len(p.PSK) < ikeconf.MinPSKLen {
		warnings = append(warnings, fmt.Sprintf("the pre-shared key of policy %s is %d bytes long; a short key can be guessed offline from one captured exchange: use at least %d random bytes", p.Name, len(p.PSK), ikeconf.MinPSKLen))
	}
	if len(p.PPK) > 0 && len(p.PPK) < ikeconf.MinPPKLen {
		warnings = append(warnings, fmt.Sprintf("the post-quantum preshared key of policy %s is %d bytes long; it protects the keys only if it holds at least 256 bits of entropy: use at least %d random bytes", p.Name, len(p.PPK), ikeconf.MinPPKLen))
	}
	return warnings, nil
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// vmIKEAddr returns the address IKE speaks from for VM policy p: the VM
// address of the remote address's family (else of the subnets'), one in
// a local subnet if any is; for a VM without --ip, a local subnet that is
// a single address.
func vmIKEAddr(p *ikeconf.Policy, v *tenant.VM) (netip.Addr, error) {
	want4 := p.Is4()
	if p.RemoteAddress.IsValid() {
		want4 = p.RemoteAddress.Is4()
	}
	fam := "IPv6"
	if want4 {
		fam = "IPv4"
	}
	var first netip.Addr
	for _, a := range v.IPs {
		if a.Is4() != want4 {
			continue
		}
		if slices.ContainsFunc(p.LocalSubnets, func(s netip.Prefix) bool { return s.Contains(a) }) {
			return a, nil
		}
		if !first.IsValid() {
			first = a
		}
	}
	if first.IsValid() {
		if p.Mode == sa.ModeTransport {
			return netip.Addr{}, fmt.Errorf("--local-ip-subnets: VM %s's %s address %v is in none of %s; in transport mode IKE speaks from the traffic's own address", v.Name, fam, first, ikeconf.JoinPrefixes(p.LocalSubnets))
		}
		return first, nil
	}
	if len(v.IPs) == 0 {
		for _, s := range p.LocalSubnets {
			if s.IsSingleIP() && s.Addr().Is4() == want4 {
				return s.Addr(), nil
			}
		}
		return netip.Addr{}, fmt.Errorf("--vm: VM %s has no --ip, so IKE cannot tell which address to speak from: give --local-ip-subnets as the VM's %s address alone (e.g. 2001:db8:1::121/128), or re-attach the VM with --ip ADDR", v.Name, fam)
	}
	return netip.Addr{}, fmt.Errorf("--vm: VM %s has no %s address (its --ip: %s) to speak IKE with %v from", v.Name, fam, joinAddrs(v.IPs), p.RemoteAddress)
}

// vmSelectorsExpressible says why a VM policy's selectors cannot be put in
// the VM's SPD, which matches one port or any, and protocols any, tcp,
// udp, icmp and icmp6.
func vmSelectorsExpressible(p *ikeconf.Policy) error {
	switch p.Protocol {
	case 0, ikeconf.ProtoNumTCP, ikeconf.ProtoNumUDP, ikeconf.ProtoNumICMP, ikeconf.ProtoNumICMP6:
	default:
		return fmt.Errorf("--protocols %d: with --vm, a policy selects any, tcp, udp, icmp or icmp6 (the VM's SPD matches no other protocol by number); without --vm any number is accepted", p.Protocol)
	}
	for _, pr := range [...]struct {
		flag string
		r    ikeconf.PortRange
	}{{"--local-ports", p.LocalPorts}, {"--remote-ports", p.RemotePorts}} {
		if _, one := pr.r.Single(); !one && !pr.r.IsAny() {
			return fmt.Errorf("%s %v: with --vm, a policy selects one port or any (the VM's SPD has no port ranges)", pr.flag, pr.r)
		}
	}
	return nil
}

// underlayIKEAddr is where IKE speaks from for policies without --vm: the
// uplink's --vxlan-local.
func underlayIKEAddr(u *Uplink) netip.Addr {
	if u == nil {
		return netip.Addr{}
	}
	return u.VXLANLocal
}

// PolicyInfo describes one IKE policy for listing: no secret, only
// whether one is set.
type PolicyInfo struct {
	Policy ikeconf.Policy // PSK and PPK are nil
	PSKSet bool
	PPKSet bool
	// Local is the address IKE speaks from for it (the VM's, or the
	// uplink's underlay address); invalid while it waits for the uplink.
	Local netip.Addr
}

// CreatePolicy adds policy p and returns warnings for the operator. A
// zero p.Mode is transport (ONTAP's default). p.PSK and p.PPK are zeroed when it
// returns: the Daemon keeps its own copy. Equivalent to: `vifsec policy
// create ...` (ONTAP `security ipsec policy create`).
func (d *Daemon) CreatePolicy(p ikeconf.Policy) (warnings []string, err error) {
	defer p.ClearSecrets()
	if p.Mode == sa.ModeInvalid {
		p.Mode = sa.ModeTransport
	}
	if err := p.Validate(); err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.ike.policies[p.ID()]; old != nil {
		return nil, errf(CodeExists, "--name: tenant %s already has a policy named %q; policy names are unique per tenant (vifsec policy modify changes it)", p.Tenant, p.Name)
	}
	if warnings, err = d.checkPolicyLocked(&p); err != nil {
		return nil, err
	}
	rec := encodePolicy(&p)
	err = d.commit([]store.Op{store.Put(store.KindPolicy, p.ID(), rec)})
	clear(rec)
	if err != nil {
		return nil, err
	}
	c := p.Clone()
	d.ike.policies[p.ID()] = &c
	d.changed()
	d.log.Info("ike policy created", "tenant", p.Tenant, "policy", p.Name, "vm", p.VM, "local_subnets", ikeconf.JoinPrefixes(p.LocalSubnets),
		"remote_subnets", ikeconf.JoinPrefixes(p.RemoteSubnets), "remote_address", p.RemoteAddress, "mode", p.Mode.String(), "auth", p.Auth.String())
	return warnings, nil
}

// ModifyPolicy changes the policy (tenantName, name): edit is called, with
// d's lock held, on a copy, which must then pass every check CreatePolicy
// makes; edit must not call the Daemon. An error from edit is the
// operator's (CodeInvalid). Tenant and Name cannot change. Equivalent to:
// `vifsec policy modify --tenant NAME --name NAME [...]`.
func (d *Daemon) ModifyPolicy(tenantName, name string, edit func(*ikeconf.Policy) error) (warnings []string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.ike.policies[tenantName+"/"+name]
	if old == nil {
		return nil, d.noPolicyLocked(tenantName, name)
	}
	p := old.Clone()
	defer func() { p.ClearSecrets() }()
	if err := edit(&p); err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	if p.Tenant != old.Tenant || p.Name != old.Name {
		return nil, errf(CodeInvalid, "--tenant/--name: a policy cannot be renamed or moved; delete it and create it again")
	}
	if err := p.Validate(); err != nil {
		return nil, wrap(CodeInvalid, err)
	}
	if warnings, err = d.checkPolicyLocked(&p); err != nil {
		return nil, err
	}
	rec := encodePolicy(&p)
	err = d.commit([]store.Op{store.Put(store.KindPolicy, p.ID(), rec)})
	clear(rec)
	if err != nil {
		return nil, err
	}
	c := p.Clone()
	old.ClearSecrets()
	d.ike.policies[p.ID()] = &c
	// SAs negotiated under the old settings go; IKE negotiates new ones.
	d.removeChildrenLocked(d.childrenOfLocked(p.ID()))
	d.changed()
	d.log.Info("ike policy modified", "tenant", p.Tenant, "policy", p.Name, "vm", p.VM, "local_subnets", ikeconf.JoinPrefixes(p.LocalSubnets),
		"remote_subnets", ikeconf.JoinPrefixes(p.RemoteSubnets), "remote_address", p.RemoteAddress, "mode", p.Mode.String(), "auth", p.Auth.String())
	return warnings, nil
}

func (d *Daemon) noPolicyLocked(tenantName, name string) error {
	if _, ok := d.tenants[tenantName]; !ok {
		return errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
	}
	return errf(CodeNotFound, "--name: tenant %s has no policy named %q (see vifsec policy show --tenant %s)", tenantName, name, tenantName)
}

// DeletePolicy removes the policy (tenantName, name). IKE then deletes
// its IKE and child SAs. Equivalent to: `vifsec policy delete --tenant
// NAME --name NAME`.
func (d *Daemon) DeletePolicy(tenantName, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := tenantName + "/" + name
	old := d.ike.policies[k]
	if old == nil {
		return d.noPolicyLocked(tenantName, name)
	}
	if err := d.commit([]store.Op{store.Delete(store.KindPolicy, k)}); err != nil {
		return err
	}
	old.ClearSecrets()
	delete(d.ike.policies, k)
	d.removeChildrenLocked(d.childrenOfLocked(k))
	d.changed()
	d.log.Info("ike policy deleted", "tenant", tenantName, "policy", name)
	return nil
}

// Policies returns the policies of the tenant named tenantName, or of all
// tenants if it is "", sorted by tenant then name, without secrets.
// Equivalent to: `vifsec policy show [--tenant NAME]`.
func (d *Daemon) Policies(tenantName string) ([]PolicyInfo, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if tenantName != "" {
		if _, ok := d.tenants[tenantName]; !ok {
			return nil, errf(CodeNotFound, "--tenant: no tenant named %q (see vifsec tenant list)", tenantName)
		}
	}
	var out []PolicyInfo
	for _, k := range sortedKeys(d.ike.policies) {
		p := d.ike.policies[k]
		if tenantName != "" && p.Tenant != tenantName {
			continue
		}
		c := p.Clone()
		c.ClearSecrets()
		c.PSK, c.PPK = nil, nil
		out = append(out, PolicyInfo{Policy: c, PSKSet: len(p.PSK) > 0, PPKSet: len(p.PPK) > 0, Local: d.ikeAddrLocked(p)})
	}
	return out, nil
}

// ikeAddrLocked is the address IKE speaks from for p, invalid if none
// can be told now; the caller holds d.mu.
func (d *Daemon) ikeAddrLocked(p *ikeconf.Policy) netip.Addr {
	if p.VM == "" {
		return underlayIKEAddr(d.uplink)
	}
	e := d.vms[p.VM]
	if e == nil {
		return netip.Addr{}
	}
	a, _ := vmIKEAddr(p, &e.vm)
	return a
}

// ikeUsersLocked describes what of the IKE configuration refers to the
// tenant or VM (exactly one of them non-empty), for refusals to remove
// them; "" if nothing does. The caller holds d.mu.
func (d *Daemon) ikeUsersLocked(tenantName, vm string) string {
	var pols, certs []string
	for _, k := range sortedKeys(d.ike.policies) {
		p := d.ike.policies[k]
		if (tenantName != "" && p.Tenant == tenantName) || (vm != "" && p.VM == vm) {
			pols = append(pols, p.Name)
		}
	}
	if tenantName != "" {
		for _, k := range sortedKeys(d.ike.certs) {
			if c := d.ike.certs[k]; c.Tenant == tenantName {
				certs = append(certs, c.Name)
			}
		}
	}
	var what []string
	if len(pols) > 0 {
		what = append(what, fmt.Sprintf("IKE policy %s (vifsec policy delete)", strings.Join(pols, ", ")))
	}
	if len(certs) > 0 {
		what = append(what, fmt.Sprintf("certificate %s (vifsec certificate delete)", strings.Join(certs, ", ")))
	}
	return strings.Join(what, " and ")
}
