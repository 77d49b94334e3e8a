package api

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/replay"
	"github.com/vifsec/vifsec/tenant"
)

// Parsing turns request fields, written as the CLI writes its flags, into
// domain values. Each function reports every problem it finds (joined),
// each prefixed with its flag; the daemon then checks the rules that
// combine fields and objects.

// problems collects operator errors, each naming its flag.
type problems []error

func (p *problems) add(flag string, err error)   { *p = append(*p, fmt.Errorf("%s: %w", flag, err)) }
func (p *problems) addf(format string, a ...any) { *p = append(*p, fmt.Errorf(format, a...)) }
func (p problems) err() error                    { return errors.Join(p...) }

// ParseSPI parses an --sa-spi value: "0x" (or "0X") and 1-8 hex digits in
// either case, as esxcli requires. Whether the value is reserved is for
// sa.Config.Validate to say.
func ParseSPI(s string) (uint32, error) {
	const rule = "write 0x and 1-8 hex digits, e.g. 0x1000 (0x100-0xffffffff; 0x1-0xff are reserved)"
	if len(s) < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		if _, err := strconv.ParseUint(s, 10, 32); err == nil {
			return 0, fmt.Errorf("%q has no 0x prefix; the SPI is hexadecimal: %s", s, rule)
		}
		return 0, fmt.Errorf("%q is not an SPI; %s", s, rule)
	}
	h := s[2:]
	if h == "" || len(h) > 8 {
		return 0, fmt.Errorf("%q is not an SPI; %s", s, rule)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an SPI; %s", s, rule)
	}
	return uint32(v), nil
}

// parseUint parses a decimal number 0..max for flag; what says what the
// number is, for the message.
func parseUint(s string, max uint64, what string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not %s; use a decimal number 0-%d", s, what, max)
	}
	return v, nil
}

// ParseBool parses true or false (also the CLI's --esn with no value,
// which the CLI sends as true).
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean; use true or false", s)
}

// required reports a missing value; it returns whether v is present.
func (p *problems) required(flag, v, accepts string) bool {
	if v == "" {
		p.addf("%s: required; %s", flag, accepts)
		return false
	}
	return true
}

// Parse returns the tenant r describes.
func (r *TenantAddRequest) Parse() (tenant.Tenant, error) {
	var p problems
	t := tenant.Tenant{Name: r.Tenant, DefaultAction: tenant.ActionNone}
	p.required("--tenant", r.Tenant, "give the tenant a name")
	if r.VNI != "" {
		v, err := parseUint(string(r.VNI), tenant.MaxVNI, "a VXLAN VNI")
		if err != nil {
			p.add("--vni", err)
		}
		t.VNI = uint32(v)
	}
	if r.DefaultAction != "" {
		a, err := tenant.ParseAction(r.DefaultAction)
		if err != nil {
			p.add("--default-action", err)
		}
		t.DefaultAction = a
	}
	return t, p.err()
}

// Parse returns the VM r describes.
func (r *VMAttachRequest) Parse() (tenant.VM, error) {
	var p problems
	v := tenant.VM{Name: r.VM, Tenant: r.Tenant, Dev: r.Dev, Netns: r.Netns, Origin: r.Origin}
	p.required("--vm", r.VM, "give the VM interface a name")
	p.required("--tenant", r.Tenant, "name the tenant the VM belongs to")
	p.required("--dev", r.Dev, "give the host-side interface (veth, macvlan, tap, VF)")
	if p.required("--mac", r.MAC, "give the guest's MAC, e.g. 52:54:00:12:34:56") {
		m, err := tenant.ParseMAC(r.MAC)
		if err != nil {
			p.add("--mac", err)
		}
		v.MAC = m
	}
	if r.VLAN != "" {
		n, err := tenant.ParseVLAN(string(r.VLAN))
		if err != nil {
			p.add("--vlan", err)
		}
		v.VLAN = n
	}
	for _, s := range r.IP {
		a, err := tenant.ParseAddr(s)
		if err != nil {
			p.add("--ip", err)
			continue
		}
		v.IPs = append(v.IPs, a)
	}
	if r.CreateTap != "" {
		b, err := ParseBool(string(r.CreateTap))
		if err != nil {
			p.add("--create-tap", err)
		}
		v.CreateTap = b
	}
	return v, p.err()
}

