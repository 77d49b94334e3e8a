//go:build linux

package lab

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// espLedger counts, while traffic crosses the IKE lab's tunnel, the
// packets between the guest and the protected subnet at each hand-over,
// so that a loss can be put on the party that lost it:
//
//	guest eth0 ─▶ vifsec ─(ESP in UDP 4500)─▶ eth0 charon (libipsec) ipsec0 ─▶ protected host
//	           ◀── (clear)  ◀──────────────────────────   ◀── (clear) ──
//
// Captures on the guest's eth0 (clear: what the guest sent and what
// vifsec delivered), on the peer's eth0 (ESP: what crossed the wire) and
// on ipsec0 (clear: charon's TUN device); vifsecd's own counters for the
// guest (packets and drops by reason) and the uplink; the UDP
// receive-buffer drops of the peer's and the guest's kernels. (Captures
// on vifsec's own ports would miss what vifsec writes: its packet sockets
// bypass the taps.)
type espLedger struct {
	l          *IKELab
	d          *Daemon
	caps       []*Capture // the guest's eth0, the peer's eth0, ipsec0
	vmBefore   *VMStats
	upBefore   map[string]uint64
	snmpBefore map[string]uint64 // "peer" and "guest" UDP RcvbufErrors
	linkBefore map[string]uint64
}

// ledger is what an espLedger found.
type ledger struct {
	// Packets between the guest and the protected subnet: Out is toward
	// the protected subnet, In toward the guest.
	VIFOut, VIFIn int            // on the guest's eth0
	WireOut       map[uint32]int // ESP from the guest's address, by SPI
	WireIn        map[uint32]int // ESP to the guest's address, by SPI
	TunOut, TunIn int            // on ipsec0
	// Which packets went missing between two hand-overs, as where they
	// should have been on the wire: SPI, ESP sequence number, time.
	MissingOut, MissingIn []string
	// CaptureDrops: packets each capture missed ("guest", "wire", "tun"):
	// a count from a capture that missed some is no count.
	CaptureDrops         map[string]int
	VMDrops, UplinkDrops map[string]uint64 // vifsecd's drop counters, by reason, during the run
	VMOut, VMIn          uint64            // vifsecd's packets from and to the guest during the run
	PeerRcvbuf           uint64            // UDP datagrams the peer's kernel dropped for a full socket (charon's 4500, iperf3's)
	CharonSocket         uint64            // of them, those for charon's own sockets (IKE ports 500 and 4500: its ESP in UDP)
	GuestRcvbuf          uint64            // the same in the guest
	// LinkDrops are the interfaces' own drop counters (a veth whose peer's
	// backlog was full, ipsec0's queue toward charon), by "ns/dev rx|tx".
	LinkDrops           map[string]uint64
	kernelOut, kernelIn int    // of LinkDrops, those of KernelLost
	tunKey              string // LinkDrops' key prefix of ipsec0
}

