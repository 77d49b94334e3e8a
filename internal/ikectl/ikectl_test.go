package ikectl

import (
	"bytes"
	"context"
	"github.com/vifsec/vifsec/header"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/pkitest"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/ike"
	ikewire "github.com/vifsec/vifsec/sa/ike/wire"
	"github.com/vifsec/vifsec/tenant"
)

// Two gateways, each a Daemon with its Controller, wired back to back in
// memory: what one sends the other receives, as the data path's IKE punt
// (for a VM) or the underlay UDP socket would deliver it.

type gateway struct {
	name  string
	d     *daemon.Daemon
	c     *Controller
	vm    tenant.VM
	scope sa.Scope
	logs  *testutil.LogBuffer
}

// wire carries datagrams between two gateways through queues, so that
// neither engine runs the other's work on its own goroutine.
type wire struct {
	t    *testing.T
	mu   sync.Mutex
	gw   map[netip.Addr]*gateway // by the address IKE speaks from
	q    chan delivery
	drop func(p ike.Packet) bool
}

type delivery struct {
	to *gateway
	p  ike.Packet
}

func newWire(t *testing.T) *wire {
	return &wire{t: t, gw: map[netip.Addr]*gateway{}, q: make(chan delivery, 1024)}
}

func (w *wire) send(from *gateway) func(ike.Packet) {
	return func(p ike.Packet) {
		w.mu.Lock()
		to := w.gw[p.Remote.Addr()]
		drop := w.drop
		w.mu.Unlock()
		if to == nil || (drop != nil && drop(p)) {
			return
		}
		if from.vm.Name != "" && p.Scope != from.scope {
			w.t.Errorf("%s sent with scope %v, want its VM's %v", from.name, p.Scope, from.scope)
		}
		// The receiver sees it from the sender's address, on the scope of
		// the VM the destination belongs to (zero for the underlay).
		in := ike.Packet{Local: p.Remote, Remote: p.Local, Scope: to.scope, Data: bytes.Clone(p.Data)}
		w.q <- delivery{to, in}
	}
}

func (w *wire) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-w.q:
			d.to.c.Input(d.p)
		}
	}
}

