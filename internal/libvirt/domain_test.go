package libvirt

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/tenant"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mac(s string) tenant.MAC {
	m, err := tenant.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// fakeSysfs builds a sysfs tree with PF 0000:03:00.0 (netdev enp3s0f0,
// port p0), its VF 2 at 0000:03:10.2, and, if switchdev, the VF's
// representor enp3s0f0_2 (port pf0vf2) and another PF's representor of
// the same VF index (pf1vf2), which must not be taken.
func fakeSysfs(t *testing.T, switchdev, vfNetdev bool) string {
	t.Helper()
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		mk(filepath.Dir(p))
		if err := os.WriteFile(filepath.Join(root, p), []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		mk(filepath.Dir(p))
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	pf, vf := "bus/pci/devices/0000:03:00.0", "bus/pci/devices/0000:03:10.2"
	mk(pf + "/net/enp3s0f0")
	mk(vf)
	link("../0000:03:00.0", vf+"/physfn")
	link("../0000:03:10.0", pf+"/virtfn0")
	link("../0000:03:10.2", pf+"/virtfn2")
	if vfNetdev {
		mk(vf + "/net/enp3s0f0v2")
	}
	write("class/net/enp3s0f0/phys_port_name", "p0")
	if switchdev {
		write("class/net/enp3s0f0/phys_switch_id", "a1b2c3")
		write("class/net/enp3s0f0_2/phys_switch_id", "a1b2c3")
		write("class/net/enp3s0f0_2/phys_port_name", "pf0vf2")
		write("class/net/enp3s0f1_2/phys_switch_id", "a1b2c3")
		write("class/net/enp3s0f1_2/phys_port_name", "pf1vf2")
		write("class/net/enp3s0f0_0/phys_switch_id", "a1b2c3")
		write("class/net/enp3s0f0_0/phys_port_name", "pf0vf0")
	}
	return root
}

type wantVM struct {
	name, tenant, dev, mac string
	vlan                   uint16
	ips                    string
}

func TestPlanCorpus(t *testing.T) {
	const probeOrigin = "libvirt:8ad61ae1-0447-41a9-a1ed-d53ce317ff72"
	for _, tc := range []struct {
		name    string
		file    string
		xml     func([]byte) []byte // edit before parsing
		needDev bool
		sysfs   func(t *testing.T) string
		origin  string
		fail    FailMode
		want    []wantVM
		wantErr []string
	}{
		{name: "ethernet, running (reconnect)", file: "ethernet-reconnect.xml", needDev: true, origin: probeOrigin, fail: FailOpen,
			want: []wantVM{{"vifsec-probe1-525400aabb01", "acme", "vnet1", "52:54:00:aa:bb:01", 100, ""}}},
		{name: "bridge, network, direct, user left alone (start)", file: "multi-start.xml", needDev: true, fail: FailClosed,
			want: []wantVM{
				{"web2-525400123401", "acme", "vnet2", "52:54:00:12:34:01", 0, ""},
				{"web2-mgmt", "globex", "vnet3", "52:54:00:12:34:02", 0, "2001:db8:1::122 192.0.2.2"},
				{"web2-525400123403", "acme", "macvtap0", "52:54:00:12:34:03", 200, ""},
			}},
		{name: "prepare: no devices yet", file: "multi-prepare.xml", fail: FailClosed,
			want: []wantVM{
				{"web2-525400123401", "acme", "", "52:54:00:12:34:01", 0, ""},
				{"web2-mgmt", "globex", "", "52:54:00:12:34:02", 0, "2001:db8:1::122 192.0.2.2"},
				{"web2-525400123403", "acme", "", "52:54:00:12:34:03", 200, ""},
			}},
		{name: "prepare XML where a device is needed", file: "multi-prepare.xml", needDev: true, fail: FailClosed,
			wantErr: []string{"interface 0 (type bridge, mac 52:54:00:12:34:01): no <target dev>", "interface 2 (type direct"}},
		{name: "stopped: the user interface still left alone", file: "multi-stopped.xml", fail: FailClosed,
			want: []wantVM{
				{"web2-525400123401", "acme", "", "52:54:00:12:34:01", 0, ""},
				{"web2-mgmt", "globex", "", "52:54:00:12:34:02", 0, "2001:db8:1::122 192.0.2.2"},
				{"web2-525400123403", "acme", "", "52:54:00:12:34:03", 200, ""},
			}},
		{name: "user interface not left alone", file: "multi-start.xml", needDev: true, fail: FailClosed,
			xml: func(b []byte) []byte {
				return []byte(strings.Replace(string(b), `<vifsec:interface mac="52:54:00:12:34:04" protect="no"/>`, "", 1))
			},
			wantErr: []string{`interface 3 (type user, mac 52:54:00:12:34:04): vifsec protects interfaces of type ethernet, bridge, network, direct and hostdev`, `protect="no"`}},
		{name: "hostdev VF via its representor, trunk VLAN chosen", file: "hostdev-trunk-start.xml", needDev: true, fail: FailOpen,
			sysfs: func(t *testing.T) string { return fakeSysfs(t, true, false) },
			want: []wantVM{
				{"db1-525400dead01", "acme", "enp3s0f0_2", "52:54:00:de:ad:01", 42, ""},
				{"db1-525400dead02", "acme", "vnet12", "52:54:00:de:ad:02", 47, ""},
			}},
		{name: "hostdev VF still on its host driver", file: "hostdev-trunk-start.xml", needDev: true, fail: FailOpen,
			sysfs: func(t *testing.T) string { return fakeSysfs(t, false, true) },
			want: []wantVM{
				{"db1-525400dead01", "acme", "enp3s0f0v2", "52:54:00:de:ad:01", 42, ""},
				{"db1-525400dead02", "acme", "vnet12", "52:54:00:de:ad:02", 47, ""},
			}},
		{name: "hostdev VF with neither", file: "hostdev-trunk-start.xml", needDev: true,
			sysfs:   func(t *testing.T) string { return fakeSysfs(t, false, false) },
			wantErr: []string{"hostdev VF 0000:03:10.2 (VF 2 of PF 0000:03:00.0 enp3s0f0): no switchdev representor", "devlink dev eswitch set pci/0000:03:00.0 mode switchdev"}},
		{name: "hostdev VF not in sysfs", file: "hostdev-trunk-start.xml", needDev: true,
			sysfs:   func(t *testing.T) string { return t.TempDir() },
			wantErr: []string{"hostdev PCI device 0000:03:10.2: not found"}},
		{name: "trunk without a chosen VLAN", file: "hostdev-trunk-start.xml", needDev: true,
			sysfs: func(t *testing.T) string { return fakeSysfs(t, true, false) },
			xml: func(b []byte) []byte {
				return []byte(strings.Replace(string(b), `<v:interface mac="52:54:00:de:ad:02" vlan="47"/>`, "", 1))
			},
			wantErr: []string{`the interface is a trunk of VLANs 42, 47; vifsec keys one (vlan, mac) per interface: say which with <vifsec:interface mac="52:54:00:de:ad:02" vlan="N"/>`}},
		{name: "chosen VLAN not on the trunk", file: "hostdev-trunk-start.xml", needDev: true,
			sysfs: func(t *testing.T) string { return fakeSysfs(t, true, false) },
			xml: func(b []byte) []byte {
				return []byte(strings.Replace(string(b), `vlan="47"`, `vlan="48"`, 1))
			},
			wantErr: []string{"vlan=48 in <vifsec:interface> is not one of the interface's <vlan> tags (42, 47)"}},
		{name: "set by virsh metadata, inactive", file: "virsh-metadata-inactive.xml", fail: FailClosed,
			origin: "libvirt:b731da4a-6bcc-447c-a12a-86c4f2974d47",
			want:   []wantVM{{"vifsec-md-probe-525400123456", "acme", "", "52:54:00:12:34:56", 100, ""}}},
		{name: "no vifsec metadata", file: "no-metadata.xml"},
		{name: "malformed", file: "malformed-closed.xml", fail: FailClosed,
			wantErr: []string{"domain XML: XML syntax error on line 11"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := readTestdata(t, tc.file)
			if tc.xml != nil {
				b = tc.xml(b)
			}
			o := &PlanOptions{NeedDev: tc.needDev}
			if tc.sysfs != nil {
				o.SysFS = tc.sysfs(t)
			} else {
				o.SysFS = t.TempDir()
			}
			d, err := ParseDomain(b)
			var bs []Binding
			if err == nil {
				bs, err = d.Plan(o)
			}
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; want one containing %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\ndoes not contain %q", err, w)
					}
				}
				if bs != nil {
					t.Errorf("bindings %+v returned with an error", bs)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.fail != FailInvalid {
				got, ours := FailModeOf(b)
				if !ours || got != tc.fail {
					t.Errorf("FailModeOf = %v, %v; want %v, true", got, ours, tc.fail)
				}
				if d != nil && d.Meta != nil && d.Meta.Fail != tc.fail {
					t.Errorf("Meta.Fail = %v, want %v", d.Meta.Fail, tc.fail)
				}
			}
			if len(bs) != len(tc.want) {
				t.Fatalf("got %d bindings %+v, want %d", len(bs), bs, len(tc.want))
			}
			for i, w := range tc.want {
				v := bs[i].VM
				var ips []string
				for _, a := range v.IPs {
					ips = append(ips, a.String())
				}
				if v.Name != w.name || v.Tenant != w.tenant || v.Dev != w.dev || v.MAC != mac(w.mac) || v.VLAN != w.vlan || strings.Join(ips, " ") != w.ips {
					t.Errorf("binding %d = %+v\nwant %+v", i, v, w)
				}
				if !strings.HasPrefix(v.Origin, OriginPrefix) || !validUUID(strings.TrimPrefix(v.Origin, OriginPrefix)) {
					t.Errorf("binding %d origin %q", i, v.Origin)
				}
				if tc.origin != "" && v.Origin != tc.origin {
					t.Errorf("binding %d origin %q, want %q", i, v.Origin, tc.origin)
				}
			}
		})
	}
}

