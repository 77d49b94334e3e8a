package ike

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vifsec/vifsec/sa/ike/wire"
)

// IDType is the type of an IKE identity (RFC 7296 §3.5), the wire's.
type IDType = wire.IDType

const (
	IDInvalid = wire.IDInvalid
	IDIPv4    = wire.IDIPv4
	IDFQDN    = wire.IDFQDN
	IDRFC822  = wire.IDRFC822
	IDIPv6    = wire.IDIPv6
	IDDN      = wire.IDDN
	IDKeyID   = wire.IDKeyID
)

func idTypeName(t IDType) string {
	switch t {
	case IDFQDN:
		return "FQDN"
	case IDRFC822:
		return "RFC 822 address"
	}
	return t.String()
}

// ID is an IKE identity: its type and the bytes of its Identification
// Data as they go on the wire (an address in network order, a name in
// ASCII, a DN as DER).
type ID struct {
	Type IDType
	Data []byte
}

// IsZero reports an unset identity.
func (id ID) IsZero() bool { return id.Type == IDInvalid }

// ParseID parses an identity the way strongSwan's configuration does
// (and ONTAP's --local-identity/--remote-identity):
//
//	192.0.2.1, 2001:db8::1        IP address (ID_IPV4_ADDR, ID_IPV6_ADDR)
//	CN=gw.example, O=Example      distinguished name (ID_DER_ASN1_DN), RDNs in
//	                              the order written, as strongSwan writes them
//	user@example.com              RFC 822 address (ID_RFC822_ADDR)
//	host.example, @host.example   FQDN (ID_FQDN); "@" forces FQDN
//	fqdn:, email:, rfc822:, dn:, ipv4:, ipv6:, keyid:  explicit types;
//	                              keyid: takes hex ("keyid:0a1b2c"), as does @#0a1b2c
//
// "*" as the first label of an FQDN or as the local part of an RFC 822
// address, and "*" as an RDN value, are wildcards when the identity is
// matched against a peer's (see Matches).
func ParseID(s string) (ID, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ID{}, errors.New("empty identity; give an IP address, a host name, user@domain or a DN like CN=host,O=org")
	}
	if i := strings.IndexByte(s, ':'); i > 0 {
		typ, rest := strings.ToLower(s[:i]), s[i+1:]
		switch typ {
		case "fqdn", "dns":
			return nameID(IDFQDN, rest)
		case "email", "rfc822", "userfqdn":
			return nameID(IDRFC822, rest)
		case "dn", "asn1dn":
			return dnID(rest)
		case "ipv4", "ipv6":
			a, err := netip.ParseAddr(rest)
			if err != nil || (typ == "ipv4") != a.Unmap().Is4() {
				return ID{}, fmt.Errorf("identity %q: %q is not an %s address", s, rest, typ)
			}
			return addrID(a), nil
		case "keyid":
			return keyID(rest)
		}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return ID{}, fmt.Errorf("identity %q: zones (%%if) are not accepted", s)
		}
		return addrID(a), nil
	}
	switch {
	case strings.HasPrefix(s, "@#"):
		return keyID(s[2:])
	case strings.HasPrefix(s, "@@"):
		return nameID(IDRFC822, s[2:])
	case strings.HasPrefix(s, "@"):
		return nameID(IDFQDN, s[1:])
	case strings.Contains(s, "="):
		return dnID(s)
	case strings.Contains(s, "@"):
		return nameID(IDRFC822, s)
	}
	return nameID(IDFQDN, s)
}

func addrID(a netip.Addr) ID {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return ID{Type: IDIPv4, Data: b[:]}
	}
	b := a.As16()
	return ID{Type: IDIPv6, Data: b[:]}
}

func nameID(t IDType, s string) (ID, error) {
	if s == "" {
		return ID{}, fmt.Errorf("identity: empty %s", idTypeName(t))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return ID{}, fmt.Errorf("identity %q: only printable ASCII without spaces is accepted in a %s", s, idTypeName(t))
		}
	}
	if t == IDRFC822 && strings.Count(s, "@") != 1 {
		return ID{}, fmt.Errorf("identity %q: an RFC 822 identity is user@domain", s)
	}
	return ID{Type: t, Data: []byte(s)}, nil
}

