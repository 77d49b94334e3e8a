package ike

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike/suite"
)

// An in-memory network of engines with a shared fake clock. Engines send
// into a FIFO queue; pump delivers it. Hooks drop, duplicate or rewrite
// datagrams (a NAT).

type node struct {
	name string
	addr netip.Addr
	e    *Engine
	net  *fakeNet

	mu         sync.Mutex
	installed  map[string]*ChildSA // by In.Name, with keys
	switched   []string            // In.Names in Switch order
	removed    []string
	installErr error
}

type fakeNet struct {
	t     testing.TB
	now   time.Time
	nodes map[netip.Addr]*node
	queue []Packet
	sent  []Packet // everything sent, in order
	// filter returns false to drop a datagram; it may change it (a NAT).
	filter func(p *Packet) bool
}

func newNet(t testing.TB) *fakeNet {
	return &fakeNet{t: t, now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), nodes: map[netip.Addr]*node{}}
}

func testLogger() *slog.Logger {
	if os.Getenv("IKE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (n *fakeNet) add(name, addr string, cfg *Config) *node {
	nd := &node{name: name, addr: netip.MustParseAddr(addr), net: n, installed: map[string]*ChildSA{}}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c.Logger = testLogger().With("node", name)
	c.Now = func() time.Time { return n.now }
	c.Send = func(p Packet) {
		n.sent = append(n.sent, p)
		n.queue = append(n.queue, p)
	}
	c.Install = func(cs *ChildSA) error {
		nd.mu.Lock()
		defer nd.mu.Unlock()
		if nd.installErr != nil {
			return nd.installErr
		}
		cp := *cs
		cp.In.EncKey = bytes.Clone(cs.In.EncKey)
		cp.In.IntegKey = bytes.Clone(cs.In.IntegKey)
		cp.Out.EncKey = bytes.Clone(cs.Out.EncKey)
		cp.Out.IntegKey = bytes.Clone(cs.Out.IntegKey)
		if err := cp.In.Validate(); err != nil {
			n.t.Errorf("%s: Install: In invalid: %v", name, err)
		}
		if err := cp.Out.Validate(); err != nil {
			n.t.Errorf("%s: Install: Out invalid: %v", name, err)
		}
		if nd.installed[cp.In.Name] != nil {
			n.t.Errorf("%s: Install: %s installed twice", name, cp.In.Name)
		}
		nd.installed[cp.In.Name] = &cp
		return nil
	}
	c.Switch = func(cs *ChildSA) {
		nd.mu.Lock()
		defer nd.mu.Unlock()
		if nd.installed[cs.In.Name] == nil {
			n.t.Errorf("%s: Switch of %s, which is not installed", name, cs.In.Name)
		}
		nd.switched = append(nd.switched, cs.In.Name)
	}
	c.Remove = func(cs *ChildSA) {
		nd.mu.Lock()
		defer nd.mu.Unlock()
		if nd.installed[cs.In.Name] == nil {
			n.t.Errorf("%s: Remove of %s, which is not installed", name, cs.In.Name)
		}
		delete(nd.installed, cs.In.Name)
		nd.removed = append(nd.removed, cs.In.Name)
	}
	nd.e = New(&c)
	n.nodes[nd.addr] = nd
	return nd
}

// pump delivers queued datagrams until none are left.
func (n *fakeNet) pump() {
	for i := 0; len(n.queue) > 0; i++ {
		if i > 100000 {
			n.t.Fatal("pump: endless exchange")
		}
		p := n.queue[0]
		n.queue = n.queue[1:]
		n.deliver(p)
	}
}

func (n *fakeNet) deliver(p Packet) {
	if n.filter != nil && !n.filter(&p) {
		return
	}
	dst := n.nodes[p.Remote.Addr()]
	if dst == nil {
		return
	}
	dst.e.Input(Packet{Local: p.Remote, Remote: p.Local, Scope: p.Scope, Data: p.Data})
}

// advance moves the clock forward by d, firing timers in order and
// delivering what they send.
func (n *fakeNet) advance(d time.Duration) {
	target := n.now.Add(d)
	for {
		var next time.Time
		for _, nd := range n.nodes {
			if at := nd.e.nextTimer(); !at.IsZero() && !at.After(target) && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		if next.IsZero() {
			n.now = target
			n.pump()
			return
		}
		if next.After(n.now) {
			n.now = next
		}
		for _, nd := range sortedNodes(n) {
			nd.e.tick()
		}
		n.pump()
	}
}

func sortedNodes(n *fakeNet) []*node {
	var out []*node
	for _, nd := range n.nodes {
		out = append(out, nd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (nd *node) children() map[string]*ChildSA {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	m := map[string]*ChildSA{}
	for k, v := range nd.installed {
		m[k] = v
	}
	return m
}

func (nd *node) established() []IKESAInfo {
	var out []IKESAInfo
	for _, s := range nd.e.IKESAs() {
		if s.State == "ESTABLISHED" {
			out = append(out, s)
		}
	}
	return out
}

// checkPaired checks that every child installed on a is installed on b
// with the reverse keys, and the other way round.
func checkPaired(t testing.TB, a, b *node) {
	t.Helper()
	ac, bc := a.children(), b.children()
	if len(ac) != len(bc) {
		t.Fatalf("%s has %d children, %s has %d", a.name, len(ac), b.name, len(bc))
	}
	for _, x := range ac {
		var y *ChildSA
		for _, c := range bc {
			if c.In.SPI == x.Out.SPI {
				y = c
			}
		}
		if y == nil {
			t.Fatalf("%s: child %s (out SPI %08x) has no peer on %s", a.name, x.In.Name, x.Out.SPI, b.name)
		}
		if y.Out.SPI != x.In.SPI {
			t.Fatalf("SPIs not paired: %s in %08x out %08x, %s in %08x out %08x", a.name, x.In.SPI, x.Out.SPI, b.name, y.In.SPI, y.Out.SPI)
		}
		if !bytes.Equal(x.Out.EncKey, y.In.EncKey) || !bytes.Equal(x.Out.IntegKey, y.In.IntegKey) ||
			!bytes.Equal(x.In.EncKey, y.Out.EncKey) || !bytes.Equal(x.In.IntegKey, y.Out.IntegKey) {
			t.Fatalf("keys of %s and %s do not match", x.In.Name, y.In.Name)
		}
		if bytes.Equal(x.Out.EncKey, x.In.EncKey) {
			t.Fatalf("%s: same key both ways", x.In.Name)
		}
		if x.Out.Enc != y.In.Enc || x.Out.Integ != y.In.Integ || x.Out.ESN != y.In.ESN || x.Out.Mode != y.In.Mode {
			t.Fatalf("algorithms differ: %v / %v", x.Out, y.In)
		}
		if x.Out.Encap == nil && (x.Out.Src != y.In.Src || x.Out.Dst != y.In.Dst) {
			t.Fatalf("endpoints differ: %s->%s vs %s->%s", x.Out.Src, x.Out.Dst, y.In.Src, y.In.Dst)
		}
		for _, k := range [][]byte{x.In.EncKey, x.Out.EncKey} {
			if len(k) > 0 && bytes.Count(k, []byte{0}) == len(k) {
				t.Fatalf("%s: zero key", x.In.Name)
			}
		}
	}
}

// ---- policies and PKI for tests ----

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mustIKE(t testing.TB, s string) []suite.IKE {
	t.Helper()
	x, err := suite.ParseIKEProposal(s)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func mustESP(t testing.TB, s string) []suite.ESP {
	t.Helper()
	x, err := suite.ParseESPProposal(s)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// pskPair returns the initiator's (A) and responder's (B) policies.
func pskPair() (Policy, Policy) {
	a := Policy{
		Tenant: "acme", Name: "p1", Local: addrA, Remote: addrB,
		LocalTS: []netip.Prefix{prefix("192.0.2.1/32")}, RemoteTS: []netip.Prefix{prefix("192.0.2.2/32")},
		Mode: sa.ModeTransport, PSK: []byte("correct horse battery staple"),
	}
	b := Policy{
		Tenant: "acme", Name: "p1", Local: addrB,
		LocalTS: []netip.Prefix{prefix("192.0.2.2/32")}, RemoteTS: []netip.Prefix{prefix("192.0.2.0/24")},
		Mode: sa.ModeTransport, PSK: []byte("correct horse battery staple"),
	}
	return a, b
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	crls []*x509.RevocationList
}

var serial int64 = 100

func nextSerial() *big.Int { serial++; return big.NewInt(serial) }

func newCA(t testing.TB, cn string) *testCA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn, Organization: []string{"Test"}},
		NotBefore: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: k}
}

type leafOpts struct {
	cn    string
	ips   []netip.Addr
	dns   []string
	email []string
	rsa   bool
	p384  bool
}

func (ca *testCA) issue(t testing.TB, o leafOpts) (*x509.Certificate, any) {
	t.Helper()
	var pub, priv any
	switch {
	case o.rsa:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv = &k.PublicKey, k
	case o.p384:
		k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		pub, priv = &k.PublicKey, k
	default:
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub, priv = &k.PublicKey, k
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: o.cn, Organization: []string{"Test"}},
		NotBefore: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature, DNSNames: o.dns, EmailAddresses: o.email,
	}
	for _, a := range o.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, priv
}

func (ca *testCA) revoke(t testing.TB, c *x509.Certificate, next time.Time) {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: nextSerial(), ThisUpdate: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), NextUpdate: next,
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: c.SerialNumber, RevocationTime: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}},
	}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	ca.crls = append(ca.crls, l)
}

