package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/datapath"
)

// TestCLIStatsDataPathCounters: a VM's IKE and neighbour counters and the
// uplink's and overlay's counters, incremented as the data path does, show
// in `vifsec stats` (table and json) and `vifsec stats --uplink`.
func TestCLIStatsDataPathCounters(t *testing.T) {
	r := newCLIRig(t)
	r.ok("", "tenant", "add", "--tenant", "t1")
	r.ok("", "vm", "attach", "--vm", "vm1", "--tenant", "t1", "--dev", "tap0", "--mac", "52:54:00:00:00:01")
	r.ok("", "vm", "attach", "--vm", "vm2", "--tenant", "t1", "--dev", "tap1", "--mac", "52:54:00:00:00:02")

	// Nothing counted yet: no IKE table; the uplink row at zero.
	out := r.ok("", "stats")
	if strings.Contains(out, "IKE In") || !strings.Contains(out, "Uplink Frames In") {
		t.Fatalf("stats with nothing counted:\n%s", out)
	}

	var vc *datapath.VMStats
	for _, v := range r.d.Snapshot().VMs {
		if v.VM.Name == "vm1" {
			vc = v.Counters
		}
	}
	vc.IKEIn.Add(3)
	vc.IKEOut.Add(4)
	vc.NeighRequests.Add(5)
	vc.NeighLearned.Add(6)
	e := datapath.New(r.d.SADB(), nil)
	t.Cleanup(e.Close)
	r.d.SetUplinkCounters(e.UplinkCounts)
	e.UplinkRx.Frames.Add(100)
	e.UplinkRx.UnknownDest.Add(7)
	e.OverlayStats.NoNeighbor.Add(12)
	e.GSOStats.TrainsSent.Add(2)
	e.GSOStats.SegmentsSent.Add(80)
	e.GSOStats.TrainsReceived.Add(3)
	e.GSOStats.SegmentsReceived.Add(90)

	out = r.ok("", "stats")
	ike := lineWith(t, out, "vm1 ", "IKE In")
	if f := strings.Fields(ike); len(f) != 5 || strings.Join(f[1:], " ") != "3 4 5 6" {
		t.Errorf("IKE row %q, want vm1 3 4 5 6\n%s", ike, out)
	}
	if strings.Contains(out[strings.Index(out, "IKE In"):], "vm2 ") {
		t.Errorf("vm2 (nothing counted) in the IKE table:\n%s", out)
	}
	up := lineWith(t, out, "100 ", "Uplink Frames In")
	if f := strings.Fields(up); len(f) != 8 || f[1] != "0" || f[2] != "unknown-destination=7" || f[3] != "no-neighbor=12" ||
		strings.Join(f[4:], " ") != "2 80 3 90" {
		t.Errorf("uplink row %q\n%s", up, out)
	}
	if out := r.ok("", "stats", "--vm", "vm2"); strings.Contains(out, "Uplink") || strings.Contains(out, "IKE In") {
		t.Errorf("stats --vm vm2 shows the uplink or an IKE table:\n%s", out)
	}
	if out := r.ok("", "stats", "--uplink"); !strings.Contains(out, "unknown-destination=7") || strings.Contains(out, "vm1") {
		t.Errorf("stats --uplink:\n%s", out)
	}

	var st []api.Stats
	if err := json.Unmarshal([]byte(r.ok("", "--format", "json", "stats", "--vm", "vm1")), &st); err != nil || len(st) != 1 {
		t.Fatalf("stats json: %v %+v", err, st)
	}
	if s := st[0]; s.IKEIn != 3 || s.IKEOut != 4 || s.NeighborRequests != 5 || s.NeighborsLearned != 6 {
		t.Errorf("stats json %+v", s)
	}
	var u api.UplinkStats
	if err := json.Unmarshal([]byte(r.ok("", "--format", "json", "stats", "--uplink")), &u); err != nil {
		t.Fatal(err)
	}
	if u.FramesIn != 100 || u.Drops["unknown-destination"] != 7 || u.OverlayDrops["no-neighbor"] != 12 || u.OverlayDrops["unprotected"] != 0 || len(u.OverlayDrops) != 6 ||
		u.UDPGSO != (api.UDPGSOStats{TrainsSent: 2, SegmentsSent: 80, TrainsReceived: 3, SegmentsReceived: 90}) {
		t.Errorf("stats --uplink json %+v", u)
	}

	if code, _, errOut := r.vifsec("", "stats", "--vm", "vm1", "--uplink"); code != exitUsage || !strings.Contains(errOut, "--vm and --uplink") {
		t.Errorf("stats --vm --uplink: exit %d, %q", code, errOut)
	}
	if code, _, errOut := r.vifsec("", "stats", "--uplink=yes"); code != exitUsage || !strings.Contains(errOut, "--uplink accepts true or false") {
		t.Errorf("stats --uplink=yes: exit %d, %q", code, errOut)
	}
	if out := r.ok("", "stats", "--uplink=false"); !strings.Contains(out, "Packets In") {
		t.Errorf("stats --uplink=false is not plain stats:\n%s", out)
	}
}

