package daemon

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// underlaySA is an SA between VTEPs 192.0.2.1 (local) and remote.
func underlaySA(t *testing.T, name string, spi uint32, remote string) sa.Config {
	c := gcmSA(t, name, spi, sa.ModeTunnel)
	c.Src, c.Dst = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr(remote)
	return c
}

var vxlanUplink = Uplink{Dev: "eth0", Overlay: OverlayVXLAN, VXLANLocal: netip.MustParseAddr("192.0.2.1"), Protect: ProtectUnderlay}

func TestProtect(t *testing.T) {
	for _, s := range []string{"none", "underlay"} {
		p, err := ParseProtect(s)
		if err != nil || p.String() != s {
			t.Errorf("ParseProtect(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseProtect("esp"); err == nil {
		t.Error("ParseProtect(esp) accepted")
	}
	if ProtectNone != 0 {
		t.Error("ProtectNone is not the zero value")
	}
	b := mustJSON(vxlanUplink)
	if !strings.Contains(string(b), `"protect":"underlay"`) {
		t.Errorf("uplink JSON %s lacks protect", b)
	}
	var u Uplink
	must(t, json.Unmarshal(b, &u))
	if u != vxlanUplink {
		t.Errorf("round trip %+v, want %+v", u, vxlanUplink)
	}
	if b := mustJSON(Uplink{Dev: "eth0", Overlay: OverlayNone}); strings.Contains(string(b), "protect") {
		t.Errorf("ProtectNone not omitted: %s", b)
	}

	d := setup(t, storetest.NewMemory())
	must(t, d.SetUplink(vxlanUplink))
	if s := d.Snapshot(); s.Uplink.Protect != ProtectUnderlay {
		t.Errorf("snapshot uplink %+v", s.Uplink)
	}
	err := d.SetUplink(Uplink{Dev: "eth0", Protect: ProtectUnderlay})
	if CodeOf(err) != CodeInvalid || !strings.Contains(err.Error(), "--protect underlay") || !strings.Contains(err.Error(), "--overlay vxlan") {
		t.Errorf("protect underlay without vxlan: %v", err)
	}
}

func TestUnderlaySA(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	must(t, d.AddTenant(tenant.Tenant{Name: "t2", VNI: 200}))
	gen, ch := d.Watch()
	w, err := d.AddUnderlaySA("t1", underlaySA(t, "u-b", 0x1000, "192.0.2.2"))
	must(t, err)
	if len(w) != 1 || !strings.Contains(w[0], "--protect underlay") {
		t.Errorf("warnings %q, want one saying the uplink does not protect the underlay", w)
	}
	select {
	case <-ch:
	default:
		t.Fatal("AddUnderlaySA did not signal Watch")
	}
	if d.Generation() != gen+1 {
		t.Errorf("generation %d, want %d", d.Generation(), gen+1)
	}
	if s := d.SADB().Lookup(sa.Key{SPI: 0x1000}); s == nil || s.Name() != "u-b" {
		t.Errorf("Lookup(zero scope, 0x1000) = %v, want u-b", s)
	}
	// A VM's SA may use the same SPI: its scope differs.
	_, err = d.AddSA("vm1", seedSA(t, "vmsa", 0x1000))
	must(t, err)
	// Another tenant may not: underlay SPIs are unique on the host.
	_, err = d.AddUnderlaySA("t2", underlaySA(t, "u-x", 0x1000, "192.0.2.3"))
	if CodeOf(err) != CodeExists || !strings.Contains(err.Error(), "--sa-spi") || !strings.Contains(err.Error(), "u-b") {
		t.Errorf("duplicate underlay SPI: %v", err)
	}
	must(t, d.SetUplink(vxlanUplink))
	w, err = d.AddUnderlaySA("t2", underlaySA(t, "u-a", 0x2000, "192.0.2.3"))
	if err != nil || len(w) != 0 {
		t.Errorf("AddUnderlaySA with a protecting uplink: %q, %v", w, err)
	}
	in := underlaySA(t, "u-c", 0x3000, "192.0.2.3")
	in.Src, in.Dst = in.Dst, in.Src
	_, err = d.AddUnderlaySA("t2", in)
	must(t, err)

	s := d.Snapshot()
	var got []string
	for _, u := range s.UnderlaySAs {
		got = append(got, u.Tenant+"/"+u.SA.Name())
		if u.SA != d.SADB().Get(u.SA.Name()) {
			t.Errorf("UnderlaySA %s is not the live SA", u.SA.Name())
		}
	}
	if want := "t2/u-a t1/u-b t2/u-c"; strings.Join(got, " ") != want {
		t.Errorf("Snapshot().UnderlaySAs = %q, want %q", strings.Join(got, " "), want)
	}
	for _, v := range s.VMs {
		for _, x := range v.SAs {
			if x.Name() != "vmsa" {
				t.Errorf("VM %s has SA %s", v.VM.Name, x.Name())
			}
		}
	}

	infos := map[string]SAInfo{}
	for _, i := range d.SAs() {
		infos[i.Config.Name] = i
	}
	if i := infos["u-a"]; i.VM != "" || i.Tenant != "t2" || i.Dir != sa.DirOut || i.Config.Scope != (sa.Scope{}) {
		t.Errorf("u-a info %+v", i)
	}
	if i := infos["u-c"]; i.Dir != sa.DirIn {
		t.Errorf("u-c direction %v, want in", i.Dir)
	}
	if i := infos["vmsa"]; i.VM != "vm1" || i.Tenant != "t1" {
		t.Errorf("vmsa info %+v", i)
	}
	rows, err := d.IPsecSAs("t2")
	must(t, err)
	if len(rows) != 2 || !rows[0].Underlay || rows[0].VM != "" || rows[0].OutboundSPI != 0x2000 || rows[0].State != "INSTALLED" ||
		rows[1].InboundSPI != 0x3000 || rows[1].Local != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("IPsecSAs(t2) = %+v", rows)
	}

	// An SP cannot use an underlay SA.
	err = d.AddSP(policy("sp1", "vm1", "u-a", sa.DirOut, tenant.ActionIPsec, sa.ModeTunnel))
	if CodeOf(err) != CodeInvalid || !strings.Contains(err.Error(), "underlay") {
		t.Errorf("SP naming an underlay SA: %v", err)
	}
	// A tenant with underlay SAs cannot be removed.
	err = d.RemoveTenant("t2")
	if CodeOf(err) != CodeInUse || !strings.Contains(err.Error(), "u-a, u-c") {
		t.Errorf("RemoveTenant(t2) = %v, want in_use naming u-a, u-c", err)
	}
	must(t, d.RemoveSA("u-a"))
	must(t, d.RemoveSA("u-c"))
	must(t, d.RemoveTenant("t2"))
	if st.Get(store.KindSA, "u-a") != nil {
		t.Error("removed underlay SA still stored")
	}
	removed, _, err := d.RemoveAllSAs()
	must(t, err)
	if want := []string{"u-b", "vmsa"}; !reflect.DeepEqual(removed, want) {
		t.Errorf("RemoveAllSAs removed %v, want %v", removed, want)
	}
	if len(d.Snapshot().UnderlaySAs) != 0 || d.SADB().Len() != 0 {
		t.Error("underlay SAs left after RemoveAllSAs")
	}
}

func TestUnderlayRefusalsChangeNothing(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	must(t, d.AddTenant(tenant.Tenant{Name: "t4", VNI: 4}))
	_, err := d.AddUnderlaySA("t4", underlaySA(t, "u1", 0x1000, "192.0.2.2"))
	must(t, err)
	_, err = d.AddSA("vm1", seedSA(t, "sa1", 0x1000))
	must(t, err)
	reserved := underlaySA(t, "u9", 0xff, "192.0.2.2")
	mixed := underlaySA(t, "u9", 0x5000, "2001:db8::2")
	tests := []struct {
		name string
		do   func() error
		code Code
		flag string
	}{
		{"unknown tenant", func() error {
			_, err := d.AddUnderlaySA("nosuch", underlaySA(t, "u9", 0x5000, "192.0.2.2"))
			return err
		}, CodeNotFound, "--tenant"},
		{"bad tenant name", func() error { _, err := d.AddUnderlaySA("-x", underlaySA(t, "u9", 0x5000, "192.0.2.2")); return err }, CodeInvalid, "--tenant"},
		{"duplicate spi", func() error { _, err := d.AddUnderlaySA("t1", underlaySA(t, "u9", 0x1000, "192.0.2.2")); return err }, CodeExists, "--sa-spi"},
		{"duplicate name of vm sa", func() error { _, err := d.AddUnderlaySA("t4", underlaySA(t, "sa1", 0x5000, "192.0.2.2")); return err }, CodeExists, "--sa-name"},
		{"vm sa with underlay name", func() error { _, err := d.AddSA("vm1", gcmSA(t, "u1", 0x5000, sa.ModeTunnel)); return err }, CodeExists, "underlay SA of tenant t4"},
		{"reserved spi", func() error { _, err := d.AddUnderlaySA("t4", reserved); return err }, CodeInvalid, "--sa-spi"},
		{"mixed families", func() error { _, err := d.AddUnderlaySA("t4", mixed); return err }, CodeInvalid, "--sa-destination"},
		{"tenant with underlay sa", func() error { return d.RemoveTenant("t4") }, CodeInUse, "u1"},
		{"sp on underlay sa", func() error {
			return d.AddSP(policy("spx", "vm1", "u1", sa.DirOut, tenant.ActionIPsec, sa.ModeTunnel))
		}, CodeInvalid, "--sa-name"},
		{"protect without vxlan", func() error { return d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayNone, Protect: ProtectUnderlay}) }, CodeInvalid, "--overlay vxlan"},
		{"protect invalid", func() error { return d.SetUplink(Uplink{Dev: "eth0", Protect: 7}) }, CodeInvalid, "--protect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused(t, everything(d, st), tt.do, tt.code, tt.flag)
		})
	}
}

func TestUnderlayRestoreIsExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.OpenBolt(path, 0)
	must(t, err)
	d := setup(t, st)
	must(t, d.SetUplink(vxlanUplink))
	must(t, d.AddTenant(tenant.Tenant{Name: "t2", VNI: 200}))
	cfg := underlaySA(t, "u1", 0xdeadbeef, "192.0.2.2")
	cfg.ESN, cfg.ReplayWindow, cfg.Lifetime.Hard.Seconds = true, 1024, 3600
	_, err = d.AddUnderlaySA("t1", cfg)
	must(t, err)
	auto := underlaySA(t, "u2", SPIAuto, "192.0.2.3")
	_, err = d.AddUnderlaySA("t2", auto)
	must(t, err)
	_, err = d.AddSA("vm1", seedSA(t, "sa1", 0xdeadbeef))
	must(t, err)
	before := observe(d)
	snap := d.Snapshot()
	stopCleanly(d)
	d2, _ := reopen(t, st, path)
	if after := observe(d2); !reflect.DeepEqual(before, after) {
		t.Errorf("restored state differs:\nbefore %+v\nafter  %+v", before, after)
	}
	snap2 := d2.Snapshot()
	if len(snap2.UnderlaySAs) != 2 {
		t.Fatalf("restored UnderlaySAs %+v", snap2.UnderlaySAs)
	}
	for i, u := range snap2.UnderlaySAs {
		if u.Tenant != snap.UnderlaySAs[i].Tenant || u.SA.SPI() != snap.UnderlaySAs[i].SA.SPI() || u.SA.Name() != snap.UnderlaySAs[i].SA.Name() {
			t.Errorf("restored underlay SA %d: %s/%s spi 0x%x", i, u.Tenant, u.SA.Name(), u.SA.SPI())
		}
	}
	wantUp := vxlanUplink
	wantUp.VXLANPort = DefaultVXLANPort
	if *snap2.Uplink != wantUp {
		t.Errorf("restored uplink %+v", *snap2.Uplink)
	}
	err = d2.RemoveTenant("t2")
	if CodeOf(err) != CodeInUse || !strings.Contains(err.Error(), "u2") {
		t.Errorf("RemoveTenant(t2) after restore = %v", err)
	}
}