// do runs f on nd's engine state under its lock, then delivers what it
// caused.
func (nd *node) do(f func(e *Engine)) {
	nd.e.mu.Lock()
	f(nd.e)
	nd.e.unlock()
	nd.net.pump()
}

// upSA returns nd's one established (or rekeying) IKE SA; caller holds the lock.
func upSA(t testing.TB, e *Engine) *ikeSA {
	t.Helper()
	var out *ikeSA
	for _, s := range e.sas {
		if s.state == ikeEstablished && s.rekeyedTo == nil {
			if out != nil {
				t.Fatal("more than one established IKE SA")
			}
			out = s
		}
	}
	if out == nil {
		t.Fatal("no established IKE SA")
	}
	return out
}

// onlyChild returns nd's one installed child (with keys).
func onlyChild(t testing.TB, nd *node) *ChildSA {
	t.Helper()
	cs := nd.children()
	if len(cs) != 1 {
		t.Fatalf("%s: %d children, want 1", nd.name, len(cs))
	}
	for _, c := range cs {
		return c
	}
	return nil
}

// exchanges counts datagrams sent by from with the given exchange type
// and (if notify != 0) a cleartext notify of that type.
func countSent(n *fakeNet, from netip.Addr, exch uint8) int {
	k := 0
	for _, p := range n.sent {
		if p.Local.Addr() == from && len(p.Data) >= 28 && p.Data[18] == exch {
			k++
		}
	}
	return k
}
