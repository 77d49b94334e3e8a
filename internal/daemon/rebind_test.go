package daemon

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

func TestRebindVM(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	lv := vm("lv1", "t1", "52:54:00:00:00:31", 10)
	lv.Origin = "libvirt:8ad61ae1-0447-41a9-a1ed-d53ce317ff72"
	lv.Dev = "vnet0"

	// Not attached: attaches.
	changed, err := d.RebindVM(lv)
	if err != nil || !changed {
		t.Fatalf("first RebindVM = %v, %v; want true, nil", changed, err)
	}
	// Attached as asked: nothing to do, nothing committed.
	commits := st.Commits()
	gen := d.Generation()
	if changed, err := d.RebindVM(lv); err != nil || changed {
		t.Fatalf("same RebindVM = %v, %v; want false, nil", changed, err)
	}
	if st.Commits() != commits || d.Generation() != gen {
		t.Fatalf("a no-op RebindVM committed or bumped the generation")
	}
	// New device (the domain restarted on vnet4): moved, durably, and
	// the VM keeps its SA.
	if _, err := d.AddSA("lv1", gcmSA(t, "lvsa", 0x2000, sa.ModeTransport)); err != nil {
		t.Fatal(err)
	}
	lv.Dev = "vnet4"
	if changed, err := d.RebindVM(lv); err != nil || !changed {
		t.Fatalf("moving RebindVM = %v, %v; want true, nil", changed, err)
	}
	d2, err := New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got tenant.VM
	for _, v := range d2.VMs() {
		if v.Name == "lv1" {
			got = v
		}
	}
	if !reflect.DeepEqual(got, lv) {
		t.Fatalf("after restart lv1 = %+v, want %+v", got, lv)
	}
	if len(d2.SAs()) != 1 {
		t.Fatalf("after the move the SA is gone: %+v", d2.SAs())
	}

	for _, tc := range []struct {
		name string
		edit func(v *tenant.VM)
		code Code
		want string
	}{
		{"other origin", func(v *tenant.VM) { v.Origin = "libvirt:00000000-0000-4000-8000-000000000000" }, CodeExists, "not by libvirt:0000"},
		{"operator's VM", func(v *tenant.VM) { v.Name = "vm1"; v.Origin = "libvirt:x" }, CodeExists, "an operator"},
		{"vlan", func(v *tenant.VM) { v.VLAN = 11 }, CodeExists, "--vlan 10"},
		{"mac", func(v *tenant.VM) { v.MAC = tenant.MAC{0x52, 0x54, 0, 0, 0, 0x32} }, CodeExists, "--mac 52:54:00:00:00:31"},
		{"ips", func(v *tenant.VM) { v.IPs = []netip.Addr{netip.MustParseAddr("192.0.2.9")} }, CodeExists, "--ip (any)"},
		{"bad", func(v *tenant.VM) { v.Origin = "libvirt: spaces" }, CodeInvalid, "origin:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := lv
			tc.edit(&v)
			refused(t, everything(d, st), func() error { _, err := d.RebindVM(v); return err }, tc.code, tc.want)
		})
	}
}
