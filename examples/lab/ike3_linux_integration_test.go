//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
)

// Pre-shared keys of the underlay IKE policies: one per tenant, different.
var ike3PSK = map[string]string{
	"acme":   "acme-underlay-psk-0d9b27c4e1f35a68",
	"globex": "globex-underlay-psk-6a41e8f2c07d93b5",
}

// ike3ID is gateway gw's IKE identity for tenant tn. The tenants' IKE SAs
// run between the same two VTEP addresses with the same traffic
// selectors, so only the identities tell the responder which tenant's
// policy (and key) an IKE_AUTH is for.
func ike3ID(tn, gw string) string { return "fqdn:vtep-" + gw + "." + tn + ".example" }

// ike3PingSize is the ICMP payload of each tenant's IPv4 ping: different,
// so that the ESP frames carrying them are told apart by length.
var ike3PingSize = map[string]int{"acme": 200, "globex": 300}

// ike3ESPLen is the IPv4 total length of the underlay ESP packet (AES-GCM,
// 8-byte IV, 16-byte ICV, transport mode) around the VXLAN of an untagged
// Ethernet frame holding an IPv4 ICMP echo with size bytes of payload.
func ike3ESPLen(size int) int {
	inner := 14 + 20 + 8 + size // Ethernet, IPv4, ICMP
	udp := 8 + 8 + inner        // UDP, VXLAN
	pad := (4 - (udp+2)%4) % 4  // RFC 4303 §2.4: 4-byte alignment
	return 20 + 8 + 8 + udp + pad + 2 + 16
}

