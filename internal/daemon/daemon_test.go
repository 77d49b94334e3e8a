package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	k, err := sa.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seedSA is seed 001's `sa add` example.
func seedSA(t *testing.T, name string, spi uint32) sa.Config {
	return sa.Config{
		Name: name, SPI: spi, Mode: sa.ModeTransport,
		Src: netip.MustParseAddr("2001:DB8:1::121"), Dst: netip.MustParseAddr("2001:DB8:1::122"),
		Enc: sa.Enc3DESCBC, EncKey: mustHex(t, "0x6970763672656164796c6f676f336465736362636f757432"),
		Integ: sa.IntegHMACSHA1, IntegKey: mustHex(t, "0x6970763672656164796c6f67736861316f757432"),
	}
}

func gcmSA(t *testing.T, name string, spi uint32, mode sa.Mode) sa.Config {
	return sa.Config{
		Name: name, SPI: spi, Mode: mode,
		Src: netip.MustParseAddr("2001:db8:1::1"), Dst: netip.MustParseAddr("2001:db8:2::1"),
		Enc: sa.EncAES128GCM, EncKey: nameKey(name, 20), Integ: sa.IntegNone,
	}
}

// nameKey is an n-byte key of its own for the SA named name: SAs that
// share a key are warned about.
func nameKey(name string, n int) []byte {
	k := sha256.Sum256([]byte(name))
	return append([]byte(nil), k[:n]...)
}

// stopCleanly stops d as vifsecd does at SIGTERM: its SAs' exact
// sequence numbers are stored, so that a daemon restarted on the store
// lets them send.
func stopCleanly(d *Daemon) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.Run(ctx)
}

// reopen closes st, a bolt store at path, and returns a Daemon New
// restores from it, and its store (closed when t ends).
func reopen(t *testing.T, st *store.Bolt, path string) (*Daemon, *store.Bolt) {
	t.Helper()
	must(t, st.Close())
	st2, err := store.OpenBolt(path, 0)
	must(t, err)
	t.Cleanup(func() { st2.Close() })
	d2, err := New(st2, nil)
	must(t, err)
	return d2, st2
}

func policy(name, vm, saName string, dir sa.Direction, action tenant.Action, mode sa.Mode) tenant.Policy {
	return tenant.Policy{
		Name: name, VM: vm,
		Src: netip.MustParsePrefix("2001:db8:1::/64"), Dst: netip.MustParsePrefix("2002:db8:1::/64"),
		SrcPort: tenant.PortNumber(23), DstPort: tenant.PortNumber(25), ULProto: tenant.ProtoTCP,
		Direction: dir, Action: action, Mode: mode, SAName: saName,
	}
}

func vm(name, tn, mac string, vlan uint16) tenant.VM {
	m, err := tenant.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	// Each VM's addresses are its own in its tenant (AttachVM refuses an
	// address another VM of the tenant has) and one end of the test SAs
	// (seedSA, gcmSA) added for it; other VMs may use any address.
	ips := map[string][]string{"vm1": {"2001:db8:1::121", "2001:db8:1::1"}, "vm2": {"2001:db8:1::122", "2001:db8:2::1"}}[name]
	v := tenant.VM{Name: name, Tenant: tn, Dev: "tap-" + name, MAC: m, VLAN: vlan}
	for _, a := range ips {
		v.IPs = append(v.IPs, netip.MustParseAddr(a))
	}
	return v
}

// setup returns a daemon with tenant t1 and VMs vm1, vm2.
func setup(t *testing.T, st store.Store) *Daemon {
	t.Helper()
	d, err := New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, d.AddTenant(tenant.Tenant{Name: "t1", VNI: 100}))
	must(t, d.AttachVM(vm("vm1", "t1", "52:54:00:00:00:01", 10)))
	must(t, d.AttachVM(vm("vm2", "t1", "52:54:00:00:00:02", 10)))
	return d
}