// lineWith returns the first line of out, after the line holding header,
// that starts with prefix.
func lineWith(t *testing.T, out, prefix, header string) string {
	t.Helper()
	i := strings.Index(out, header)
	if i < 0 {
		t.Fatalf("no %q table in:\n%s", header, out)
	}
	for _, l := range strings.Split(out[i:], "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starting %q after %q in:\n%s", prefix, header, out)
	return ""
}

func TestEncapString(t *testing.T) {
	for _, tc := range []struct {
		s    api.SA
		want string
	}{
		{api.SA{Encapsulation: "none"}, "none"},
		{api.SA{Encapsulation: ""}, "-"}, // an older daemon that does not say
		{api.SA{Encapsulation: "udp", EncapSourcePort: 4500, EncapDestinationPort: 4500}, "udp"},
		{api.SA{Encapsulation: "udp", EncapSourcePort: 4500, EncapDestinationPort: 31000}, "udp 4500->31000"},
	} {
		if got := encapString(tc.s); got != tc.want {
			t.Errorf("encapString(%+v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

// TestShowIPsecSARemotePort: show-ipsecsa's Remote-Address is the
// peer's address alone (scripts parse the column as an address); JSON has
// the address and remote_port (the ESP-in-UDP port, 0 for plain ESP). The move of an IKE
// Child SA's peer by a NAT rebinding is internal/daemon's
// TestRebindIKEChild.
func TestShowIPsecSARemotePort(t *testing.T) {
	r := newCLIRig(t)
	r.ok("", "tenant", "add", "--tenant", "t1")
	r.ok("", "vm", "attach", "--vm", "vm1", "--tenant", "t1", "--dev", "tap0", "--mac", "52:54:00:00:00:01")
	for i, encap := range []string{"udp", "none"} {
		spi, name, dst := fmt.Sprintf("0x%x", 0x1000+i), "out"+encap, fmt.Sprintf("198.51.100.%d", 2+i)
		r.ok("", "sa", "add", "--vm", "vm1", "--sa-source", "192.0.2.1", "--sa-destination", dst, "--sa-mode", "tunnel",
			"--sa-spi", spi, "--encryption-algorithm", "aes128-gcm", "--encryption-key", "0x000102030405060708090a0b0c0d0e0f10111213",
			"--integrity-algorithm", "none", "--sa-name", name, "--encapsulation", encap)
		r.ok("", "sp", "add", "--vm", "vm1", "--sp-source", "192.0.2.1/32", "--sp-destination", fmt.Sprintf("203.0.113.%d/32", i), "--source-port", "any",
			"--destination-port", "any", "--upper-layer-protocol", "any", "--flow-direction", "out", "--action", "ipsec",
			"--sp-mode", "tunnel", "--sa-name", name, "--sp-name", "sp"+encap)
	}
	out := r.ok("", "show-ipsecsa")
	var rows []api.IPsecSA
	if err := json.Unmarshal([]byte(r.ok("", "--format", "json", "show-ipsecsa")), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("show-ipsecsa json: %v %+v", err, rows)
	}
	for _, tc := range []struct {
		sp, cell, addr string
		port           int
	}{
		{"spudp", "198.51.100.2", "198.51.100.2", 4500},
		{"spnone", "198.51.100.3", "198.51.100.3", 0},
	} {
		f := strings.Fields(lineWith(t, out, "t1      "+tc.sp, "Remote-Address"))
		if len(f) < 4 || f[3] != tc.cell {
			t.Errorf("%s: row %q, want Remote-Address %s", tc.sp, f, tc.cell)
		}
		for _, j := range rows {
			if j.Policy == tc.sp && (j.RemoteAddress != tc.addr || j.RemotePort != tc.port) {
				t.Errorf("%s: json %+v, want remote %s port %d", tc.sp, j, tc.addr, tc.port)
			}
		}
	}
}
