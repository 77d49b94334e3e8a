package api

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// parseSubnets parses a --local-ip-subnets/--remote-ip-subnets list.
func (p *problems) parseSubnets(flag string, l List) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range l {
		if s == "" {
			p.addf("%s: an empty entry in the list; write prefixes separated by commas, e.g. 2001:db8:1::/64,2001:db8:2::/64", flag)
			continue
		}
		v, err := tenant.ParsePrefix(s)
		if err != nil {
			p.add(flag, err)
			continue
		}
		out = append(out, v)
	}
	return out
}

// parseProposals lower-cases a proposal list (strongSwan's names are
// case-insensitive); the daemon checks each with the IKE parser.
func parseProposals(l List) []string {
	var out []string
	for _, s := range l {
		out = append(out, strings.ToLower(s))
	}
	return out
}

// policySetter sets the fields of an IKE policy from request values; it
// is shared by create and modify so both read a flag the same way.
type policySetter struct{ p problems }

func (ps *policySetter) vm(pol *ikeconf.Policy, v string) { pol.VM = v }

func (ps *policySetter) protocols(pol *ikeconf.Policy, v string) {
	if v == "" {
		pol.Protocol = 0
		return
	}
	n, err := ikeconf.ParseProtocol(v)
	if err != nil {
		ps.p.add("--protocols", err)
	}
	pol.Protocol = n
}

func (ps *policySetter) ports(flag string, r *ikeconf.PortRange, v Value) {
	if v == "" {
		*r = ikeconf.AnyPorts
		return
	}
	x, err := ikeconf.ParsePortRange(string(v))
	if err != nil {
		ps.p.add(flag, err)
	}
	*r = x
}

func (ps *policySetter) remoteAddress(pol *ikeconf.Policy, v string) {
	pol.RemoteAddress = netip.Addr{}
	if v == "" {
		return
	}
	a, err := tenant.ParseAddr(v)
	if err != nil {
		ps.p.add("--remote-address", err)
	}
	pol.RemoteAddress = a
}

func (ps *policySetter) mode(pol *ikeconf.Policy, v string) {
	if v == "" {
		pol.Mode = sa.ModeTransport
		return
	}
	m, err := sa.ParseMode(v)
	if err != nil {
		ps.p.add("--mode", err)
	}
	pol.Mode = m
}

func (ps *policySetter) auth(pol *ikeconf.Policy, v string) {
	a, err := ikeconf.ParseAuthMethod(v)
	if err != nil {
		ps.p.add("--auth-method", err)
	}
	pol.Auth = a
}

// timer parses --ike-lifetime, --esp-lifetime or --dpd-interval; ""
// is the default. The daemon checks the range.
func (ps *policySetter) timer(flag string, d *time.Duration, v Value) {
	*d = 0
	if v == "" {
		return
	}
	x, err := ikeconf.ParseTimerValue(string(v))
	if err != nil {
		ps.p.add(flag, err)
	}
	*d = x
}

func (ps *policySetter) encapsulation(pol *ikeconf.Policy, v string) {
	f, err := ikeconf.ParseEncapsulation(v)
	if err != nil {
		ps.p.add("--encapsulation", err)
	}
	pol.ForceEncap = f
}

func (ps *policySetter) dpdAction(pol *ikeconf.Policy, v string) {
	a, err := ikeconf.ParseDPDAction(v)
	if err != nil {
		ps.p.add("--dpd-action", err)
	}
	pol.DPDAction = a
}

// psk parses the pre-shared key as the CLI read it: 0x-prefixed hex, or
// text taken byte for byte. The error never quotes the key.
func (ps *policySetter) psk(pol *ikeconf.Policy, v string) {
	clear(pol.PSK)
	pol.PSK = nil
	if v == "" {
		return
	}
	k, err := sa.ParseKey(v)
	if err != nil {
		ps.p.addf("pre-shared key: not accepted (%s); give 0x-prefixed hex, or printable ASCII text", pskReason(v))
		return
	}
	pol.PSK = k
}