func fdb(tn, mac, remote string) FDBEntry {
	m, err := tenant.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	return FDBEntry{Tenant: tn, MAC: m, Remote: netip.MustParseAddr(remote)}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// state is everything observable, for before/after comparisons.
type state struct {
	Tenants []tenant.Tenant
	VMs     []tenant.VM
	SAs     []SAInfo
	SPs     []SPInfo
	Keys    map[string]sa.Config
	Uplink  Uplink
	Enabled bool
	FDB     []FDBEntry
}

func observe(d *Daemon) state {
	s := state{Tenants: d.Tenants(), VMs: d.VMs(), SAs: d.SAs(), SPs: d.SPs(), Enabled: d.Enabled(), Keys: map[string]sa.Config{}}
	for i := range s.SAs {
		s.SAs[i].Stats = nil
	}
	for _, x := range d.SADB().List() {
		s.Keys[x.Name()] = x.ConfigWithKeys()
	}
	s.Uplink, _ = d.Uplink()
	s.FDB = d.FDB("")
	return s
}

// everything returns all that a request to d could change: the state,
// the IKE state (secrets included), the underlay SAs the data path is
// given, the store's commits and the generation.
func everything(d *Daemon, st *storetest.Memory) func() any {
	type all struct {
		State    state
		IKE      ikeView
		Underlay []UnderlaySA
		Commits  int
		Gen      uint64
	}
	return func() any {
		return all{observe(d), observeIKE(d), d.Snapshot().UnderlaySAs, st.Commits(), d.Generation()}
	}
}

// refused runs do, which must be refused with code and a message naming
// flag, and change nothing that look sees.
func refused(t *testing.T, look func() any, do func() error, code Code, flag string) {
	t.Helper()
	err := testutil.Refused(t, look, do)
	if err == nil {
		return
	}
	if CodeOf(err) != code {
		t.Errorf("code %v, want %v (%v)", CodeOf(err), code, err)
	}
	if !strings.Contains(err.Error(), flag) {
		t.Errorf("message %q does not name %s", err, flag)
	}
}

func TestSPIIsPerVM(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	if _, err := d.AddSA("vm1", seedSA(t, "a", 0x1000)); err != nil {
		t.Fatal(err)
	}
	// Same SPI, other VM: a different SA (seed 004).
	if _, err := d.AddSA("vm2", seedSA(t, "b", 0x1000)); err != nil {
		t.Fatalf("same SPI on another VM: %v", err)
	}
	_, err := d.AddSA("vm1", seedSA(t, "c", 0x1000))
	if CodeOf(err) != CodeExists || !strings.Contains(err.Error(), "--sa-spi") {
		t.Fatalf("same SPI on the same VM: %v, want exists naming --sa-spi", err)
	}
	k1 := sa.Key{Scope: sa.Scope{VLAN: 10, MAC: header.MAC{0x52, 0x54, 0, 0, 0, 1}}, SPI: 0x1000}
	if s := d.SADB().Lookup(k1); s == nil || s.Name() != "a" {
		t.Errorf("Lookup(vm1, 0x1000) = %v, want a", s)
	}
}

func TestAddSAWarnsDeprecated(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	w, err := d.AddSA("vm1", seedSA(t, "sa_2", 0x1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 1 || !strings.Contains(w[0], "3des-cbc is deprecated") {
		t.Errorf("warnings = %q, want a 3des-cbc deprecation", w)
	}
	w, err = d.AddSA("vm1", gcmSA(t, "g", 0x2000, sa.ModeTransport))
	if err != nil || len(w) != 0 {
		t.Errorf("aes128-gcm: warnings %q, err %v; want none", w, err)
	}
}

func TestRefusalsChangeNothing(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	_, err := d.AddSA("vm1", seedSA(t, "sa1", 0x1000))
	must(t, err)
	must(t, d.AddSP(policy("sp1", "vm1", "sa1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)))

	tunnel := policy("spx", "vm1", "sa1", sa.DirOut, tenant.ActionIPsec, sa.ModeTunnel)
	otherVM := policy("spx", "vm2", "sa1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)
	noSA := policy("spx", "vm1", "nosuch", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)
	dupSP := policy("sp1", "vm1", "", sa.DirOut, tenant.ActionDiscard, sa.ModeTransport)
	badKey := seedSA(t, "sa9", 0x3000)
	badKey.EncKey = badKey.EncKey[:10]
	reserved := seedSA(t, "sa9", 0xff)
	aeadInteg := gcmSA(t, "sa9", 0x3000, sa.ModeTransport)
	aeadInteg.Integ = sa.IntegHMACSHA1
	must(t, d.AddTenant(tenant.Tenant{Name: "t3"}))
	must(t, d.AddFDB(fdb("t1", "52:54:00:00:00:51", "2001:db8::51")))
	must(t, d.AddFDB(fdb("t3", "52:54:00:00:00:52", "192.0.2.52")))
	mcastMAC := fdb("t1", "52:54:00:00:00:53", "2001:db8::53")
	mcastMAC.MAC[0] |= 1

	tests := []struct {
		name string
		do   func() error
		code Code
		flag string
	}{
		{"sa on unknown vm", func() error { _, err := d.AddSA("nosuch", gcmSA(t, "sa9", 0x3000, sa.ModeTransport)); return err }, CodeNotFound, "--vm"},
		{"sa duplicate name", func() error { _, err := d.AddSA("vm2", gcmSA(t, "sa1", 0x3000, sa.ModeTransport)); return err }, CodeExists, "--sa-name"},
		{"sa duplicate spi", func() error { _, err := d.AddSA("vm1", gcmSA(t, "sa9", 0x1000, sa.ModeTransport)); return err }, CodeExists, "--sa-spi"},
		{"sa short key", func() error { _, err := d.AddSA("vm1", badKey); return err }, CodeInvalid, "--encryption-key"},
		{"sa reserved spi", func() error { _, err := d.AddSA("vm1", reserved); return err }, CodeInvalid, "--sa-spi"},
		{"sa aead with integrity", func() error { _, err := d.AddSA("vm1", aeadInteg); return err }, CodeInvalid, "--integrity-algorithm"},
		{"sa bad name", func() error { _, err := d.AddSA("vm1", gcmSA(t, "-x", 0x3000, sa.ModeTransport)); return err }, CodeInvalid, "--sa-name"},
		{"sa in use", func() error { return d.RemoveSA("sa1") }, CodeInUse, "sp1"},
		{"sa remove unknown", func() error { return d.RemoveSA("nosuch") }, CodeNotFound, "--sa-name"},
		{"sp mode differs", func() error { return d.AddSP(tunnel) }, CodeInvalid, "--sp-mode tunnel"},
		{"sp sa of other vm", func() error { return d.AddSP(otherVM) }, CodeInvalid, "--sa-name"},
		{"sp no such sa", func() error { return d.AddSP(noSA) }, CodeNotFound, "--sa-name"},
		{"sp duplicate", func() error { return d.AddSP(dupSP) }, CodeExists, "--sp-name"},
		{"sp remove unknown", func() error { return d.RemoveSP("nosuch") }, CodeNotFound, "--sp-name"},
		{"tenant duplicate", func() error { return d.AddTenant(tenant.Tenant{Name: "t1"}) }, CodeExists, "--tenant"},
		{"tenant vni taken", func() error { return d.AddTenant(tenant.Tenant{Name: "t2", VNI: 100}) }, CodeExists, "--vni"},
		{"tenant in use", func() error { return d.RemoveTenant("t1") }, CodeInUse, "vm1"},
		{"vm duplicate", func() error { return d.AttachVM(vm("vm1", "t1", "52:54:00:00:00:09", 0)) }, CodeExists, "--vm"},
		{"vm same identity", func() error { return d.AttachVM(vm("vm9", "t1", "52:54:00:00:00:01", 10)) }, CodeExists, "--mac"},
		{"vm unknown tenant", func() error { return d.AttachVM(vm("vm9", "nosuch", "52:54:00:00:00:09", 0)) }, CodeNotFound, "--tenant"},
		{"vm bad vlan", func() error { return d.AttachVM(vm("vm9", "t1", "52:54:00:00:00:09", 4095)) }, CodeInvalid, "--vlan"},
		{"vm in use", func() error { return d.DetachVM("vm1") }, CodeInUse, "sa1"},
		{"uplink vxlan without local", func() error { return d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayVXLAN}) }, CodeInvalid, "--vxlan-local"},
		{"uplink vxlan multicast local", func() error {
			return d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayVXLAN, VXLANLocal: netip.MustParseAddr("ff02::1")})
		}, CodeInvalid, "--vxlan-local"},
		{"uplink none with vxlan port", func() error { return d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayNone, VXLANPort: 4789}) }, CodeInvalid, "--vxlan-port"},
		{"fdb unknown tenant", func() error { return d.AddFDB(fdb("nosuch", "52:54:00:00:00:54", "2001:db8::54")) }, CodeNotFound, "--tenant"},
		{"fdb duplicate", func() error { return d.AddFDB(fdb("t1", "52:54:00:00:00:51", "2001:db8::99")) }, CodeExists, "--mac"},
		{"fdb zero mac", func() error { return d.AddFDB(FDBEntry{Tenant: "t1", Remote: netip.MustParseAddr("2001:db8::1")}) }, CodeInvalid, "--mac"},
		{"fdb multicast mac", func() error { return d.AddFDB(mcastMAC) }, CodeInvalid, "--mac"},
		{"fdb no remote", func() error { return d.AddFDB(FDBEntry{Tenant: "t1", MAC: fdb("t1", "52:54:00:00:00:55", "::1").MAC}) }, CodeInvalid, "--remote"},
		{"fdb multicast remote", func() error { return d.AddFDB(fdb("t1", "52:54:00:00:00:55", "ff02::1")) }, CodeInvalid, "--remote"},
		{"fdb multicast remote v4", func() error { return d.AddFDB(fdb("t1", "52:54:00:00:00:55", "239.1.1.1")) }, CodeInvalid, "--remote"},
		{"fdb unspecified remote", func() error { return d.AddFDB(fdb("t1", "52:54:00:00:00:55", "0.0.0.0")) }, CodeInvalid, "--remote"},
		{"fdb broadcast remote", func() error { return d.AddFDB(fdb("t1", "52:54:00:00:00:55", "255.255.255.255")) }, CodeInvalid, "--remote"},
		{"fdb zoned remote", func() error { return d.AddFDB(fdb("t1", "52:54:00:00:00:55", "fe80::1%eth0")) }, CodeInvalid, "--remote"},
		{"fdb mapped remote", func() error { return d.AddFDB(fdb("t1", "52:54:00:00:00:55", "::ffff:192.0.2.1")) }, CodeInvalid, "--remote"},
		{"fdb remove unknown mac", func() error { return d.RemoveFDB("t1", fdb("t1", "52:54:00:00:00:99", "::1").MAC) }, CodeNotFound, "--mac"},
		{"fdb remove unknown tenant", func() error { return d.RemoveFDB("nosuch", fdb("t1", "52:54:00:00:00:51", "::1").MAC) }, CodeNotFound, "--tenant"},
		{"tenant with fdb", func() error { return d.RemoveTenant("t3") }, CodeInUse, "52:54:00:00:00:52"},
		{"uplink bad dev", func() error { return d.SetUplink(Uplink{Dev: "a/b"}) }, CodeInvalid, "--dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused(t, everything(d, st), tt.do, tt.code, tt.flag)
		})
	}
}