// TestIntegrationIKEUnderlay: IKE between the hypervisors' own underlay
// addresses protecting the tenants' VXLAN (uplink --protect underlay).
// Each tenant has a policy without --vm on both gateways — gateway a
// initiates, b only responds — with its own pre-shared key and identities.
// IKE comes up for both tenants, both gateways show the same SPI pairs
// crossed, the tenants' VMs reach each other, and the wire carries only
// IKE on UDP 500 and raw ESP between the VTEP addresses, with exactly the
// SPIs IKE installed, each tenant's ping in its own tenant's ESP, and no
// VXLAN in clear.
func TestIntegrationIKEUnderlay(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	start := time.Now()
	l := buildLab(t, fmt.Sprintf("vu%d", os.Getpid()%10000), 4)
	ds := map[string]*Daemon{}
	for _, gw := range l.Gateways {
		ds[gw.Name] = startDaemon(t, bin, gw)
	}
	other := map[string]string{"a": "b", "b": "a"}
	cli := func(gw string, args ...string) {
		t.Helper()
		if _, err := ds[gw].CLI(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, gw := range l.Gateways {
		cli(gw.Name, "uplink", "set", "--dev", gw.Uplink, "--overlay", "vxlan", "--vxlan-local", UnderlayAddr(gw.Name).String(), "--protect", "underlay")
		for _, vm := range gw.VMs {
			peer := l.VM(vm.Tenant, other[gw.Name])
			cli(gw.Name, "tenant", "add", "--tenant", vm.Tenant, "--vni", fmt.Sprint(VNI(vm.Tenant)))
			cli(gw.Name, "vm", "attach", "--vm", vm.Name, "--tenant", vm.Tenant, "--dev", vm.Dev, "--mac", vm.MAC,
				"--vlan", fmt.Sprint(vm.VLAN), "--ip", vm.IP6.String(), "--ip", vm.IP4.String())
			cli(gw.Name, "overlay", "fdb", "add", "--tenant", vm.Tenant, "--mac", peer.MAC, "--remote", UnderlayAddr(other[gw.Name]).String())
		}
	}
	caps, files := startCaptures(t, l)

	// Before IKE: the tenants' traffic to the other hypervisor is held
	// back (no underlay SA yet), never sent as clear VXLAN.
	if out, err := Exec(ctx, l.VM("acme", "a").NS, "ping", "-c", "1", "-W", "1", l.VM("acme", "b").IP4.String()); err == nil {
		t.Errorf("acme's ping crossed before IKE installed an underlay SA:\n%s", out)
	}

	policy := func(tn string) string { return tn + "-vteps" }
	for _, gw := range []string{"b", "a"} { // the responder first
		for _, tn := range Tenants {
			args := []string{"--format", "json", "policy", "create", "--tenant", tn.Name, "--name", policy(tn.Name),
				"--local-ip-subnets", UnderlayAddr(gw).String() + "/32", "--remote-ip-subnets", UnderlayAddr(other[gw]).String() + "/32",
				"--mode", "transport", "--auth-method", "PSK",
				"--local-identity", ike3ID(tn.Name, gw), "--remote-identity", ike3ID(tn.Name, other[gw]),
				"--ike-proposals", "aes128gcm16-prfsha256-x25519", "--esp-proposals", "aes128gcm16"}
			if gw == "a" {
				args = append(args, "--remote-address", UnderlayAddr(other[gw]).String())
			}
			out, err := ds[gw].CLIStdin(ctx, ike3PSK[tn.Name]+"\n", args...)
			if err != nil {
				t.Fatal(err)
			}
			// Configured right, nothing to warn about: the uplink
			// protects the underlay, the keys are long, and the other
			// tenant's policy is told apart by the identities.
			var added api.Added
			if err := json.Unmarshal([]byte(out), &added); err != nil || len(added.Warnings) > 0 {
				t.Errorf("gateway %s: policy create --tenant %s: %v, warnings %q", gw, tn.Name, err, added.Warnings)
			}
		}
	}

	// IKE: both tenants' Child SAs on both gateways, crossed, between the
	// VTEP addresses, underlay SAs (no VM).
	children := map[string]map[string]api.IPsecSA{} // tenant → gateway → Child SA
	spiTenant := map[string]string{}                // "0x%08x" → tenant
	ikeSPIs := map[string]string{}                  // IKE initiator SPI → tenant
	for _, tn := range Tenants {
		children[tn.Name] = map[string]api.IPsecSA{}
		for _, gw := range []string{"a", "b"} {
			c := ike2WaitChild(t, ds[gw], tn.Name, policy(tn.Name), 15*time.Second)
			children[tn.Name][gw] = c
			if c.VM != "" || c.LocalAddress != UnderlayAddr(gw).String() || c.RemoteAddress != UnderlayAddr(other[gw]).String() {
				t.Errorf("gateway %s, %s: Child SA %+v; want an underlay SA (no VM) from %s to %s", gw, tn.Name, c, UnderlayAddr(gw), UnderlayAddr(other[gw]))
			}
			for _, spi := range []string{c.InboundSPI.String(), c.OutboundSPI.String()} {
				if prev, ok := spiTenant[spi]; ok && prev != tn.Name {
					t.Errorf("SPI %s is both %s's and %s's", spi, prev, tn.Name)
				}
				spiTenant[spi] = tn.Name
			}
			// Exactly one Child SA per tenant: nothing of the other tenant's.
			for _, r := range ike2IPsecSAs(t, ds[gw], tn.Name) {
				if r.Tenant != tn.Name || r.Policy != policy(tn.Name) || r.InboundSPI != c.InboundSPI {
					t.Errorf("gateway %s: show-ipsecsa --tenant %s lists %+v besides its Child SA %s/%s", gw, tn.Name, r, c.InboundSPI, c.OutboundSPI)
				}
			}
			ikes := ike2IKESAs(t, ds[gw], tn.Name)
			if len(ikes) != 1 {
				t.Errorf("gateway %s: show-ikesa --tenant %s: %d IKE SAs, want 1: %+v", gw, tn.Name, len(ikes), ikes)
			}
			for _, s := range ikes {
				if s.Tenant != tn.Name || s.Policy != policy(tn.Name) || s.VM != "" || s.State != "ESTABLISHED" || s.Initiator != (gw == "a") || s.NAT ||
					s.LocalAddress != UnderlayAddr(gw).String() || s.RemoteAddress != UnderlayAddr(other[gw]).String() {
					t.Errorf("gateway %s: show-ikesa --tenant %s: %+v; want ESTABLISHED from %s to %s, initiator %v, no NAT",
						gw, tn.Name, s, UnderlayAddr(gw), UnderlayAddr(other[gw]), gw == "a")
				}
				ikeSPIs[s.InitiatorSPI] = tn.Name
			}
		}
		ca, cb := children[tn.Name]["a"], children[tn.Name]["b"]
		t.Logf("%s: a in %s out %s; b in %s out %s", tn.Name, ca.InboundSPI, ca.OutboundSPI, cb.InboundSPI, cb.OutboundSPI)
		if ca.InboundSPI != cb.OutboundSPI || ca.OutboundSPI != cb.InboundSPI {
			t.Errorf("%s: SPIs not crossed: a in %s out %s, b in %s out %s", tn.Name, ca.InboundSPI, ca.OutboundSPI, cb.InboundSPI, cb.OutboundSPI)
		}
	}
	if len(ikeSPIs) != len(Tenants) {
		t.Errorf("IKE SAs by initiator SPI %v: want one per tenant, the same on both gateways", ikeSPIs)
	}
	if t.Failed() {
		return
	}
	t.Logf("IKE established for both tenants after %v", time.Since(start).Round(time.Millisecond))

	for _, tn := range Tenants {
		a, b := l.VM(tn.Name, "a"), l.VM(tn.Name, "b")
		if out, err := Exec(ctx, a.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", fmt.Sprint(ike3PingSize[tn.Name]), b.IP4.String()); err != nil {
			t.Errorf("%s: ping %s: %v\n%s", tn.Name, b.IP4, err, out)
		}
		if out, err := Exec(ctx, a.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", b.IP6.String()); err != nil {
			t.Errorf("%s: ping %s: %v\n%s", tn.Name, b.IP6, err, out)
		}
		for _, dst := range []netip.Addr{b.IP4, b.IP6} {
			if err := TCPEcho(a.NS, b.NS, dst, 0, 64<<10); err != nil {
				t.Errorf("%s: TCP to %s: %v", tn.Name, dst, err)
			}
		}
	}
	for _, c := range caps {
		c.Stop()
	}

	// The wire: ARP, IKE on UDP 500 between the VTEPs, raw ESP between
	// them with the SPIs IKE installed; nothing else.
	vtep := map[string]string{UnderlayAddr("a").String(): "a", UnderlayAddr("b").String(): "b"}
	var w struct {
		ike, esp int
		exch     map[string]int // IKE exchange types
		ikeSPI   map[string]int
		espBySPI map[string]int
		pings    map[string]int // tenant's ESP frames of its ping's length
		bad      []string
	}
	w.exch, w.ikeSPI, w.espBySPI, w.pings = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	for _, file := range files {
		cmd := exec.CommandContext(ctx, "tshark", "-r", file, "-n", "-T", "fields", "-E", "separator=|",
			"-e", "eth.type", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "ip.len",
			"-e", "udp.srcport", "-e", "udp.dstport", "-e", "esp.spi", "-e", "isakmp.ispi", "-e", "isakmp.exchangetype", "-e", "vxlan.vni")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark -r %s: %v: %s", file, err, stderr.String())
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(line, "|")
			if len(f) < 11 {
				continue
			}
			etype, src, dst, proto, iplen := f[0], f[1], f[2], f[3], f[4]
			udpS, udpD, spi, ispi, exch, vni := f[5], f[6], f[7], f[8], f[9], f[10]
			if etype == "0x0806" {
				continue // ARP for the VTEP addresses
			}
			between := vtep[src] != "" && vtep[dst] != "" && src != dst
			switch {
			case vni != "":
				w.bad = append(w.bad, "VXLAN in clear: "+line)
			case proto == "17" && udpS == "500" && udpD == "500" && between && ispi != "":
				w.ike++
				w.exch[exch]++
				w.ikeSPI[ispi]++
			case proto == "50" && between && spi != "":
				w.esp++
				w.espBySPI[spi]++
				tn := spiTenant[spi]
				if tn == "" {
					w.bad = append(w.bad, "ESP with an SPI IKE did not install: "+line)
					continue
				}
				n, _ := strconv.Atoi(iplen)
				for other, size := range ike3PingSize {
					if n == ike3ESPLen(size) {
						if other != tn {
							w.bad = append(w.bad, fmt.Sprintf("%s's ping in %s's ESP (SPI %s): %s", other, tn, spi, line))
						} else {
							w.pings[tn]++
						}
					}
				}
			default:
				w.bad = append(w.bad, "neither IKE nor ESP between the VTEPs: "+line)
			}
		}
	}
	t.Logf("wire: %d IKE %v, %d ESP %v, pings in ESP %v", w.ike, w.exch, w.esp, w.espBySPI, w.pings)
	for _, s := range w.bad {
		t.Error(s)
	}
	// IKE_SA_INIT (34) and IKE_AUTH (35), request and response, per
	// tenant, each seen where it is sent and where it is received.
	if w.exch["34"] < 2*2*len(Tenants) || w.exch["35"] < 2*2*len(Tenants) {
		t.Errorf("IKE exchanges on the wire %v: want IKE_SA_INIT (34) and IKE_AUTH (35) of both tenants", w.exch)
	}
	for ispi, tn := range ikeSPIs {
		if w.ikeSPI[ispi] == 0 {
			t.Errorf("%s: no IKE with initiator SPI %s on the wire (seen %v)", tn, ispi, w.ikeSPI)
		}
	}
	for spi, tn := range spiTenant {
		if w.espBySPI[spi] == 0 {
			t.Errorf("%s: no ESP with SPI %s on the wire (seen %v)", tn, spi, w.espBySPI)
		}
	}
	for _, tn := range Tenants {
		// Two echo requests and two replies, each captured on the uplink
		// that receives it (vifsec's own sends bypass the sender's capture).
		if w.pings[tn.Name] < 2*2 {
			t.Errorf("%s: %d ESP frames of %d bytes (VXLAN around its %d-byte ping) in its own SAs, want 4",
				tn.Name, w.pings[tn.Name], ike3ESPLen(ike3PingSize[tn.Name]), ike3PingSize[tn.Name])
		}
	}
	if len(w.espBySPI) != len(spiTenant) {
		t.Errorf("ESP SPIs on the wire %v, want exactly the %d IKE installed", w.espBySPI, len(spiTenant))
	}
	if el := time.Since(start); el > 45*time.Second {
		t.Errorf("took %v; keep it well under a minute", el)
	}
}
