package daemon

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// TestVMSAEndpoints: a VM's SA one of whose addresses is the VM's is
// accepted (outbound from it, inbound to it, in either mode); one whose
// addresses are both someone else's is refused naming --sa-source and
// --sa-destination and the VM's addresses, changing nothing. A VM
// without --ip may use any address.
func TestVMSAEndpoints(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st) // vm1 has 2001:db8:1::121 and 2001:db8:1::1
	must(t, d.AttachVM(tenant.VM{Name: "free", Tenant: "t1", Dev: "tap-free", MAC: vm("x", "t1", "52:54:00:00:00:09", 0).MAC}))
	mk := func(name string, spi uint32, src, dst string, mode sa.Mode) sa.Config {
		c := gcmSA(t, name, spi, mode)
		c.Src, c.Dst = netip.MustParseAddr(src), netip.MustParseAddr(dst)
		return c
	}
	for _, tc := range []struct {
		name string
		vm   string
		cfg  sa.Config
	}{
		{"outbound", "vm1", mk("out", 0x1000, "2001:db8:1::121", "2001:db8:9::1", sa.ModeTransport)},
		{"inbound", "vm1", mk("in", 0x1001, "2001:db8:9::1", "2001:db8:1::1", sa.ModeTransport)},
		{"tunnel", "vm1", mk("tun", 0x1002, "2001:db8:1::121", "2001:db8:9::1", sa.ModeTunnel)},
		{"any address", "free", mk("free", 0x1003, "2001:db8:9::1", "2001:db8:9::2", sa.ModeTransport)},
	} {
		if _, err := d.AddSA(tc.vm, tc.cfg); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	for _, mode := range []sa.Mode{sa.ModeTransport, sa.ModeTunnel} {
		before, commits, gen := observe(d), st.Commits(), d.Generation()
		_, err := d.AddSA("vm1", mk("stray", 0x2000, "2001:db8:9::1", "2001:db8:9::2", mode))
		if CodeOf(err) != CodeInvalid {
			t.Fatalf("%v: SA of neither of vm1's addresses: %v, want refused", mode, err)
		}
		for _, w := range []string{"--sa-source 2001:db8:9::1", "--sa-destination 2001:db8:9::2", "vm1", "2001:db8:1::121"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q does not name %s", mode, err, w)
			}
		}
		if !reflect.DeepEqual(before, observe(d)) || st.Commits() != commits || d.Generation() != gen {
			t.Errorf("%v: the refused SA changed the state", mode)
		}
	}
}

// TestVMAddressUniqueInTenant: a second VM of a tenant claiming an
// address another VM of the tenant has is refused, naming --ip and that
// VM, changing nothing; another tenant may use the same address.
func TestVMAddressUniqueInTenant(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st) // vm1 (t1) has 2001:db8:1::121
	must(t, d.AddTenant(tenant.Tenant{Name: "t2"}))
	dup := vm("vm3", "t1", "52:54:00:00:00:03", 10)
	dup.IPs = []netip.Addr{netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("2001:db8:1::121")}
	before, commits, gen := observe(d), st.Commits(), d.Generation()
	err := d.AttachVM(dup)
	if CodeOf(err) != CodeExists || !strings.Contains(err.Error(), "--ip 2001:db8:1::121") || !strings.Contains(err.Error(), `"vm1"`) {
		t.Fatalf("same --ip as vm1 in t1: %v, want refused naming --ip and vm1", err)
	}
	if !reflect.DeepEqual(before, observe(d)) || st.Commits() != commits || d.Generation() != gen {
		t.Fatal("the refused attach changed the state")
	}
	other := dup
	other.Tenant = "t2"
	if err := d.AttachVM(other); err != nil {
		t.Fatalf("same address in another tenant: %v", err)
	}
	dup.IPs = dup.IPs[:1]
	dup.Name, dup.MAC = "vm4", vm("x", "t1", "52:54:00:00:00:04", 0).MAC
	if err := d.AttachVM(dup); err != nil {
		t.Fatalf("an address of its own: %v", err)
	}
}
