//go:build linux

package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
)

// TestIntegrationFleetIKEMove: VM web (host b) and VM db (host c) protect
// their IPv6 traffic with IKE-negotiated transport-mode SAs, vifsec ↔
// vifsec, PSK: web's policy initiates, db's only responds. web then moves
// to host a and back to host b, as TestIntegrationFleet moves it (the
// veth re-plugged, then `vifsec vm move` on the source host). Each time
// the interruption of a 5 ms UDP probe is measured, the IKE SA comes up
// from the new host (ESTABLISHED there), the old host keeps neither IKE
// nor Child SA of the policy, and db's host has exactly one IKE SA and
// one Child SA pair, the new one; web's traffic on the wire is ESP with
// exactly the SPIs show-ipsecsa listed, never in clear.
//
// web's side initiates because that is what re-establishes at once: its
// policy wakes on the new host, which initiates as soon as the binding
// arrives, and its IKE_AUTH carries INITIAL_CONTACT, on which db's host
// drops the old IKE SA and its Child SA. Were web the responder, nothing
// would tell db's host that web moved: it would go on sending with the
// old SA (dropped on arrival at the new host, which has none) until dead
// peer detection gave up on the old IKE SA.
func TestIntegrationFleetIKEMove(t *testing.T) {
	bin := needDemoTools(t)
	began := time.Now()
	ctx := context.Background()
	f := newFleetT(t, fmt.Sprintf("vfm%d", os.Getpid()), "6b")
	l, web, db, ds := f.l, f.web, f.db, f.ds
	for _, gw := range l.Gateways {
		f.start(t, bin, gw)
	}
	A, C := ds["a"], ds["c"]
	cli := func(d *Daemon, args ...string) string {
		t.Helper()
		out, err := d.CLI(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Desired state through host a's CLI, as in TestIntegrationFleet; the
	// policies are fleet-wide, each runs where its VM is.
	cli(A, "tenant", "add", "--tenant", "acme")
	for _, gw := range l.Gateways {
		cli(A, "--host", gw.Name, "uplink", "set", "--dev", gw.Uplink)
	}
	for _, vm := range []*VM{web, db} {
		cli(A, "--host", vm.Gateway.Name, "vm", "attach", "--vm", vm.Name, "--tenant", vm.Tenant, "--dev", vm.Dev, "--mac", vm.MAC,
			"--vlan", fmt.Sprint(vm.VLAN), "--ip", vm.IP6.String(), "--ip", vm.IP4.String())
	}
	fleetWaitAttached(t, ds["b"], "web")
	fleetWaitAttached(t, C, "db")
	caps, capFiles := startFleetCaptures(t, l, "a", "b", "c")

	const psk = "fleet-ike-move-psk-2b7e151628aed2a6"
	created := time.Now()
	if _, err := CreateFleetIKEPolicy(ctx, A, "db-ike", db, web, psk, false); err != nil {
		t.Fatal(err)
	}
	// db's host answers web's IKE_SA_INIT only once it has db's policy
	// (until then its data path hands UDP 500 to the guest, and web's
	// host would retransmit only after 4s).
	fleetRetry(t, 5*time.Second, func() error {
		if out := cli(C, "policy", "show", "--tenant", "acme"); !strings.Contains(out, "db-ike") {
			return fmt.Errorf("host c does not show policy db-ike yet: %s", out)
		}
		return nil
	})
	if _, err := CreateFleetIKEPolicy(ctx, A, "web-ike", web, db, psk, true); err != nil {
		t.Fatal(err)
	}
	var spis []string // every SPI show-ipsecsa listed, as tshark prints them
	pair := fleetIKECheck(t, ds, "b", "", 20*time.Second)
	spis = append(spis, pair.InboundSPI.String(), pair.OutboundSPI.String())
	t.Logf("IKE up on host b: web in %s out %s, seen %v after the policies were created", pair.InboundSPI, pair.OutboundSPI, time.Since(created).Round(time.Millisecond))
	fleetTraffic(t, ctx, web, db)

	// As in TestIntegrationFleet: the re-plug drops the guest's carrier,
	// which would flush its neighbour cache; a migrated guest keeps it.
	for _, p := range [][2]*VM{{web, db}, {db, web}} {
		for _, a := range []string{p[1].IP6.String(), p[1].IP4.String()} {
			if out, err := Exec(ctx, p[0].NS, "ip", "neigh", "replace", a, "lladdr", p[1].MAC, "nud", "permanent", "dev", "eth0"); err != nil {
				t.Fatalf("static neighbour: %v %s", err, out)
			}
		}
	}

	var probePorts []string
	for _, to := range []string{"a", "b"} {
		from := web.Gateway.Name
		probe, err := StartProbe(web, db, 5*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				probe.Stop(time.Now())
			}
		})
		probePorts = append(probePorts, fmt.Sprint(probe.srv.LocalAddr().(*net.UDPAddr).Port))
		fleetRetry(t, 3*time.Second, func() error {
			if probe.Replies() < 5 {
				return fmt.Errorf("probe has %d echoes", probe.Replies())
			}
			return nil
		})
		moved := time.Now()
		if err := l.Migrate(ctx, web, l.Gateway(to)); err != nil {
			t.Fatal(err)
		}
		plugged := time.Now()
		cli(ds[from], "vm", "move", "--vm", "web", "--to-host", to)
		bound := time.Now()
		fleetRetry(t, 10*time.Second, func() error {
			if probe.FirstAfter(bound).IsZero() {
				return fmt.Errorf("no echo since web moved to host %s", to)
			}
			return nil
		})
		back := probe.FirstAfter(bound)
		time.Sleep(200 * time.Millisecond)
		sent, echoes, tail := probe.Stop(moved)
		stopped = true
		out := probe.OutageAround(moved)
		gap := out.Duration(time.Now())
		t.Logf("fleet IKE: VM move %s→%s: interruption %v (last echo before to first after; probe every 5ms: %d sent, %d echoed); "+
			"re-plugged in %v, vm move took %v, first echo %v after it returned",
			from, to, gap.Round(time.Millisecond), sent, echoes, plugged.Sub(moved).Round(time.Millisecond),
			bound.Sub(plugged).Round(time.Millisecond), back.Sub(bound).Round(time.Millisecond))
		fmt.Printf("fleet ike move %s->%s interruption_ms=%d\n", from, to, gap.Milliseconds())
		if tail > gap+50*time.Millisecond {
			t.Errorf("after the move %s→%s the probe stopped again for %v", from, to, tail)
		}
		if gap > 3*time.Second {
			t.Errorf("the move %s→%s interrupted traffic for %v", from, to, gap)
		}
		pair := fleetIKECheck(t, ds, to, from, 5*time.Second)
		t.Logf("after the move %s→%s: web in %s out %s; new host, old host and peer checked %v after vm move returned",
			from, to, pair.InboundSPI, pair.OutboundSPI, time.Since(bound).Round(time.Millisecond))
		spis = append(spis, pair.InboundSPI.String(), pair.OutboundSPI.String())
		fleetTraffic(t, ctx, web, db)
	}

	// The wire: IKE and ESP between the VMs' own addresses, ESP only with
	// the SPIs show-ipsecsa listed (each of them used), nothing of the
	// probe, ping or TCP in clear.
	time.Sleep(1100 * time.Millisecond) // libpcap's last block
	for _, c := range caps {
		c.Stop()
	}
	fleetIKEWire(t, capFiles, web, db, spis, probePorts)
	if el := time.Since(began); el > 60*time.Second {
		t.Errorf("took %v; keep it under a minute", el)
	}
}

