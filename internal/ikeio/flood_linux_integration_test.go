//go:build linux

package ikeio

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa/ike"
	"github.com/vifsec/vifsec/sa/ike/iketest"
	"github.com/vifsec/vifsec/sa/ike/suite"
	"github.com/vifsec/vifsec/sa/ike/wire"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// floodHeapBound is what the three floods of TestIntegrationIKEFlood may
// add to the heap of the process that runs the gateway (and, after it
// dropped its state, the attacker): the whole reassembly budget
// (MaxReassemblyTotal, 16 MiB) plus the half-open IKE SAs one tenant may
// hold (MaxHalfOpenPerTenant, 1024, about 4 kB each here and at most about
// 10 kB more with the largest IKE_SA_INIT request taken), with room for
// the runtime's own growth. Measured: about 20 MiB. Without the limits
// one source grew the daemon by about 141 kB per half-open IKE SA, with
// no bound on their number but the engine's 16384.
const floodHeapBound = 32 << 20

// TestIntegrationIKEFlood floods the IKE responder of a gateway (daemon
// and IKE glue, listening on its underlay address over real UDP in its own
// network namespace) from hostile initiators that answer cookies, and
// checks that its memory stays bounded and that another tenant's peer is
// answered throughout:
//
//  1. one source opens 3000 half-open IKE SAs (it gets 32);
//  2. 32 sources open half-open IKE SAs (up to acme's limit of 1024) and
//     send 63 of 64 fragments of 1000 bytes of an IKE_AUTH request on each
//     (within the 64 KiB an SA may hold, so that the 16 MiB of all SAs is
//     what stops them);
//  3. 40 more sources go on filling tenant acme's half-open IKE SAs.
//
// Tenant acme answers any peer; tenant globex's policy names its peer,
// whose IKE_SA_INIT is answered between the attacker's datagrams (and
// every datagram of a flood has been processed when that answer comes:
// one socket, one queue, one engine goroutine).
func TestIntegrationIKEFlood(t *testing.T) {
	testutil.NeedRoot(t, "ip")
	id := os.Getpid() % 100000
	nsG, nsX := fmt.Sprintf("vfl-g%d", id), fmt.Sprintf("vfl-x%d", id)
	for _, ns := range []string{nsG, nsX} {
		ipCmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ipCmd(t, "-n", nsG, "link", "add", "up0", "type", "veth", "peer", "name", "up0", "netns", nsX)
	for _, ns := range []string{nsG, nsX} {
		ipCmd(t, "-n", ns, "link", "set", "up0", "up")
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}
	gwAddr := netip.MustParseAddr("192.0.2.2")
	ipCmd(t, "-n", nsG, "addr", "add", "192.0.2.2/24", "dev", "up0")
	peerAddr := netip.MustParseAddr("192.0.2.200") // globex's peer
	flood1 := []netip.Addr{netip.MustParseAddr("192.0.2.9")}
	var flood2, flood3 []netip.Addr
	for i := range 32 {
		flood2 = append(flood2, netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}))
	}
	for i := range 40 {
		flood3 = append(flood3, netip.AddrFrom4([4]byte{192, 0, 2, byte(50 + i)}))
	}
	conns := map[netip.Addr]net.PacketConn{}
	for _, a := range append(append(append([]netip.Addr{peerAddr}, flood1...), flood2...), flood3...) {
		ipCmd(t, "-n", nsX, "addr", "add", a.String()+"/24", "dev", "up0", "nodad")
	}

	log := slog.New(slog.NewTextHandler(testLogSink(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := daemon.New(storetest.NewMemory(), &daemon.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	psk := []byte("ike flood test key 0123456789abc")
	for _, err := range []error{
		d.AddTenant(tenant.Tenant{Name: "acme", VNI: 100}),
		d.AddTenant(tenant.Tenant{Name: "globex", VNI: 200}),
		d.SetUplink(daemon.Uplink{Dev: "up0", Netns: nsG, Overlay: daemon.OverlayVXLAN, VXLANLocal: gwAddr, Protect: daemon.ProtectUnderlay}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []ikeconf.Policy{
		{Tenant: "acme", Name: "any", Auth: ikeconf.AuthPSK, PSK: psk,
			LocalSubnets: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/32")}, RemoteSubnets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
		{Tenant: "globex", Name: "peer", Auth: ikeconf.AuthPSK, PSK: psk, RemoteAddress: peerAddr,
			LocalSubnets: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/32")}, RemoteSubnets: []netip.Prefix{netip.MustParsePrefix("192.0.2.200/32")}},
	} {
		if _, err := d.CreatePolicy(p); err != nil {
			t.Fatal(err)
		}
	}
	// No half-open IKE SA times out during the test: the floods' state
	// is all held at the end.
	g := New(d, log, &ike.Config{HalfOpenTimeout: 10 * time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { g.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	testutil.WaitUntil(t, "the gateway's underlay sockets", 15*time.Second, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.under != nil })
	for _, a := range append(append(append([]netip.Addr{peerAddr}, flood1...), flood2...), flood3...) {
		c, err := vif.ListenUDP(nsX, netip.AddrPortFrom(a, 0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[a] = c
	}
	eng := g.ctl.Engine()
	gwIKE := netip.AddrPortFrom(gwAddr, ike500)

	// roundTrip sends an IKE_SA_INIT request and waits for its answer or
	// for the gateway to count the request dropped.
	refusals := func() uint64 {
		st := eng.Stats()
		n := g.dropped.Load()
		for _, v := range st.Drops {
			n += v
		}
		return n
	}
	buf := make([]byte, 65536)
	// send sends req from src; with mayDrop, a refusal the gateway counts
	// ends the wait for an answer (nil).
	send := func(src, dst netip.AddrPort, req []byte, mayDrop bool) []byte {
		c := conns[src.Addr()]
		before := refusals()
		if _, err := c.WriteTo(req, net.UDPAddrFromAddrPort(dst)); err != nil {
			t.Fatal(err)
		}
		spi := binary.BigEndian.Uint64(req)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			c.SetReadDeadline(time.Now().Add(300 * time.Microsecond))
			n, _, err := c.ReadFrom(buf)
			if err == nil && n >= wire.HeaderLen && binary.BigEndian.Uint64(buf) == spi && buf[19]&wire.FlagResponse != 0 {
				return append([]byte(nil), buf[:n]...)
			}
			if mayDrop && refusals() > before {
				return nil
			}
		}
		t.Fatalf("IKE_SA_INIT from %v: no answer and no drop counted", src)
		return nil
	}
	roundTrip := func(src, dst netip.AddrPort, req []byte) []byte { return send(src, dst, req, true) }
	attacker := iketest.NewAttacker(roundTrip, ike.DefaultIKEProposals[0], true)
	peer := iketest.NewAttacker(roundTrip, ike.DefaultIKEProposals[0], true)
	peerPort := uint16(1000)
	// globexAnswered: globex's peer gets its IKE_SA_INIT answered (after
	// a cookie, if one is asked for).
	globexAnswered := func(when string) {
		t.Helper()
		peerPort++
		if _, o, err := peer.Open(netip.AddrPortFrom(peerAddr, peerPort), gwIKE); err != nil || o != iketest.Answered {
			t.Fatalf("%s: globex's peer: %v %v", when, o, err)
		}
	}
	// synced returns once the gateway has processed every datagram sent
	// before: a request it answers statelessly (no proposal it accepts)
	// from globex's peer.
	bogus := suite.IKE{Encr: suite.EncrAESCBC, EncrKeyBits: 192, PRF: suite.PRFHMACSHA256, Integ: suite.IntegHMACSHA256128, DH: suite.DHMODP2048}
	synced := func() {
		t.Helper()
		var b [8]byte
		rand.Read(b[:])
		send(netip.AddrPortFrom(peerAddr, 999), gwIKE, iketest.InitRequest(binary.BigEndian.Uint64(b[:])|1, bogus, make([]byte, 256), make([]byte, 32), nil, false), false)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	synced()
	globexAnswered("before the floods")
	base := heap()
	rss := func() string {
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				return strings.Join(strings.Fields(l)[1:], " ")
			}
		}
		return "?"
	}
	t.Logf("before the floods: RSS %s", rss())
	report := func(flood string) {
		h := heap()
		st := eng.Stats()
		t.Logf("after %s: heap +%.1f MiB (bound %d MiB), RSS %s, %d half-open (acme %d, globex %d), %d bytes in reassembly, drops %v, %d cookies, %d dropped at the input queue",
			flood, float64(int64(h)-int64(base))/(1<<20), floodHeapBound>>20, rss(), st.HalfOpen, st.HalfOpenByTenant["acme"], st.HalfOpenByTenant["globex"],
			st.ReassemblyBytes, dropsByLimit(st), st.CookiesSent, g.dropped.Load())
		if h > base+floodHeapBound {
			t.Errorf("after %s: heap grew by %d bytes, bound %d", flood, h-base, floodHeapBound)
		}
	}

	// 1. One source, 3000 attempts.
	opened := 0
	for i := range 3000 {
		if _, o, err := attacker.Open(netip.AddrPortFrom(flood1[0], 0), gwIKE); err != nil {
			t.Fatal(err)
		} else if o == iketest.Answered {
			opened++
		}
		if i%500 == 499 {
			globexAnswered(fmt.Sprintf("flood 1, attempt %d", i+1))
		}
	}
	if opened != 32 {
		t.Errorf("flood 1: one source opened %d half-open IKE SAs, want 32", opened)
	}
	report("flood 1 (one source, 3000 attempts)")

	// 2. Fragments: 63 of 64 for every half-open IKE SA 32 sources open.
	var sas []*iketest.HalfOpen
	for i, src := range flood2 {
		for range 32 {
			h, o, err := attacker.Open(netip.AddrPortFrom(src, 0), gwIKE)
			if err != nil {
				t.Fatal(err)
			}
			if o != iketest.Answered {
				continue
			}
			sas = append(sas, h)
			for n := uint16(1); n < 64; n++ {
				if _, err := conns[src].WriteTo(h.Fragment(wire.ExchangeIKEAuth, 1, n, 64, 1000), net.UDPAddrFromAddrPort(gwIKE)); err != nil {
					t.Fatal(err)
				}
			}
			synced()
		}
		if i%4 == 3 {
			globexAnswered(fmt.Sprintf("flood 2, source %d", i+1))
		}
	}
	if st := eng.Stats(); st.ReassemblyBytes > 16<<20 || st.Drops[ike.LimitReassemblyTotal] == 0 {
		t.Errorf("flood 2: %d bytes in reassembly (limit %d), %d fragments refused for it", st.ReassemblyBytes, 16<<20, st.Drops[ike.LimitReassemblyTotal])
	}
	t.Logf("flood 2: %d half-open IKE SAs with fragments", len(sas))
	sas = nil
	report("flood 2 (32 sources, 63 of 64 fragments each)")

	// 3. 40 more sources fill acme's half-open IKE SAs.
	for i, src := range flood3 {
		for range 32 {
			if _, _, err := attacker.Open(netip.AddrPortFrom(src, 0), gwIKE); err != nil {
				t.Fatal(err)
			}
		}
		if i%4 == 3 {
			globexAnswered(fmt.Sprintf("flood 3, source %d", i+1))
		}
	}
	st := eng.Stats()
	if st.HalfOpenByTenant["acme"] != 1024 || st.Drops[ike.LimitHalfOpenTenant] == 0 {
		t.Errorf("flood 3: acme holds %d half-open IKE SAs, want its limit 1024 (%d refused)", st.HalfOpenByTenant["acme"], st.Drops[ike.LimitHalfOpenTenant])
	}
	report("flood 3 (40 more sources on acme)")
	globexAnswered("after the floods")
}

func dropsByLimit(st ike.Stats) map[string]uint64 {
	m := map[string]uint64{}
	for l := ike.Limit(1); l < ike.NumLimits; l++ {
		if st.Drops[l] != 0 {
			m[l.String()] = st.Drops[l]
		}
	}
	return m
}
