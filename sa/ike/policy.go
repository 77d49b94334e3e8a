package ike

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Policy is one IKE connection: who to talk to, how to authenticate, what
// traffic its Child SAs carry (ONTAP's `security ipsec policy`).
type Policy struct {
	// Tenant and Name identify the policy; VM names the VM it speaks for
	// (empty: the hypervisor's underlay), whose interface is Scope.
	Tenant, Name, VM string
	Scope            sa.Scope

	// Local is our IKE address. Remote is the peer's; when it is invalid
	// the policy only responds, to any peer (the peer is then told apart
	// by its identity and the traffic selectors it asks for).
	Local, Remote netip.Addr

	// Traffic selectors (--local-ip-subnets, --remote-ip-subnets,
	// --protocols, --local-ports, --remote-ports). Protocol 0 is any; a
	// port range [0, 0] is any port.
	LocalTS, RemoteTS       []netip.Prefix
	Protocol                uint8
	LocalPorts, RemotePorts [2]uint16
	Mode                    sa.Mode // transport or tunnel

	// Authentication: PSK, or a certificate (Cert, its Chain of
	// intermediates, its private Key) with the CA store Roots and CRLs the
	// peer's certificate is checked against.
	PSK   []byte
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
	Roots []*x509.Certificate
	CRLs  []*x509.RevocationList

	// PPK is a post-quantum preshared key (RFC 8784), PPKID its identity
	// as both peers know it. With PPKRequired the IKE SA is not made
	// without it; else a peer without it (or without RFC 8784) gets an
	// IKE SA keyed as usual.
	PPK         []byte
	PPKID       string
	PPKRequired bool

	// LocalID defaults to Local's address with a PSK and to the
	// certificate's subject DN with a certificate. RemoteID empty accepts
	// any identity with a PSK; with certificates a RemoteID (which the
	// certificate must prove) or AnyRemoteID (ONTAP's ANYTHING: any
	// identity the certificate proves) is required.
	LocalID, RemoteID string
	AnyRemoteID       bool

	// Proposals in order of preference; empty means the defaults
	// (DefaultIKEProposals, DefaultESPProposals).
	IKE []suite.IKE
	ESP []suite.ESP

	// IKELifetime is when the IKE SA is rekeyed (jittered 85-95% of it;
	// default 4h). ChildLifetime is a Child SA's hard lifetime; it is
	// rekeyed at 85-95% of it (default 1h). DPD is the idle time after
	// which the peer's liveness is checked (0: never).
	IKELifetime, ChildLifetime, DPD time.Duration

	// DPDClear: when the peer is found dead (a liveness check or any
	// other exchange of an established IKE SA went unanswered), only
	// remove the SAs. By default an initiating policy re-initiates at
	// once (strongSwan's dpd_action restart; clear is its "clear"). A
	// cleared policy then only responds until SetPolicies gives it
	// changed.
	DPDClear bool

	// ForceEncap puts the Child SAs' ESP in UDP (RFC 3948, port 4500)
	// even where no NAT is in the way, as strongSwan's encap=yes: when
	// this side initiates, its NAT_DETECTION_SOURCE_IP is a value no
	// address hashes to, so both ends detect a NAT, as RFC 7296 §2.23
	// allows a host to make them do, float IKE to port 4500 and
	// encapsulate. A responding side needs nothing: the initiator's
	// detection payloads decide. It takes effect only with a peer that
	// does NAT detection (every RFC 7296 implementation should).
	ForceEncap bool
}

// Default proposals: strongSwan's preferred suites that every peer of
// RFC 8247 supports.
var (
	DefaultIKEProposals = []suite.IKE{
		{Encr: suite.EncrAESGCM16, EncrKeyBits: 256, PRF: suite.PRFHMACSHA384, DH: suite.DHCurve25519},
		{Encr: suite.EncrAESGCM16, EncrKeyBits: 128, PRF: suite.PRFHMACSHA256, DH: suite.DHECP256},
		{Encr: suite.EncrAESCBC, EncrKeyBits: 256, PRF: suite.PRFHMACSHA256, Integ: suite.IntegHMACSHA256128, DH: suite.DHMODP2048},
	}
	DefaultESPProposals = []suite.ESP{
		{Enc: sa.EncAES256GCM, Integ: sa.IntegNone},
		{Enc: sa.EncAES128GCM, Integ: sa.IntegNone},
		{Enc: sa.EncAES256CBC, Integ: sa.IntegHMACSHA256},
	}
)