// ppk parses the post-quantum preshared key as the CLI read it, as psk
// does. The error never quotes the key.
func (ps *policySetter) ppk(pol *ikeconf.Policy, v string) {
	clear(pol.PPK)
	pol.PPK = nil
	if v == "" {
		return
	}
	k, err := sa.ParseKey(v)
	if err != nil {
		ps.p.addf("post-quantum preshared key (--ppk-id): not accepted (%s); give 0x-prefixed hex, or printable ASCII text", pskReason(v))
		return
	}
	pol.PPK = k
}

// pskReason says what is wrong with a PSK without showing it.
func pskReason(v string) string {
	if len(v) >= 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X') {
		return "it starts with 0x but is not whole bytes of hex"
	}
	return "it holds a non-printable or non-ASCII character"
}

// Parse returns the policy r describes; the PSK bytes are fresh (the
// daemon zeroes them).
func (r *PolicyCreateRequest) Parse() (ikeconf.Policy, error) {
	var ps policySetter
	pol := ikeconf.Policy{Tenant: r.Tenant, Name: r.Name}
	ps.p.required("--tenant", r.Tenant, "name the tenant the policy belongs to")
	ps.p.required("--name", r.Name, "give the policy a name")
	ps.vm(&pol, r.VM)
	if len(r.LocalIPSubnets) == 0 {
		ps.p.addf("--local-ip-subnets: required; give this side's prefixes, comma separated, e.g. 2001:db8:1::121/128")
	}
	if len(r.RemoteIPSubnets) == 0 {
		ps.p.addf("--remote-ip-subnets: required; give the peer side's prefixes, comma separated, e.g. 2001:db8:2::/64")
	}
	pol.LocalSubnets = ps.p.parseSubnets("--local-ip-subnets", r.LocalIPSubnets)
	pol.RemoteSubnets = ps.p.parseSubnets("--remote-ip-subnets", r.RemoteIPSubnets)
	ps.protocols(&pol, r.Protocols)
	ps.ports("--local-ports", &pol.LocalPorts, r.LocalPorts)
	ps.ports("--remote-ports", &pol.RemotePorts, r.RemotePorts)
	ps.remoteAddress(&pol, r.RemoteAddress)
	ps.mode(&pol, r.Mode)
	auth := r.AuthMethod
	if auth == "" {
		auth = "PSK" // ONTAP's default
	}
	ps.auth(&pol, auth)
	ps.psk(&pol, r.PSK)
	ps.ppk(&pol, r.PPK)
	pol.PPKID, pol.PPKRequired = r.PPKID, r.PPKRequired
	pol.CertName = r.CertName
	pol.LocalIdentity, pol.RemoteIdentity = r.LocalIdentity, r.RemoteIdentity
	pol.IKEProposals, pol.ESPProposals = parseProposals(r.IKEProposals), parseProposals(r.ESPProposals)
	ps.timer("--ike-lifetime", &pol.IKELifetime, r.IKELifetime)
	ps.timer("--esp-lifetime", &pol.ESPLifetime, r.ESPLifetime)
	ps.timer("--dpd-interval", &pol.DPDInterval, r.DPDInterval)
	ps.dpdAction(&pol, r.DPDAction)
	ps.encapsulation(&pol, r.Encapsulation)
	if err := ps.p.err(); err != nil {
		clear(pol.PSK)
		clear(pol.PPK)
		return ikeconf.Policy{}, err
	}
	return pol, nil
}