func TestFailedCommitChangesNothing(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	before := observe(d)
	st.FailCommits(true)
	_, err := d.AddSA("vm1", seedSA(t, "sa1", 0x1000))
	if CodeOf(err) != CodeInternal {
		t.Fatalf("AddSA with a failing store: %v, want internal", err)
	}
	if err := d.DetachVM("vm2"); CodeOf(err) != CodeInternal {
		t.Fatalf("DetachVM with a failing store: %v, want internal", err)
	}
	if after := observe(d); !reflect.DeepEqual(before, after) {
		t.Errorf("state changed by a failed commit")
	}
	if d.SADB().Len() != 0 {
		t.Errorf("sa.DB has %d SAs, want 0", d.SADB().Len())
	}
}

func TestRemoveAllSAsLeavesSPs(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	_, err := d.AddSA("vm1", seedSA(t, "sa1", 0x1000))
	must(t, err)
	_, err = d.AddSA("vm2", gcmSA(t, "sa2", 0x1000, sa.ModeTunnel))
	must(t, err)
	_, err = d.AddSA("vm2", gcmSA(t, "idle", 0x2000, sa.ModeTunnel))
	must(t, err)
	must(t, d.AddSP(policy("sp1", "vm1", "sa1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)))
	must(t, d.AddSP(policy("sp2", "vm2", "sa2", sa.DirIn, tenant.ActionIPsec, sa.ModeTunnel)))
	must(t, d.AddSP(policy("sp3", "vm2", "", sa.DirIn, tenant.ActionDiscard, 0)))

	removed, left, err := d.RemoveAllSAs()
	must(t, err)
	if want := []string{"idle", "sa1", "sa2"}; !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	want := []Unprotected{{SP: "sp1", VM: "vm1", SA: "sa1"}, {SP: "sp2", VM: "vm2", SA: "sa2"}}
	if !reflect.DeepEqual(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if d.SADB().Len() != 0 || len(d.SPs()) != 3 {
		t.Fatalf("after removeall: %d SAs, %d SPs; want 0 and 3", d.SADB().Len(), len(d.SPs()))
	}
	for _, sp := range d.SPs() {
		if got := sp.SAMissing; got != (sp.Policy.Action == tenant.ActionIPsec) {
			t.Errorf("%s: SAMissing = %v", sp.Policy.Name, got)
		}
	}
	// The dangling SP constrains a new SA of its name: same VM, same mode.
	if _, err := d.AddSA("vm2", seedSA(t, "sa1", 0x5000)); err == nil || !strings.Contains(err.Error(), "sp1") {
		t.Errorf("re-adding sa1 on another VM: %v, want refused naming sp1", err)
	}
	if _, err := d.AddSA("vm1", gcmSA(t, "sa1", 0x5000, sa.ModeTunnel)); err == nil || !strings.Contains(err.Error(), "--sp-mode") {
		t.Errorf("re-adding sa1 in another mode: %v, want refused naming --sp-mode", err)
	}
	if _, err := d.AddSA("vm1", seedSA(t, "sa1", 0x5000)); err != nil {
		t.Errorf("re-adding sa1 as the SP wants: %v", err)
	}
	if sps := d.SPs(); sps[0].SAMissing {
		t.Errorf("sp1 still missing its SA after re-adding it")
	}
}

func TestRestoreIsExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.OpenBolt(path, 0)
	must(t, err)
	d := setup(t, st)
	must(t, d.AddTenant(tenant.Tenant{Name: "t2", DefaultAction: tenant.ActionDiscard}))
	_, err = d.AddSA("vm1", seedSA(t, "sa1", 0x1000))
	must(t, err)
	cfg := gcmSA(t, "sa2", 0xdeadbeef, sa.ModeTunnel)
	cfg.ESN, cfg.ReplayWindow, cfg.Lifetime.Hard.Seconds = true, 1024, 3600
	cfg.Encap = &sa.UDPEncap{SrcPort: 4500, DstPort: 4500} // --encapsulation udp
	_, err = d.AddSA("vm2", cfg)
	must(t, err)
	// SPD order is insertion order, not name order.
	must(t, d.AddSP(policy("z-first", "vm1", "sa1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)))
	must(t, d.AddSP(policy("a-second", "vm1", "", sa.DirOut, tenant.ActionDiscard, 0)))
	must(t, d.AddSP(policy("m-third", "vm1", "", sa.DirIn, tenant.ActionNone, sa.ModeTransport)))
	must(t, d.RemoveSP("a-second"))
	must(t, d.AddSP(policy("b-fourth", "vm1", "", sa.DirOut, tenant.ActionDiscard, 0)))
	must(t, d.SetUplink(Uplink{Dev: "eth0", Netns: "hv", Overlay: OverlayVXLAN, VXLANLocal: netip.MustParseAddr("2001:db8:ff::1")}))
	must(t, d.SetEnabled(false))
	must(t, d.AddFDB(fdb("t2", "52:54:00:00:00:22", "192.0.2.22")))
	must(t, d.AddFDB(fdb("t1", "52:54:00:00:00:12", "2001:db8:ff::12")))
	must(t, d.AddFDB(fdb("t1", "02:00:00:00:00:01", "2001:db8:ff::2")))
	must(t, d.AddFDB(fdb("t1", "52:54:00:00:00:13", "2001:db8:ff::13")))
	must(t, d.RemoveFDB("t1", fdb("t1", "52:54:00:00:00:13", "::1").MAC))
	before := observe(d)
	stopCleanly(d)
	d2, _ := reopen(t, st, path)
	after := observe(d2)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("restored state differs:\nbefore %+v\nafter  %+v", before, after)
	}
	if e := after.Keys["sa2"].Encap; e == nil || *e != (sa.UDPEncap{SrcPort: 4500, DstPort: 4500}) {
		t.Errorf("restored sa2 encapsulation %+v, want UDP 4500->4500", e)
	}
	if u, _ := d2.Uplink(); u.Overlay != OverlayVXLAN || u.VXLANPort != DefaultVXLANPort || u.VXLANLocal != netip.MustParseAddr("2001:db8:ff::1") {
		t.Errorf("restored uplink %+v", u)
	}
	want := []FDBEntry{fdb("t1", "02:00:00:00:00:01", "2001:db8:ff::2"), fdb("t1", "52:54:00:00:00:12", "2001:db8:ff::12"), fdb("t2", "52:54:00:00:00:22", "192.0.2.22")}
	if got := d2.Snapshot().FDB; !reflect.DeepEqual(got, want) {
		t.Errorf("restored Snapshot().FDB = %v, want %v", got, want)
	}
	var order []string
	for _, p := range d2.Snapshot().VMs[0].Policies {
		order = append(order, p.Name)
	}
	if want := "z-first m-third b-fourth"; strings.Join(order, " ") != want {
		t.Errorf("vm1 SPD order %q, want %q", strings.Join(order, " "), want)
	}
	// New SPs continue the sequence after the restored ones.
	must(t, d2.AddSP(policy("a-fifth", "vm1", "", sa.DirOut, tenant.ActionDiscard, 0)))
	if ps := d2.Snapshot().VMs[0].Policies; ps[len(ps)-1].Name != "a-fifth" {
		t.Errorf("new SP not appended last after restore")
	}
}

func TestRestoreRefusesInconsistentState(t *testing.T) {
	st := storetest.NewMemory()
	must(t, st.Commit([]store.Op{store.Put(store.KindVM, "vm1", mustJSON(vm("vm1", "ghost", "52:54:00:00:00:01", 0)))}))
	_, err := New(st, nil)
	if err == nil || !strings.Contains(err.Error(), `vm "vm1"`) {
		t.Fatalf("New = %v, want an error naming vm1", err)
	}
}

func TestWatchAndSnapshot(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	gen, ch := d.Watch()
	_, err := d.AddSA("vm1", seedSA(t, "sa1", 0x1000))
	must(t, err)
	select {
	case <-ch:
	default:
		t.Fatal("Watch channel not closed by a change")
	}
	if d.Generation() != gen+1 {
		t.Errorf("generation %d, want %d", d.Generation(), gen+1)
	}
	must(t, d.AddSP(policy("sp1", "vm1", "sa1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)))
	must(t, d.AddSP(policy("sp2", "vm1", "", sa.DirOut, tenant.ActionDiscard, 0)))
	s := d.Snapshot()
	v := s.VMs[0]
	if v.VM.Name != "vm1" || len(v.Policies) != 2 || len(v.PolicySAs) != 2 || v.PolicySAs[0] == nil || v.PolicySAs[0].Name() != "sa1" || v.PolicySAs[1] != nil {
		t.Errorf("snapshot of vm1 wrong: %+v", v)
	}
	if v.Counters == nil || v.Tenant.Name != "t1" || len(v.SAs) != 1 {
		t.Errorf("snapshot of vm1 lacks counters, tenant or SAs: %+v", v)
	}
}

func TestStatsAndIPsecSAs(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	_, err := d.AddSA("vm1", seedSA(t, "out1", 0x1000))
	must(t, err)
	in := seedSA(t, "in1", 0x1001)
	in.Src, in.Dst = in.Dst, in.Src
	_, err = d.AddSA("vm1", in)
	must(t, err)
	must(t, d.AddSP(policy("spo", "vm1", "out1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)))
	must(t, d.AddSP(policy("spi", "vm1", "in1", sa.DirIn, tenant.ActionIPsec, sa.ModeTransport)))
	d.SADB().Get("out1").Stats.Packets.Add(3)
	d.Snapshot().VMs[0].Counters.PacketsOut.Add(7)
	d.Snapshot().VMs[0].Counters.Drop(drop.NoSA)

	st, err := d.Stats("vm1")
	must(t, err)
	if len(st) != 1 || st[0].PacketsOut != 7 || st[0].Drops[drop.NoSA] != 1 || len(st[0].SAs) != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	for _, x := range st[0].SAs {
		if x.Name == "out1" && (x.Packets != 3 || x.Dir != sa.DirOut) || x.Name == "in1" && x.Dir != sa.DirIn {
			t.Errorf("SA stats %+v", x)
		}
	}
	if _, err := d.Stats("nosuch"); CodeOf(err) != CodeNotFound {
		t.Errorf("Stats(nosuch) = %v", err)
	}
	rows, err := d.IPsecSAs("t1")
	must(t, err)
	if len(rows) != 2 {
		t.Fatalf("IPsecSAs = %+v", rows)
	}
	for _, r := range rows {
		switch r.SA {
		case "in1":
			if r.InboundSPI != 0x1001 || r.OutboundSPI != 0 || r.Local.String() != "2001:db8:1::121" || r.State != "INSTALLED" {
				t.Errorf("in1 row %+v", r)
			}
		case "out1":
			if r.OutboundSPI != 0x1000 || r.InboundSPI != 0 || r.Local.String() != "2001:db8:1::121" {
				t.Errorf("out1 row %+v", r)
			}
		}
	}
	if _, err := d.IPsecSAs("nosuch"); !errors.Is(err, err) || CodeOf(err) != CodeNotFound {
		t.Errorf("IPsecSAs(nosuch) = %v", err)
	}
}

func TestFDB(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	must(t, d.AddTenant(tenant.Tenant{Name: "t0", VNI: 7}))
	gen, ch := d.Watch()
	must(t, d.AddFDB(fdb("t1", "52:54:00:00:00:aa", "2001:db8::a")))
	select {
	case <-ch:
	default:
		t.Fatal("AddFDB did not signal Watch")
	}
	if d.Generation() != gen+1 {
		t.Errorf("generation %d after AddFDB, want %d", d.Generation(), gen+1)
	}
	must(t, d.AddFDB(fdb("t1", "02:00:00:00:00:01", "192.0.2.1")))
	must(t, d.AddFDB(fdb("t0", "52:54:00:00:00:aa", "2001:db8::b"))) // same MAC, other tenant
	if v := st.Get(store.KindFDB, "t1/52:54:00:00:00:aa"); v == nil {
		t.Error("entry not stored under TENANT/MAC")
	}
	want := []FDBEntry{fdb("t0", "52:54:00:00:00:aa", "2001:db8::b"), fdb("t1", "02:00:00:00:00:01", "192.0.2.1"), fdb("t1", "52:54:00:00:00:aa", "2001:db8::a")}
	if got := d.Snapshot().FDB; !reflect.DeepEqual(got, want) {
		t.Errorf("Snapshot().FDB = %v, want %v", got, want)
	}
	if got := d.FDB("t1"); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("FDB(t1) = %v, want %v", got, want[1:])
	}
	if got := d.FDB("nosuch"); got == nil || len(got) != 0 {
		t.Errorf("FDB(nosuch) = %#v, want empty", got)
	}
	// To change an entry: remove, then add.
	gen = d.Generation()
	must(t, d.RemoveFDB("t1", want[2].MAC))
	must(t, d.AddFDB(fdb("t1", "52:54:00:00:00:aa", "2001:db8::c")))
	if d.Generation() != gen+2 {
		t.Errorf("generation %d, want %d", d.Generation(), gen+2)
	}
	if got := d.FDB("t1"); len(got) != 2 || got[1].Remote != netip.MustParseAddr("2001:db8::c") {
		t.Errorf("FDB(t1) after change = %v", got)
	}
	// A tenant with entries cannot be removed; without, it can.
	err := d.RemoveTenant("t0")
	if CodeOf(err) != CodeInUse || !strings.Contains(err.Error(), "52:54:00:00:00:aa") {
		t.Errorf("RemoveTenant(t0) = %v, want in_use naming the MAC", err)
	}
	must(t, d.RemoveFDB("t0", want[0].MAC))
	must(t, d.RemoveTenant("t0"))
	if st.Get(store.KindFDB, "t0/52:54:00:00:00:aa") != nil {
		t.Error("removed entry still stored")
	}
}

func TestUplinkVXLAN(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	must(t, d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayVXLAN, VXLANLocal: netip.MustParseAddr("192.0.2.1")}))
	if u, _ := d.Uplink(); u.VXLANPort != DefaultVXLANPort || u.Overlay != OverlayVXLAN {
		t.Errorf("uplink %+v, want vxlan on port %d", u, DefaultVXLANPort)
	}
	must(t, d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayVXLAN, VXLANLocal: netip.MustParseAddr("2001:db8::1"), VXLANPort: 8472}))
	if s := d.Snapshot(); s.Uplink == nil || s.Uplink.VXLANPort != 8472 || s.Uplink.VXLANLocal != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("snapshot uplink %+v", s.Uplink)
	}
}

func TestRestoreRefusesBadFDB(t *testing.T) {
	for name, rec := range map[string]store.Op{
		"ghost tenant": store.Put(store.KindFDB, "ghost/52:54:00:00:00:01", mustJSON(fdb("ghost", "52:54:00:00:00:01", "192.0.2.1"))),
		"wrong name":   store.Put(store.KindFDB, "t1/52:54:00:00:00:02", mustJSON(fdb("t1", "52:54:00:00:00:01", "192.0.2.1"))),
		"multicast":    store.Put(store.KindFDB, "t1/52:54:00:00:00:01", mustJSON(fdb("t1", "52:54:00:00:00:01", "224.0.0.1"))),
	} {
		t.Run(name, func(t *testing.T) {
			st := storetest.NewMemory()
			must(t, st.Commit([]store.Op{store.Put(store.KindTenant, "t1", mustJSON(tenant.Tenant{Name: "t1", DefaultAction: tenant.ActionNone})), rec}))
			if _, err := New(st, nil); err == nil || !strings.Contains(err.Error(), "fdb "+`"`+rec.Name+`"`) {
				t.Fatalf("New = %v, want an error naming fdb %q", err, rec.Name)
			}
		})
	}
}
