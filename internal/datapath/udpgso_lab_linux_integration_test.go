//go:build linux

package datapath_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/examples/lab"
	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// TestIntegrationUDPGSOKernelSegments: the Linux kernel, as the receiver
// of vifsec's UDP GSO super-frames, cuts them into ESP packets that an
// independent decoder accepts.
//
// Three namespaces: the gateway (A) runs a datapath.Engine whose uplink
// is an AF_PACKET socket with virtio-net headers on veth a0 (USO on, so
// the super-frame crosses whole); a router (B) receives it on b0 and
// forwards it out of c0, which has no checksum or segmentation offload,
// so B's kernel segments it in software (validate_xmit_skb →
// __udp_gso_segment, checksums computed); the receiver (C) captures what
// arrives on d0. A guest's TSO super-frames are injected on the VM's port.
// On b0 each must be seen whole (the engine sent one super-frame per
// guest super-frame); on d0, every frame must be one ESP-in-UDP packet
// that tshark decrypts and authenticates with the SA's key, with a good
// UDP checksum, ESP sequence numbers 1..N without a gap (N: what the SA
// sent), and the inner TCP segments, in order, must cover exactly the
// bytes the guest sent.
func TestIntegrationUDPGSOKernelSegments(t *testing.T) {
	testutil.NeedRoot(t, "ip", "ethtool", "tcpdump", "tshark")
	ctx := context.Background()
	id := os.Getpid() % 10000
	nsA, nsB, nsC := fmt.Sprintf("vgso%da", id), fmt.Sprintf("vgso%db", id), fmt.Sprintf("vgso%dc", id)
	sh := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, ns := range []string{nsA, nsB, nsC} {
		sh("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	sh("ip", "link", "add", "a0", "netns", nsA, "type", "veth", "peer", "name", "b0", "netns", nsB)
	sh("ip", "link", "add", "c0", "netns", nsB, "type", "veth", "peer", "name", "d0", "netns", nsC)
	sh("ip", "netns", "exec", nsA, "ethtool", "-K", "a0", "tx", "on", "sg", "on", "tx-udp-segmentation", "on")
	sh("ip", "netns", "exec", nsB, "ethtool", "-K", "c0", "tx", "off")
	sh("ip", "netns", "exec", nsB, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	sh("ip", "-n", nsB, "addr", "add", "198.51.100.1/24", "dev", "b0")
	sh("ip", "-n", nsB, "addr", "add", "203.0.113.1/24", "dev", "c0")
	sh("ip", "-n", nsC, "addr", "add", "203.0.113.2/24", "dev", "d0")
	for _, l := range []struct{ ns, dev string }{{nsA, "a0"}, {nsB, "b0"}, {nsB, "c0"}, {nsC, "d0"}} {
		sh("ip", "-n", l.ns, "link", "set", l.dev, "up")
	}
	b0, err := vif.Describe("b0", nsB)
	if err != nil {
		t.Fatal(err)
	}
	d0, err := vif.Describe("d0", nsC)
	if err != nil {
		t.Fatal(err)
	}
	sh("ip", "-n", nsB, "neigh", "replace", "203.0.113.2", "lladdr", d0.MAC.String(), "dev", "c0")

	// The engine: one VM whose traffic to 192.0.2.2 goes in an ESP-in-UDP
	// tunnel from 198.51.100.2 to 203.0.113.2.
	vmMAC := header.MAC{0x52, 0x54, 0, 0xa, 0, 1}
	key := []byte("udp-gso-kernel-key!!")
	out, err := sa.New(sa.Config{Name: "out", Scope: sa.Scope{MAC: vmMAC}, SPI: 0x4242, Dir: sa.DirOut,
		Src: netip.MustParseAddr("198.51.100.2"), Dst: netip.MustParseAddr("203.0.113.2"), Mode: sa.ModeTunnel,
		Enc: sa.EncAES128GCM, EncKey: key, Integ: sa.IntegNone, Encap: &sa.UDPEncap{SrcPort: 4500, DstPort: 4500}})
	if err != nil {
		t.Fatal(err)
	}
	db := sa.NewDB(0)
	if err := db.Add(out); err != nil {
		t.Fatal(err)
	}
	e := datapath.New(db, nil)
	t.Cleanup(e.Close)
	_, host := viftest.Pair("guest", "vm", 64)
	guestIP, peerIP := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	e.Update([]datapath.VM{{Name: "vm", Port: host, MAC: vmMAC, DefaultAction: tenant.ActionNone, VnetHdr: true, SAs: []*sa.SA{out},
		Policies: []tenant.Policy{{Name: "out", VM: "vm", Src: netip.PrefixFrom(guestIP, 32), Dst: netip.PrefixFrom(peerIP, 32),
			SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoAny, Direction: sa.DirOut,
			Action: tenant.ActionIPsec, Mode: sa.ModeTunnel, SAName: "out"}}}})
	up, err := vif.OpenPacketWith("a0", nsA, vif.PacketOptions{VnetHdr: true})
	if err != nil {
		t.Fatal(err)
	}
	e.SetUplinkWith(up, datapath.UplinkOptions{MTU: 1500, VnetHdr: true, UDPGSO: true})

	dir := t.TempDir()
	capB, err := lab.StartCaptureOn(ctx, nsB, "b0", filepath.Join(dir, "b0.pcap"), "udp", "port", "4500")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(capB.Stop)
	capC, err := lab.StartCaptureOn(ctx, nsC, "d0", filepath.Join(dir, "d0.pcap"), "udp", "port", "4500")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(capC.Stop)

	// Three guest super-frames of one TCP stream, 60000 bytes each.
	const supers, size = 3, 60000
	data := make([]byte, supers*size)
	for i := range data {
		data[i] = byte(i*31 + i>>9)
	}
	for i := range supers {
		p := offloadtest.Packet{Src: guestIP, Dst: peerIP, SrcPort: 40000, DstPort: 5201, Seq: uint32(1000 + i*size), Flags: 0x18, DF: true,
			Payload: data[i*size : (i+1)*size]}
		frame, h := offloadtest.Super(p, 1448, true, false)
		copy(frame[0:6], b0.MAC)
		copy(frame[6:12], vmMAC[:])
		b := make([]byte, vif.VnetHdrLen+len(frame))
		h.Put(b)
		copy(b[vif.VnetHdrLen:], frame)
		host.Inject(b, vif.Meta{})
	}
	// Wait until C has received every ESP packet the SA sent.
	var sent uint64
	var got [][]byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		sent = out.Stats.Packets.Load()
		got, _ = lab.ReadPcap(capC.File)
		if sent >= supers*(size/1448) && len(got) >= int(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	capB.Stop()
	capC.Stop()
	whole, err := lab.ReadPcap(capB.File)
	if err != nil {
		t.Fatal(err)
	}
	big := 0
	for _, f := range whole {
		if len(f) > 1514 {
			big++
		}
	}
	if big != supers {
		t.Errorf("router saw %d frames over the MTU (of %d), want %d UDP GSO super-frames", big, len(whole), supers)
	}

	rows := tshark(t, capC.File, out)
	if len(rows) != int(sent) || sent == 0 {
		var seqs []string
		for _, r := range rows {
			seqs = append(seqs, r["esp.sequence"])
		}
		for _, l := range []struct{ ns, dev string }{{nsA, "a0"}, {nsB, "b0"}, {nsB, "c0"}, {nsC, "d0"}} {
			o, _ := exec.Command("ip", "-n", l.ns, "-s", "-s", "link", "show", l.dev).CombinedOutput()
			t.Logf("%s %s:\n%s", l.ns, l.dev, o)
		}
		o, _ := exec.Command("ip", "netns", "exec", nsB, "nstat", "-az").CombinedOutput()
		t.Logf("router nstat:\n%s", o)
		t.Fatalf("receiver got %d ESP packets (%d frames captured, %d dropped by tcpdump), the SA sent %d; sequences %s",
			len(rows), len(got), capC.Dropped(), sent, strings.Join(seqs, ","))
	}
	var stream []byte
	for i, r := range rows {
		seq, _ := strconv.Atoi(r["esp.sequence"])
		if seq != i+1 {
			t.Errorf("packet %d: ESP sequence %d, want %d", i, seq, i+1)
		}
		if r["udp.checksum.status"] != "1" {
			t.Errorf("packet %d: UDP checksum status %q, want good", i, r["udp.checksum.status"])
		}
		if n, _ := strconv.Atoi(r["ip.len"]); n > 1500 {
			t.Errorf("packet %d: %d bytes, over the MTU", i, n)
		}
		if r["tcp.srcport"] != "40000" {
			t.Fatalf("packet %d: not decrypted to the guest's TCP: %v", i, r)
		}
		if r["esp.icv_good"] != "1" {
			t.Errorf("packet %d: ICV not good: %v", i, r)
		}
		pay, err := hex.DecodeString(strings.ReplaceAll(r["tcp.payload"], ":", ""))
		if err != nil {
			t.Fatalf("packet %d: payload %q: %v", i, r["tcp.payload"], err)
		}
		seqTCP, _ := strconv.ParseUint(r["tcp.seq_raw"], 10, 32)
		if int(seqTCP)-1000 != len(stream) {
			t.Fatalf("packet %d: TCP sequence %d after %d bytes", i, seqTCP, len(stream))
		}
		stream = append(stream, pay...)
	}
	if string(stream) != string(data) {
		t.Errorf("the decrypted TCP payload (%d bytes) is not what the guest sent (%d)", len(stream), len(data))
	}
}

// tshark decodes the ESP-in-UDP packets of file with the SA's key and
// returns, per packet, the fields the test checks.
func tshark(t *testing.T, file string, s *sa.SA) []map[string]string {
	t.Helper()
	c := s.ConfigWithKeys()
	fields := []string{"esp.sequence", "udp.checksum.status", "ip.len", "tcp.srcport", "tcp.seq_raw", "tcp.payload", "esp.icv_good"}
	args := []string{"-r", file, "-n", "-o", "udp.check_checksum:TRUE", "-o", "esp.enable_encryption_decode:TRUE",
		"-o", "esp.enable_authentication_check:TRUE",
		"-o", fmt.Sprintf(`uat:esp_sa:"IPv4","%s","%s","0x%08x","%s","0x%x","NULL",""`, c.Src, c.Dst, c.SPI, c.Enc.TsharkName(), c.EncKey),
		"-Y", "esp", "-T", "fields", "-E", "separator=|", "-E", "occurrence=l"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	// A private configuration directory: no uat file of root's may add SAs.
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+dir, "HOME="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
	}
	var rows []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		v := strings.Split(line, "|")
		r := map[string]string{}
		for i, f := range fields {
			if i < len(v) {
				r[f] = v[i]
			}
		}
		rows = append(rows, r)
	}
	return rows
}
