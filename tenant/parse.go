package tenant

import (
	"fmt"
	"net/netip"
	"strings"
)

// Examples used in error messages. They are documentation addresses
// (RFC 3849, RFC 5737) so that a pasted example cannot hit a real network.
const (
	examplePrefix6 = "2001:db8:1::/48"
	examplePrefix4 = "192.0.2.0/24"
	exampleAddr6   = "2001:db8::1"
	exampleAddr4   = "192.0.2.1"
)

// ParsePrefix parses a policy selector address (esxcli `--sp-source`,
// `--sp-destination`): ADDR/LEN with an IPv6 or IPv4 address in any case,
// e.g. 2001:DB8:1::/48 or 192.0.2.0/24. A bare address selects that one
// address (/128 or /32). Zones are refused.
//
// Host bits are cleared, as esxcli does: 2001:db8:1::5/64 is accepted as
// 2001:db8:1::/64. A caller that wants to tell the operator compares the
// result's Addr with the address it was given.
//
// When the input is close to a valid prefix, the error suggests the
// rewrite: an ESXi documentation example's 2001:0DB8:0001:/48 (a single trailing colon) is
// refused with "…; write ADDR/LEN, e.g. 2001:db8:1::/48".
func ParsePrefix(s string) (netip.Prefix, error) {
	addr, bits, hasBits := strings.Cut(s, "/")
	if !hasBits {
		a, err := netip.ParseAddr(s)
		if err == nil && a.Zone() == "" {
			return netip.PrefixFrom(a, a.BitLen()), nil
		}
	} else if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	return netip.Prefix{}, prefixError(s, addr, bits, hasBits)
}

// prefixError explains why s (split into addr and bits) is not a prefix
// and, where it can, derives a valid rewrite from it.
func prefixError(s, addr, bits string, hasBits bool) error {
	v6 := strings.Contains(addr, ":")
	example := examplePrefix6 + " or " + examplePrefix4
	switch {
	case v6:
		example = examplePrefix6
	case strings.Contains(addr, "."):
		example = examplePrefix4
	}
	reason := ""
	if i := strings.IndexByte(addr, '%'); i >= 0 {
		reason = ": zones (" + addr[i:] + ") are not accepted"
		addr = addr[:i]
	} else if a, err := netip.ParseAddr(addr); err == nil && hasBits {
		// The address is fine, so the length is not.
		reason = fmt.Sprintf(": the length must be a number 0-%d", a.BitLen())
		if a.Is4() {
			example = examplePrefix4
		} else {
			example = examplePrefix6
		}
	} else if v6 && strings.HasSuffix(addr, ":") && !strings.HasSuffix(addr, "::") {
		reason = `: an IPv6 address cannot end in a single ":"`
	} else if v6 && strings.HasPrefix(addr, ":") && !strings.HasPrefix(addr, "::") {
		reason = `: an IPv6 address cannot start with a single ":"`
	}
	if fix := suggestPrefix(addr, bits, hasBits); fix != "" {
		example = fix
	}
	return fmt.Errorf("%q is not a valid prefix%s; write ADDR/LEN, e.g. %s", s, reason, example)
}

// suggestPrefix tries the rewrites of common mistakes and returns the first
// that parses, in canonical form; "" if none does.
func suggestPrefix(addr, bits string, hasBits bool) string {
	addr = strings.ToLower(addr)
	// The address alone: right when only a zone was wrong.
	cands := []string{addr}
	if strings.Contains(addr, ":") {
		switch {
		case strings.HasSuffix(addr, ":") && !strings.HasSuffix(addr, "::"):
			// 2001:0DB8:0001:/48 — the operator meant "::".
			cands = append(cands, addr+":")
		case strings.HasPrefix(addr, ":") && !strings.HasPrefix(addr, "::"):
			cands = append(cands, ":"+addr)
		}
	} else if strings.Count(addr, ".") < 3 || strings.HasSuffix(addr, ".") {
		// 192.0.2/24 or 192.0.2./24 — pad the missing octets with zeros.
		a := strings.TrimSuffix(addr, ".")
		for strings.Count(a, ".") < 3 {
			a += ".0"
		}
		cands = append(cands, a)
	}
	for _, c := range cands {
		if !hasBits {
			if a, err := netip.ParseAddr(c); err == nil {
				return netip.PrefixFrom(a, a.BitLen()).String()
			}
			continue
		}
		if p, err := netip.ParsePrefix(c + "/" + bits); err == nil {
			return p.Masked().String()
		}
	}
	return ""
}

