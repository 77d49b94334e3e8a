package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Addresses of the NAT rebinding lab: the peer sits behind a NAT whose
// outside address is the IKE lab's peer address.
var (
	natInside   = netip.MustParseAddr("203.0.113.1")
	natPeer     = netip.MustParseAddr("203.0.113.20")
	natPortsOld = [2]uint16{40000, 40009}
	natPortsNew = [2]uint16{41000, 41009}
)

// TestIntegrationIKENATRebind: strongSwan behind a NAT (nftables
// masquerade onto a port range) sets up an IKE SA with vifsec; NAT
// detection moves both to UDP 4500 and the Child SA is ESP in UDP. Then
// the NAT forgets its mappings (conntrack flushed) and maps onto another
// port range, so the peer's packets arrive from a new source port: the
// first authenticated ESP from there moves vifsec's IKE SA and Child SA to
// it in place (no rekey: the same SPIs), and traffic flows both ways
// again. The NAT's outside wire shows vifsec's ESP going to the new port.
func TestIntegrationIKENATRebind(t *testing.T) {
	bin := needDemoTools(t)
	needCharon(t)
	if _, err := exec.LookPath("nft"); err != nil {
		msg := "nft missing (make deps installs nftables)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	l, d := ikeLabT(t, bin, "vn")
	ctx := context.Background()
	nat := l.Prefix + "nat"
	if err := l.addNS(ctx, nat); err != nil {
		t.Fatal(err)
	}
	// The peer's link to the gateway becomes the NAT's outside (wan0,
	// with the peer's old address); the peer moves behind it.
	for _, s := range [][]string{
		{"ip", "-n", l.Peer, "link", "set", "eth0", "netns", nat},
		{"ip", "-n", nat, "link", "set", "eth0", "name", "wan0"},
		{"ip", "-n", nat, "addr", "add", IKEPeer4.String() + "/24", "dev", "wan0"},
		{"ip", "-n", nat, "link", "set", "wan0", "up"},
		{"ip", "-n", nat, "link", "set", "lo", "up"},
		{"ip", "link", "add", "lan0", "netns", nat, "type", "veth", "peer", "name", "eth0", "netns", l.Peer},
		{"ip", "-n", nat, "addr", "add", natInside.String() + "/24", "dev", "lan0"},
		{"ip", "-n", nat, "link", "set", "lan0", "up"},
		{"ip", "-n", l.Peer, "addr", "add", natPeer.String() + "/24", "dev", "eth0"},
		{"ip", "-n", l.Peer, "link", "set", "eth0", "up"},
		{"ip", "-n", l.Peer, "route", "add", "default", "via", natInside.String()},
		{"ip", "netns", "exec", nat, "ethtool", "-K", "wan0", "tx", "off", "tso", "off", "gso", "off"},
		{"ip", "netns", "exec", nat, "ethtool", "-K", "lan0", "tx", "off", "tso", "off", "gso", "off"},
		{"ip", "netns", "exec", l.Peer, "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"},
		{"ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		if err := run(ctx, s...); err != nil {
			t.Fatal(err)
		}
	}
	masquerade(t, nat, natPortsOld)
	capture, err := StartCaptureOn(ctx, nat, "wan0", filepath.Join(t.TempDir(), "nat.pcap"), "udp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(capture.Stop)

	// charon behind the NAT initiates (nothing reaches it from outside
	// before it did); its identity is the address vifsec sees.
	c := ikeCase{auth: "psk", ike: "aes256gcm16-prfsha384-x25519", esp: "aes256gcm16"}
	ch := peerCharonIn(t, l, c, nil, nil, CharonConfig{Local: natPeer})
	vifsecPolicy(t, d, l, c, "nat")
	t.Cleanup(func() { d.CLI(ctx, "policy", "delete", "--tenant", "acme", "--name", "nat") })
	if err := ch.Initiate(ctx); err != nil {
		t.Fatal(err)
	}
	waitIPsecSA(t, d, "nat", 20*time.Second)
	before := ikeSAOf(t, d, "nat")
	if !before.NAT || before.RemoteAddress != IKEPeer4.String() {
		t.Fatalf("show-ikesa: NAT %v, remote %s; want a NAT and %v", before.NAT, before.RemoteAddress, IKEPeer4)
	}
	spis := natChildSPIs(t, d)
	t.Logf("IKE SA %s, Child SA %s", before.InitiatorSPI, spis)
	bothWays(t, l, "before the NAT's change")

	// The NAT forgets every mapping and maps onto new ports.
	masquerade(t, nat, natPortsNew)
	flushConntrack(t, nat)
	changed := time.Now()
	// The peer speaks first (nothing of vifsec's passes the NAT now):
	// its protected host pings the guest until the answers come back.
	waitFor6(t, 15*time.Second, "no echo reply through the tunnel after the NAT's change", func() bool {
		_, err := Exec(ctx, l.Peer, "ping", "-c", "1", "-W", "1", "-I", IKEProtHost4.String(), IKEGuest4.String())
		return err == nil
	})
	t.Logf("%v after the change: the peer's ping answered", time.Since(changed).Round(time.Millisecond))
	// vifsecd's log says where the Child SA went, show-ipsecsa's JSON
	// where it is, and the wire below shows it.
	var moved []netip.AddrPort
	waitFor6(t, 5*time.Second, "vifsecd's log does not say the Child SA followed its peer", func() bool {
		moved = childMoves(t, d.Log)
		return len(moved) > 0
	})
	if to := moved[len(moved)-1]; !inRange(to, IKEPeer4, natPortsNew) {
		t.Errorf("vifsecd moved the Child SA to %v (moves: %v); want %v on a port in %v", to, moved, IKEPeer4, natPortsNew)
	}
	if after := ikeSAOf(t, d, "nat"); after.InitiatorSPI != before.InitiatorSPI {
		t.Errorf("IKE SA %s after the NAT's change, was %s: want the same one", after.InitiatorSPI, before.InitiatorSPI)
	}
	if now := natChildSPIs(t, d); now != spis {
		t.Errorf("Child SA %s after the NAT's change, was %s: want it moved in place, not replaced", now, spis)
	}
	// What an operator sees: show-ipsecsa's JSON has the peer's port now.
	for _, r := range ike2IPsecSAs(t, d, "acme") {
		if r.Policy != "nat" || r.State != "INSTALLED" {
			continue
		}
		ap := netip.AddrPortFrom(mustAddr(r.RemoteAddress), uint16(r.RemotePort))
		if !inRange(ap, IKEPeer4, natPortsNew) {
			t.Errorf("show-ipsecsa after the NAT's change: remote %v; want %v on a port in %v", ap, IKEPeer4, natPortsNew)
		}
	}
	bothWays(t, l, "after the NAT's change")

	// vifsec's ESP on the NAT's outside: to the old mapping before the
	// change, to the new one after; its last datagrams to the new one.
	capture.Stop()
	toOld, toNew, last := vifsecESPPorts(t, capture.File)
	t.Logf("vifsec's ESP in UDP on the NAT's outside: %d to %v, %d to %v, last to port %d", toOld, natPortsOld, toNew, natPortsNew, last)
	if toOld == 0 || toNew == 0 || last < natPortsNew[0] || last > natPortsNew[1] {
		t.Errorf("vifsec's ESP: %d datagrams to the old ports, %d to the new, the last to %d; want both, the last to %v", toOld, toNew, last, natPortsNew)
	}
}

// masquerade (re)writes the NAT's only rule: UDP from the inside leaves
// wan0 from its address and a source port in ports.
func masquerade(t *testing.T, nat string, ports [2]uint16) {
	t.Helper()
	rules := fmt.Sprintf(`table ip labnat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr %s/24 meta l4proto udp masquerade to :%d-%d
  }
}
`, natInside, ports[0], ports[1])
	// Delete the table before adding it again (a first "delete" fails:
	// nothing to delete; add an empty one first).
	script := "add table ip labnat\ndelete table ip labnat\n" + rules
	cmd := exec.Command("ip", "netns", "exec", nat, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s\n%s", nat, err, out, script)
	}
}

// flushConntrack empties ns's connection tracking table: the NAT forgets
// every mapping (conntrack -F).
func flushConntrack(t *testing.T, ns string) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	if err := nl.ConntrackTableFlush(netlink.ConntrackTable); err != nil {
		t.Fatalf("conntrack flush in %s: %v", ns, err)
	}
}

// childMoves returns where vifsecd's log says IKE Child SAs followed
// their peer, in order.
func childMoves(t *testing.T, log string) []netip.AddrPort {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var to []netip.AddrPort
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "IKE Child SA follows its peer") {
			continue
		}
		m := childMoveTo.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("vifsecd's log: no destination in %q", line)
		}
		ap, err := netip.ParseAddrPort(m[1])
		if err != nil {
			t.Fatalf("vifsecd's log: %q: %v", line, err)
		}
		to = append(to, ap)
	}
	return to
}