// Parse returns the uplink r describes.
func (r *UplinkSetRequest) Parse() (daemon.Uplink, error) {
	var p problems
	u := daemon.Uplink{Dev: r.Dev, Netns: r.Netns, Overlay: daemon.OverlayNone}
	if r.Protect != "" {
		v, err := daemon.ParseProtect(r.Protect)
		if err != nil {
			p.add("--protect", err)
		}
		u.Protect = v
	}
	p.required("--dev", r.Dev, "give the interface protected traffic leaves by")
	if r.Overlay != "" {
		o, err := daemon.ParseOverlay(r.Overlay)
		if err != nil {
			p.add("--overlay", err)
		}
		u.Overlay = o
	}
	if r.VXLANLocal != "" {
		a, err := tenant.ParseAddr(r.VXLANLocal)
		if err != nil {
			p.add("--vxlan-local", err)
		}
		u.VXLANLocal = a
	}
	if r.VXLANPort != "" {
		n, err := parseUint(string(r.VXLANPort), 65535, "a UDP port")
		if err == nil && n == 0 {
			err = fmt.Errorf("0 is not a usable UDP port; use 1-65535 (default %d)", daemon.DefaultVXLANPort)
		}
		if err != nil {
			p.add("--vxlan-port", err)
		}
		u.VXLANPort = uint16(n)
	}
	return u, p.err()
}

// Parse returns the forwarding entry r describes. Whether the remote is
// a usable unicast address is for the daemon to say.
func (r *FDBAddRequest) Parse() (daemon.FDBEntry, error) {
	var p problems
	e := daemon.FDBEntry{Tenant: r.Tenant}
	p.required("--tenant", r.Tenant, "name the tenant the MAC belongs to")
	if p.required("--mac", r.MAC, "give the MAC of the VM behind the remote VTEP, e.g. 52:54:00:12:34:56") {
		m, err := tenant.ParseMAC(r.MAC)
		if err != nil {
			p.add("--mac", err)
		}
		e.MAC = m
	}
	if p.required("--remote", r.Remote, "give the underlay address of the remote VTEP, e.g. 2001:db8::2 or 192.0.2.2") {
		a, err := tenant.ParseAddr(r.Remote)
		if err != nil {
			p.add("--remote", err)
		}
		e.Remote = a
	}
	return e, p.err()
}