// fleetIKECheck waits until web's policy is established from host `on`
// (one IKE SA, ESTABLISHED, initiator; one installed Child SA), host
// `gone` (if not "") has no IKE or Child SA of it, and host c has exactly
// one IKE SA and one Child SA pair of db's policy, crossed with web's. It
// returns web's Child SA.
func fleetIKECheck(t *testing.T, ds map[string]*Daemon, on, gone string, within time.Duration) api.IPsecSA {
	t.Helper()
	var web api.IPsecSA
	fleetRetry(t, within, func() error {
		ikes, children := fleetIKEOf(t, ds[on], "web-ike")
		if len(ikes) != 1 || ikes[0].State != "ESTABLISHED" || !ikes[0].Initiator {
			return fmt.Errorf("host %s: IKE SAs of web-ike %+v, want one, ESTABLISHED, initiator", on, ikes)
		}
		if len(children) != 1 || children[0].State != "INSTALLED" {
			return fmt.Errorf("host %s: Child SAs of web-ike %+v, want one INSTALLED", on, children)
		}
		web = children[0]
		if gone != "" {
			if ikes, children := fleetIKEOf(t, ds[gone], "web-ike"); len(ikes)+len(children) > 0 {
				return fmt.Errorf("host %s, which web left: IKE SAs %+v and Child SAs %+v of web-ike, want none", gone, ikes, children)
			}
		}
		ikes, children = fleetIKEOf(t, ds["c"], "db-ike")
		if len(ikes) != 1 || ikes[0].State != "ESTABLISHED" || ikes[0].Initiator {
			return fmt.Errorf("host c: IKE SAs of db-ike %+v, want one, ESTABLISHED, responder", ikes)
		}
		if len(children) != 1 || children[0].State != "INSTALLED" {
			return fmt.Errorf("host c: Child SAs of db-ike %+v, want exactly one pair, INSTALLED", children)
		}
		if c := children[0]; c.InboundSPI != web.OutboundSPI || c.OutboundSPI != web.InboundSPI {
			return fmt.Errorf("host c's Child SA in %s out %s is not host %s's in %s out %s crossed", c.InboundSPI, c.OutboundSPI, on, web.InboundSPI, web.OutboundSPI)
		}
		return nil
	})
	return web
}