// Edit returns the change r asks for, to run on the stored policy
// (daemon.ModifyPolicy). Switching to PSK needs a psk; switching to PKI
// drops the stored one.
func (r *PolicyModifyRequest) Edit() func(*ikeconf.Policy) error {
	return func(pol *ikeconf.Policy) error {
		var ps policySetter
		if r.VM != nil {
			ps.vm(pol, *r.VM)
		}
		if r.LocalIPSubnets != nil {
			pol.LocalSubnets = ps.p.parseSubnets("--local-ip-subnets", *r.LocalIPSubnets)
		}
		if r.RemoteIPSubnets != nil {
			pol.RemoteSubnets = ps.p.parseSubnets("--remote-ip-subnets", *r.RemoteIPSubnets)
		}
		if r.Protocols != nil {
			ps.protocols(pol, *r.Protocols)
		}
		if r.LocalPorts != nil {
			ps.ports("--local-ports", &pol.LocalPorts, *r.LocalPorts)
		}
		if r.RemotePorts != nil {
			ps.ports("--remote-ports", &pol.RemotePorts, *r.RemotePorts)
		}
		if r.RemoteAddress != nil {
			ps.remoteAddress(pol, *r.RemoteAddress)
		}
		if r.Mode != nil {
			ps.mode(pol, *r.Mode)
		}
		if r.AuthMethod != nil {
			ps.auth(pol, *r.AuthMethod)
			if pol.Auth == ikeconf.AuthPKI {
				ps.psk(pol, "")
			}
		}
		if r.PSK != nil {
			ps.psk(pol, *r.PSK)
		}
		if r.PPKID != nil {
			pol.PPKID = *r.PPKID
			if *r.PPKID == "" {
				pol.PPKRequired = false
			}
			if r.PPK == nil {
				ps.ppk(pol, "")
				if *r.PPKID != "" {
					ps.p.addf("--ppk-id %s: a new PPK identity needs its post-quantum preshared key; the CLI reads it from a prompt, or the line of stdin after the PSK's", *r.PPKID)
				}
			}
		}
		if r.PPK != nil {
			ps.ppk(pol, *r.PPK)
		}
		if r.PPKRequired != nil {
			pol.PPKRequired = *r.PPKRequired
		}
		if r.CertName != nil {
			pol.CertName = *r.CertName
		}
		if pol.Auth == ikeconf.AuthPSK && r.AuthMethod != nil && r.CertName == nil {
			pol.CertName = "" // switching to PSK drops the certificate
		}
		if r.LocalIdentity != nil {
			pol.LocalIdentity = *r.LocalIdentity
		}
		if r.RemoteIdentity != nil {
			pol.RemoteIdentity = *r.RemoteIdentity
		}
		if r.IKEProposals != nil {
			pol.IKEProposals = parseProposals(*r.IKEProposals)
		}
		if r.ESPProposals != nil {
			pol.ESPProposals = parseProposals(*r.ESPProposals)
		}
		if r.IKELifetime != nil {
			ps.timer("--ike-lifetime", &pol.IKELifetime, *r.IKELifetime)
		}
		if r.ESPLifetime != nil {
			ps.timer("--esp-lifetime", &pol.ESPLifetime, *r.ESPLifetime)
		}
		if r.DPDInterval != nil {
			ps.timer("--dpd-interval", &pol.DPDInterval, *r.DPDInterval)
		}
		if r.DPDAction != nil {
			ps.dpdAction(pol, *r.DPDAction)
		}
		if r.Encapsulation != nil {
			ps.encapsulation(pol, *r.Encapsulation)
		}
		return ps.p.err()
	}
}

// PolicyOf converts a daemon.PolicyInfo for listing.
func PolicyOf(info daemon.PolicyInfo) Policy {
	p := info.Policy
	out := Policy{Tenant: p.Tenant, Name: p.Name, VM: p.VM, LocalIPSubnets: []string{}, RemoteIPSubnets: []string{},
		Protocols: ikeconf.ProtocolString(p.Protocol), LocalPorts: p.LocalPorts.String(), RemotePorts: p.RemotePorts.String(),
		Mode: p.Mode.String(), AuthMethod: p.Auth.String(), CertName: p.CertName,
		LocalIdentity: p.LocalIdentity, RemoteIdentity: p.RemoteIdentity,
		IKEProposals: append([]string{}, p.IKEProposals...), ESPProposals: append([]string{}, p.ESPProposals...)}
	for _, s := range p.LocalSubnets {
		out.LocalIPSubnets = append(out.LocalIPSubnets, s.String())
	}
	for _, s := range p.RemoteSubnets {
		out.RemoteIPSubnets = append(out.RemoteIPSubnets, s.String())
	}
	if p.RemoteAddress.IsValid() {
		out.RemoteAddress = p.RemoteAddress.String()
	}
	if info.PSKSet {
		out.PSK = "set"
	}
	if info.PPKSet {
		out.PPK = "set"
	}
	out.PPKID, out.PPKRequired = p.PPKID, p.PPKRequired
	if info.Local.IsValid() {
		out.LocalAddress = info.Local.String()
	}
	ikeL, espL := p.Lifetimes()
	out.IKELifetime, out.ESPLifetime, out.DPDInterval = ikeconf.FormatTimer(ikeL), ikeconf.FormatTimer(espL), ikeconf.FormatTimer(p.DPDInterval)
	out.DPDAction = p.EffectiveDPDAction().String()
	out.Encapsulation = ikeconf.EncapsulationString(p.ForceEncap)
	return out
}

