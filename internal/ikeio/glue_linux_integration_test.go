//go:build linux

package ikeio

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v %s", args, err, out)
	}
}

// TestIntegrationIKEUnderlayUDP runs two gateways' IKE glue over real UDP
// sockets on their underlay addresses, each in its own network namespace
// joined by a veth pair: a PSK policy without --vm comes up, both sides
// install matching underlay SAs, and shutting down deletes them.
func TestIntegrationIKEUnderlayUDP(t *testing.T) {
	testutil.NeedRoot(t, "ip")
	id := os.Getpid() % 100000
	nsA, nsB := fmt.Sprintf("vike-a%d", id), fmt.Sprintf("vike-b%d", id)
	for _, ns := range []string{nsA, nsB} {
		ipCmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ipCmd(t, "-n", nsA, "link", "add", "up0", "type", "veth", "peer", "name", "up0", "netns", nsB)
	for ns, addr := range map[string]string{nsA: "192.0.2.1/24", nsB: "192.0.2.2/24"} {
		ipCmd(t, "-n", ns, "addr", "add", addr, "dev", "up0")
		ipCmd(t, "-n", ns, "link", "set", "up0", "up")
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}

	type gw struct {
		name string
		d    *daemon.Daemon
		g    *Glue
		logs *testutil.LogBuffer
	}
	mk := func(name, ns, local, remote string, initiate bool) *gw {
		logs := &testutil.LogBuffer{}
		log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogSink()), &slog.HandlerOptions{Level: slog.LevelDebug})).With("gw", name)
		d, err := daemon.New(storetest.NewMemory(), &daemon.Config{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{
			d.AddTenant(tenant.Tenant{Name: "t1", VNI: 100}),
			d.SetUplink(daemon.Uplink{Dev: "up0", Netns: ns, Overlay: daemon.OverlayVXLAN, VXLANLocal: netip.MustParseAddr(local), Protect: daemon.ProtectUnderlay}),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		p := ikeconf.Policy{Tenant: "t1", Name: "vteps", Auth: ikeconf.AuthPSK, PSK: []byte("underlay udp test key 0123456789"),
			LocalSubnets: []netip.Prefix{netip.MustParsePrefix(local + "/32")}, RemoteSubnets: []netip.Prefix{netip.MustParsePrefix(remote + "/32")}}
		if initiate {
			p.RemoteAddress = netip.MustParseAddr(remote)
		}
		if _, err := d.CreatePolicy(p); err != nil {
			t.Fatal(err)
		}
		return &gw{name: name, d: d, g: New(d, log, nil), logs: logs}
	}
	// b responds only, and listens before a starts.
	a, b := mk("a", nsA, "192.0.2.1", "192.0.2.2", true), mk("b", nsB, "192.0.2.2", "192.0.2.1", false)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { b.g.Run(ctx) })
	testutil.WaitUntil(t, "b's underlay sockets", 15*time.Second, func() bool { b.g.mu.Lock(); defer b.g.mu.Unlock(); return b.g.under != nil })
	wg.Go(func() { a.g.Run(ctx) })
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("a:\n%s\nb:\n%s", a.logs.String(), b.logs.String())
		}
	})

	rows := func(x *gw) []daemon.IPsecSA {
		r, _ := x.d.IPsecSAs("t1")
		return r
	}
	testutil.WaitUntil(t, "child SAs on both sides", 15*time.Second, func() bool { return len(rows(a)) == 1 && len(rows(b)) == 1 })
	ra, rb := rows(a)[0], rows(b)[0]
	if ra.InboundSPI != rb.OutboundSPI || ra.OutboundSPI != rb.InboundSPI || ra.IKEPolicy != "vteps" || !ra.Underlay {
		t.Fatalf("SAs do not pair: a %+v, b %+v", ra, rb)
	}
	for _, x := range []struct {
		from, to *gw
		spi      uint32
	}{{a, b, ra.OutboundSPI}, {b, a, rb.OutboundSPI}} {
		out := x.from.d.SADB().Lookup(sa.Key{SPI: x.spi}).ConfigWithKeys()
		in := x.to.d.SADB().Lookup(sa.Key{SPI: x.spi}).ConfigWithKeys()
		if string(out.EncKey) != string(in.EncKey) || out.Dir != sa.DirOut || in.Dir != sa.DirIn {
			t.Errorf("%s→%s SA %08x: keys or directions differ", x.from.name, x.to.name, x.spi)
		}
	}
	if sas, _ := a.d.IKESAs(""); len(sas) != 1 || sas[0].State != "ESTABLISHED" || sas[0].Remote != netip.MustParseAddrPort("192.0.2.2:500") {
		t.Errorf("a's IKE SAs: %+v", sas)
	}
	// Deleting a's policy deletes its SAs, and b hears of it.
	if err := a.d.DeletePolicy("t1", "vteps"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, "b's SAs deleted after a's policy went", 15*time.Second, func() bool { return len(rows(b)) == 0 })
	stop()
	for _, x := range []*gw{a, b} {
		if strings.Contains(x.logs.String(), "underlay udp test key") {
			t.Errorf("%s logged the PSK", x.name)
		}
	}
}

func testLogSink() io.Writer {
	if os.Getenv("VIFSECD_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