// domainWith returns a running domain XML with two interfaces and meta as
// its <metadata> content.
func domainWith(meta string) []byte {
	return []byte(`<domain type='qemu' id='1'><name>t</name><uuid>8ad61ae1-0447-41a9-a1ed-d53ce317ff72</uuid>
<metadata>` + meta + `</metadata>
<devices>
<interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='vnet0'/></interface>
<interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='br0'/><target dev='vnet1'/><vlan><tag id='7'/></vlan></interface>
</devices></domain>`)
}

const ns = `xmlns:vifsec="https://vifsec.dev/xmlns/libvirt/1"`

func TestMetadataErrors(t *testing.T) {
	for _, tc := range []struct {
		name, meta string
		want       []string
		fail       FailMode
	}{
		{"unknown attribute", `<vifsec:vm ` + ns + ` tennant="acme"/>`,
			[]string{`<vifsec:vm>: unknown attribute tennant="acme"; it takes tenant, policy and fail`}, FailOpen},
		{"bad tenant", `<vifsec:vm ` + ns + ` tenant="Acme Corp"/>`,
			[]string{`<vifsec:vm tenant="Acme Corp">: "Acme Corp" contains ' '`}, FailOpen},
		{"fail typo is closed", `<vifsec:vm ` + ns + ` tenant="acme" fail="close"/>`,
			[]string{`<vifsec:vm fail="close">: not a fail mode; use open`}, FailClosed},
		{"bad policy", `<vifsec:vm ` + ns + ` tenant="acme" policy="-x"/>`,
			[]string{`<vifsec:vm policy="-x">`}, FailOpen},
		{"no tenant anywhere", `<vifsec:vm ` + ns + `/>`,
			[]string{`interface 0 (type ethernet, mac 52:54:00:00:00:01): no tenant; give tenant= in <vifsec:vm> or in <vifsec:interface mac="52:54:00:00:00:01">`}, FailOpen},
		{"two vm elements", `<vifsec:vm ` + ns + ` tenant="a"/><vifsec:vm ` + ns + ` tenant="b"/>`,
			[]string{"<metadata> has 2 <vifsec:vm> elements"}, FailOpen},
		{"interface not in domain", `<vifsec:vm ` + ns + ` tenant="acme"><vifsec:interface mac="52:54:00:00:00:09"/></vifsec:vm>`,
			[]string{`<vifsec:interface mac="52:54:00:00:00:09">: the domain has no <interface> with this MAC`}, FailOpen},
		{"interface twice", `<vifsec:vm ` + ns + ` tenant="acme"><vifsec:interface mac="52:54:00:00:00:01"/><vifsec:interface mac="52:54:00:00:00:01" vlan="3"/></vifsec:vm>`,
			[]string{`<vifsec:interface mac="52:54:00:00:00:01"> is given twice`}, FailOpen},
		{"interface without mac", `<vifsec:vm ` + ns + ` tenant="acme"><vifsec:interface vlan="3"/></vifsec:vm>`,
			[]string{`<vifsec:interface>: no mac attribute`}, FailOpen},
		{"bad interface attributes", `<vifsec:vm ` + ns + ` tenant="acme"><vifsec:interface mac="52:54:00:00:00:01" vlan="5000" ip="2001:db8::1 nope" protect="maybe" dev="a/b" name="x y" colour="red"/></vifsec:vm>`,
			[]string{
				`<vifsec:interface mac="52:54:00:00:00:01"> vlan="5000": "5000" is not a VLAN ID`,
				`ip="2001:db8::1 nope"`,
				`protect="maybe": use yes (the default) or no`,
				`dev="a/b": not an interface name`,
				`name="x y"`,
				`unknown attribute colour="red"; it takes mac, name, tenant, vlan, dev, ip and protect`,
			}, FailOpen},
		{"multicast mac", `<vifsec:vm ` + ns + ` tenant="acme"><vifsec:interface mac="01:00:5e:00:00:01"/></vifsec:vm>`,
			[]string{`mac="01:00:5e:00:00:01"`}, FailOpen},
		{"interface in another namespace", `<vifsec:vm ` + ns + ` tenant="acme"><o:interface xmlns:o="urn:other" mac="52:54:00:00:00:01"/></vifsec:vm>`,
			[]string{`<vifsec:vm>: <interface> in namespace "urn:other"`}, FailOpen},
		{"unknown child", `<vifsec:vm ` + ns + ` tenant="acme"><vifsec:nic mac="52:54:00:00:00:01"/></vifsec:vm>`,
			[]string{`<vifsec:vm>: unknown element <nic>`}, FailOpen},
		{"vlan not on the interface's tag", `<vifsec:vm ` + ns + ` tenant="acme"><vifsec:interface mac="52:54:00:00:00:02" vlan="8"/></vifsec:vm>`,
			[]string{`vlan=8 in <vifsec:interface> is not one of the interface's <vlan> tags (7)`}, FailOpen},
		{"same name twice", `<vifsec:vm ` + ns + ` tenant="acme"><vifsec:interface mac="52:54:00:00:00:01" name="a"/><vifsec:interface mac="52:54:00:00:00:02" name="a"/></vifsec:vm>`,
			[]string{`interfaces 0 and 1 would both be VM "a"`}, FailOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := domainWith(tc.meta)
			d, err := ParseDomain(b)
			if err == nil {
				_, err = d.Plan(&PlanOptions{NeedDev: true})
			}
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if d == nil || d.Meta == nil || d.Meta.Fail != tc.fail {
				t.Errorf("Meta %+v; want fail mode %v", d, tc.fail)
			}
		})
	}
}