// Parse returns the VM name and SA configuration r describes; the daemon
// fills in the scope from the VM. For an underlay SA (r.Tenant set) vm is
// "": add it with daemon.AddUnderlaySA(r.Tenant, cfg). SASPI "auto" gives
// cfg.SPI daemon.SPIAuto. The returned key slices are fresh; the caller
// zeroes them after use.
func (r *SAAddRequest) Parse() (vm string, cfg sa.Config, err error) {
	var p problems
	cfg.Name = r.SAName
	switch {
	case r.VM != "" && r.Tenant != "":
		p.addf("--vm/--tenant: give exactly one: --vm NAME for an SA of a VM, or --tenant NAME for an underlay SA (ESP between VTEPs)")
	case r.Tenant == "":
		p.required("--vm", r.VM, "name the VM the SA is for (see vifsec vm list), or give --tenant NAME for an underlay SA")
	}
	p.required("--sa-name", r.SAName, "give the SA a name")
	addr := func(flag, s string) netip.Addr {
		if !p.required(flag, s, "give an IPv6 or IPv4 address, e.g. 2001:db8:1::121") {
			return netip.Addr{}
		}
		a, err := tenant.ParseAddr(s)
		if err != nil {
			p.add(flag, err)
		}
		return a
	}
	cfg.Src = addr("--sa-source", r.SASource)
	cfg.Dst = addr("--sa-destination", r.SADestination)
	if p.required("--sa-mode", r.SAMode, "use transport or tunnel") {
		m, err := sa.ParseMode(r.SAMode)
		if err != nil {
			p.add("--sa-mode", err)
		}
		cfg.Mode = m
	}
	if p.required("--sa-spi", r.SASPI, "write 0x and hex digits, e.g. 0x1000, or auto") && r.SASPI != "auto" {
		v, err := ParseSPI(r.SASPI)
		if err == nil && v == daemon.SPIAuto {
			err = fmt.Errorf("%q is reserved (RFC 4303 §2.1 reserves 0x0-0xff); use 0x100-0xffffffff, or auto", r.SASPI)
		}
		if err != nil {
			p.add("--sa-spi", err)
		}
		cfg.SPI = v
	}
	if p.required("--encryption-algorithm", r.EncryptionAlgorithm, "use one of 3des-cbc, aes128-cbc, aes256-cbc, aes128-gcm, aes256-gcm, chacha20-poly1305, null") {
		a, err := sa.ParseEncAlg(r.EncryptionAlgorithm)
		if err != nil {
			p.add("--encryption-algorithm", err)
		}
		cfg.Enc = a
	}
	if p.required("--integrity-algorithm", r.IntegrityAlgorithm, "use one of hmac-sha1, hmac-sha2-256, hmac-sha2-384, hmac-sha2-512, none (with an AEAD)") {
		a, err := sa.ParseIntegAlg(r.IntegrityAlgorithm)
		if err != nil {
			p.add("--integrity-algorithm", err)
		}
		cfg.Integ = a
	}
	if r.EncryptionKey != "" {
		k, err := sa.ParseKey(r.EncryptionKey)
		if err != nil {
			p.add("--encryption-key", err)
		}
		cfg.EncKey = k
	}
	if r.IntegrityKey != "" {
		k, err := sa.ParseKey(r.IntegrityKey)
		if err != nil {
			p.add("--integrity-key", err)
		}
		cfg.IntegKey = k
	}
	if r.ReplayWindow != "" {
		// One accepted range in every message, whether the value is not a
		// number or out of range: the window's (sa/replay); 0 is the default.
		n, err := parseUint(string(r.ReplayWindow), math.MaxUint32, "a number")
		if err != nil || n != 0 && (n < replay.MinSize || n > replay.MaxSize) {
			p.addf("--replay-window: %q is not a replay window size; use %d-%d packets (default %d)", string(r.ReplayWindow), replay.MinSize, replay.MaxSize, replay.DefaultSize)
		}
		cfg.ReplayWindow = int(n)
	}
	if r.ESN != "" {
		b, err := ParseBool(string(r.ESN))
		if err != nil {
			p.add("--esn", err)
		}
		cfg.ESN = b
	}
	if r.LifetimeBytes != "" {
		n, err := parseUint(string(r.LifetimeBytes), 1<<64-1, "a number of bytes")
		if err != nil {
			p.add("--lifetime-bytes", err)
		}
		cfg.Lifetime.Hard.Bytes = n
	}
	if r.LifetimeSeconds != "" {
		n, err := parseUint(string(r.LifetimeSeconds), 1<<64-1, "a number of seconds")
		if err != nil {
			p.add("--lifetime-seconds", err)
		}
		cfg.Lifetime.Hard.Seconds = n
	}
	switch r.Encapsulation {
	case "", "none":
	case "udp":
		// The ports are RFC 3948's: the receiving end takes UDP to 4500
		// as ESP, so there is nothing to choose without a NAT.
		cfg.Encap = &sa.UDPEncap{SrcPort: esp.NATTPort, DstPort: esp.NATTPort}
	default:
		p.addf("--encapsulation: %q is not an encapsulation; use none (ESP, IP protocol 50) or udp (ESP in UDP to port 4500, RFC 3948)", r.Encapsulation)
	}
	if err := p.err(); err != nil {
		clear(cfg.EncKey)
		clear(cfg.IntegKey)
		return "", sa.Config{}, err
	}
	if r.Tenant != "" {
		return "", cfg, nil
	}
	return r.VM, cfg, nil
}