func TestRestoreRefusesBadUnderlaySA(t *testing.T) {
	rec := func(mut func(r *saRecord)) []byte {
		c := underlaySA(t, "u1", 0x1000, "192.0.2.2")
		b, err := encodeSA(saOwner{tenant: "t1"}, &c)
		must(t, err)
		var r saRecord
		must(t, json.Unmarshal(b, &r))
		mut(&r)
		return mustJSON(r)
	}
	for name, tc := range map[string]struct {
		value []byte
		want  string
	}{
		"ghost tenant":  {rec(func(r *saRecord) { r.Tenant = "ghost" }), `tenant "ghost"`},
		"vm and tenant": {rec(func(r *saRecord) { r.VM = "vm1" }), "both"},
		"neither":       {rec(func(r *saRecord) { r.Tenant = "" }), "neither"},
		"nonzero scope": {rec(func(r *saRecord) { r.VLAN = 10 }), "vlan 10"},
		"name differs":  {rec(func(r *saRecord) { r.Name = "u2" }), `"u2"`},
		"reserved spi":  {rec(func(r *saRecord) { r.SPI = 0 }), "--sa-spi"},
	} {
		t.Run(name, func(t *testing.T) {
			st := storetest.NewMemory()
			must(t, st.Commit([]store.Op{
				store.Put(store.KindTenant, "t1", mustJSON(tenant.Tenant{Name: "t1", DefaultAction: tenant.ActionNone})),
				store.Put(store.KindVM, "vm1", mustJSON(vm("vm1", "t1", "52:54:00:00:00:01", 0))),
				store.Put(store.KindSA, "u1", tc.value),
			}))
			_, err := New(st, nil)
			if err == nil || !strings.Contains(err.Error(), `sa "u1"`) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming sa \"u1\" and %s", err, tc.want)
			}
		})
	}
}

