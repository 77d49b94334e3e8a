package libvirt

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vifsec/vifsec/tenant"
)

// FuzzParseDomain feeds arbitrary domain XML to everything the hook does
// with it. Properties: nothing panics; a domain parsed without error and
// planned without error yields VMs with valid, distinct names, a libvirt
// origin and, when a device is needed, a device; the fail mode read from
// broken XML is never "invalid"; SniffUUID returns a UUID or nothing.
func FuzzParseDomain(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(domainWith(`<vifsec:vm ` + ns + ` tenant="acme"><vifsec:interface mac="52:54:00:00:00:02" vlan="7" ip="192.0.2.1"/></vifsec:vm>`))
	f.Add(domainWith(`<vifsec:vm ` + ns + ` tenant="acme" fail="closed"><vifsec:interface mac="52:54:00:00:00:01" protect="no"/></vifsec:vm>`))
	f.Add([]byte(`<domain><metadata><v:vm xmlns:v="https://vifsec.dev/xmlns/libvirt/1" fail="closed"`))
	f.Add([]byte(`<domain><devices><interface type='hostdev'><source><address type='pci' bus='0x100'/></source></interface></devices></domain>`))
	sysfs := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, ours := FailModeOf(b); m == FailInvalid || ours != HasMetadata(b) {
			t.Fatalf("FailModeOf = %v, %v", m, ours)
		}
		if u := SniffUUID(b); u != "" && !validUUID(u) {
			t.Fatalf("SniffUUID = %q", u)
		}
		d, err := ParseDomain(b)
		if err != nil {
			if d != nil && d.Meta != nil && d.Meta.Fail == FailInvalid {
				t.Fatal("metadata with an invalid fail mode")
			}
			return
		}
		for _, needDev := range []bool{false, true} {
			bs, err := d.Plan(&PlanOptions{NeedDev: needDev, SysFS: sysfs})
			if err != nil {
				continue
			}
			if d.Meta == nil && len(bs) > 0 {
				t.Fatal("bindings without metadata")
			}
			seen := map[string]bool{}
			for _, bd := range bs {
				v := bd.VM
				if err := tenant.ValidName(v.Name); err != nil || seen[v.Name] {
					t.Fatalf("VM name %q: %v (seen %v)", v.Name, err, seen[v.Name])
				}
				seen[v.Name] = true
				if u, ok := DomainOf(v.Origin); !ok || !validUUID(u) {
					t.Fatalf("origin %q", v.Origin)
				}
				if needDev {
					if err := v.Validate(); err != nil {
						t.Fatalf("planned VM does not validate: %v", err)
					}
				}
			}
		}
	})
}