func keyID(h string) (ID, error) {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "#"), "0x")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		return ID{}, fmt.Errorf("identity: key ID %q is not hex", h)
	}
	return ID{Type: IDKeyID, Data: b}, nil
}

// dnAttrs maps the attribute names strongSwan and RFC 4514 use to OIDs.
var dnAttrs = map[string]asn1.ObjectIdentifier{
	"c": {2, 5, 4, 6}, "st": {2, 5, 4, 8}, "s": {2, 5, 4, 8}, "l": {2, 5, 4, 7},
	"o": {2, 5, 4, 10}, "ou": {2, 5, 4, 11}, "cn": {2, 5, 4, 3}, "sn": {2, 5, 4, 4},
	"serialnumber": {2, 5, 4, 5}, "t": {2, 5, 4, 12}, "title": {2, 5, 4, 12},
	"g": {2, 5, 4, 42}, "gn": {2, 5, 4, 42}, "i": {2, 5, 4, 43}, "dnq": {2, 5, 4, 46},
	"dnqualifier": {2, 5, 4, 46}, "street": {2, 5, 4, 9}, "postalcode": {2, 5, 4, 17},
	"e": {1, 2, 840, 113549, 1, 9, 1}, "email": {1, 2, 840, 113549, 1, 9, 1},
	"emailaddress": {1, 2, 840, 113549, 1, 9, 1},
	"dc":           {0, 9, 2342, 19200300, 100, 1, 25}, "uid": {0, 9, 2342, 19200300, 100, 1, 1},
}

var dnNames = map[string]string{
	"2.5.4.6": "C", "2.5.4.8": "ST", "2.5.4.7": "L", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.12": "T",
	"2.5.4.42": "G", "2.5.4.43": "I", "2.5.4.46": "dnQualifier", "2.5.4.9": "street",
	"2.5.4.17": "postalCode", "1.2.840.113549.1.9.1": "E",
	"0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

// ia5Attrs are encoded as IA5String, as certificates carry them.
func ia5Attr(oid asn1.ObjectIdentifier) bool {
	return oid.Equal(dnAttrs["e"]) || oid.Equal(dnAttrs["dc"])
}

// dnID parses "CN=a, O=b" (or "/CN=a/O=b") into a DER RDNSequence, RDNs in
// the order written; "\," escapes a separator.
func dnID(s string) (ID, error) {
	sep := byte(',')
	if strings.HasPrefix(s, "/") {
		sep, s = '/', s[1:]
	}
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == sep || (sep == ',' && c == ';'):
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	var seq pkix.RDNSequence
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return ID{}, fmt.Errorf("identity %q: %q is not an RDN; write a DN like CN=host.example,O=Example", s, p)
		}
		oid, known := dnAttrs[strings.ToLower(k)]
		if !known {
			var err error
			if oid, err = parseOID(k); err != nil {
				return ID{}, fmt.Errorf("identity %q: unknown attribute %q; use C, ST, L, O, OU, CN, SN, serialNumber, E, DC, UID or a dotted OID", s, k)
			}
		}
		var val any = v
		if ia5Attr(oid) {
			val = asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(v)}
		}
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: val}})
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		return ID{}, fmt.Errorf("identity %q: %w", s, err)
	}
	return ID{Type: IDDN, Data: der}, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, f := range strings.Split(s, ".") {
		n := 0
		if f == "" || len(f) > 9 {
			return nil, errors.New("bad OID")
		}
		for _, c := range f {
			if c < '0' || c > '9' {
				return nil, errors.New("bad OID")
			}
			n = n*10 + int(c-'0')
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, errors.New("bad OID")
	}
	return oid, nil
}

// rdn is one attribute of a parsed DN.
type rdn struct {
	oid string
	val string
}

// parseDN decodes a DER DN into its attributes in order; nil if it is not
// a DN.
func parseDN(der []byte) []rdn {
	var seq pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil || len(rest) != 0 {
		return nil
	}
	out := []rdn{}
	for _, set := range seq {
		for _, atv := range set {
			var v string
			switch x := atv.Value.(type) {
			case string:
				v = x
			default:
				v = fmt.Sprint(x)
			}
			out = append(out, rdn{oid: atv.Type.String(), val: v})
		}
	}
	return out
}

