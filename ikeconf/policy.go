package ikeconf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/tenant"
)

// AuthMethod is how the peers of an IKE policy authenticate (ONTAP
// `-auth-method`). The zero value is invalid.
type AuthMethod uint8

const (
	AuthInvalid AuthMethod = iota
	// AuthPSK is a pre-shared key, read from a prompt or stdin.
	AuthPSK
	// AuthPKI is a certificate of the tenant (`--cert-name`), checked by
	// the peer against its CAs; the peer's against the tenant's IPsec CAs.
	AuthPKI
)

func (a AuthMethod) String() string {
	switch a {
	case AuthPSK:
		return "PSK"
	case AuthPKI:
		return "PKI"
	}
	return fmt.Sprintf("AuthMethod(%d)", uint8(a))
}

// ParseAuthMethod parses `--auth-method`: PSK or PKI, in any case.
func ParseAuthMethod(s string) (AuthMethod, error) {
	switch strings.ToUpper(s) {
	case "PSK":
		return AuthPSK, nil
	case "PKI":
		return AuthPKI, nil
	}
	return AuthInvalid, fmt.Errorf("%q is not an authentication method; use PSK or PKI", s)
}

// PortRange is the port selector of an IKE policy (`--local-ports`,
// `--remote-ports`): First-Last inclusive. The zero value selects every
// port (port 0 alone is no port a flow can use).
type PortRange struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
}

// AnyPorts selects every port; it is the zero value.
var AnyPorts = PortRange{}

// IsAny reports whether r selects every port.
func (r PortRange) IsAny() bool { return r.First == 0 && (r.Last == 0 || r.Last == 65535) }

// Bounds returns the first and last port r selects.
func (r PortRange) Bounds() (first, last uint16) {
	if r.IsAny() {
		return 0, 65535
	}
	return r.First, r.Last
}

// Single returns the one port r selects, if it selects one.
func (r PortRange) Single() (uint16, bool) { return r.First, r.First == r.Last && !r.IsAny() }