// Parse returns the policy r describes, and warnings for the operator
// (host bits cleared from a prefix).
func (r *SPAddRequest) Parse() (tenant.Policy, []string, error) {
	var p problems
	var warnings []string
	pol := tenant.Policy{Name: r.SPName, VM: r.VM, SAName: r.SAName}
	p.required("--vm", r.VM, "name the VM the SP is for (see vifsec vm list)")
	p.required("--sp-name", r.SPName, "give the SP a name")
	prefix := func(flag, s string) netip.Prefix {
		if !p.required(flag, s, "write ADDR/LEN, e.g. 2001:db8:1::/64") {
			return netip.Prefix{}
		}
		v, err := tenant.ParsePrefix(s)
		if err != nil {
			p.add(flag, err)
			return v
		}
		if !strings.Contains(s, "/") {
			// esxcli's syntax is ADDR/LEN; a bare address is taken as the
			// one host, and said so.
			warnings = append(warnings, fmt.Sprintf("%s %s has no /LEN; using %s (this host only); write ADDR/LEN for a network", flag, s, v))
		} else if a, _, _ := strings.Cut(s, "/"); !strings.EqualFold(a, v.Addr().String()) {
			if given, err := netip.ParseAddr(a); err == nil && given != v.Addr() {
				warnings = append(warnings, fmt.Sprintf("%s %s has host bits set; using %s", flag, s, v))
			}
		}
		return v
	}
	pol.Src = prefix("--sp-source", r.SPSource)
	pol.Dst = prefix("--sp-destination", r.SPDestination)
	port := func(flag string, s Value) tenant.Port {
		if !p.required(flag, string(s), "use 0-65535 or any") {
			return tenant.Port{}
		}
		v, err := tenant.ParsePort(string(s))
		if err != nil {
			p.add(flag, err)
		}
		return v
	}
	pol.SrcPort = port("--source-port", r.SourcePort)
	pol.DstPort = port("--destination-port", r.DestinationPort)
	if p.required("--upper-layer-protocol", r.UpperLayerProtocol, "use any, tcp, udp, icmp6 or icmp") {
		v, err := tenant.ParseProto(r.UpperLayerProtocol)
		if err != nil {
			p.add("--upper-layer-protocol", err)
		}
		pol.ULProto = v
	}
	if p.required("--flow-direction", r.FlowDirection, "use in or out") {
		v, err := sa.ParseDirection(r.FlowDirection)
		if err != nil {
			p.add("--flow-direction", err)
		}
		pol.Direction = v
	}
	if p.required("--action", r.Action, "use none, discard or ipsec") {
		v, err := tenant.ParseAction(r.Action)
		if err != nil {
			p.add("--action", err)
		}
		pol.Action = v
	}
	if pol.ULProto == tenant.ProtoAny {
		// Ports select TCP and UDP traffic only: with any protocol they
		// would silently not apply to the rest.
		for _, f := range []struct {
			flag string
			port tenant.Port
		}{{"--source-port", pol.SrcPort}, {"--destination-port", pol.DstPort}} {
			if n, ok := f.port.Number(); ok {
				p.addf("%s %d needs --upper-layer-protocol tcp or udp (it is any, which has no ports); use %s any, or name the protocol", f.flag, n, f.flag)
			}
		}
	}
	if r.SPMode != "" {
		v, err := sa.ParseMode(r.SPMode)
		if err != nil {
			p.add("--sp-mode", err)
		}
		pol.Mode = v
	}
	if err := p.err(); err != nil {
		return tenant.Policy{}, nil, err
	}
	return pol, warnings, nil
}

// Parse returns the switch position r asks for.
func (r *ConfigModifyRequest) Parse() (bool, error) {
	if r.IsEnabled == "" {
		return false, fmt.Errorf("--is-enabled: required; use true or false")
	}
	b, err := ParseBool(string(r.IsEnabled))
	if err != nil {
		return false, fmt.Errorf("--is-enabled: %w", err)
	}
	return b, nil
}
