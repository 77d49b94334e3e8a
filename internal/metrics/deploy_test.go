package metrics

import (
	"encoding/json"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

const deployDir = "../../deploy"

// liveDaemon is a daemon as an operator runs it: a tenant, two VMs (one
// attached, one waiting for its device), an uplink, a manual SA, an IKE
// policy with two overlapping Child SAs (a make-before-break rekey) and
// one that only responds, and an engine reporting an established IKE SA.
func liveDaemon(t *testing.T) *daemon.Daemon {
	t.Helper()
	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fatal := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fatal(d.AddTenant(tenant.Tenant{Name: "t1"}))
	for i, n := range []string{"vm1", "vm2"} {
		mac, _ := tenant.ParseMAC("52:54:00:00:00:0" + string(rune('1'+i)))
		fatal(d.AttachVM(tenant.VM{Name: n, Tenant: "t1", Dev: "tap" + string(rune('0'+i)), MAC: mac, VLAN: 10,
			IPs: []netip.Addr{netip.MustParseAddr("2001:db8:1::12" + string(rune('1'+i)))}}))
	}
	d.SetVIFStatus(func() map[string]string { return map[string]string{"vm1": "", "vm2": "waiting for device tap1"} })
	fatal(d.SetUplink(daemon.Uplink{Dev: "eth1"}))
	d.SetUplinkState(func() (bool, string) { return true, "" })
	key, _ := sa.ParseKey("0x000102030405060708090a0b0c0d0e0f10111213")
	_, err = d.AddSA("vm1", sa.Config{Name: "s1", SPI: 0x1000, Mode: sa.ModeTransport,
		Src: netip.MustParseAddr("2001:db8:1::121"), Dst: netip.MustParseAddr("2001:db8:4::1"),
		Enc: sa.EncAES128GCM, EncKey: key, Integ: sa.IntegNone})
	fatal(err)
	// vifsec_sa_drops_total has only the reasons seen: one replayed packet.
	d.SADB().Get("s1").Stats.Drops[drop.Replay].Add(1)
	for _, name := range []string{"pol1", "pol2"} {
		p := ikeconf.Policy{Tenant: "t1", Name: name, VM: "vm1",
			LocalSubnets: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::121/128")}, RemoteSubnets: []netip.Prefix{netip.MustParsePrefix("2001:db8:2::/64")},
			Auth: ikeconf.AuthPSK, PSK: []byte("correct horse battery staple 42")}
		if name == "pol1" {
			p.RemoteAddress = netip.MustParseAddr("2001:db8:2::5")
		} else {
			p.RemoteSubnets = []netip.Prefix{netip.MustParsePrefix("2001:db8:3::/64")}
		}
		_, err := d.CreatePolicy(p)
		fatal(err)
	}
	v := d.Snapshot().VMs[0]
	scope := sa.Scope{VLAN: v.VM.VLAN, MAC: header.MAC(v.VM.MAC)}
	local, remote := netip.MustParseAddr("2001:db8:1::121"), netip.MustParseAddr("2001:db8:2::5")
	for i, spis := range [][2]uint32{{0x1111, 0xc2515559}, {0x2222, 0xc2515560}} {
		in := sa.Config{SPI: spis[0], Mode: sa.ModeTransport, Src: remote, Dst: local, Dir: sa.DirIn, Scope: scope, Enc: sa.EncAES128GCM, EncKey: key, Integ: sa.IntegNone}
		out := sa.Config{SPI: spis[1], Mode: sa.ModeTransport, Src: local, Dst: remote, Dir: sa.DirOut, Scope: scope, Enc: sa.EncAES128GCM, EncKey: key, Integ: sa.IntegNone}
		c := daemon.IKEChild{Tenant: "t1", Policy: "pol1", In: in, Out: out,
			LocalTS: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::121/128")}, RemoteTS: []netip.Prefix{netip.MustParsePrefix("2001:db8:2::5/128")}}
		if i == 1 {
			c.Pending = true // the new pair of a rekey, not yet switched to
		}
		fatal(d.InstallIKEChild(c))
	}
	d.SetIKEReport(func() daemon.IKEReport {
		return daemon.IKEReport{IKESAs: []daemon.IKESA{{Tenant: "t1", Policy: "pol1", VM: "vm1", State: "ESTABLISHED", Children: 2}}}
	})
	d.SetIKEStats(func() daemon.IKEStats {
		return daemon.IKEStats{Failures: map[string]uint64{"timeout": 3}, ChildRekeys: 4, IKERekeyFailures: 1, DPDFailures: 2,
			Drops: map[string]uint64{}}
	})
	return d
}

// scrape serves the registry over HTTP as vifsecd does and reads /metrics.
func scrape(t *testing.T, d *daemon.Daemon) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(NewRegistry(d, d.SADB(), "v-test"), promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSAIdentityAcrossRekey: the two Child SAs of one IKE policy that
// overlap during a rekey are one series per direction, summed, and their
// SPIs are in vifsec_sa_info.
func TestSAIdentityAcrossRekey(t *testing.T) {
	d := liveDaemon(t)
	for _, s := range d.SAs() {
		if s.IKEPolicy == "pol1" && s.Dir == sa.DirIn {
			s.Stats.Packets.Add(uint64(s.Config.SPI)) // 0x1111 + 0x2222
		}
	}
	out := scrape(t, d)
	for _, want := range []string{
		`vifsec_sa_packets_total{direction="in",sa="ike/pol1",tenant="t1",vm="vm1"} 13107`,
		`vifsec_sa_info{direction="in",sa="ike/pol1",spi="0x1111",tenant="t1",vm="vm1"} 1`,
		`vifsec_sa_info{direction="in",sa="ike/pol1",spi="0x2222",tenant="t1",vm="vm1"} 1`,
		`vifsec_sa_packets_total{direction="",sa="s1",tenant="t1",vm="vm1"} 0`,
		`vifsec_vif_up{dev="tap0",tenant="t1",vm="vm1"} 1`,
		`vifsec_vif_up{dev="tap1",tenant="t1",vm="vm2"} 0`,
		`vifsec_ike_policy_established{policy="pol1",tenant="t1"} 1`,
		`vifsec_ike_policy_established{policy="pol2",tenant="t1"} 0`,
		`vifsec_ike_policy_initiates{policy="pol2",tenant="t1"} 0`,
		`vifsec_ike_sas{policy="pol1",state="ESTABLISHED",tenant="t1"} 1`,
		`vifsec_ike_negotiation_failures_total{reason="timeout"} 3`,
		`vifsec_ike_rekeys_total{kind="child"} 4`,
		`vifsec_ike_rekey_failures_total{kind="ike"} 1`,
		`vifsec_ike_dpd_failures_total 2`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if n := strings.Count(out, `vifsec_sa_packets_total{direction="in",sa="ike/pol1"`); n != 1 {
		t.Errorf("%d inbound series for pol1, want 1", n)
	}
	if !regexp.MustCompile(`(?m)^vifsec_ike_child_sas\{policy="pol1",state="[A-Z]+",tenant="t1"\} [12]$`).MatchString(out) {
		t.Errorf("no vifsec_ike_child_sas for pol1 in:\n%s", grepLines(out, "vifsec_ike_child_sas"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var seriesName = regexp.MustCompile(`\bvifsec_[a-zA-Z0-9_]+`)

// deployExprs returns every PromQL expression of the dashboard and of
// the alert rules, by where it is.
func deployExprs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana", "vifsec.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ RefID, Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Query any
			}
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	for _, p := range dash.Panels {
		for _, x := range p.Targets {
			out["panel "+p.Title+" "+x.RefID] = x.Expr
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			out["variable "+v.Name] = q
		}
	}
	rb, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "vifsec-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(rb), "\n") {
		if x, ok := strings.CutPrefix(strings.TrimSpace(l), "expr:"); ok {
			out["rule line "+string(rune('0'+i/100))+string(rune('0'+i/10%10))+string(rune('0'+i%10))] = x
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d expressions found in the dashboard and rules", len(out))
	}
	return out
}

// TestDeployReferencesExist: every series the dashboard and the alert
// rules use is in a live scrape of a realistic daemon.
func TestDeployReferencesExist(t *testing.T) {
	out := scrape(t, liveDaemon(t))
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		have[seriesName.FindString(l)] = true
	}
	n := 0
	for where, expr := range deployExprs(t) {
		for _, name := range seriesName.FindAllString(expr, -1) {
			n++
			if !have[name] {
				t.Errorf("%s uses %s, which the scrape does not have", where, name)
			}
		}
	}
	if n == 0 {
		t.Fatal("no vifsec_ series referenced")
	}
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool missing (Debian package prometheus; make deps)")
		}
		t.Skip("promtool missing (Debian package prometheus; make deps)")
	}
	return p
}

// TestPromtoolMetrics: a live scrape passes promtool check metrics.
func TestPromtoolMetrics(t *testing.T) {
	pt := promtool(t)
	cmd := exec.Command(pt, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape(t, liveDaemon(t)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, b)
	}
}

// TestPromtoolRules: the alert rules are valid and their unit tests
// (deploy/prometheus/vifsec-rules_test.yml) pass.
func TestPromtoolRules(t *testing.T) {
	pt := promtool(t)
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{{"check", "rules", "vifsec-rules.yml"}, {"test", "rules", "vifsec-rules_test.yml"}} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}