// fleetIKEOf lists the IKE SAs and Child SAs of tenant acme's policy on d.
func fleetIKEOf(t *testing.T, d *Daemon, policy string) ([]api.IKESA, []api.IPsecSA) {
	t.Helper()
	var ikes []api.IKESA
	for _, s := range ike2IKESAs(t, d, "acme") {
		if s.Policy == policy {
			ikes = append(ikes, s)
		}
	}
	var children []api.IPsecSA
	for _, c := range ike2IPsecSAs(t, d, "acme") {
		if c.Policy == policy {
			children = append(children, c)
		}
	}
	return ikes, children
}

// fleetIKEWire checks the captures of the gateways' uplinks.
func fleetIKEWire(t *testing.T, files []string, web, db *VM, spis, probePorts []string) {
	t.Helper()
	between := func(src, dst string) bool {
		a, b := web.IP6.String(), db.IP6.String()
		return (src == a && dst == b) || (src == b && dst == a)
	}
	var ike, esp, inClear int
	bySPI := map[string]int{}
	var bad []string
	for _, file := range files {
		out, err := exec.Command("tshark", "-r", file, "-n", "-T", "fields", "-E", "separator=|",
			"-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.nxt", "-e", "udp.srcport", "-e", "udp.dstport",
			"-e", "esp.spi", "-e", "icmpv6.type", "-e", "tcp.srcport").Output()
		if err != nil {
			t.Fatalf("tshark -r %s: %v", file, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(line, "|")
			if len(f) < 8 || f[0] == "" {
				continue
			}
			src, dst, nxt, us, ud, spi, icmp, tcp := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
			switch {
			case us == "500" || ud == "500":
				ike++
				if !between(src, dst) {
					bad = append(bad, "IKE not between the VMs' addresses: "+line)
				}
			case us == "4500" || ud == "4500":
				bad = append(bad, "NAT-T (no NAT here): "+line)
			case spi != "":
				esp++
				bySPI[spi]++
				if nxt != "50" || !between(src, dst) {
					bad = append(bad, "ESP not raw between the VMs' addresses: "+line)
				}
			case between(src, dst) && (slices.Contains(probePorts, us) || slices.Contains(probePorts, ud) || icmp == "128" || icmp == "129" || tcp != ""):
				inClear++
			}
		}
	}
	t.Logf("wire: %d IKE, %d ESP by SPI %v, %d of web's and db's IPv6 traffic in clear", ike, esp, bySPI, inClear)
	if inClear > 0 {
		t.Errorf("%d frames of web's and db's IPv6 probe, ping or TCP in clear on the wire", inClear)
	}
	for _, s := range spis {
		if bySPI[s] == 0 {
			t.Errorf("no ESP with SPI %s on the wire (seen: %v)", s, bySPI)
		}
	}
	for s := range bySPI {
		if !slices.Contains(spis, s) {
			t.Errorf("ESP with SPI %s on the wire, which show-ipsecsa never listed (%v)", s, spis)
		}
	}
	for _, b := range bad {
		t.Error(b)
	}
}