func testLogger(buf io.Writer) *slog.Logger {
	if os.Getenv("IKECTL_TEST_LOG") != "" {
		buf = io.MultiWriter(buf, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newGateway returns a daemon with tenant t1 and, if ip is valid, VM vm1
// at ip (VLAN vlan), and its controller on w.
func newGateway(t *testing.T, w *wire, name, mac string, vlan uint16, ip string) *gateway {
	t.Helper()
	return newGatewayEngine(t, w, name, mac, vlan, ip, &ike.Config{RetransmitTimeout: 500 * time.Millisecond})
}

// newGatewayEngine is newGateway with the engine tuned by ec.
func newGatewayEngine(t *testing.T, w *wire, name, mac string, vlan uint16, ip string, ec *ike.Config) *gateway {
	t.Helper()
	logs := &testutil.LogBuffer{}
	d, err := daemon.New(storetest.NewMemory(), &daemon.Config{Logger: testLogger(logs).With("gw", name)})
	if err != nil {
		t.Fatal(err)
	}
	must(t, d.AddTenant(tenant.Tenant{Name: "t1"}))
	g := &gateway{name: name, d: d, logs: logs}
	if ip != "" {
		m, _ := tenant.ParseMAC(mac)
		g.vm = tenant.VM{Name: "vm1", Tenant: "t1", Dev: "tap-" + name, MAC: m, VLAN: vlan, IPs: []netip.Addr{netip.MustParseAddr(ip)}}
		must(t, d.AttachVM(g.vm))
		g.scope = sa.Scope{VLAN: vlan, MAC: header.MAC(m)}
		w.gw[netip.MustParseAddr(ip)] = g
	}
	g.c = New(d, &Config{Logger: testLogger(logs).With("gw", name), Send: w.send(g), Engine: ec})
	return g
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustW(t *testing.T) func([]string, error) {
	return func(_ []string, err error) {
		t.Helper()
		must(t, err)
	}
}

// start runs the wire and both controllers until the test ends.
func start(t *testing.T, w *wire, gs ...*gateway) {
	// Every side knows its policies before the first datagram is carried
	// (a responder without one answers NO_PROPOSAL_CHOSEN, and the
	// initiator retries only 30s later).
	for _, g := range gs {
		g.c.Sync()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx) })
	for _, g := range gs {
		wg.Go(func() { g.c.Run(ctx) })
		wg.Go(func() { g.d.Run(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			for _, g := range gs {
				t.Logf("log of %s:\n%s", g.name, g.logs.String())
			}
		}
	})
}

// waitChildren waits until g has n IKE Child SAs installed.
func waitChildren(t *testing.T, g *gateway, n int) []daemon.IPsecSA {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, err := g.d.IPsecSAs("t1")
		must(t, err)
		var ike []daemon.IPsecSA
		for _, r := range rows {
			if r.IKEPolicy != "" {
				ike = append(ike, r)
			}
		}
		if len(ike) == n && (n == 0 || ike[0].State == "INSTALLED") {
			return ike
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d IKE child SAs after 10s, want %d: %+v", g.name, len(ike), n, rows)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pskPolicy(name, vm, local, remote, remoteAddr string) ikeconf.Policy {
	p := ikeconf.Policy{Tenant: "t1", Name: name, VM: vm,
		LocalSubnets:  []netip.Prefix{netip.MustParsePrefix(local)},
		RemoteSubnets: []netip.Prefix{netip.MustParsePrefix(remote)},
		Auth:          ikeconf.AuthPSK, PSK: []byte("back-to-back pre-shared key")}
	if remoteAddr != "" {
		p.RemoteAddress = netip.MustParseAddr(remoteAddr)
	}
	return p
}

// checkPair checks that a's inbound SA is b's outbound one (same SPI and
// keys, opposite addresses) and the other way round.
func checkPair(t *testing.T, a, b *gateway, ra, rb daemon.IPsecSA) {
	t.Helper()
	if ra.InboundSPI != rb.OutboundSPI || ra.OutboundSPI != rb.InboundSPI || ra.InboundSPI == ra.OutboundSPI {
		t.Fatalf("SPIs do not pair: %s in %08x out %08x, %s in %08x out %08x", a.name, ra.InboundSPI, ra.OutboundSPI, b.name, rb.InboundSPI, rb.OutboundSPI)
	}
	if ra.Local != rb.Remote || ra.Remote != rb.Local {
		t.Errorf("addresses do not pair: %v-%v and %v-%v", ra.Local, ra.Remote, rb.Local, rb.Remote)
	}
	get := func(g *gateway, spi uint32) sa.Config {
		s := g.d.SADB().Lookup(sa.Key{Scope: g.scope, SPI: spi})
		if s == nil {
			t.Fatalf("%s: no SA with SPI %08x in %v", g.name, spi, g.scope)
		}
		return s.ConfigWithKeys()
	}
	for _, dir := range []struct {
		from, to *gateway
		spi      uint32
	}{{a, b, ra.OutboundSPI}, {b, a, rb.OutboundSPI}} {
		out, in := get(dir.from, dir.spi), get(dir.to, dir.spi)
		if out.Dir != sa.DirOut || in.Dir != sa.DirIn || out.Enc != in.Enc || out.Integ != in.Integ ||
			!bytes.Equal(out.EncKey, in.EncKey) || !bytes.Equal(out.IntegKey, in.IntegKey) || out.Src != in.Src || out.Dst != in.Dst {
			t.Errorf("%s→%s SA %08x differs: out %v, in %v (or keys differ)", dir.from.name, dir.to.name, dir.spi, out, in)
		}
		if len(out.EncKey) == 0 || bytes.Equal(out.EncKey, make([]byte, len(out.EncKey))) {
			t.Errorf("%s→%s: no key", dir.from.name, dir.to.name)
		}
	}
}

func TestBackToBackPSKForVMs(t *testing.T) {
	w := newWire(t)
	a := newGateway(t, w, "a", "52:54:00:00:00:0a", 10, "2001:db8:1::121")
	b := newGateway(t, w, "b", "52:54:00:00:00:0b", 20, "2001:db8:2::5")
	mustW(t)(a.d.CreatePolicy(pskPolicy("p1", "vm1", "2001:db8:1::121/128", "2001:db8:2::/64", "2001:db8:2::5")))
	mustW(t)(b.d.CreatePolicy(pskPolicy("p1", "vm1", "2001:db8:2::5/128", "2001:db8:1::/64", ""))) // responds only
	// Before IKE, the VM's policy traffic has SPs without SA: dropped.
	if v := a.d.Snapshot().VMs[0]; !v.IKE || len(v.Policies) != 2 || v.PolicySAs[0] != nil {
		t.Fatalf("before IKE: %+v", v)
	}
	start(t, w, a, b)
	ra, rb := waitChildren(t, a, 1)[0], waitChildren(t, b, 1)[0]
	checkPair(t, a, b, ra, rb)
	// The child was switched: its outbound SA is matched first.
	for _, g := range []*gateway{a, b} {
		testutil.WaitUntil(t, g.name+": outbound SP with the IKE SA first", 10*time.Second, func() bool {
			v := g.d.Snapshot().VMs[0]
			return v.PolicySAs[0] != nil && v.PolicySAs[0].Dir() == sa.DirOut && v.Policies[0].Direction == sa.DirOut
		})
	}
	v := a.d.Snapshot().VMs[0]
	if p := v.Policies[0]; p.Src != netip.MustParsePrefix("2001:db8:1::121/128") || p.Dst != netip.MustParsePrefix("2001:db8:2::5/128") {
		t.Errorf("a's outbound SP %v → %v, want the narrowed selectors ::121 → 2::5", p.Src, p.Dst)
	}
	// show-ikesa reads the engine.
	sas, err := a.d.IKESAs("t1")
	must(t, err)
	if len(sas) != 1 || sas[0].State != "ESTABLISHED" || !sas[0].Initiator || sas[0].Local.Addr() != netip.MustParseAddr("2001:db8:1::121") || sas[0].InitiatorSPI == 0 {
		t.Errorf("a's IKE SAs: %+v", sas)
	}
	// Rekey, as a soft lifetime event of a's outbound SA asks: a new
	// pair on both sides, the old one gone.
	out := a.d.SADB().Lookup(sa.Key{Scope: a.scope, SPI: ra.OutboundSPI})
	if !a.c.Engine().HandleEvent(sa.Event{Kind: sa.EventSoft, Key: sa.Key{Scope: a.scope, SPI: ra.OutboundSPI}, Name: out.Name()}) {
		t.Fatalf("the engine does not know SA %s", out.Name())
	}
	testutil.WaitUntil(t, "a rekeyed child replaces the old one on a", 10*time.Second, func() bool {
		rows := waitChildren(t, a, 1)
		return rows[0].InboundSPI != ra.InboundSPI
	})
	testutil.WaitUntil(t, "a rekeyed child replaces the old one on b", 10*time.Second, func() bool {
		rows := waitChildren(t, b, 1)
		return rows[0].InboundSPI != rb.InboundSPI
	})
	ra, rb = waitChildren(t, a, 1)[0], waitChildren(t, b, 1)[0]
	checkPair(t, a, b, ra, rb)
	if n := a.d.SADB().Len(); n != 2 {
		t.Errorf("a has %d SAs after the rekey, want 2", n)
	}
	testutil.WaitUntil(t, "a sends on the new outbound SA", 10*time.Second, func() bool {
		v := a.d.Snapshot().VMs[0]
		return v.PolicySAs[0] != nil && v.PolicySAs[0].SPI() == ra.OutboundSPI
	})
	// IKE SAs are managed: `sa remove` refuses them.
	if err := a.d.RemoveSA(ra.SA); daemon.CodeOf(err) != daemon.CodeInUse {
		t.Errorf("RemoveSA of an IKE SA: %v", err)
	}
	// Deleting the policy on a removes its SAs at once, and b's after
	// IKE's Delete.
	must(t, a.d.DeletePolicy("t1", "p1"))
	if a.d.SADB().Len() != 0 {
		t.Errorf("a still has %d SAs after the policy was deleted", a.d.SADB().Len())
	}
	waitChildren(t, b, 0)
	testutil.WaitUntil(t, "b's SAs removed", 10*time.Second, func() bool { return b.d.SADB().Len() == 0 })
	for _, g := range []*gateway{a, b} {
		if strings.Contains(g.logs.String(), "back-to-back pre-shared key") {
			t.Errorf("%s logged the PSK", g.name)
		}
	}
}

func TestBackToBackUnderlayPKI(t *testing.T) {
	w := newWire(t)
	a := newGateway(t, w, "a", "", 0, "")
	b := newGateway(t, w, "b", "", 0, "")
	la, lb := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	w.gw[la], w.gw[lb] = a, b
	ca := pkitest.NewCA("b2b CA")
	for _, x := range []struct {
		g     *gateway
		local netip.Addr
		cn    string
	}{{a, la, "a.example.com"}, {b, lb, "b.example.com"}} {
		must(t, x.g.d.SetUplink(daemon.Uplink{Dev: "eth0", Overlay: daemon.OverlayVXLAN, VXLANLocal: x.local, Protect: daemon.ProtectUnderlay}))
		mustW(t)(x.g.d.InstallCertificate("t1", "srv", ikeconf.CertServer, ca.Issue(x.cn).ServerPEM(ca)))
		mustW(t)(x.g.d.InstallCertificate("t1", "ca", ikeconf.CertClientCA, ca.PEM()))
		mustW(t)(x.g.d.AddCACertificates("t1", []string{"ca"}))
	}
	pol := func(local, remote netip.Addr, remoteID string) ikeconf.Policy {
		return ikeconf.Policy{Tenant: "t1", Name: "vtep", LocalSubnets: []netip.Prefix{netip.PrefixFrom(local, 32)},
			RemoteSubnets: []netip.Prefix{netip.PrefixFrom(remote, 32)}, RemoteAddress: remote, Protocol: ikeconf.ProtoNumUDP,
			Auth: ikeconf.AuthPKI, CertName: "srv", RemoteIdentity: remoteID, ESPProposals: []string{"aes128gcm16"}}
	}
	mustW(t)(a.d.CreatePolicy(pol(la, lb, "CN=b.example.com, O=vifsec test")))
	pb := pol(lb, la, ikeconf.AnyIdentity)
	pb.RemoteAddress = netip.Addr{} // responds only: one IKE SA, not two crossing
	mustW(t)(b.d.CreatePolicy(pb))
	start(t, w, a, b)
	ra, rb := waitChildren(t, a, 1)[0], waitChildren(t, b, 1)[0]
	if !ra.Underlay || ra.VM != "" {
		t.Errorf("underlay policy's child not an underlay SA: %+v", ra)
	}
	checkPair(t, a, b, ra, rb)
	// The data path protects the tenant's VXLAN with them.
	testutil.WaitUntil(t, "a's underlay SAs in the snapshot", 10*time.Second, func() bool {
		us := a.d.Snapshot().UnderlaySAs
		return len(us) == 2 && us[0].Tenant == "t1"
	})
	if c := a.d.SADB().Lookup(sa.Key{SPI: ra.OutboundSPI}).ConfigWithKeys(); c.Enc != sa.EncAES128GCM || c.Src != la || c.Dst != lb {
		t.Errorf("a's outbound underlay SA %v", c)
	}
}

func TestWaitingPoliciesAndDisabled(t *testing.T) {
	w := newWire(t)
	a := newGateway(t, w, "a", "", 0, "")
	var sent int
	var mu sync.Mutex
	a.c = New(a.d, &Config{Logger: testLogger(a.logs), Send: func(ike.Packet) { mu.Lock(); sent++; mu.Unlock() }})
	// Underlay policy without an uplink address: waits, logged once.
	mustW(t)(a.d.CreatePolicy(pskPolicy("u", "", "192.0.2.1/32", "192.0.2.2/32", "192.0.2.2")))
	a.c.Sync()
	a.c.Sync()
	if n := strings.Count(a.logs.String(), "IKE policy waits"); n != 1 {
		t.Errorf("%d 'waits' lines, want 1:\n%s", n, a.logs.String())
	}
	must(t, a.d.SetUplink(daemon.Uplink{Dev: "eth0", Overlay: daemon.OverlayVXLAN, VXLANLocal: netip.MustParseAddr("192.0.2.1")}))
	a.c.Sync()
	testutil.WaitUntil(t, "IKE_SA_INIT sent once the uplink has an address", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return sent > 0 })
	if sas, _ := a.d.IKESAs(""); len(sas) != 1 || sas[0].State != "CONNECTING" {
		t.Errorf("IKE SAs: %+v", sas)
	}
	// IPsec switched off: IKE runs no policy.
	must(t, a.d.SetEnabled(false))
	a.c.Sync()
	testutil.WaitUntil(t, "no IKE SA with IPsec off", 10*time.Second, func() bool { sas, _ := a.d.IKESAs(""); return len(sas) == 0 })
}

// TestIKEStats: the engine's limit counters reach the daemon (metrics),
// every limit named.
func TestIKEStats(t *testing.T) {
	w := newWire(t)
	a := newGateway(t, w, "a", "", 0, "")
	a.c = New(a.d, &Config{Logger: testLogger(a.logs)})
	big := &ikewire.Message{
		Header:   ikewire.Header{SPIi: 1, Exchange: ikewire.ExchangeIKESAInit, Flags: ikewire.FlagInitiator},
		Payloads: []ikewire.Payload{&ikewire.VendorID{Data: make([]byte, 20000)}},
	}
	a.c.Input(ike.Packet{Local: netip.MustParseAddrPort("192.0.2.1:500"), Remote: netip.MustParseAddrPort("198.51.100.7:500"), Data: big.Encode()})
	st := a.d.IKEStats()
	if len(st.Drops) != int(ike.NumLimits)-1 || st.Drops["init_request_size"] != 1 || st.HalfOpen != 0 {
		t.Fatalf("IKEStats %+v, want every limit and one init_request_size drop", st)
	}
	if len(st.Failures) != int(ike.NumFailures)-1 || st.Failures["timeout"] != 0 {
		t.Fatalf("IKEStats failures %v, want every reason at 0", st.Failures)
	}
}
