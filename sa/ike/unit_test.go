package ike

import (
	"crypto"
	"crypto/x509"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
)

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		typ  IDType
		data string // for names
		str  string // String(); "" = in
	}{
		{in: "192.0.2.1", typ: IDIPv4},
		{in: "2001:db8::1", typ: IDIPv6},
		{in: "::ffff:192.0.2.1", typ: IDIPv4, str: "192.0.2.1"},
		{in: "host.example", typ: IDFQDN, data: "host.example"},
		{in: "fqdn:host.example", typ: IDFQDN, data: "host.example", str: "host.example"},
		{in: "@host.example", typ: IDFQDN, data: "host.example", str: "host.example"},
		{in: "user@example.com", typ: IDRFC822, data: "user@example.com"},
		{in: "email:user@example.com", typ: IDRFC822, data: "user@example.com", str: "user@example.com"},
		{in: "@@user@example.com", typ: IDRFC822, data: "user@example.com", str: "user@example.com"},
		{in: "CN=gw.example, O=Example, C=CH", typ: IDDN},
		{in: "/C=CH/O=Example/CN=gw", typ: IDDN, str: "C=CH, O=Example, CN=gw"},
		{in: "CN=a\\,b, E=x@example.com", typ: IDDN, str: "CN=a\\,b, E=x@example.com"},
		{in: "keyid:0a0b0c", typ: IDKeyID},
		{in: "@#0a0b0c", typ: IDKeyID, str: "keyid:0a0b0c"},
		{in: "2.5.4.3=gw", typ: IDDN, str: "CN=gw"},
	} {
		id, err := ParseID(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if id.Type != tc.typ {
			t.Errorf("%q: type %v, want %v", tc.in, id.Type, tc.typ)
		}
		if tc.data != "" && string(id.Data) != tc.data {
			t.Errorf("%q: data %q", tc.in, id.Data)
		}
		want := tc.str
		if want == "" {
			want = tc.in
		}
		if got := id.String(); got != want {
			t.Errorf("%q: String() = %q, want %q", tc.in, got, want)
		}
		back, err := ParseID(id.String())
		if err != nil || !back.Equal(id) {
			t.Errorf("%q: does not round-trip through %q: %v", tc.in, id.String(), err)
		}
	}
	for _, bad := range []string{"", "  ", "CN=", "=x", "XX=y", "a@b@c", "ipv4:2001:db8::1", "keyid:zz", "fe80::1%eth0", "host name"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestIDMatches(t *testing.T) {
	m := func(s string) ID {
		id, err := ParseID(s)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, tc := range []struct {
		pattern, id string
		want        bool
	}{
		{"host.example", "HOST.example", true},
		{"host.example", "other.example", false},
		{"*.example", "a.example", true},
		{"*.example", "a.b.example", true},
		{"*.example", "example", false},
		{"*@example.com", "joe@example.com", true},
		{"*@example.com", "joe@example.org", false},
		{"joe@example.com", "JOE@example.com", true},
		{"192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"192.0.2.1", "fqdn:192.0.2.1", false},
		{"CN=gw, O=Example", "CN=gw, O=Example", true},
		{"CN=gw, O=Example", "O=Example, CN=gw", true}, // either RDN order
		{"CN=*, O=Example", "CN=anything, O=Example", true},
		{"CN=*, O=Example", "CN=anything, O=Other", false},
		{"CN=gw, O=Example", "CN=gw, O=Example, C=CH", false},
		{"cn=GW, o=example", "CN=gw, O=Example", true},
	} {
		if got := m(tc.pattern).Matches(m(tc.id)); got != tc.want {
			t.Errorf("%q matches %q: %v, want %v", tc.pattern, tc.id, got, tc.want)
		}
	}
}

func TestProvenBy(t *testing.T) {
	ca := newCA(t, "CA")
	c, _ := ca.issue(t, leafOpts{cn: "gw.example", ips: []netip.Addr{addrA}, dns: []string{"gw.example"}, email: []string{"ops@example.com"}})
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"192.0.2.1", true}, {"192.0.2.2", false},
		{"gw.example", true}, {"other.example", false},
		{"ops@example.com", true}, {"dev@example.com", false},
		{"O=Test, CN=gw.example", true}, {"CN=gw.example, O=Test", false}, // the wire DN is exact
		{"CN=gw.example", false},
	} {
		id, _ := ParseID(tc.id)
		if got := id.ProvenBy(c); got != tc.want {
			t.Errorf("%q proven by certificate: %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestVerifyChain(t *testing.T) {
	root := newCA(t, "Root")
	other := newCA(t, "Other")
	leaf, _ := root.issue(t, leafOpts{cn: "x"})
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	tr := newTrust([]*x509.Certificate{root.cert}, nil)
	if _, err := tr.verifyChain([][]byte{leaf.Raw}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.verifyChain([][]byte{leaf.Raw}, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Fatal("expired chain accepted")
	}
	if _, err := newTrust([]*x509.Certificate{other.cert}, nil).verifyChain([][]byte{leaf.Raw}, now); err == nil {
		t.Fatal("foreign chain accepted")
	}
	if _, err := tr.verifyChain([][]byte{{1, 2, 3}}, now); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, err := tr.verifyChain(nil, now); err == nil {
		t.Fatal("no certificate accepted")
	}
	r := *root
	r.revoke(t, leaf, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, err := newTrust([]*x509.Certificate{root.cert}, r.crls).verifyChain([][]byte{leaf.Raw}, now); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v", err)
	}
	if len(tr.caHashes) != 20 {
		t.Fatalf("CERTREQ hashes: %d bytes", len(tr.caHashes))
	}
}

func sel(a, b string, proto uint8, lo, hi uint16) wire.Selector {
	return wire.Selector{Proto: proto, StartPort: lo, EndPort: hi, Start: netip.MustParseAddr(a), End: netip.MustParseAddr(b)}
}

func TestNarrow(t *testing.T) {
	for _, tc := range []struct {
		name          string
		offered, ours []wire.Selector
		want          []wire.Selector
	}{
		{"equal", []wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 0, 65535)}, []wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 0, 65535)},
			[]wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 0, 65535)}},
		{"narrower ours", []wire.Selector{sel("10.0.0.0", "10.255.255.255", 0, 0, 65535)}, []wire.Selector{sel("10.1.0.0", "10.1.255.255", 6, 80, 80)},
			[]wire.Selector{sel("10.1.0.0", "10.1.255.255", 6, 80, 80)}},
		{"protocol mismatch", []wire.Selector{sel("10.0.0.0", "10.0.0.255", 17, 0, 65535)}, []wire.Selector{sel("10.0.0.0", "10.0.0.255", 6, 0, 65535)}, nil},
		{"ports overlap", []wire.Selector{sel("10.0.0.1", "10.0.0.1", 6, 1000, 2000)}, []wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 1500, 3000)},
			[]wire.Selector{sel("10.0.0.1", "10.0.0.1", 6, 1500, 2000)}},
		{"families", []wire.Selector{sel("2001:db8::", "2001:db8::ffff", 0, 0, 65535)}, []wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 0, 65535)}, nil},
		{"two of ours", []wire.Selector{sel("10.0.0.0", "10.0.255.255", 0, 0, 65535)},
			[]wire.Selector{sel("10.0.1.0", "10.0.1.255", 0, 0, 65535), sel("10.0.3.0", "10.0.3.255", 0, 0, 65535), sel("10.9.0.0", "10.9.0.255", 0, 0, 65535)},
			[]wire.Selector{sel("10.0.1.0", "10.0.1.255", 0, 0, 65535), sel("10.0.3.0", "10.0.3.255", 0, 0, 65535)}},
		{"opaque ports", []wire.Selector{sel("10.0.0.0", "10.0.0.255", 6, 65535, 0)}, []wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 0, 65535)},
			[]wire.Selector{sel("10.0.0.0", "10.0.0.255", 6, 65535, 0)}},
		{"opaque vs range", []wire.Selector{sel("10.0.0.0", "10.0.0.255", 6, 65535, 0)}, []wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 80, 80)}, nil},
	} {
		got := narrow(tc.offered, tc.ours)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if len(got) > 0 && !within(got, tc.ours) {
			t.Errorf("%s: narrowed selectors not within ours", tc.name)
		}
		if len(got) > 0 && !within(got, tc.offered) {
			t.Errorf("%s: narrowed selectors not within the offer", tc.name)
		}
	}
	if within([]wire.Selector{sel("10.0.0.0", "10.0.1.0", 0, 0, 65535)}, []wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 0, 65535)}) {
		t.Error("superset accepted as within")
	}
	if within(nil, []wire.Selector{sel("10.0.0.0", "10.0.0.255", 0, 0, 65535)}) {
		t.Error("no selectors accepted as within")
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want []string
	}{
		{"10.0.0.0", "10.0.0.255", []string{"10.0.0.0/24"}},
		{"10.0.0.1", "10.0.0.1", []string{"10.0.0.1/32"}},
		{"10.0.0.1", "10.0.0.6", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"2001:db8::", "2001:db8::ffff:ffff", []string{"2001:db8::/96"}},
		{"255.255.255.254", "255.255.255.255", []string{"255.255.255.254/31"}},
	} {
		var got []string
		for _, p := range rangePrefixes(netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)) {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s-%s: %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSelectIKE(t *testing.T) {
	x25519 := mustIKE(t, "aes128gcm16-prfsha256-x25519")[0]
	ecp256 := mustIKE(t, "aes128gcm16-prfsha256-ecp256")[0]
	cbc := mustIKE(t, "aes256-sha256-modp2048")[0]
	offer := ikeProposals([]suite.IKE{x25519, cbc, ecp256}, nil).Proposals
	for _, tc := range []struct {
		name       string
		ours       []suite.IKE
		ke         uint16
		preferPeer bool
		want       suite.IKE
		num        uint8
	}{
		{"ours first", []suite.IKE{ecp256, x25519}, suite.DHECP256, false, ecp256, 3},
		{"KE decides", []suite.IKE{ecp256, x25519}, suite.DHCurve25519, false, x25519, 1},
		{"peer's order", []suite.IKE{cbc, ecp256}, 0, true, cbc, 2},
		{"our order", []suite.IKE{ecp256, cbc}, 0, false, ecp256, 3},
		{"KE not acceptable", []suite.IKE{cbc}, suite.DHCurve25519, false, cbc, 2},
	} {
		ch, ok := selectIKE(offer, 0, tc.ours, tc.ke, tc.preferPeer)
		if !ok || ch.suite != tc.want || ch.num != tc.num {
			t.Errorf("%s: got %v #%d (%v), want %v #%d", tc.name, ch.suite, ch.num, ok, tc.want, tc.num)
		}
	}
	if _, ok := selectIKE(offer, 0, mustIKE(t, "aes256gcm16-prfsha384-ecp384"), 0, false); ok {
		t.Error("selected without a common suite")
	}
	if _, ok := selectIKE(offer, 8, []suite.IKE{x25519}, 0, false); ok {
		t.Error("selected a proposal with the wrong SPI size")
	}
	// The initiator accepts only one of its own, as one proposal.
	if s, ok := acceptedIKE(&wire.SA{Proposals: offer[:1]}, 0, []suite.IKE{x25519}); !ok || s != x25519 {
		t.Error("own proposal refused")
	}
	if _, ok := acceptedIKE(&wire.SA{Proposals: offer}, 0, []suite.IKE{x25519, cbc, ecp256}); ok {
		t.Error("answer with several proposals accepted")
	}
	if _, ok := acceptedIKE(&wire.SA{Proposals: offer[1:2]}, 0, []suite.IKE{x25519}); ok {
		t.Error("answer with a suite we did not offer accepted")
	}
}

func TestSelectESP(t *testing.T) {
	gcm := mustESP(t, "aes128gcm16-ecp256")[0]
	cbc := mustESP(t, "aes256-sha256")[0]
	offer := espProposals([]suite.ESP{gcm, cbc}, 0x1234, false).Proposals
	ch, ok := selectESP(offer, []suite.ESP{cbc, gcm}, false, suite.DHECP256, false)
	if !ok || ch.suite != gcm {
		t.Fatalf("KE group should pick the PFS suite: %v", ch.suite)
	}
	if spiFrom(ch.spi) != 0x1234 {
		t.Fatalf("spi %x", ch.spi)
	}
	ch, ok = selectESP(offer, []suite.ESP{cbc, gcm}, false, 0, false)
	if !ok || ch.suite != cbc {
		t.Fatalf("without KE our first: %v", ch.suite)
	}
	// In IKE_AUTH PFS groups are ignored on both sides.
	authOffer := espProposals([]suite.ESP{gcm}, 0x1234, true).Proposals
	for _, tr := range authOffer[0].Transforms {
		if tr.Type == wire.TransformDH {
			t.Fatal("DH transform in an IKE_AUTH proposal")
		}
	}
	ch, ok = selectESP(offer, []suite.ESP{gcm}, true, 0, false)
	if !ok || ch.suite.DH != 0 || ch.suite.Enc != sa.EncAES128GCM {
		t.Fatalf("IKE_AUTH selection: %v %v", ch.suite, ok)
	}
}

func TestPolicyValidate(t *testing.T) {
	ca := newCA(t, "CA")
	cert, key := ca.issue(t, leafOpts{cn: "x"})
	_, otherKey := ca.issue(t, leafOpts{cn: "y"})
	good, _ := pskPair()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(p *Policy)
		flag string
	}{
		{"no tenant", func(p *Policy) { p.Tenant = "" }, "--tenant"},
		{"no name", func(p *Policy) { p.Name = "" }, "--name"},
		{"no local ts", func(p *Policy) { p.LocalTS = nil }, "--local-ip-subnets"},
		{"no remote ts", func(p *Policy) { p.RemoteTS = nil }, "--remote-ip-subnets"},
		{"mode", func(p *Policy) { p.Mode = 0 }, "--mode"},
		{"no auth", func(p *Policy) { p.PSK = nil }, "--auth-method"},
		{"psk and cert", func(p *Policy) { p.Cert = cert }, "--auth-method"},
		{"anything with psk", func(p *Policy) { p.AnyRemoteID = true }, "ANYTHING"},
		{"bad local id", func(p *Policy) { p.LocalID = "CN=" }, "--local-identity"},
		{"bad remote id", func(p *Policy) { p.RemoteID = "XX=1" }, "--remote-identity"},
		{"remote without local", func(p *Policy) { p.Local = netip.Addr{} }, "local IKE address"},
		{"ports", func(p *Policy) { p.LocalPorts = [2]uint16{5, 1} }, "ports"},
		{"families", func(p *Policy) { p.Remote = netip.MustParseAddr("2001:db8::1") }, "--remote-address"},
		{"bad ike", func(p *Policy) { p.IKE = []suite.IKE{{Encr: 99}} }, "--ike-proposals"},
		{"pki without roots", func(p *Policy) { p.PSK, p.Cert, p.Key, p.RemoteID = nil, cert, key.(crypto.Signer), "x" }, "ca-certificate"},
		{"pki without remote id", func(p *Policy) {
			p.PSK, p.Cert, p.Key, p.Roots = nil, cert, key.(crypto.Signer), []*x509.Certificate{ca.cert}
		}, "--remote-identity"},
		{"key not the cert's", func(p *Policy) {
			p.PSK, p.Cert, p.Key, p.Roots, p.AnyRemoteID = nil, cert, otherKey.(crypto.Signer), []*x509.Certificate{ca.cert}, true
		}, "--cert-name"},
	} {
		p := good
		tc.mod(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s: %v (want an error naming %s)", tc.name, err, tc.flag)
		}
	}
	// SetPolicies refuses a bad set whole.
	n := newNet(t)
	a := n.add("a", "192.0.2.1", nil)
	bad := good
	bad.Name = ""
	if err := a.e.SetPolicies([]Policy{good, bad}); err == nil {
		t.Fatal("bad policy accepted")
	}
	if err := a.e.SetPolicies([]Policy{good, good}); err == nil {
		t.Fatal("duplicate policy accepted")
	}
	if len(a.e.IKESAs()) != 0 || len(n.queue) != 0 {
		t.Fatal("a refused SetPolicies changed something")
	}
}