func sum(m map[uint32]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// VifsecLost is how many packets vifsec took and did not hand on: from
// the guest and not on the wire, from the wire and not to the guest. What
// the veths between it and the captures dropped (KernelLost) is not
// counted.
func (g *ledger) VifsecLost() (out, in int) {
	ko, ki := g.KernelLost()
	return g.VIFOut - sum(g.WireOut) - ko, sum(g.WireIn) - g.VIFIn - ki
}

// KernelLost is what the veths on vifsec's two sides dropped (a full
// backlog at the receiving end counts as a transmit drop of the sender):
// toward the protected host, the guest's eth0 and vifsec's uplink; toward
// the guest, the peer's eth0 and the guest's VIF.
func (g *ledger) KernelLost() (out, in int) { return g.kernelOut, g.kernelIn }

// CharonLost is the same for charon and its kernel-libipsec.
func (g *ledger) CharonLost() (out, in int) {
	return sum(g.WireOut) - g.TunOut, g.TunIn - sum(g.WireIn)
}

func (g *ledger) String() string {
	vo, vi := g.VifsecLost()
	co, ci := g.CharonLost()
	return fmt.Sprintf("toward the protected host: guest %d → wire %d %v → ipsec0 %d (vifsec lost %d, charon %d); "+
		"toward the guest: ipsec0 %d → wire %d %v → guest %d (charon lost %d, vifsec %d); missing %v / %v; "+
		"vifsecd: guest packets out %d in %d, VM drops %v, uplink drops %v; UDP receive-buffer drops: peer %d (charon's sockets %d), guest %d; interface drops %v; capture drops %v",
		g.VIFOut, sum(g.WireOut), spiCounts(g.WireOut), g.TunOut, vo, co,
		g.TunIn, sum(g.WireIn), spiCounts(g.WireIn), g.VIFIn, ci, vi, g.MissingOut, g.MissingIn,
		g.VMOut, g.VMIn, g.VMDrops, g.UplinkDrops, g.PeerRcvbuf, g.CharonSocket, g.GuestRcvbuf, g.LinkDrops, g.CaptureDrops)
}

func spiCounts(m map[uint32]int) string {
	var s []string
	for spi, n := range m {
		s = append(s, fmt.Sprintf("%08x:%d", spi, n))
	}
	slices.Sort(s)
	return "[" + strings.Join(s, " ") + "]"
}

func startLedger(t *testing.T, l *IKELab, d *Daemon) *espLedger {
	t.Helper()
	ctx := context.Background()
	g := &espLedger{l: l, d: d}
	dir := t.TempDir()
	prot := "net " + IKEProtected4.String()
	for _, c := range []struct{ ns, dev, file, filter string }{
		{l.Guest.NS, "eth0", "guest.pcap", "ip and " + prot},
		{l.Peer, "eth0", "wire.pcap", "udp port 4500"},
		{l.Peer, TunDevice, "ipsec0.pcap", "ip and " + prot},
	} {
		cp, err := StartCaptureOn(ctx, c.ns, c.dev, filepath.Join(dir, c.file), c.filter)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cp.Stop)
		g.caps = append(g.caps, cp)
	}
	var err error
	if g.vmBefore, err = BenchStats(ctx, d, l.Guest.Name); err != nil {
		t.Fatal(err)
	}
	g.upBefore = uplinkDrops(t, d)
	g.snmpBefore = map[string]uint64{"peer": udpRcvbufErrors(t, l.Peer), "guest": udpRcvbufErrors(t, l.Guest.NS),
		"charon": udpSocketDrops(t, l.Peer, 500, 4500)}
	g.linkBefore = g.linkDrops(t)
	return g
}

// linkDrops reads the drop counters of every interface on the path.
func (g *espLedger) linkDrops(t *testing.T) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, x := range []struct{ ns, dev string }{
		{g.l.Guest.NS, "eth0"}, {g.l.GW.NS, g.l.Guest.Dev}, {g.l.GW.NS, g.l.GW.Uplink}, {g.l.Peer, "eth0"}, {g.l.Peer, TunDevice},
	} {
		out, err := Exec(context.Background(), x.ns, "ip", "-s", "-j", "link", "show", "dev", x.dev)
		if err != nil {
			t.Fatalf("ip -s link show dev %s in %s: %v: %s", x.dev, x.ns, err, out)
		}
		var links []struct {
			Stats struct {
				RX, TX struct {
					Dropped uint64 `json:"dropped"`
				}
			} `json:"stats64"`
		}
		if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
			t.Fatalf("ip -s -j link show dev %s in %s: %v: %s", x.dev, x.ns, err, out)
		}
		m[x.ns+"/"+x.dev+" rx"] = links[0].Stats.RX.Dropped
		m[x.ns+"/"+x.dev+" tx"] = links[0].Stats.TX.Dropped
	}
	return m
}

