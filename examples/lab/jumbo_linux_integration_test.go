//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
)

// jumboMTU is the MTU of every link in TestIntegrationJumbo: uplinks,
// VIFs and guests, as under a VXLAN underlay built for jumbo frames.
const jumboMTU = 9000

// TestIntegrationJumbo: with MTU 9000 on the uplinks and the guests, ESP
// frames of 8 kB cross two gateways whole: DF pings of 8000 bytes (IPv4
// and IPv6) and a TCP transfer whose segments fill the jumbo MTU get
// through both vifsecds, and no frame is counted dropped or truncated on
// either side.
func TestIntegrationJumbo(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	l := buildLab(t, fmt.Sprintf("vj%d", os.Getpid()%10000), 0)
	// Before the daemons start, so they open every port at its jumbo MTU.
	for _, gw := range l.Gateways {
		steps := [][]string{{"ip", "-n", gw.NS, "link", "set", gw.Uplink, "mtu", fmt.Sprint(jumboMTU)}}
		for _, vm := range gw.VMs {
			steps = append(steps,
				[]string{"ip", "-n", gw.NS, "link", "set", vm.Dev, "mtu", fmt.Sprint(jumboMTU)},
				[]string{"ip", "-n", vm.NS, "link", "set", "eth0", "mtu", fmt.Sprint(jumboMTU)})
		}
		for _, s := range steps {
			if err := run(ctx, s...); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ds []*Daemon
	var sas []SAEntry
	for _, gw := range l.Gateways {
		d := startDaemon(t, bin, gw)
		ds = append(ds, d)
		s, err := Configure(ctx, l, d, "transport", nil)
		if err != nil {
			t.Fatal(err)
		}
		sas = append(sas, s...)
	}
	a, b := l.VM("acme", "a"), l.VM("acme", "b")
	// The VM's effective MTU is the uplink's less ESP: well above 8 kB.
	testutil.WaitFor(t, "acme-a attached with a jumbo effective MTU", 10*time.Second, func() (bool, string) {
		out, err := ds[0].CLI(ctx, "--format", "json", "vm", "list")
		if err != nil {
			return false, err.Error()
		}
		var vms []struct {
			Name, VIF string
			MTU       int
		}
		if err := json.Unmarshal([]byte(out), &vms); err != nil {
			return false, err.Error()
		}
		for _, v := range vms {
			if v.Name == a.Name {
				return v.VIF == "attached" && v.MTU > 8100, out
			}
		}
		return false, out
	})

	caps, files := startCaptures(t, l)
	for _, dst := range []string{b.IP4.String(), b.IP6.String()} {
		// -M do: the 8 kB packet must cross whole (no fragments).
		out, err := Exec(ctx, a.NS, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "8000", "-M", "do", dst)
		if err != nil || !strings.Contains(string(out), " 0% packet loss") {
			t.Fatalf("ping -s 8000 -M do %s: %v\n%s", dst, err, out)
		}
	}
	for _, dst := range []string{b.IP4.String(), b.IP6.String()} {
		if err := TCPEcho(a.NS, b.NS, mustAddr(dst), 0, 1<<20); err != nil {
			t.Fatalf("tcp echo 1 MiB to %s: %v", dst, err)
		}
	}
	for _, c := range caps {
		c.Stop()
	}

	// The wire carried ESP frames larger than 8000 bytes (the jumbo
	// packets were protected whole), tshark decrypts every ESP frame with
	// the tenant's keys, and nothing crossed in clear.
	big := 0
	for _, f := range files {
		out, err := Exec(ctx, l.Gateways[0].NS, "tshark", "-r", f, "-n", "-Y", "esp && frame.len > 8000", "-T", "fields", "-e", "frame.len")
		if err != nil {
			t.Fatalf("tshark %s: %v\n%s", f, err, out)
		}
		big += len(strings.Fields(string(out)))
	}
	if big == 0 {
		t.Errorf("no ESP frame above 8000 bytes on the wire")
	}
	w, err := Analyze(ctx, files, sas)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Leaks) > 0 {
		t.Errorf("clear IP on the wire: %v", w.Leaks)
	}
	if esp := w.ESPByTenant["acme"]; esp == 0 || w.Decrypted["acme"] != esp {
		t.Errorf("acme: tshark decrypted %d of %d ESP frames with its keys", w.Decrypted["acme"], esp)
	}

	// Nothing dropped or truncated on either gateway, in any VM or on the uplink.
	for _, d := range ds {
		out, err := d.CLI(ctx, "--format", "json", "stats")
		if err != nil {
			t.Fatal(err)
		}
		var st []struct {
			VM    string
			Drops map[string]uint64
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("stats: %v\n%s", err, out)
		}
		for _, s := range st {
			for r, n := range s.Drops {
				if n != 0 {
					t.Errorf("gateway %s VM %s: %d drops %s", d.GW.Name, s.VM, n, r)
				}
			}
		}
		out, err = d.CLI(ctx, "--format", "json", "stats", "--uplink")
		if err != nil {
			t.Fatal(err)
		}
		var up struct {
			Drops, OverlayDrops map[string]uint64
		}
		if err := json.Unmarshal([]byte(out), &up); err != nil {
			t.Fatalf("stats --uplink: %v\n%s", err, out)
		}
		for r, n := range up.Drops {
			if n != 0 && r != "unknown-destination" {
				t.Errorf("gateway %s uplink: %d drops %s", d.GW.Name, n, r)
			}
		}
	}
}