var childMoveTo = regexp.MustCompile(`\bto[=":]+([0-9.]+:[0-9]+)`)

// natChildSPIs is the policy's installed Child SA as "in X out Y".
func natChildSPIs(t *testing.T, d *Daemon) string {
	t.Helper()
	var rows []string
	for _, r := range ike2IPsecSAs(t, d, "acme") {
		if r.Policy == "nat" && r.State == "INSTALLED" {
			rows = append(rows, "in "+r.InboundSPI.String()+" out "+r.OutboundSPI.String())
		}
	}
	if len(rows) != 1 {
		t.Fatalf("policy nat has %d installed Child SAs, want 1: %v", len(rows), rows)
	}
	return rows[0]
}

func inRange(ap netip.AddrPort, addr netip.Addr, ports [2]uint16) bool {
	return ap.Addr().Unmap() == addr && ap.Port() >= ports[0] && ap.Port() <= ports[1]
}

// bothWays checks traffic through the tunnel: the guest pings the peer's
// protected host and sends it 64 KiB over TCP.
func bothWays(t *testing.T, l *IKELab, when string) {
	t.Helper()
	ctx := context.Background()
	if b, err := Exec(ctx, l.Guest.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", IKEProtHost4.String()); err != nil {
		t.Fatalf("%s: ping through the tunnel: %v\n%s", when, err, b)
	}
	if err := TCPEcho(l.Guest.NS, l.Peer, IKEProtHost4, 0, 64<<10); err != nil {
		t.Fatalf("%s: TCP through the tunnel: %v", when, err)
	}
}

// vifsecESPPorts counts the ESP-in-UDP datagrams the guest's address
// (vifsec) sent in a capture by destination port range, and returns the
// port of the last one.
func vifsecESPPorts(t *testing.T, file string) (toOld, toNew int, last uint16) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-n", "-T", "fields", "-E", "separator=|",
		"-e", "ip.src", "-e", "udp.dstport", "-Y", "esp && ip.src == "+IKEGuest4.String()).Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 2 {
			continue
		}
		p, err := strconv.ParseUint(f[1], 10, 16)
		if err != nil {
			continue
		}
		port := uint16(p)
		switch {
		case port >= natPortsOld[0] && port <= natPortsOld[1]:
			toOld++
		case port >= natPortsNew[0] && port <= natPortsNew[1]:
			toNew++
		}
		last = port
	}
	return toOld, toNew, last
}