// ParseAddr parses a single IPv6 or IPv4 address (`--ip`, `--sa-source`,
// `--vxlan-local`, …), in any case. Zones (fe80::1%eth0) are refused: an
// address here is seen from the VM or the wire, where a zone means nothing.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err == nil && a.Zone() == "" {
		return a, nil
	}
	if i := strings.IndexByte(s, '%'); i >= 0 {
		return netip.Addr{}, fmt.Errorf("%q has a zone (%s); zones are not accepted, write the address alone", s, s[i:])
	}
	if strings.Contains(s, "/") {
		return netip.Addr{}, fmt.Errorf("%q is a prefix, not an address; write one address, e.g. %s or %s", s, exampleAddr6, exampleAddr4)
	}
	return netip.Addr{}, fmt.Errorf("%q is not an IP address; write an IPv6 address like %s or an IPv4 address like %s", s, exampleAddr6, exampleAddr4)
}

// MaxVLAN is the highest VLAN ID a VM may use; 4095 is reserved (IEEE 802.1Q).
const MaxVLAN = 4094

// ParseVLAN parses a VLAN ID (`--vlan`): a decimal number 0-4094, where 0
// means untagged.
func ParseVLAN(s string) (uint16, error) {
	n, ok := parseDecimal(s, MaxVLAN)
	if !ok {
		return 0, fmt.Errorf("%q is not a VLAN ID; use 0-4094 (0 means untagged)", s)
	}
	return uint16(n), nil
}

// MAC is an Ethernet address. Unlike net.HardwareAddr it is comparable,
// so (vlan, mac) can key a map without allocating.
type MAC [6]byte

// String returns the address as six lower-case hex pairs joined by ':'.
func (m MAC) String() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[x>>4], hex[x&0xf])
	}
	return string(b)
}

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether m is a group address (I/G bit set), which
// includes broadcast.
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// MarshalText returns m.String().
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses the syntax ParseMAC accepts. It does not refuse
// multicast or zero addresses; VM.Validate does.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := parseMACSyntax(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseMAC parses a VM's MAC address (`--mac`): six hex pairs separated by
// ':', in any case, e.g. 52:54:00:AB:CD:EF. It refuses the all-zero address
// and multicast (including broadcast) addresses, which cannot be the source
// address of a VM's interface.
func ParseMAC(s string) (MAC, error) {
	m, err := parseMACSyntax(s)
	if err != nil {
		return MAC{}, err
	}
	if err := checkVMMAC(m); err != nil {
		return MAC{}, fmt.Errorf("%q %w", s, err)
	}
	return m, nil
}

// checkVMMAC returns why m cannot be a VM's address, as a phrase that
// follows the address.
func checkVMMAC(m MAC) error {
	switch {
	case m.IsZero():
		return fmt.Errorf("is the all-zero MAC address; a VM needs its own unicast MAC, e.g. 52:54:00:12:34:56")
	case m.IsMulticast():
		return fmt.Errorf("is a multicast MAC address (lowest bit of the first octet set); a VM's MAC must be unicast, e.g. 52:54:00:12:34:56")
	}
	return nil
}

func parseMACSyntax(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, macSyntaxError(s)
	}
	for i := range m {
		if i > 0 && s[3*i-1] != ':' {
			return m, macSyntaxError(s)
		}
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 {
			return m, macSyntaxError(s)
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

func macSyntaxError(s string) error {
	return fmt.Errorf("%q is not a MAC address; write six hex pairs separated by colons, e.g. 52:54:00:12:34:56", s)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// MaxNameLen is the longest tenant, VM, SP or SA name.
const MaxNameLen = 64

// ValidName returns nil if s can name a tenant, VM, SP or SA: 1-64
// characters of A-Z a-z 0-9 _ . -, starting with a letter or digit (so a
// name is never mistaken for a flag, and is safe in files, logs and
// metrics labels). Otherwise it returns an error saying what is accepted.
func ValidName(s string) error {
	const rule = "a name is 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit"
	if s == "" {
		return fmt.Errorf("empty name; %s", rule)
	}
	for i, r := range s {
		switch {
		case i == 0 && (r > 0x7f || !isAlnum(byte(r))):
			return fmt.Errorf("%q starts with %q; %s", s, r, rule)
		case r > 0x7f || !isAlnum(byte(r)) && r != '_' && r != '.' && r != '-':
			return fmt.Errorf("%q contains %q; %s", s, r, rule)
		}
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%q is %d characters long; %s", s, len(s), rule)
	}
	return nil
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
