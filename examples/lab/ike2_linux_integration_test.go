package lab

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
)

// Pre-shared keys of the two tenants: different on purpose.
var ike2PSK = map[string]string{
	"acme":   "acme-lab-psk-5f1e0c2b9a7d4e36",
	"globex": "globex-lab-psk-93c4a1d07e2b5f68",
}

// ike2Charon starts charon on peer p for its tenant's guest: PSK, tunnel
// mode, the protected subnet to the guest's address, and the route into
// libipsec's TUN device that answers the guest by source.
func ike2Charon(t *testing.T, p *IKETenantPeer) *Charon {
	t.Helper()
	ctx := context.Background()
	ch, err := StartCharon(ctx, CharonConfig{
		NS: p.NS, Conn: "vm", Child: "vm", NoRoutes: true,
		Local: p.Addr, Remote: p.Guest.IP4, PSK: ike2PSK[p.Tenant],
		LocalTS:  []netip.Prefix{IKEProtected4},
		RemoteTS: []netip.Prefix{netip.PrefixFrom(p.Guest.IP4, 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("charon %s (%s) log:\n%s", p.NS, p.Tenant, tail(ch.Log, 60))
		}
		ch.Stop()
	})
	if err := run(ctx, "ip", "-n", p.NS, "route", "add", p.Guest.IP4.String()+"/32", "dev", TunDevice, "table", fmt.Sprint(PeerTable)); err != nil {
		t.Fatal(err)
	}
	return ch
}

// ike2IPsecSAs returns `show-ipsecsa --tenant T` as JSON rows.
func ike2IPsecSAs(t *testing.T, d *Daemon, tenant string) []api.IPsecSA {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "show-ipsecsa", "--tenant", tenant)
	if err != nil {
		t.Fatal(err)
	}
	var rows []api.IPsecSA
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("show-ipsecsa json: %v\n%s", err, out)
	}
	return rows
}

// ike2IKESAs returns `show-ikesa --tenant T` as JSON rows.
func ike2IKESAs(t *testing.T, d *Daemon, tenant string) []api.IKESA {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "show-ikesa", "--tenant", tenant)
	if err != nil {
		t.Fatal(err)
	}
	var rows []api.IKESA
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("show-ikesa json: %v\n%s", err, out)
	}
	return rows
}