func dnString(der []byte) string {
	rs := parseDN(der)
	if rs == nil {
		return "dn:#" + hex.EncodeToString(der)
	}
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		n := dnNames[r.oid]
		if n == "" {
			n = r.oid
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(r.val, ",", `\,`))
	}
	return b.String()
}

// String writes the identity as ParseID reads it.
func (id ID) String() string {
	switch id.Type {
	case IDIPv4, IDIPv6:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	case IDFQDN, IDRFC822:
		return string(id.Data)
	case IDDN:
		return dnString(id.Data)
	case IDKeyID:
		return "keyid:" + hex.EncodeToString(id.Data)
	case IDInvalid:
		return ""
	}
	return fmt.Sprintf("%s:#%x", idTypeName(id.Type), id.Data)
}

// Equal reports the same identity: same type, same data (names compared
// without regard to case, DNs attribute by attribute).
func (id ID) Equal(o ID) bool {
	if id.Type != o.Type {
		return false
	}
	switch id.Type {
	case IDFQDN, IDRFC822:
		return strings.EqualFold(string(id.Data), string(o.Data))
	case IDDN:
		return dnMatch(parseDN(id.Data), parseDN(o.Data), false)
	}
	return bytes.Equal(id.Data, o.Data)
}

// Matches reports whether the peer's identity got satisfies id as a
// pattern: Equal, or with wildcards ("*.example.com", "*@example.com",
// "CN=*, O=Example"). A DN pattern also matches a DN whose RDNs are in the
// reverse order (RFC 4514 writes them last-first, strongSwan first-first).
func (id ID) Matches(got ID) bool {
	if id.Type != got.Type {
		return false
	}
	switch id.Type {
	case IDFQDN:
		p, g := strings.ToLower(string(id.Data)), strings.ToLower(string(got.Data))
		if strings.HasPrefix(p, "*.") {
			return strings.HasSuffix(g, p[1:]) && len(g) > len(p)-1
		}
		return p == g
	case IDRFC822:
		p, g := strings.ToLower(string(id.Data)), strings.ToLower(string(got.Data))
		if strings.HasPrefix(p, "*@") {
			at := strings.IndexByte(g, '@')
			return at > 0 && g[at:] == p[1:]
		}
		return p == g
	case IDDN:
		p, g := parseDN(id.Data), parseDN(got.Data)
		if p == nil || g == nil {
			return false
		}
		if dnMatch(p, g, true) {
			return true
		}
		r := make([]rdn, len(p))
		for i := range p {
			r[len(p)-1-i] = p[i]
		}
		return dnMatch(r, g, true)
	}
	return id.Equal(got)
}

func dnMatch(p, g []rdn, wildcard bool) bool {
	if p == nil || g == nil || len(p) != len(g) {
		return false
	}
	for i := range p {
		if p[i].oid != g[i].oid {
			return false
		}
		if wildcard && p[i].val == "*" {
			continue
		}
		if !strings.EqualFold(p[i].val, g[i].val) {
			return false
		}
	}
	return true
}

// ProvenBy reports whether certificate c proves identity id: an IP in its
// subjectAltName iPAddress, an FQDN in dNSName, an RFC 822 address in
// rfc822Name, a DN equal to its subject, a key ID equal to its
// subjectKeyIdentifier.
func (id ID) ProvenBy(c *x509.Certificate) bool {
	switch id.Type {
	case IDIPv4, IDIPv6:
		a, ok := netip.AddrFromSlice(id.Data)
		if !ok {
			return false
		}
		for _, ip := range c.IPAddresses {
			if b, ok := netip.AddrFromSlice(ip); ok && b.Unmap() == a.Unmap() {
				return true
			}
		}
	case IDFQDN:
		for _, n := range c.DNSNames {
			if strings.EqualFold(n, string(id.Data)) {
				return true
			}
		}
	case IDRFC822:
		for _, n := range c.EmailAddresses {
			if strings.EqualFold(n, string(id.Data)) {
				return true
			}
		}
	case IDDN:
		return bytes.Equal(c.RawSubject, id.Data) || dnMatch(parseDN(c.RawSubject), parseDN(id.Data), false)
	case IDKeyID:
		return len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, id.Data)
	}
	return false
}