// finish stops the captures and reads them and the counters.
func (g *espLedger) finish(t *testing.T) *ledger {
	t.Helper()
	r := &ledger{WireOut: map[uint32]int{}, WireIn: map[uint32]int{}, VMDrops: map[string]uint64{}, UplinkDrops: map[string]uint64{},
		CaptureDrops: map[string]int{}}
	for i, c := range g.caps {
		c.Stop()
		if n := c.Dropped(); n > 0 {
			r.CaptureDrops[[]string{"guest", "wire", "tun"}[i]] = n
		}
	}
	guest := IKEGuest4
	vifOut, vifIn := packetsOf(t, g.caps[0].File, guest)
	tunOut, tunIn := packetsOf(t, g.caps[2].File, guest)
	wireOut, wireIn := espOf(t, g.caps[1].File, guest)
	r.VIFOut, r.VIFIn, r.TunOut, r.TunIn = len(vifOut), len(vifIn), len(tunOut), len(tunIn)
	for _, e := range wireOut {
		r.WireOut[e.spi]++
	}
	for _, e := range wireIn {
		r.WireIn[e.spi]++
	}
	// A packet that left one side and did not arrive at the other is
	// placed on the wire by its rank: vifsec and charon keep each
	// direction's order, so the k-th packet in is the k-th ESP out.
	r.MissingOut = missing(vifOut, tunOut, wireOut)
	r.MissingIn = missing(tunIn, vifIn, wireIn)
	ctx := context.Background()
	vm, err := BenchStats(ctx, g.d, g.l.Guest.Name)
	if err != nil {
		t.Fatal(err)
	}
	r.VMOut, r.VMIn = vm.PacketsOut-g.vmBefore.PacketsOut, vm.PacketsIn-g.vmBefore.PacketsIn
	for k, v := range vm.Drops {
		if d := v - g.vmBefore.Drops[k]; d != 0 {
			r.VMDrops[k] = d
		}
	}
	for k, v := range uplinkDrops(t, g.d) {
		if d := v - g.upBefore[k]; d != 0 {
			r.UplinkDrops[k] = d
		}
	}
	r.PeerRcvbuf = udpRcvbufErrors(t, g.l.Peer) - g.snmpBefore["peer"]
	r.GuestRcvbuf = udpRcvbufErrors(t, g.l.Guest.NS) - g.snmpBefore["guest"]
	r.CharonSocket = udpSocketDrops(t, g.l.Peer, 500, 4500) - g.snmpBefore["charon"]
	r.LinkDrops = map[string]uint64{}
	for k, v := range g.linkDrops(t) {
		if d := v - g.linkBefore[k]; d != 0 {
			r.LinkDrops[k] = d
		}
	}
	gwNS, guestNS, peerNS := g.l.GW.NS, g.l.Guest.NS, g.l.Peer
	r.tunKey = peerNS + "/" + TunDevice
	r.kernelOut = int(r.LinkDrops[guestNS+"/eth0 tx"] + r.LinkDrops[gwNS+"/"+g.l.GW.Uplink+" tx"])
	r.kernelIn = int(r.LinkDrops[peerNS+"/eth0 tx"] + r.LinkDrops[gwNS+"/"+g.l.Guest.Dev+" tx"])
	return r
}

// capPacket is an IPv4 packet of a clear capture: its identity (all but
// TTL and checksum) and time.
type capPacket struct {
	id string
	at time.Time
}

// packetsOf returns the IPv4 packets of a clear capture from addr and to
// addr, in capture order.
func packetsOf(t *testing.T, file string, addr netip.Addr) (from, to []capPacket) {
	t.Helper()
	link, recs, err := ReadPcapRecords(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		ip := r.Data
		switch link {
		case LinkEthernet:
			if len(ip) < 14 || binary.BigEndian.Uint16(ip[12:]) != 0x0800 {
				continue
			}
			ip = ip[14:]
		case LinkRaw:
		default:
			t.Fatalf("%s: link type %d", file, link)
		}
		if len(ip) < 20 || ip[0]>>4 != 4 {
			continue
		}
		n := min(len(ip), int(binary.BigEndian.Uint16(ip[2:4])))
		// The guest leaves checksums to its NIC (vifsec completes
		// them), and vifsec clamps the MSS option of a SYN: neither the
		// L4 checksum nor TCP options are part of a packet's identity.
		hl := int(ip[0]&0xf) * 4
		l4 := append([]byte(nil), ip[min(hl, n):n]...)
		switch {
		case ip[9] == 17 && len(l4) >= 8:
			clear(l4[6:8])
		case ip[9] == 6 && len(l4) >= 20:
			off := min(len(l4), int(l4[12]>>4)*4)
			l4 = append(l4[:16:16], l4[off:]...)
		}
		id := string(ip[0:8]) + string(ip[9:10]) + string(ip[12:hl]) + string(l4)
		p := capPacket{id: id, at: r.Time}
		switch addr {
		case netip.AddrFrom4([4]byte(ip[12:16])):
			from = append(from, p)
		case netip.AddrFrom4([4]byte(ip[16:20])):
			to = append(to, p)
		}
	}
	return from, to
}