// Parse returns the tenant, name, type and PEM of r.
func (r *CertificateInstallRequest) Parse() (tn, name string, t ikeconf.CertType, pem []byte, err error) {
	var p problems
	p.required("--tenant", r.Tenant, "name the tenant the certificate belongs to")
	p.required("--cert-name", r.CertName, "give the certificate a name")
	if p.required("--type", r.Type, "use server, server-ca or client-ca") {
		var e error
		if t, e = ikeconf.ParseCertType(r.Type); e != nil {
			p.add("--type", e)
		}
	}
	if r.PEM == "" {
		p.addf("PEM: none given; the CLI reads it from stdin (vifsec certificate install ... < cert.pem)")
	}
	if err := p.err(); err != nil {
		return "", "", 0, nil, err
	}
	return r.Tenant, r.CertName, t, []byte(r.PEM), nil
}

func fmtTime(t interface{ IsZero() bool }, s string) string {
	if t.IsZero() {
		return ""
	}
	return s
}

// CertificateOf converts a daemon.CertInfo for listing.
func CertificateOf(c daemon.CertInfo) Certificate {
	out := Certificate{Tenant: c.Tenant, CertName: c.Name, Type: c.Type.String(), Subject: c.Subject, Issuer: c.Issuer,
		NotBefore: c.NotBefore.UTC().Format(timeFormat), NotAfter: c.NotAfter.UTC().Format(timeFormat),
		Count: c.Count, IPsecCA: c.IPsecCA, UsedBy: append([]string{}, c.UsedBy...)}
	if c.Serial != nil {
		out.Serial = fmt.Sprintf("%x", c.Serial)
	}
	if c.KeySet {
		out.PrivateKey = "set"
	}
	return out
}

// timeFormat is how times are listed: RFC 3339 in UTC.
const timeFormat = "2006-01-02T15:04:05Z"

// CRLOf converts a daemon.CRLInfo for listing.
func CRLOf(c daemon.CRLInfo) CRL {
	out := CRL{Tenant: c.Tenant, CACert: c.CAName, Issuer: c.Issuer, Revoked: c.Revoked,
		ThisUpdate: fmtTime(c.ThisUpdate, c.ThisUpdate.UTC().Format(timeFormat)),
		NextUpdate: fmtTime(c.NextUpdate, c.NextUpdate.UTC().Format(timeFormat))}
	if c.Number != nil {
		out.Number = c.Number.String()
	}
	return out
}

// IKESAOf converts a daemon.IKESA for listing.
func IKESAOf(s daemon.IKESA) IKESA {
	out := IKESA{Tenant: s.Tenant, Policy: s.Policy, VM: s.VM, Initiator: s.Initiator, State: s.State, Suite: s.Suite,
		KeyExchanges: s.KeyExchanges, PPK: s.PPK,
		LocalIdentity: s.LocalID, RemoteID: s.RemoteID, NAT: s.NAT, ChildSAs: s.Children, ChildSAError: s.ChildError,
		InitiatorSPI: fmt.Sprintf("%016x", s.InitiatorSPI), ResponderSPI: fmt.Sprintf("%016x", s.ResponderSPI),
		Established: fmtTime(s.Established, s.Established.UTC().Format(timeFormat))}
	if s.Local.IsValid() {
		out.LocalAddress = s.Local.Addr().String()
	}
	if s.Remote.IsValid() {
		out.RemoteAddress = s.Remote.Addr().String()
	}
	return out
}