func TestMetadataAccepted(t *testing.T) {
	b := domainWith(`<x:vm xmlns:x="https://vifsec.dev/xmlns/libvirt/1" tenant="acme" policy="web" fail="open">
		<x:interface mac="52:54:00:00:00:01" name="front" ip="2001:db8:1::121"/>
		<x:interface mac="52:54:00:00:00:02" tenant="globex" dev="tapx" protect="yes"/>
	</x:vm><other xmlns="urn:x"><vm tenant="not-ours"/></other>`)
	// As a hand-written XML may have it: children in no namespace.
	plain, err := ParseDomain(domainWith(`<vifsec:vm ` + ns + ` tenant="acme"><interface mac="52:54:00:00:00:01" name="front"/></vifsec:vm>`))
	if err != nil || len(plain.Meta.Interfaces) != 1 || plain.Meta.Interfaces[0].Name != "front" {
		t.Fatalf("children without namespace: %+v %v", plain, err)
	}
	d, err := ParseDomain(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Meta.Policy != "web" || d.Meta.Fail != FailOpen || d.Meta.Tenant != "acme" {
		t.Fatalf("meta %+v", d.Meta)
	}
	bs, err := d.Plan(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []tenant.VM{
		{Name: "front", Tenant: "acme", Dev: "vnet0", MAC: mac("52:54:00:00:00:01"), IPs: []netip.Addr{netip.MustParseAddr("2001:db8:1::121")}, Origin: "libvirt:8ad61ae1-0447-41a9-a1ed-d53ce317ff72"},
		{Name: "t-525400000002", Tenant: "globex", Dev: "tapx", MAC: mac("52:54:00:00:00:02"), VLAN: 7, Origin: "libvirt:8ad61ae1-0447-41a9-a1ed-d53ce317ff72"},
	}
	if len(bs) != 2 {
		t.Fatalf("bindings %+v", bs)
	}
	for i := range want {
		g := bs[i].VM
		if g.Name != want[i].Name || g.Tenant != want[i].Tenant || g.Dev != want[i].Dev || g.MAC != want[i].MAC ||
			g.VLAN != want[i].VLAN || g.Origin != want[i].Origin || len(g.IPs) != len(want[i].IPs) {
			t.Errorf("binding %d = %+v, want %+v", i, g, want[i])
		}
	}
}

func TestFailModeOf(t *testing.T) {
	for _, tc := range []struct {
		name, xml string
		want      FailMode
		ours      bool
	}{
		{"not ours", `<domain><name>x</name`, FailOpen, false},
		{"default open", `<domain><metadata><v:vm xmlns:v="https://vifsec.dev/xmlns/libvirt/1" tenant="a"/></metadata><devices><interface`, FailOpen, true},
		{"closed before the break", `<domain><metadata><v:vm xmlns:v="https://vifsec.dev/xmlns/libvirt/1" fail="closed"/></metadata><devices><<`, FailClosed, true},
		{"open before the break", `<domain><metadata><v:vm xmlns:v="https://vifsec.dev/xmlns/libvirt/1" fail="open"/></metadata></oops>`, FailOpen, true},
		{"broken before the element", `<domain><<metadata><v:vm xmlns:v="https://vifsec.dev/xmlns/libvirt/1" fail="open"/>`, FailClosed, true},
		{"typo", `<domain><metadata><v:vm xmlns:v="https://vifsec.dev/xmlns/libvirt/1" fail="opne"/>`, FailClosed, true},
		{"namespace only in text", `<domain><description>see https://vifsec.dev/xmlns/libvirt/1</description></domain>`, FailClosed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ours := FailModeOf([]byte(tc.xml))
			if got != tc.want || ours != tc.ours {
				t.Fatalf("FailModeOf = %v, %v; want %v, %v", got, ours, tc.want, tc.ours)
			}
		})
	}
	// A domain that only mentions the namespace in text has no metadata:
	// ParseDomain says so, and the hook leaves it alone.
	d, err := ParseDomain([]byte(`<domain><name>x</name><uuid>8ad61ae1-0447-41a9-a1ed-d53ce317ff72</uuid><description>see https://vifsec.dev/xmlns/libvirt/1</description></domain>`))
	if err != nil || d.Meta != nil {
		t.Fatalf("ParseDomain = %+v, %v; want no metadata", d, err)
	}
}

func TestSniffUUID(t *testing.T) {
	if got := SniffUUID(readTestdata(t, "malformed-closed.xml")); got != "77777777-8888-4999-aaaa-bbbbccccdddd" {
		t.Fatalf("SniffUUID(malformed) = %q", got)
	}
	for _, x := range []string{`<domain><uuid>nope</uuid></domain>`, `<domain><name><uuid>8ad61ae1-0447-41a9-a1ed-d53ce317ff72</uuid></name></domain>`, `<domain`} {
		if got := SniffUUID([]byte(x)); got != "" {
			t.Errorf("SniffUUID(%q) = %q, want \"\"", x, got)
		}
	}
}

func TestDefaultVMName(t *testing.T) {
	m := mac("52:54:00:ab:cd:ef")
	for _, tc := range []struct{ domain, want string }{
		{"web1", "web1-525400abcdef"},
		{"db.prod_2-a", "db.prod_2-a-525400abcdef"},
		{"my vm/ü", "my_vm__-525400abcdef"},
		{"-x", "d_x-525400abcdef"},
		{"", "domain-525400abcdef"},
		{strings.Repeat("a", 80), strings.Repeat("a", 51) + "-525400abcdef"},
		{"_" + strings.Repeat("b", 80), "d_" + strings.Repeat("b", 49) + "-525400abcdef"},
	} {
		got := DefaultVMName(tc.domain, m)
		if got != tc.want {
			t.Errorf("DefaultVMName(%q) = %q, want %q", tc.domain, got, tc.want)
		}
		if err := tenant.ValidName(got); err != nil {
			t.Errorf("DefaultVMName(%q) = %q: %v", tc.domain, got, err)
		}
	}
}

func TestPCIAddress(t *testing.T) {
	for _, tc := range []struct {
		d, b, s, f, want string
		err              bool
	}{
		{"0x0000", "0x03", "0x10", "0x2", "0000:03:10.2", false},
		{"", "3", "16", "2", "0000:03:10.2", false},
		{"0x0001", "0xff", "0x1f", "0x7", "0001:ff:1f.7", false},
		{"0x0000", "0x03", "0x20", "0x0", "", true},
		{"0x0000", "0x03", "0x10", "0x8", "", true},
		{"0x0000", "zz", "0x10", "0x0", "", true},
	} {
		got, err := pciAddress(tc.d, tc.b, tc.s, tc.f)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("pciAddress(%s,%s,%s,%s) = %q, %v; want %q, error %v", tc.d, tc.b, tc.s, tc.f, got, err, tc.want, tc.err)
		}
	}
}