// espPacket is one ESP-in-UDP packet on the wire.
type espPacket struct {
	spi, seq uint32
	at       time.Time
}

// espOf returns the ESP packets in UDP (RFC 3948: not IKE behind the
// non-ESP marker, not a NAT keepalive) of a wire capture from addr and to
// addr, in capture order.
func espOf(t *testing.T, file string, addr netip.Addr) (from, to []espPacket) {
	t.Helper()
	_, recs, err := ReadPcapRecords(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		f := r.Data
		if len(f) < 14+20+8+8 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14+9] != 17 {
			continue
		}
		ip := f[14:]
		udp := ip[int(ip[0]&0xf)*4:]
		if len(udp) < 16 {
			continue
		}
		esp := udp[8:]
		spi := binary.BigEndian.Uint32(esp)
		if spi == 0 {
			continue // IKE
		}
		p := espPacket{spi: spi, seq: binary.BigEndian.Uint32(esp[4:]), at: r.Time}
		switch addr {
		case netip.AddrFrom4([4]byte(ip[12:16])):
			from = append(from, p)
		case netip.AddrFrom4([4]byte(ip[16:20])):
			to = append(to, p)
		}
	}
	return from, to
}

// missing lists the packets of sent that got does not have, each as the
// ESP packet of the same rank on the wire (or its rank, if the wire has
// fewer).
func missing(sent, got []capPacket, wire []espPacket) []string {
	have := map[string]int{}
	for _, p := range got {
		have[p.id]++
	}
	var out []string
	for k, p := range sent {
		if have[p.id] > 0 {
			have[p.id]--
			continue
		}
		if k < len(wire) {
			w := wire[k]
			out = append(out, fmt.Sprintf("#%d SPI %08x seq %d at %s", k, w.spi, w.seq, w.at.Format("15:04:05.000000")))
		} else {
			out = append(out, fmt.Sprintf("#%d (not on the wire) at %s", k, p.at.Format("15:04:05.000000")))
		}
		if len(out) == 10 {
			break
		}
	}
	return out
}

// udpRcvbufErrors reads Udp RcvbufErrors from /proc/net/snmp in ns.
func udpRcvbufErrors(t *testing.T, ns string) uint64 {
	t.Helper()
	out, err := Exec(context.Background(), ns, "cat", "/proc/net/snmp")
	if err != nil {
		t.Fatalf("/proc/net/snmp in %s: %v", ns, err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				return v
			}
		}
	}
	t.Fatalf("no Udp RcvbufErrors in /proc/net/snmp of %s", ns)
	return 0
}

// udpSocketDrops sums the drops of the UDP sockets (IPv4 and IPv6) in ns
// bound to one of ports, from /proc/net/udp{,6}.
func udpSocketDrops(t *testing.T, ns string, ports ...uint16) uint64 {
	t.Helper()
	var n uint64
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		out, err := Exec(context.Background(), ns, "cat", f)
		if err != nil {
			t.Fatalf("%s in %s: %v", f, ns, err)
		}
		for _, line := range strings.Split(string(out), "\n")[1:] {
			x := strings.Fields(line)
			if len(x) < 13 {
				continue
			}
			_, hexPort, _ := strings.Cut(x[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil || !slices.Contains(ports, uint16(p)) {
				continue
			}
			d, _ := strconv.ParseUint(x[len(x)-1], 10, 64)
			n += d
		}
	}
	return n
}

// uplinkDrops returns the uplink's and the overlay's drops by reason from
// `vifsec stats --uplink`.
func uplinkDrops(t *testing.T, d *Daemon) map[string]uint64 {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "stats", "--uplink")
	if err != nil {
		t.Fatal(err)
	}
	var us struct {
		Drops        map[string]uint64 `json:"drops"`
		OverlayDrops map[string]uint64 `json:"overlay_drops"`
	}
	if err := json.Unmarshal([]byte(out), &us); err != nil {
		t.Fatalf("stats --uplink: %v: %s", err, out)
	}
	m := map[string]uint64{}
	for k, v := range us.Drops {
		m[k] += v
	}
	for k, v := range us.OverlayDrops {
		m["overlay "+k] += v
	}
	return m
}