// String is the CLI spelling: "any", "N" or "N-M".
func (r PortRange) String() string {
	switch {
	case r.IsAny():
		return "any"
	case r.First == r.Last:
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// ParsePortRange parses `--local-ports`/`--remote-ports`: "any", a port
// N (1-65535) or a range N-M (0-65535, N ≤ M); 0-65535 is any.
func ParsePortRange(s string) (PortRange, error) {
	const rule = "use a port N (1-65535), a range N-M, or any"
	if s == "any" {
		return AnyPorts, nil
	}
	if strings.Contains(s, ",") {
		return PortRange{}, fmt.Errorf("%q is a list; vifsec takes one port or range per policy (create one policy per range); %s", s, rule)
	}
	a, b, isRange := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(a, 10, 16)
	last := first
	var err2 error
	if isRange {
		last, err2 = strconv.ParseUint(b, 10, 16)
	}
	switch {
	case err1 != nil || err2 != nil:
		return PortRange{}, fmt.Errorf("%q is not a port or range; %s", s, rule)
	case first > last:
		return PortRange{}, fmt.Errorf("%q is an empty range (%d > %d); write the lower port first", s, first, last)
	case last == 0:
		return PortRange{}, fmt.Errorf("%q: port 0 carries no flow; %s", s, rule)
	case first == 0 && last == 65535:
		return AnyPorts, nil
	}
	return PortRange{First: uint16(first), Last: uint16(last)}, nil
}

// IANA protocol numbers an IKE policy names by word.
const (
	ProtoNumICMP  = 1
	ProtoNumTCP   = 6
	ProtoNumUDP   = 17
	ProtoNumICMP6 = 58
)

// ParseProtocol parses `--protocols`: any, tcp, udp, icmp, icmp6 (also
// ipv6-icmp), or a protocol number 1-255. 0 means any.
func ParseProtocol(s string) (uint8, error) {
	const rule = "use any, tcp, udp, icmp, icmp6 or a protocol number 1-255"
	switch strings.ToLower(s) {
	case "any":
		return 0, nil
	case "tcp":
		return ProtoNumTCP, nil
	case "udp":
		return ProtoNumUDP, nil
	case "icmp":
		return ProtoNumICMP, nil
	case "icmp6", "ipv6-icmp", "icmpv6":
		return ProtoNumICMP6, nil
	}
	if strings.Contains(s, ",") {
		return 0, fmt.Errorf("%q is a list; vifsec negotiates one protocol per policy (create one policy per protocol); %s", s, rule)
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not a protocol; %s", s, rule)
	}
	return uint8(n), nil
}

// ProtocolString is the CLI spelling of protocol number p.
func ProtocolString(p uint8) string {
	switch p {
	case 0:
		return "any"
	case ProtoNumTCP:
		return "tcp"
	case ProtoNumUDP:
		return "udp"
	case ProtoNumICMP:
		return "icmp"
	case ProtoNumICMP6:
		return "icmp6"
	}
	return strconv.Itoa(int(p))
}

// AnyIdentity as RemoteIdentity (PKI only) accepts any identity the peer's
// certificate chain proves (ONTAP's ANYTHING).
const AnyIdentity = "ANYTHING"

// MinPSKLen is the shortest pre-shared key accepted without a warning.
const MinPSKLen = 16

// MinPPKLen is the shortest post-quantum preshared key accepted without a
// warning: RFC 8784 asks for at least 256 bits of entropy.
const MinPPKLen = 32

// maxIdentity bounds --local-identity and --remote-identity.
const maxIdentity = 255

// Policy is one IKE policy of a tenant: which traffic IKE protects,
// with whom and how peers authenticate. Equivalent to: `vifsec policy
// create --tenant NAME --name NAME [--vm NAME] --local-ip-subnets LIST
// --remote-ip-subnets LIST [--protocols P] [--local-ports P]
// [--remote-ports P] [--remote-address ADDR] [--mode transport|tunnel]
// --auth-method PSK|PKI [--cert-name NAME] [--local-identity ID]
// [--remote-identity ID|ANYTHING] [--ike-proposals LIST]
// [--esp-proposals LIST] [--ike-lifetime D] [--esp-lifetime D]
// [--dpd-interval D] [--dpd-action clear|restart]` (ONTAP `security ipsec
// policy create`; the last four are extensions).
//
// With VM set, IKE speaks from that VM's address for it and the SAs it
// negotiates are the VM's; without, from the uplink's underlay address
// (--vxlan-local), and the SAs are underlay SAs of the tenant.
//
// PSK and PPK are secrets: they are stored (sealed like the PSK in a
// fleet store), never logged, and never returned by a listing
// (PolicyInfo has PSKSet and PPKSet instead).
type Policy struct {
	Tenant string
	Name   string
	VM     string
	// LocalSubnets and RemoteSubnets are the traffic the policy protects,
	// seen from this side; every prefix of one family.
	LocalSubnets  []netip.Prefix
	RemoteSubnets []netip.Prefix
	// Protocol is the IP protocol number, 0 for any.
	Protocol    uint8
	LocalPorts  PortRange
	RemotePorts PortRange
	// RemoteAddress is the peer's IKE address; invalid: respond only (any
	// peer in RemoteSubnets may start IKE).
	RemoteAddress netip.Addr
	Mode          sa.Mode
	Auth          AuthMethod
	PSK           []byte
	// CertName is the tenant's server certificate (PKI).
	CertName string
	// PPK (ext: --ppk-id) is a post-quantum preshared key (RFC 8784),
	// mixed into the keys of the IKE SA with either authentication
	// method; PPKID is its identity as both peers know it. With
	// PPKRequired no IKE SA is made without it; else a peer without a
	// PPK is accepted (or accepts us) on the classic keys.
	PPK         []byte
	PPKID       string
	PPKRequired bool
	// LocalIdentity is our IKE identity; "" means our address (PSK) or the
	// certificate's subject (PKI). RemoteIdentity is the one the peer must
	// prove; "" means its address (PSK only); AnyIdentity (PKI only): any
	// the certificate chain proves.
	LocalIdentity  string
	RemoteIdentity string
	// IKEProposals and ESPProposals are strongSwan-syntax proposals in
	// order of preference ("aes256gcm16-prfsha384-ecp384"); none means
	// vifsec's defaults.
	IKEProposals []string
	ESPProposals []string
	// IKELifetime (ext: --ike-lifetime) is when the IKE SA is rekeyed;
	// ESPLifetime (ext: --esp-lifetime) the Child SAs' hard lifetime
	// (rekeyed at 85-95% of it); zero means DefaultIKELifetime,
	// DefaultESPLifetime. DPDInterval (ext: --dpd-interval) is the idle
	// time after which the peer's liveness is checked; zero: never.
	// DPDAction (ext: --dpd-action) is what happens when the peer is
	// found dead (see EffectiveDPDAction).
	IKELifetime, ESPLifetime, DPDInterval time.Duration
	DPDAction                             DPDAction
	// ForceEncap (ext: --encapsulation udp) puts the Child SAs' ESP in
	// UDP to port 4500 even without a NAT, as strongSwan's encap=yes:
	// the initiator makes the NAT detection see one (RFC 7296 §2.23).
	// false (auto): ESP in UDP only where a NAT is detected.
	ForceEncap bool
}

// ID is the policy's name in the store and in the daemon's maps: tenant
// names cannot hold '/', so "TENANT/NAME" is unique.
func (p *Policy) ID() string { return p.Tenant + "/" + p.Name }

// Clone returns a deep copy of p, secrets included.
func (p *Policy) Clone() Policy {
	c := *p
	c.LocalSubnets = slices.Clone(p.LocalSubnets)
	c.RemoteSubnets = slices.Clone(p.RemoteSubnets)
	c.PSK = slices.Clone(p.PSK)
	c.PPK = slices.Clone(p.PPK)
	c.IKEProposals = slices.Clone(p.IKEProposals)
	c.ESPProposals = slices.Clone(p.ESPProposals)
	return c
}

// ClearSecrets zeroes p's pre-shared keys (the bytes are shared by no
// other policy: Clone copies them).
func (p *Policy) ClearSecrets() {
	clear(p.PSK)
	clear(p.PPK)
}

// Is4 reports whether the policy's subnets are IPv4 (else IPv6); valid
// only when Validate passed.
func (p *Policy) Is4() bool { return len(p.LocalSubnets) > 0 && p.LocalSubnets[0].Addr().Is4() }

// Validate returns nil if p is well formed, else every problem found,
// each naming its flag. It does not look at other objects (the tenant,
// VM and certificate): the daemon does.
func (p *Policy) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := tenant.ValidName(p.Tenant); err != nil {
		errs = append(errs, fmt.Errorf("--tenant: %w", err))
	}
	if err := tenant.ValidName(p.Name); err != nil {
		errs = append(errs, fmt.Errorf("--name: %w", err))
	}
	if p.VM != "" {
		if err := tenant.ValidName(p.VM); err != nil {
			errs = append(errs, fmt.Errorf("--vm: %w", err))
		}
	}
	lf := checkSubnets(&errs, "--local-ip-subnets", p.LocalSubnets)
	rf := checkSubnets(&errs, "--remote-ip-subnets", p.RemoteSubnets)
	if lf != 0 && rf != 0 && lf != rf {
		add("--local-ip-subnets %s and --remote-ip-subnets %s are of different address families; a policy protects IPv6 or IPv4 traffic, not both", JoinPrefixes(p.LocalSubnets), JoinPrefixes(p.RemoteSubnets))
	}
	switch p.Protocol {
	case 0, ProtoNumTCP, ProtoNumUDP:
	case ProtoNumICMP6:
		if lf == 4 {
			add("--protocols icmp6 selects IPv6 traffic but the subnets are IPv4; use icmp")
		}
	case ProtoNumICMP:
		if lf == 6 {
			add("--protocols icmp selects IPv4 traffic but the subnets are IPv6; use icmp6")
		}
	}
	for _, pr := range [...]struct {
		flag string
		r    PortRange
	}{{"--local-ports", p.LocalPorts}, {"--remote-ports", p.RemotePorts}} {
		switch {
		case pr.r.First > pr.r.Last:
			add("%s: %d-%d is an empty range; write the lower port first", pr.flag, pr.r.First, pr.r.Last)
		case pr.r.IsAny():
		case p.Protocol != ProtoNumTCP && p.Protocol != ProtoNumUDP:
			add("%s %v needs --protocols tcp or udp: IKE traffic selectors carry ports only for a protocol that has them (--protocols is %s)", pr.flag, pr.r, ProtocolString(p.Protocol))
		}
	}
	if a := p.RemoteAddress; a.IsValid() {
		if err := checkPeer(a); err != nil {
			errs = append(errs, fmt.Errorf("--remote-address: %w", err))
		}
	}
	switch p.Mode {
	case sa.ModeTransport:
		if a := p.RemoteAddress; a.IsValid() && rf != 0 && !slices.ContainsFunc(p.RemoteSubnets, func(s netip.Prefix) bool { return s.Contains(a) }) {
			add("--remote-address %v is in none of --remote-ip-subnets %s; in transport mode the peer's address is the traffic's, so it must be one of them (or use --mode tunnel)", a, JoinPrefixes(p.RemoteSubnets))
		}
	case sa.ModeTunnel:
	default:
		add("--mode: %v is not a mode; use transport or tunnel", p.Mode)
	}
	if p.LocalIdentity == AnyIdentity {
		add("--local-identity ANYTHING: ANYTHING is for --remote-identity; give our identity (an address, a name, an email address or a DN), or leave it out")
	}
	if p.RemoteIdentity == AnyIdentity && p.Auth != AuthPKI {
		add("--remote-identity ANYTHING is only accepted with --auth-method PKI: a pre-shared key proves no identity")
	}
	for _, id := range [...]struct{ flag, v string }{{"--local-identity", p.LocalIdentity}, {"--remote-identity", p.RemoteIdentity}} {
		if err := checkIdentity(id.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id.flag, err))
		}
	}
	switch p.Auth {
	case AuthPSK:
		if len(p.PSK) == 0 {
			add("--auth-method PSK: no pre-shared key given; the CLI reads it from a prompt, or one line from stdin")
		}
		if p.CertName != "" {
			add("--cert-name %s is only used with --auth-method PKI; leave it out with PSK", p.CertName)
		}
	case AuthPKI:
		if len(p.PSK) != 0 {
			add("--auth-method PKI takes no pre-shared key")
		}
		if p.CertName == "" {
			add("--auth-method PKI requires --cert-name, the tenant's server certificate (vifsec certificate install --type server)")
		} else if err := tenant.ValidName(p.CertName); err != nil {
			errs = append(errs, fmt.Errorf("--cert-name: %w", err))
		}
		if p.RemoteIdentity == "" {
			add("--auth-method PKI requires --remote-identity: the identity the peer's certificate must prove (e.g. CN=client.example.com), or ANYTHING for any the chain proves")
		}
	default:
		add("--auth-method: not set; use PSK or PKI")
	}
	switch {
	case len(p.PPK) > 0 && p.PPKID == "":
		add("--ppk-id: required with a post-quantum preshared key: the identity both peers know the PPK by")
	case len(p.PPK) == 0 && p.PPKID != "":
		add("--ppk-id %s: no post-quantum preshared key given; the CLI reads it from a prompt, or the line of stdin after the PSK's", p.PPKID)
	case len(p.PPK) == 0 && p.PPKRequired:
		add("--ppk-required true: no post-quantum preshared key is set; give --ppk-id ID (the CLI reads the key)")
	}
	if err := checkPPKID(p.PPKID); err != nil {
		errs = append(errs, fmt.Errorf("--ppk-id: %w", err))
	}
	p.checkTimers(&errs)
	for _, pr := range [...]struct {
		flag string
		v    []string
		esp  bool
	}{{"--ike-proposals", p.IKEProposals, false}, {"--esp-proposals", p.ESPProposals, true}} {
		if err := checkProposals(pr.v, pr.esp); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pr.flag, err))
		}
	}
	return errors.Join(errs...)
}