const (
	defaultIKELifetime   = 4 * time.Hour
	defaultChildLifetime = time.Hour
)

func (p *Policy) usesCert() bool { return len(p.PSK) == 0 }

// Validate checks p; errors name the CLI flag at fault.
func (p *Policy) Validate() error {
	if p.Tenant == "" {
		return errors.New("--tenant: required")
	}
	if p.Name == "" {
		return errors.New("--name: required")
	}
	if p.Remote.IsValid() && !p.Local.IsValid() {
		return fmt.Errorf("policy %s/%s: a local IKE address is required to initiate to --remote-address %s", p.Tenant, p.Name, p.Remote)
	}
	if p.Local.IsValid() && p.Remote.IsValid() && p.Local.Unmap().Is4() != p.Remote.Unmap().Is4() {
		return fmt.Errorf("--remote-address %s: not of the local address %s's family", p.Remote, p.Local)
	}
	if len(p.LocalTS) == 0 {
		return errors.New("--local-ip-subnets: required; give prefixes like 192.0.2.1/32")
	}
	if len(p.RemoteTS) == 0 {
		return errors.New("--remote-ip-subnets: required; give prefixes like 198.51.100.0/24")
	}
	for _, ps := range [][]netip.Prefix{p.LocalTS, p.RemoteTS} {
		for _, x := range ps {
			if !x.IsValid() || x.Addr().Zone() != "" {
				return fmt.Errorf("--local-ip-subnets/--remote-ip-subnets: %v is not a prefix", x)
			}
		}
	}
	for _, pr := range [][2]uint16{p.LocalPorts, p.RemotePorts} {
		if pr[0] > pr[1] {
			return fmt.Errorf("--local-ports/--remote-ports: range %d-%d is empty", pr[0], pr[1])
		}
	}
	if p.Mode != sa.ModeTransport && p.Mode != sa.ModeTunnel {
		return errors.New("--mode: use transport or tunnel")
	}
	switch {
	case len(p.PPK) > 0 && p.PPKID == "":
		return errors.New("--ppk-id: required with a post-quantum preshared key")
	case len(p.PPK) == 0 && (p.PPKID != "" || p.PPKRequired):
		return errors.New("--ppk-id/--ppk-required: no post-quantum preshared key was given")
	case len(p.PPKID) > 255:
		return errors.New("--ppk-id: at most 255 bytes")
	}
	if len(p.PSK) > 0 {
		if p.Cert != nil || p.Key != nil {
			return errors.New("--auth-method: PSK and a certificate are both set; choose one")
		}
		if p.AnyRemoteID {
			return errors.New("--remote-identity ANYTHING: only with --auth-method PKI (a PSK proves no identity)")
		}
	} else {
		if p.Cert == nil || p.Key == nil {
			return errors.New("--auth-method: give a PSK, or PKI with --cert-name (a certificate and its private key)")
		}
		if !publicKeyMatches(p.Cert.PublicKey, p.Key.Public()) {
			return fmt.Errorf("--cert-name: the private key does not belong to the certificate %q", p.Cert.Subject)
		}
		switch p.Key.Public().(type) {
		case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
		default:
			return fmt.Errorf("--cert-name: %T keys are not supported; use RSA or ECDSA", p.Key.Public())
		}
		if len(p.Roots) == 0 {
			return errors.New("ca-certificate: PKI needs the tenant's CA certificates (vifsec ca-certificate add)")
		}
		if p.RemoteID == "" && !p.AnyRemoteID {
			return errors.New("--remote-identity: required with PKI; give the identity the peer's certificate proves, or ANYTHING")
		}
	}
	if p.LocalID != "" {
		if _, err := ParseID(p.LocalID); err != nil {
			return fmt.Errorf("--local-identity: %w", err)
		}
	}
	if p.RemoteID != "" && !p.AnyRemoteID {
		if _, err := ParseID(p.RemoteID); err != nil {
			return fmt.Errorf("--remote-identity: %w", err)
		}
	}
	for _, s := range p.IKE {
		if err := s.Valid(); err != nil {
			return fmt.Errorf("--ike-proposals: %w", err)
		}
	}
	for _, s := range p.ESP {
		if err := s.Valid(); err != nil {
			return fmt.Errorf("--esp-proposals: %w", err)
		}
	}
	for _, d := range []time.Duration{p.IKELifetime, p.ChildLifetime, p.DPD} {
		if d < 0 {
			return errors.New("lifetimes and DPD delay must not be negative")
		}
	}
	return nil
}