// ike2WaitChild waits until tenant's policy has an installed Child SA on d
// and returns it.
func ike2WaitChild(t *testing.T, d *Daemon, tenant, policy string, timeout time.Duration) api.IPsecSA {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range ike2IPsecSAs(t, d, tenant) {
			if r.Policy == policy && r.State == "INSTALLED" && r.InboundSPI != 0 && r.OutboundSPI != 0 {
				return r
			}
		}
		if time.Now().After(deadline) {
			ipsec, _ := d.CLI(context.Background(), "show-ipsecsa")
			ike, _ := d.CLI(context.Background(), "show-ikesa")
			t.Fatalf("gateway %s: no installed Child SA for %s/%s after %v\nshow-ipsecsa:\n%s\nshow-ikesa:\n%s",
				d.GW.Name, tenant, policy, timeout, ipsec, ike)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ike2Stats returns `vifsec stats` by VM.
func ike2Stats(t *testing.T, d *Daemon) map[string]api.Stats {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var rows []api.Stats
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("stats json: %v\n%s", err, out)
	}
	m := map[string]api.Stats{}
	for _, r := range rows {
		m[r.VM] = r
	}
	return m
}

// ike2SAPackets is the packet count of the SA with spi in a VM's stats.
func ike2SAPackets(s api.Stats, spi api.SPI) (uint64, bool) {
	for _, x := range s.SAs {
		if x.SPI == spi {
			return x.Packets, true
		}
	}
	return 0, false
}

// TestIntegrationIKETwoTenants: two tenants whose VMs have the same
// address (192.0.2.10) on one hypervisor each negotiate with their own
// strongSwan peer, with their own pre-shared key — acme's IKE initiated by
// vifsec, globex's by charon — and never see each other's SAs; acme's
// ciphertext re-addressed to globex's guest is dropped.
func TestIntegrationIKETwoTenants(t *testing.T) {
	bin := needDemoTools(t)
	needCharon(t)
	ctx := context.Background()
	start := time.Now()
	l, err := BuildIKETenants(ctx, fmt.Sprintf("v2t%d", os.Getpid()%10000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	d := startDaemon(t, bin, l.GW)
	for _, args := range [][]string{
		{"tenant", "add", "--tenant", "acme"},
		{"tenant", "add", "--tenant", "globex"},
		{"vm", "attach", "--vm", l.Peers[0].Guest.Name, "--tenant", "acme", "--dev", l.Peers[0].Guest.Dev, "--mac", l.Peers[0].Guest.MAC, "--ip", IKEGuest4.String()},
		{"vm", "attach", "--vm", l.Peers[1].Guest.Name, "--tenant", "globex", "--dev", l.Peers[1].Guest.Dev, "--mac", l.Peers[1].Guest.MAC, "--ip", IKEGuest4.String()},
		{"uplink", "set", "--dev", l.GW.Uplink},
	} {
		if _, err := d.CLI(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	capFile := filepath.Join(t.TempDir(), "uplink.pcap")
	capt, err := StartCapture(ctx, l.GW, capFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(capt.Stop)

	acme, globex := l.Peers[0], l.Peers[1]
	charons := map[string]*Charon{}
	for _, p := range l.Peers {
		charons[p.Tenant] = ike2Charon(t, p)
	}
	policy := func(p *IKETenantPeer, initiate bool) {
		args := []string{"policy", "create", "--tenant", p.Tenant, "--name", p.Tenant + "-ike", "--vm", p.Guest.Name,
			"--local-ip-subnets", IKEGuest4.String() + "/32", "--remote-ip-subnets", IKEProtected4.String(),
			"--mode", "tunnel", "--auth-method", "PSK",
			"--ike-proposals", "aes128gcm16-prfsha256-modp2048", "--esp-proposals", "aes128gcm16"}
		if initiate {
			args = append(args, "--remote-address", p.Addr.String())
		}
		if _, err := d.CLIStdin(ctx, ike2PSK[p.Tenant]+"\n", args...); err != nil {
			t.Fatal(err)
		}
	}
	// globex: vifsec only responds; charon B initiates.
	policy(globex, false)
	if err := charons["globex"].Initiate(ctx); err != nil {
		t.Fatal(err)
	}
	// acme: vifsec initiates to peer A.
	policy(acme, true)
	children := map[string]api.IPsecSA{}
	for _, p := range l.Peers {
		children[p.Tenant] = ike2WaitChild(t, d, p.Tenant, p.Tenant+"-ike", 20*time.Second)
	}
	t.Logf("both tenants established after %v", time.Since(start).Round(time.Millisecond))

	for _, p := range l.Peers {
		if b, err := Exec(ctx, p.Guest.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", IKEProtHost4.String()); err != nil {
			t.Errorf("%s: ping %s through its tunnel: %v\n%s", p.Tenant, IKEProtHost4, err, b)
		}
		if err := TCPEcho(p.Guest.NS, p.NS, IKEProtHost4, 0, 256<<10); err != nil {
			t.Errorf("%s: TCP to %s through its tunnel: %v", p.Tenant, IKEProtHost4, err)
		}
	}

	// Each tenant sees exactly its own SAs, the ones its own peer has.
	theirs := map[string][]string{}
	for _, p := range l.Peers {
		list, err := charons[p.Tenant].ListSAs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		spis := charonChildSPIs(list)
		if len(spis) != 2 {
			t.Fatalf("peer %s (%s): swanctl shows %d child SPIs, want 2:\n%s", p.NS, p.Tenant, len(spis), list)
		}
		theirs[p.Tenant] = spis
	}
	for _, p := range l.Peers {
		other := map[string]string{"acme": "globex", "globex": "acme"}[p.Tenant]
		rows := ike2IPsecSAs(t, d, p.Tenant)
		var ours []string
		for _, r := range rows {
			if r.Tenant != p.Tenant || string(r.VM) != p.Guest.Name {
				t.Errorf("show-ipsecsa --tenant %s lists a row of tenant %s, vm %s: %+v", p.Tenant, r.Tenant, r.VM, r)
			}
			if r.State == "INSTALLED" {
				ours = append(ours, fmt.Sprintf("%08x", uint32(r.InboundSPI)), fmt.Sprintf("%08x", uint32(r.OutboundSPI)))
			}
		}
		slices.Sort(ours)
		want := slices.Sorted(slices.Values(theirs[p.Tenant]))
		if !slices.Equal(ours, want) {
			t.Errorf("show-ipsecsa --tenant %s: SPIs %v, want exactly peer %s's %v\n%+v", p.Tenant, ours, p.NS, want, rows)
		}
		for _, spi := range theirs[other] {
			if slices.Contains(ours, spi) {
				t.Errorf("show-ipsecsa --tenant %s shows %s's SPI %s", p.Tenant, other, spi)
			}
		}
		// The Child SA is between the guest's address and its own peer's.
		c := children[p.Tenant]
		if c.RemoteAddress != p.Addr.String() || c.LocalAddress != IKEGuest4.String() {
			t.Errorf("%s: Child SA between %s and %s, want %s and %s", p.Tenant, c.LocalAddress, c.RemoteAddress, IKEGuest4, p.Addr)
		}
		ikes := ike2IKESAs(t, d, p.Tenant)
		if len(ikes) != 1 {
			t.Errorf("show-ikesa --tenant %s: %d IKE SAs, want 1: %+v", p.Tenant, len(ikes), ikes)
		}
		for _, s := range ikes {
			if s.Tenant != p.Tenant || s.RemoteAddress != p.Addr.String() || s.State != "ESTABLISHED" || s.Initiator != (p == acme) {
				t.Errorf("show-ikesa --tenant %s: %+v, want tenant %s with %s, ESTABLISHED, initiator %v", p.Tenant, s, p.Tenant, p.Addr, p == acme)
			}
		}
	}
	if t.Failed() {
		return
	}

	// Attacks with a real ESP-in-UDP frame of acme's, from peer A's flow
	// captured where the hypervisor receives it.
	capt.Stop()
	frames, err := ReadPcap(capFile)
	if err != nil {
		t.Fatal(err)
	}
	peerAMAC, _ := net.ParseMAC(acme.MAC)
	acmeMAC, _ := net.ParseMAC(acme.Guest.MAC)
	var acmeESP []byte
	var espOff int // of the ESP header in acmeESP
	for _, f := range frames {
		if off, ok := ike2ESPInUDP4(f); ok && string(f[6:12]) == string(peerAMAC) && string(f[0:6]) == string(acmeMAC) {
			acmeESP, espOff = append([]byte(nil), f...), off
		}
	}
	if acmeESP == nil {
		t.Fatal("no ESP-in-UDP frame from peer A to acme's guest in the capture of the uplink")
	}
	if got, want := api.SPI(binary.BigEndian.Uint32(acmeESP[espOff:])), children["acme"].InboundSPI; got != want {
		t.Fatalf("peer A's ESP carries SPI %s, acme's inbound SA is %s", got, want)
	}
	// (1) Replayed as it is: acme's own SA refuses it (the injection path
	// works, and the replay window holds).
	// (2) Re-sent toward globex's guest, as if from peer B: globex's MAC,
	// peer B's MAC and address, globex's inbound SPI, a sequence number
	// ahead of its window (so the ICV must decide) and no UDP checksum.
	toGlobex := append([]byte(nil), acmeESP...)
	globexMAC, _ := net.ParseMAC(globex.Guest.MAC)
	peerBMAC, _ := net.ParseMAC(globex.MAC)
	copy(toGlobex[0:6], globexMAC)
	copy(toGlobex[6:12], peerBMAC)
	copy(toGlobex[14+12:14+16], IKEPeerB4.AsSlice())
	ihl := int(toGlobex[14]&0xf) * 4
	binary.BigEndian.PutUint16(toGlobex[14+10:], 0)
	binary.BigEndian.PutUint16(toGlobex[14+10:], ike2IPChecksum(toGlobex[14:14+ihl]))
	binary.BigEndian.PutUint16(toGlobex[14+ihl+6:], 0) // UDP checksum: none (IPv4)
	gin := uint32(children["globex"].InboundSPI)
	binary.BigEndian.PutUint32(toGlobex[espOff:], gin)
	binary.BigEndian.PutUint32(toGlobex[espOff+4:], 1<<30)

	acmeVM, globexVM := acme.Guest.Name, globex.Guest.Name
	before := ike2Stats(t, d)
	gInBefore, ok := ike2SAPackets(before[globexVM], children["globex"].InboundSPI)
	if !ok {
		t.Fatalf("stats of %s lack its inbound SA %s: %+v", globexVM, children["globex"].InboundSPI, before[globexVM])
	}
	if err := Inject(&Gateway{NS: acme.NS, Uplink: "eth0"}, [][]byte{acmeESP}); err != nil {
		t.Fatal(err)
	}
	if err := Inject(&Gateway{NS: globex.NS, Uplink: "eth0"}, [][]byte{toGlobex}); err != nil {
		t.Fatal(err)
	}
	var after map[string]api.Stats
	for i := 0; i < 50; i++ {
		time.Sleep(50 * time.Millisecond)
		after = ike2Stats(t, d)
		if after[acmeVM].Drops["replay"] > before[acmeVM].Drops["replay"] && after[globexVM].Drops["auth-failed"] > before[globexVM].Drops["auth-failed"] {
			break
		}
	}
	if got, was := after[acmeVM].Drops["replay"], before[acmeVM].Drops["replay"]; got != was+1 {
		t.Errorf("acme's frame replayed: %s replay drops %d → %d, want +1", acmeVM, was, got)
	}
	if got, was := after[globexVM].Drops["auth-failed"], before[globexVM].Drops["auth-failed"]; got != was+1 {
		t.Errorf("acme's ESP sent to globex: %s auth-failed drops %d → %d, want +1 (drops %v)", globexVM, was, got, after[globexVM].Drops)
	}
	if got, _ := ike2SAPackets(after[globexVM], children["globex"].InboundSPI); got != gInBefore {
		t.Errorf("globex's inbound SA %s accepted %d packets during the attack", children["globex"].InboundSPI, got-gInBefore)
	}
	if el := time.Since(start); el > 45*time.Second {
		t.Errorf("took %v; keep it well under a minute", el)
	}
}

// ike2ESPInUDP4 reports whether f is an untagged IPv4 frame of ESP in UDP to
// port 4500, and where its ESP header starts.
func ike2ESPInUDP4(f []byte) (int, bool) {
	if len(f) < 14+20+8+8 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14+9] != 17 {
		return 0, false
	}
	ihl := int(f[14]&0xf) * 4
	u := 14 + ihl
	if len(f) < u+8+8 || binary.BigEndian.Uint16(f[u+2:]) != 4500 || binary.BigEndian.Uint32(f[u+8:]) == 0 {
		return 0, false
	}
	return u + 8, true
}

// ike2IPChecksum is the Internet checksum of an IPv4 header (its checksum
// field zeroed).
func ike2IPChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// ike2AttachVMs gives gateway d its uplink, the lab's tenants and its VMs,
// as Configure does, but no SA and no SP: the tenants' default action
// (none) applies until IKE installs something.
func ike2AttachVMs(t *testing.T, d *Daemon) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.CLI(ctx, "uplink", "set", "--dev", d.GW.Uplink); err != nil {
		t.Fatal(err)
	}
	for _, vm := range d.GW.VMs {
		for _, args := range [][]string{
			{"tenant", "add", "--tenant", vm.Tenant},
			{"vm", "attach", "--vm", vm.Name, "--tenant", vm.Tenant, "--dev", vm.Dev, "--mac", vm.MAC,
				"--vlan", fmt.Sprint(vm.VLAN), "--ip", vm.IP6.String(), "--ip", vm.IP4.String()},
		} {
			if _, err := d.CLI(ctx, args...); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestIntegrationIKEVifsecToVifsec: vifsec ↔ vifsec, transport mode
// between two VMs on two hypervisors, IPv4 and IPv6. Gateway a's policies
// initiate, gateway b's only respond. Both sides show the same SPI pair,
// crossed; ping and TCP pass; the wire carries IKE and raw ESP (no NAT, so
// no UDP encapsulation) between the VMs' own addresses and none of their
// traffic in clear, while globex, with no policy, passes in clear.
func TestIntegrationIKEVifsecToVifsec(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	start := time.Now()
	l := buildLab(t, fmt.Sprintf("v2v%d", os.Getpid()%10000), 0)
	var ds []*Daemon
	for _, gw := range l.Gateways {
		d := startDaemon(t, bin, gw)
		ike2AttachVMs(t, d)
		ds = append(ds, d)
	}
	caps, capFiles := startCaptures(t, l)
	a, b := l.VM("acme", "a"), l.VM("acme", "b")
	const psk = "vifsec-to-vifsec-psk-7c0f2e91d4b3a856"
	type fam struct {
		name     string
		addr     func(*VM) netip.Addr
		bits     int
		policy   string
		children [2]api.IPsecSA
	}
	fams := []*fam{
		{name: "IPv4", addr: func(v *VM) netip.Addr { return v.IP4 }, bits: 32, policy: "acme-v4"},
		{name: "IPv6", addr: func(v *VM) netip.Addr { return v.IP6 }, bits: 128, policy: "acme-v6"},
	}
	create := func(d *Daemon, f *fam, local, remote *VM, initiate bool) {
		args := []string{"policy", "create", "--tenant", "acme", "--name", f.policy, "--vm", local.Name,
			"--local-ip-subnets", netip.PrefixFrom(f.addr(local), f.bits).String(),
			"--remote-ip-subnets", netip.PrefixFrom(f.addr(remote), f.bits).String(),
			"--mode", "transport", "--auth-method", "PSK"}
		if initiate {
			args = append(args, "--remote-address", f.addr(remote).String())
		}
		if _, err := d.CLIStdin(ctx, psk+"\n", args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range fams {
		create(ds[1], f, b, a, false) // the responder first
		create(ds[0], f, a, b, true)
	}
	for _, f := range fams {
		for i, d := range ds {
			f.children[i] = ike2WaitChild(t, d, "acme", f.policy, 20*time.Second)
		}
		ca, cb := f.children[0], f.children[1]
		t.Logf("%s: a in %s out %s; b in %s out %s", f.name, ca.InboundSPI, ca.OutboundSPI, cb.InboundSPI, cb.OutboundSPI)
		if ca.InboundSPI != cb.OutboundSPI || ca.OutboundSPI != cb.InboundSPI {
			t.Errorf("%s: SPIs not crossed: a in %s out %s, b in %s out %s", f.name, ca.InboundSPI, ca.OutboundSPI, cb.InboundSPI, cb.OutboundSPI)
		}
		if ca.LocalAddress != f.addr(a).String() || ca.RemoteAddress != f.addr(b).String() ||
			cb.LocalAddress != f.addr(b).String() || cb.RemoteAddress != f.addr(a).String() {
			t.Errorf("%s: Child SA addresses a %s→%s, b %s→%s; want the VMs' own", f.name, ca.LocalAddress, ca.RemoteAddress, cb.LocalAddress, cb.RemoteAddress)
		}
		for i, d := range ds {
			var n int
			for _, s := range ike2IKESAs(t, d, "acme") {
				if s.Policy != f.policy {
					continue
				}
				n++
				if s.State != "ESTABLISHED" || s.Initiator != (i == 0) || s.NAT {
					t.Errorf("gateway %s %s: IKE SA %+v, want ESTABLISHED, initiator %v, no NAT", d.GW.Name, f.name, s, i == 0)
				}
			}
			if n != 1 {
				t.Errorf("gateway %s: %d IKE SAs for %s, want 1", d.GW.Name, n, f.policy)
			}
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("IKE established after %v", time.Since(start).Round(time.Millisecond))

	for _, tn := range []string{"acme", "globex"} {
		src, dst := l.VM(tn, "a"), l.VM(tn, "b")
		for _, addr := range []netip.Addr{dst.IP4, dst.IP6} {
			if out, err := Exec(ctx, src.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", addr.String()); err != nil {
				t.Errorf("%s: ping %s: %v\n%s", tn, addr, err, out)
			}
			if err := TCPEcho(src.NS, dst.NS, addr, 0, 256<<10); err != nil {
				t.Errorf("%s: TCP to %s: %v", tn, addr, err)
			}
		}
	}
	for _, c := range caps {
		c.Stop()
	}

	// Every SPI vifsec installed, per direction.
	spis := map[string]bool{}
	for _, f := range fams {
		for _, c := range f.children {
			spis[c.InboundSPI.String()] = true
		}
	}
	acmeAddrs := map[string]bool{a.IP4.String(): true, b.IP4.String(): true, a.IP6.String(): true, b.IP6.String(): true}
	var w struct {
		ike, esp, natt, acmeClear, globexClear int
		espBySPI                               map[string]int
		bad                                    []string
	}
	w.espBySPI = map[string]int{}
	for _, file := range capFiles {
		out, err := exec.CommandContext(ctx, "tshark", "-r", file, "-n", "-T", "fields", "-E", "separator=|",
			"-e", "vlan.id", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ip.proto", "-e", "ipv6.nxt",
			"-e", "udp.srcport", "-e", "udp.dstport", "-e", "esp.spi", "-e", "icmp.type", "-e", "icmpv6.type", "-e", "tcp.srcport").Output()
		if err != nil {
			t.Fatalf("tshark -r %s: %v", file, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(line, "|")
			if len(f) < 13 {
				continue
			}
			vlan, src, dst, proto := f[0], f[1]+f[3], f[2]+f[4], f[5]+f[6]
			udpS, udpD, spi, icmp, icmp6, tcpS := f[7], f[8], f[9], f[10], f[11], f[12]
			echo := icmp == "0" || icmp == "8" || icmp6 == "128" || icmp6 == "129"
			switch vlan {
			case "100":
				between := acmeAddrs[src] && acmeAddrs[dst]
				switch {
				case udpS == "500" || udpD == "500":
					w.ike++
					if !between {
						w.bad = append(w.bad, "IKE not between the VMs' addresses: "+line)
					}
				case udpS == "4500" || udpD == "4500":
					w.natt++
				case spi != "":
					w.esp++
					w.espBySPI[spi]++
					if proto != "50" || !between {
						w.bad = append(w.bad, "ESP not raw between the VMs' addresses: "+line)
					}
				case echo || tcpS != "":
					w.acmeClear++
				}
			case "200":
				if echo || tcpS != "" {
					w.globexClear++
				}
				if spi != "" || udpS == "500" || udpD == "500" {
					w.bad = append(w.bad, "IKE or ESP in globex's VLAN: "+line)
				}
			}
		}
	}
	t.Logf("wire: %d IKE, %d ESP %v, %d NAT-T, %d clear acme, %d clear globex", w.ike, w.esp, w.espBySPI, w.natt, w.acmeClear, w.globexClear)
	if w.ike < 4 { // IKE_SA_INIT and IKE_AUTH, request and response
		t.Errorf("%d IKE datagrams on the wire, want at least 4", w.ike)
	}
	if w.natt != 0 {
		t.Errorf("%d frames to or from UDP 4500: no NAT here, ESP must be raw", w.natt)
	}
	if w.acmeClear != 0 {
		t.Errorf("%d frames of acme's ping or TCP in clear on the wire", w.acmeClear)
	}
	if w.globexClear == 0 {
		t.Errorf("globex's ping and TCP (no policy, default action none) not seen in clear on the wire")
	}
	for _, s := range w.bad {
		t.Error(s)
	}
	for spi := range spis {
		if w.espBySPI[spi] == 0 {
			t.Errorf("no ESP with SPI %s on the wire (SPIs seen: %v)", spi, w.espBySPI)
		}
	}
	for spi := range w.espBySPI {
		if !spis[spi] {
			t.Errorf("ESP with SPI %s on the wire, which show-ipsecsa does not list", spi)
		}
	}
	if el := time.Since(start); el > 45*time.Second {
		t.Errorf("took %v; keep it well under a minute", el)
	}
}
