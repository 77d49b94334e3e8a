//go:build linux

package lab

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationDemo runs the demo scenario through the real binaries:
// two vifsecd in gateway namespaces configured with the vifsec CLI, real
// traffic between tenant VMs that share addresses and SPIs, the wire
// captured with tcpdump and decrypted by tshark with each tenant's keys.
func TestIntegrationDemo(t *testing.T) {
	bin := needDemoTools(t)
	for _, mode := range []string{"transport", "tunnel"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			l, ds, sas := startLab(t, bin, fmt.Sprintf("vt%d%c", os.Getpid()%10000, mode[1]), mode)
			// Every VIF is attached by the data path.
			for _, d := range ds {
				var vms []struct{ Name, VIF string }
				for i := 0; i < 40; i++ {
					out, err := d.CLI(ctx, "--format", "json", "vm", "list")
					if err != nil {
						t.Fatal(err)
					}
					if err := json.Unmarshal([]byte(out), &vms); err != nil {
						t.Fatal(err)
					}
					if len(vms) == 2 && vms[0].VIF == "attached" && vms[1].VIF == "attached" {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				for _, v := range vms {
					if v.VIF != "attached" {
						t.Errorf("gateway %s: vm %s vif %q, want attached", d.GW.Name, v.Name, v.VIF)
					}
				}
			}
			caps, capFiles := startCaptures(t, l)
			flows := Traffic(ctx, l)
			for _, c := range caps {
				c.Stop()
			}
			for _, f := range flows {
				if f.Got != f.Want {
					t.Errorf("%s %s to %s: got through=%v, want %v (%s)", f.Tenant, f.Kind, f.Dst, f.Got, f.Want, f.Err)
				}
			}
			w, err := Analyze(ctx, capFiles, sas)
			if err != nil {
				t.Fatal(err)
			}
			if len(w.Leaks) > 0 {
				t.Errorf("clear IP on the wire outside the 'none' policy: %v", w.Leaks)
			}
			if w.Telnet > 0 {
				t.Errorf("%d frames of the discarded telnet flow on the wire", w.Telnet)
			}
			if w.ClearUDP == 0 {
				t.Errorf("the policy-none UDP flow did not cross the wire in clear")
			}
			for _, tn := range Tenants {
				esp := w.ESPByTenant[tn.Name]
				if esp == 0 {
					t.Errorf("%s: no ESP on the wire", tn.Name)
				}
				// tshark decrypted every ESP frame of the tenant with that
				// tenant's keys alone.
				if w.Decrypted[tn.Name] != esp {
					t.Errorf("%s: tshark decrypted %d of %d ESP frames", tn.Name, w.Decrypted[tn.Name], esp)
				}
				// The same SPIs in both VLANs.
				if w.ESP[fmt.Sprintf("vlan %d spi 0x00001000", tn.VLAN)] == 0 {
					t.Errorf("%s: no ESP with SPI 0x1000 in VLAN %d: %v", tn.Name, tn.VLAN, w.ESP)
				}
			}
			// Attacks from the wire on gateway b, with a real ESP frame of
			// acme's taken from the capture of b's uplink: replayed as it
			// is, and re-addressed to globex (same SPI, globex's VLAN and
			// MAC, acme's key: the ICV, which covers the sequence number, fails).
			frames, err := ReadPcap(capFiles[1])
			if err != nil {
				t.Fatal(err)
			}
			// b's uplink capture holds what b sent too (vifsec's uplink
			// writes pass the taps): take a frame addressed to acme's VM
			// on b.
			acmeBMAC, _ := net.ParseMAC(l.VM("acme", "b").MAC)
			var acmeESP []byte
			for _, f := range frames {
				if len(f) > 18+40+8 && bytes.Equal(f[0:6], acmeBMAC) && binary.BigEndian.Uint16(f[12:]) == 0x8100 && binary.BigEndian.Uint16(f[14:])&0xfff == 100 &&
					binary.BigEndian.Uint16(f[16:]) == 0x86dd && f[18+6] == 50 {
					acmeESP = append([]byte(nil), f...)
				}
			}
			if acmeESP == nil {
				t.Fatal("no acme IPv6 ESP frame in the capture")
			}
			globexB := l.VM("globex", "b")
			mac, _ := net.ParseMAC(globexB.MAC)
			toGlobex := append([]byte(nil), acmeESP...)
			copy(toGlobex[0:6], mac)
			binary.BigEndian.PutUint16(toGlobex[14:], 200)
			// A sequence number ahead of globex's window, so the replay
			// check (which runs first) passes and the ICV must decide.
			binary.BigEndian.PutUint32(toGlobex[18+40+4:], 1<<30)
			before := dropsOf(t, ds[1])
			if err := Inject(l.Gateways[0], [][]byte{acmeESP, toGlobex}); err != nil {
				t.Fatal(err)
			}
			var after map[string]map[string]uint64
			for i := 0; i < 50; i++ {
				time.Sleep(50 * time.Millisecond)
				after = dropsOf(t, ds[1])
				if after["acme-b"]["replay"] > before["acme-b"]["replay"] && after["globex-b"]["auth-failed"] > before["globex-b"]["auth-failed"] {
					break
				}
			}
			if after["acme-b"]["replay"] != before["acme-b"]["replay"]+1 {
				t.Errorf("replayed acme frame: acme-b replay drops %d → %d, want +1", before["acme-b"]["replay"], after["acme-b"]["replay"])
			}
			if after["globex-b"]["auth-failed"] != before["globex-b"]["auth-failed"]+1 {
				t.Errorf("acme's ESP sent to globex: globex-b auth-failed drops %d → %d, want +1", before["globex-b"]["auth-failed"], after["globex-b"]["auth-failed"])
			}

			out, err := ds[1].CLI(ctx, "--format", "json", "stats")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "acme-b") || !strings.Contains(out, "globex-b") {
				t.Errorf("stats lack the VMs: %s", out)
			}
		})
	}
}

