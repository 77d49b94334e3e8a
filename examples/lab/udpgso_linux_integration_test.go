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
)

// TestIntegrationESPInUDPGSO: two vifsecd with every SA added by the CLI
// with --encapsulation udp carry TCP between the tenants' VMs (the guests
// hand vifsecd TSO super-frames).
//
//   - uplink without USO: the lab's uplink veths have no checksum or
//     segmentation offload, so the kernel cuts vifsecd's super-frames in
//     software (the uplink's socket sends through the qdisc) and fills in
//     their checksums. Every frame on the wire must be ESP in UDP to 4500
//     that tshark, with each tenant's keys alone, decrypts and
//     authenticates; no frame may exceed the MTU, no UDP checksum be bad,
//     no ESP travel outside UDP, no clear IP leak.
//   - veth carries super-frames: with tx-udp-segmentation on, vifsecd sends
//     the packets of each guest super-frame as one UDP GSO super-frame,
//     which crosses the veth whole; gateway b's vifsecd reads it as such
//     (virtio-net header GSO_UDP_L4), cuts and decrypts it. Frames longer
//     than the MTU must be seen on b's uplink, and the echoes must come
//     back intact with no drop counted.
//
// That the kernel cuts such a super-frame into packets an independent
// decoder accepts is internal/datapath's TestIntegrationUDPGSOKernelSegments.
func TestIntegrationESPInUDPGSO(t *testing.T) {
	bin := needDemoTools(t)
	for _, tc := range []struct {
		name     string
		offloads bool
	}{{"uplink without USO", false}, {"veth carries super-frames", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			l := buildLab(t, fmt.Sprintf("vu%d%c", os.Getpid()%10000, tc.name[0]), 0)
			if tc.offloads {
				for _, gw := range l.Gateways {
					if out, err := Exec(ctx, gw.NS, "ethtool", "-K", gw.Uplink, "tx", "on", "tso", "on", "gso", "on", "tx-udp-segmentation", "on"); err != nil {
						t.Fatalf("ethtool: %v\n%s", err, out)
					}
				}
			}
			var ds []*Daemon
			var sas []SAEntry
			for _, gw := range l.Gateways {
				d := startDaemon(t, bin, gw)
				ds = append(ds, d)
				s, err := ConfigureEncap(ctx, l, d, "tunnel", nil, false, "udp")
				if err != nil {
					t.Fatal(err)
				}
				sas = append(sas, s...)
			}
			for _, d := range ds {
				waitAttached(t, d, 2)
				out, err := d.CLI(ctx, "sa", "list")
				if err != nil || strings.Count(out, " udp ") != 8 {
					t.Fatalf("gateway %s sa list: want 8 SAs with encapsulation udp (%v):\n%s", d.GW.Name, err, out)
				}
			}
			caps, files := startCaptures(t, l)
			for _, tn := range Tenants {
				a, b := l.VM(tn.Name, "a"), l.VM(tn.Name, "b")
				for _, dst := range []string{b.IP4.String(), b.IP6.String()} {
					if out, err := Exec(ctx, a.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", dst); err != nil {
						t.Fatalf("%s: ping %s: %v\n%s", tn.Name, dst, err, out)
					}
				}
				for _, dst := range []netip.Addr{b.IP4, b.IP6} {
					if err := TCPEcho(a.NS, b.NS, dst, 0, 1<<20); err != nil {
						t.Errorf("%s: tcp echo to %s: %v", tn.Name, dst, err)
					}
				}
			}
			for _, c := range caps {
				c.Stop()
			}
			if t.Failed() {
				for _, gw := range l.Gateways {
					out, _ := Exec(ctx, gw.NS, "ip", "-s", "-s", "link", "show", gw.Uplink)
					t.Logf("gateway %s:\n%s", gw.Name, out)
				}
				for _, d := range ds {
					out, _ := d.CLI(ctx, "stats", "--uplink")
					t.Logf("gateway %s stats --uplink:\n%s", d.GW.Name, out)
					out, _ = d.CLI(ctx, "stats")
					t.Logf("gateway %s stats:\n%s", d.GW.Name, out)
				}
			}
			// vifsec stats --uplink counts the trains: each gateway sent
			// some (echo both ways); over the veth that carries them
			// whole, each received and cut some.
			for _, d := range ds {
				out, err := d.CLI(ctx, "--format", "json", "stats", "--uplink")
				var u struct {
					UDPGSO struct {
						TrainsSent       uint64 `json:"trains_sent"`
						SegmentsSent     uint64 `json:"segments_sent"`
						TrainsReceived   uint64 `json:"trains_received"`
						SegmentsReceived uint64 `json:"segments_received"`
					} `json:"udp_gso"`
				}
				if err == nil {
					err = json.Unmarshal([]byte(out), &u)
				}
				g := u.UDPGSO
				switch {
				case err != nil:
					t.Errorf("gateway %s stats --uplink: %v\n%s", d.GW.Name, err, out)
				case g.TrainsSent == 0 || g.SegmentsSent < 2*g.TrainsSent:
					t.Errorf("gateway %s: %d UDP GSO trains sent carrying %d datagrams; want some, of 2 or more each", d.GW.Name, g.TrainsSent, g.SegmentsSent)
				case tc.offloads && (g.TrainsReceived == 0 || g.SegmentsReceived < 2*g.TrainsReceived):
					t.Errorf("gateway %s: %d UDP GSO trains received carrying %d datagrams; want some over the veth", d.GW.Name, g.TrainsReceived, g.SegmentsReceived)
				}
			}
			for _, d := range ds {
				for vm, drops := range dropsOf(t, d) {
					for r, n := range drops {
						if n != 0 {
							t.Errorf("gateway %s %s: %d drops %s", d.GW.Name, vm, n, r)
						}
					}
				}
			}
			// b's uplink: what gateway a sent.
			big := tsharkCount(t, files[1], "udp.dstport == 4500 && frame.len > 1600")
			if tc.offloads {
				if big == 0 {
					t.Errorf("no UDP GSO super-frame crossed the veth to gateway b")
				}
				return
			}
			if big != 0 {
				t.Errorf("%d frames over the MTU on gateway b's uplink without USO", big)
			}
			w, err := Analyze(ctx, files, sas)
			if err != nil {
				t.Fatal(err)
			}
			if len(w.Leaks) > 0 {
				t.Errorf("clear IP on the wire: %v", w.Leaks)
			}
			for _, tn := range Tenants {
				esp := w.ESPByTenant[tn.Name]
				if esp < 2*(1<<20)/1500 {
					t.Errorf("%s: %d ESP frames on the wire, fewer than the echo needs", tn.Name, esp)
				}
				if w.Decrypted[tn.Name] != esp {
					t.Errorf("%s: tshark decrypted %d of %d ESP frames", tn.Name, w.Decrypted[tn.Name], esp)
				}
			}
			for _, f := range files {
				if n := tsharkCount(t, f, "esp && !udp"); n != 0 {
					t.Errorf("%s: %d ESP frames outside UDP", f, n)
				}
				if n := tsharkCount(t, f, "udp.checksum.status == \"Bad\""); n != 0 {
					t.Errorf("%s: %d UDP checksums bad", f, n)
				}
				// IPv4 ESP in UDP goes with checksum 0 (RFC 3948 §3.1);
				// IPv6 needs one, which tshark must find good.
				if n := tsharkCount(t, f, "ipv6 && udp.dstport == 4500 && udp.checksum.status == \"Good\""); n == 0 {
					t.Errorf("%s: no verified IPv6 UDP checksum", f)
				}
			}
		})
	}
}

// tsharkCount counts the frames of a capture that match a display filter,
// with UDP checksums verified.
func tsharkCount(t *testing.T, file, filter string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-n", "-o", "udp.check_checksum:TRUE", "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -r %s -Y %q: %v", file, filter, err)
	}
	return len(strings.Fields(string(out)))
}

// waitAttached waits until d's data path serves n VIFs.
func waitAttached(t *testing.T, d *Daemon, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := d.CLI(context.Background(), "--format", "json", "vm", "list")
		if err != nil {
			t.Fatal(err)
		}
		var vms []struct{ VIF string }
		if err := json.Unmarshal([]byte(out), &vms); err != nil {
			t.Fatal(err)
		}
		att := 0
		for _, v := range vms {
			if v.VIF == "attached" {
				att++
			}
		}
		if att == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway %s: %d of %d VIFs attached: %s", d.GW.Name, att, n, strconv.Quote(out))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