func publicKeyMatches(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	x, ok := a.(eq)
	return ok && x.Equal(b)
}

// policyState is a policy as the engine uses it: parsed once.
type policyState struct {
	Policy          // with defaults filled in
	given    Policy // as SetPolicies got it, to tell changes
	key      string // tenant/name
	localID  ID
	remoteID ID // zero: any (PSK) or AnyRemoteID
	trust    *trust
	localSel []wire.Selector
	remSel   []wire.Selector
	removed  bool
	sas      map[*ikeSA]struct{} // IKE SAs of this policy
	// cleared: DPDClear found the peer dead; the policy no longer
	// initiates (until SetPolicies replaces it).
	cleared bool

	retry timer // re-initiation after a failure
	// fails counts consecutive failed initiations, for the retry backoff.
	fails int
}

func newPolicyState(p Policy) *policyState {
	ps := &policyState{Policy: p, given: p, key: p.Tenant + "/" + p.Name}
	if len(ps.IKE) == 0 {
		ps.IKE = DefaultIKEProposals
	}
	if len(ps.ESP) == 0 {
		ps.ESP = DefaultESPProposals
	}
	if ps.IKELifetime == 0 {
		ps.IKELifetime = defaultIKELifetime
	}
	if ps.ChildLifetime == 0 {
		ps.ChildLifetime = defaultChildLifetime
	}
	switch {
	case p.LocalID != "":
		ps.localID, _ = ParseID(p.LocalID)
		if p.Cert != nil && ps.localID.Type == IDDN && ps.localID.Matches(ID{Type: IDDN, Data: p.Cert.RawSubject}) {
			// Send the certificate's own encoding of its subject (the
			// operator may have written the RDNs in either order).
			ps.localID.Data = p.Cert.RawSubject
		}
	case p.Cert != nil:
		ps.localID = ID{Type: IDDN, Data: p.Cert.RawSubject}
	case p.Local.IsValid():
		ps.localID = addrID(p.Local)
	}
	if p.RemoteID != "" && !p.AnyRemoteID {
		ps.remoteID, _ = ParseID(p.RemoteID)
	}
	if p.usesCert() {
		ps.trust = newTrust(p.Roots, p.CRLs)
	}
	ps.localSel = selectors(p.LocalTS, p.Protocol, p.LocalPorts)
	ps.remSel = selectors(p.RemoteTS, p.Protocol, p.RemotePorts)
	ps.retry.idx = -1
	ps.sas = map[*ikeSA]struct{}{}
	return ps
}

// localIDFor is our identity on an IKE SA from local address a, when the
// policy gives none.
func (ps *policyState) localIDFor(a netip.Addr) ID {
	if !ps.localID.IsZero() {
		return ps.localID
	}
	return addrID(a)
}

// samePolicy reports whether a and b configure the same thing.
func samePolicy(a, b *Policy) bool { return reflect.DeepEqual(a, b) }

// initiates reports whether the policy brings its SAs up itself.
func (ps *policyState) initiates() bool { return ps.Remote.IsValid() }