// dropsOf returns per VM the drop counters `vifsec stats` reports.
func dropsOf(t *testing.T, d *Daemon) map[string]map[string]uint64 {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		VM    string            `json:"vm"`
		Drops map[string]uint64 `json:"drops"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("stats json: %v\n%s", err, out)
	}
	m := map[string]map[string]uint64{}
	for _, r := range rows {
		m[r.VM] = r.Drops
	}
	return m
}

// needDemoTools returns the binaries' directory, or skips (fails in CI)
// when the lab cannot run here.
func needDemoTools(t *testing.T) string {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "ethtool", "ping", "tcpdump", "tshark", "nstat"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	bin, err := Binaries()
	if err == nil {
		for _, b := range []string{"vifsecd", "vifsec"} {
			if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
				missing = append(missing, filepath.Join(bin, b)+" (make build)")
			}
		}
	}
	if len(missing) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs %v", missing)
		}
		t.Skipf("needs %v (make build as root)", missing)
	}
	return bin
}

// startLab builds the lab, starts a vifsecd per gateway and configures the
// demo's SAs and SPs in mode; everything is removed when t ends.
func startLab(t *testing.T, bin, prefix, mode string) (*Lab, []*Daemon, []SAEntry) {
	return startLabWith(t, bin, prefix, mode, 0)
}

// startLabWith is startLab over a VXLAN underlay of IP version underlay
// (4 or 6; 0 means flat L2).
func startLabWith(t *testing.T, bin, prefix, mode string, underlay int) (*Lab, []*Daemon, []SAEntry) {
	t.Helper()
	l := buildLab(t, prefix, underlay)
	var ds []*Daemon
	var sas []SAEntry
	for _, gw := range l.Gateways {
		d := startDaemon(t, bin, gw)
		ds = append(ds, d)
		s, err := ConfigureWith(context.Background(), l, d, mode, nil, underlay != 0)
		if err != nil {
			t.Fatal(err)
		}
		sas = append(sas, s...)
	}
	return l, ds, sas
}

// buildLab builds the lab, with VTEP addresses of IP version underlay on
// the uplinks (4 or 6; 0: none), and removes it when t ends.
func buildLab(t *testing.T, prefix string, underlay int) *Lab {
	t.Helper()
	ctx := context.Background()
	l, err := Build(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	switch underlay {
	case 4:
		err = l.AddUnderlay(ctx)
	case 6:
		err = l.AddUnderlay6(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startDaemon starts vifsecd on gw; it is stopped when t ends, and its log
// shown if t failed.
func startDaemon(t *testing.T, bin string, gw *Gateway, extra ...string) *Daemon {
	t.Helper()
	d, err := StartDaemon(context.Background(), bin, gw, filepath.Join(t.TempDir(), gw.Name), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("vifsecd %s: %v", d.GW.Name, err)
		}
		if t.Failed() {
			log, _ := os.ReadFile(d.Log)
			t.Logf("vifsecd %s log:\n%s", d.GW.Name, log)
		}
	})
	return d
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// startCaptures captures both gateways' uplinks (each direction where it
// is received) until the returned captures are stopped or t ends.
func startCaptures(t *testing.T, l *Lab) ([]*Capture, []string) {
	t.Helper()
	var caps []*Capture
	var files []string
	for _, gw := range l.Gateways {
		f := filepath.Join(t.TempDir(), "wire-"+gw.Name+".pcap")
		c, err := StartCapture(context.Background(), gw, f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Stop)
		caps, files = append(caps, c), append(files, f)
	}
	return caps, files
}