// checkSubnets appends the problems of a subnet list and returns its
// family (4 or 6), or 0 if it has none or is broken.
func checkSubnets(errs *[]error, flag string, ps []netip.Prefix) int {
	if len(ps) == 0 {
		*errs = append(*errs, fmt.Errorf("%s: required; give one or more prefixes, comma separated, e.g. 2001:db8:1::/64,2001:db8:2::5/128 (an address alone is /128 or /32)", flag))
		return 0
	}
	fam := 0
	for _, p := range ps {
		switch {
		case !p.IsValid():
			*errs = append(*errs, fmt.Errorf("%s: a prefix is not set", flag))
			return 0
		case p != p.Masked():
			*errs = append(*errs, fmt.Errorf("%s: %v has host bits set; write %v", flag, p, p.Masked()))
			return 0
		case p.Addr().Zone() != "" || p.Addr().Is4In6():
			*errs = append(*errs, fmt.Errorf("%s: %v: zones and IPv4-mapped addresses are not accepted", flag, p))
			return 0
		}
		f := 6
		if p.Addr().Is4() {
			f = 4
		}
		if fam != 0 && f != fam {
			*errs = append(*errs, fmt.Errorf("%s: %s mixes IPv6 and IPv4; give prefixes of one family (create a second policy for the other)", flag, JoinPrefixes(ps)))
			return 0
		}
		fam = f
	}
	return fam
}