func TestAutoSPI(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	const n = 1000
	seen := map[uint32]bool{}
	var buckets [16]int
	for i := range n {
		name := fmt.Sprintf("u%04d", i)
		w, err := d.AddUnderlaySA("t1", underlaySA(t, name, SPIAuto, "192.0.2.2"))
		must(t, err)
		spi := d.SADB().Get(name).SPI()
		if spi < 0x100 {
			t.Fatalf("auto SPI 0x%x is reserved", spi)
		}
		if seen[spi] {
			t.Fatalf("auto SPI 0x%x chosen twice", spi)
		}
		seen[spi] = true
		buckets[spi>>28]++
		if want := fmt.Sprintf("SPI 0x%08x chosen for %s", spi, name); !strings.Contains(strings.Join(w, "\n"), want) {
			t.Fatalf("warnings %q do not say %q", w, want)
		}
	}
	maxB := 0
	for _, b := range buckets {
		maxB = max(maxB, b)
	}
	mean := float64(n) / 16
	t.Logf("top-4-bit buckets %v: max/mean %.3f", buckets, float64(maxB)/mean)
	if float64(maxB)/mean > 1.5 {
		t.Errorf("auto SPIs poorly spread: buckets %v, max/mean %.3f > 1.5", buckets, float64(maxB)/mean)
	}
	// A VM's auto SPI is chosen in its own scope.
	_, err := d.AddSA("vm1", gcmSA(t, "vmauto", SPIAuto, sa.ModeTransport))
	must(t, err)
	if s := d.SADB().Get("vmauto"); s.Config().Scope != d.Snapshot().VMs[0].SAs[0].Config().Scope || s.SPI() < 0x100 {
		t.Errorf("vm auto SA %+v", s.Config())
	}
}