// JoinPrefixes writes ps as the CLI takes them: comma separated.
func JoinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// checkPeer says why a cannot be an IKE peer address.
func checkPeer(a netip.Addr) error {
	const rule = "give the peer's unicast IPv6 or IPv4 address"
	switch {
	case a.Zone() != "":
		return fmt.Errorf("%v has a zone; zones are not accepted, %s", a, rule)
	case a.Is4In6():
		return fmt.Errorf("%v is an IPv4-mapped IPv6 address; write it as IPv4 (%v)", a, a.Unmap())
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%v is not a unicast address; %s", a, rule)
	}
	return nil
}

// checkIdentity says why s cannot be an IKE identity ("" is unset).
func checkIdentity(s string) error {
	if len(s) > maxIdentity {
		return fmt.Errorf("%d bytes long; an identity is at most %d", len(s), maxIdentity)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not UTF-8 text", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character; give an address, a name (vpn.example.com), an email address or a DN (CN=host,O=Example)", s)
		}
	}
	if s == "" || s == AnyIdentity {
		return nil
	}
	_, err := ike.ParseID(s)
	return err
}

// maxPPKID bounds --ppk-id: PPK_IDENTITY carries it after one octet of
// type, and strongSwan keeps it as an identity.
const maxPPKID = 255

// checkPPKID accepts "" (no PPK) or 1 to maxPPKID bytes of printable
// ASCII without spaces.
func checkPPKID(s string) error {
	if len(s) > maxPPKID {
		return fmt.Errorf("%d bytes long; a PPK identity is at most %d", len(s), maxPPKID)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("%q holds a space, control or non-ASCII character; give printable ASCII, e.g. ppk-2026", s)
		}
	}
	return nil
}

// checkProposals parses each proposal with the IKE engine's parser
// (strongSwan syntax: algorithms joined by '-', e.g.
// aes256gcm16-prfsha384-ecp384 for IKE, aes256gcm16-ecp384 for ESP).
func checkProposals(ps []string, esp bool) error {
	for _, s := range ps {
		var err error
		if esp {
			_, err = suite.ParseESPProposal(s)
		} else {
			_, err = suite.ParseIKEProposal(s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
