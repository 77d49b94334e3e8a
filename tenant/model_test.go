package tenant

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/sa"
)

// seedPolicy is the seed's `sp add` with the prefixes written correctly:
// 2001:db8:1::/64 → 2002:db8:1::/64, tcp 23 → 25, out, ipsec, sa1.
func seedPolicy() Policy {
	return Policy{
		Name:      "sp_2",
		VM:        "vm1",
		Src:       netip.MustParsePrefix("2001:db8:1::/64"),
		Dst:       netip.MustParsePrefix("2002:db8:1::/64"),
		SrcPort:   PortNumber(23),
		DstPort:   PortNumber(25),
		ULProto:   ProtoTCP,
		Direction: sa.DirOut,
		Action:    ActionIPsec,
		Mode:      sa.ModeTransport,
		SAName:    "sa1",
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(p *Policy)
		errHas []string // empty: valid
	}{
		{name: "seed", edit: func(p *Policy) {}},
		{name: "tunnel", edit: func(p *Policy) { p.Mode = sa.ModeTunnel }},
		{name: "any ports any proto", edit: func(p *Policy) { p.SrcPort, p.DstPort, p.ULProto = PortAny, PortAny, ProtoAny }},
		{name: "port with any proto", edit: func(p *Policy) { p.ULProto = ProtoAny }},
		{name: "ipv4", edit: func(p *Policy) {
			p.Src, p.Dst = netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")
		}},
		{name: "discard without sa or mode", edit: func(p *Policy) { p.Action, p.SAName, p.Mode = ActionDiscard, "", sa.ModeInvalid }},
		{name: "none with mode as pasted from esxcli", edit: func(p *Policy) { p.Action, p.SAName = ActionNone, "" }},
		{name: "icmp6 type", edit: func(p *Policy) { p.ULProto, p.SrcPort, p.DstPort = ProtoICMP6, PortAny, PortNumber(128) }},
		{name: "icmp4 type", edit: func(p *Policy) {
			p.Src, p.Dst = netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("0.0.0.0/0")
			p.ULProto, p.SrcPort, p.DstPort = ProtoICMP, PortAny, PortNumber(8)
		}},

		{name: "seed 000: ipsec without sa-name", edit: func(p *Policy) { p.SAName = "" }, errHas: []string{"--action ipsec requires --sa-name"}},
		{name: "ipsec without mode", edit: func(p *Policy) { p.Mode = sa.ModeInvalid }, errHas: []string{"--action ipsec requires --sp-mode"}},
		{name: "bad sa name", edit: func(p *Policy) { p.SAName = "sa 1" }, errHas: []string{"--sa-name: \"sa 1\" contains ' '"}},
		{name: "discard with sa", edit: func(p *Policy) { p.Action = ActionDiscard }, errHas: []string{"--sa-name sa1 is only used with --action ipsec"}},
		{name: "action unset", edit: func(p *Policy) { p.Action = ActionInvalid }, errHas: []string{"--action: not set"}},
		{name: "mixed families", edit: func(p *Policy) { p.Dst = netip.MustParsePrefix("203.0.113.0/24") }, errHas: []string{"different address families"}},
		{name: "host bits", edit: func(p *Policy) { p.Src = netip.MustParsePrefix("2001:db8:1::5/64") }, errHas: []string{"--sp-source: 2001:db8:1::5/64 has host bits set; write 2001:db8:1::/64"}},
		{name: "no source", edit: func(p *Policy) { p.Src = netip.Prefix{} }, errHas: []string{"--sp-source: not set"}},
		{name: "no ports", edit: func(p *Policy) { p.SrcPort, p.DstPort = Port{}, Port{} }, errHas: []string{"--source-port: not set", "--destination-port: not set"}},
		{name: "no proto", edit: func(p *Policy) { p.ULProto = ProtoInvalid }, errHas: []string{"--upper-layer-protocol: not set"}},
		{name: "no direction", edit: func(p *Policy) { p.Direction = sa.DirInvalid }, errHas: []string{"--flow-direction: not set"}},
		{name: "bad mode", edit: func(p *Policy) { p.Mode = sa.Mode(9) }, errHas: []string{"--sp-mode: Mode(9)"}},
		{name: "icmp6 type too big", edit: func(p *Policy) { p.ULProto, p.SrcPort, p.DstPort = ProtoICMP6, PortAny, PortNumber(256) }, errHas: []string{"--destination-port 256 is not an icmp6 type"}},
		{name: "icmp6 with source port", edit: func(p *Policy) { p.ULProto, p.DstPort = ProtoICMP6, PortAny }, errHas: []string{"--source-port must be any with --upper-layer-protocol icmp6"}},
		{name: "icmp6 on ipv4", edit: func(p *Policy) {
			p.Src, p.Dst = netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")
			p.ULProto, p.SrcPort, p.DstPort = ProtoICMP6, PortAny, PortAny
		}, errHas: []string{"icmp6 selects IPv6 traffic"}},
		{name: "icmp on ipv6", edit: func(p *Policy) { p.ULProto, p.SrcPort, p.DstPort = ProtoICMP, PortAny, PortAny }, errHas: []string{"icmp selects IPv4 traffic"}},
		{name: "bad names", edit: func(p *Policy) { p.Name, p.VM = "", "-x" }, errHas: []string{"--sp-name: empty name", "--vm: \"-x\" starts with"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := seedPolicy()
			tt.edit(&p)
			err := p.Validate()
			if len(tt.errHas) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.errHas)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate() = %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

// TestSeedSPAdd runs the seed's `sp add` through the operator parsers.
func TestSeedSPAdd(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var p Policy
	var err error
	p.Name, p.VM, p.SAName = "sp_2", "vm1", "sa1"
	p.Src, err = ParsePrefix("2001:db8:1::/64")
	must(err)
	p.Dst, err = ParsePrefix("2002:db8:1::/64")
	must(err)
	p.SrcPort, err = ParsePort("23")
	must(err)
	p.DstPort, err = ParsePort("25")
	must(err)
	p.ULProto, err = ParseProto("tcp")
	must(err)
	p.Direction, err = sa.ParseDirection("out")
	must(err)
	p.Action, err = ParseAction("ipsec")
	must(err)
	p.Mode, err = sa.ParseMode("transport")
	must(err)
	must(p.Validate())
	if want := seedPolicy(); p != want {
		t.Fatalf("parsed %+v, want %+v", p, want)
	}
	// Seed 000 as printed: its prefixes are refused with a rewrite.
	if _, err := ParsePrefix("2001:0DB8:0001:/48"); err == nil || !strings.Contains(err.Error(), "2001:db8:1::/48") {
		t.Fatalf("seed 000 prefix: %v", err)
	}
}

func TestPolicyJSON(t *testing.T) {
	for _, p := range []Policy{seedPolicy(), {}, {Name: "d", Direction: sa.DirIn, Action: ActionDiscard, SrcPort: PortAny, DstPort: PortNumber(0)}} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", p, err)
		}
		var q Policy
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if q != p {
			t.Errorf("round trip %s: got %+v, want %+v", b, q, p)
		}
	}
	b, _ := json.Marshal(seedPolicy())
	want := `{"name":"sp_2","vm":"vm1","src":"2001:db8:1::/64","dst":"2002:db8:1::/64","src_port":"23","dst_port":"25","ul_proto":"tcp","action":"ipsec","sa_name":"sa1","direction":"out","mode":"transport"}`
	if string(b) != want {
		t.Errorf("Marshal(seed) =\n%s\nwant\n%s", b, want)
	}
	for _, bad := range []string{`{"direction":"both"}`, `{"mode":"beet"}`, `{"action":"allow"}`, `{"src_port":"x"}`, `{"ul_proto":"sctp"}`} {
		var q Policy
		if err := json.Unmarshal([]byte(bad), &q); err == nil {
			t.Errorf("Unmarshal(%s) succeeded: %+v", bad, q)
		}
	}
	if _, err := json.Marshal(Policy{Direction: 7}); err == nil {
		t.Errorf("Marshal of an unknown direction succeeded")
	}
}

func TestTenantVM(t *testing.T) {
	tn := Tenant{Name: "acme", VNI: 5001, DefaultAction: ActionNone}
	if err := tn.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tn)
	if err != nil || string(b) != `{"name":"acme","vni":5001,"default_action":"none"}` {
		t.Fatalf("Marshal(tenant) = %s, %v", b, err)
	}
	var tn2 Tenant
	if err := json.Unmarshal(b, &tn2); err != nil || tn2 != tn {
		t.Fatalf("round trip: %+v, %v", tn2, err)
	}
	bad := Tenant{Name: "", VNI: 1 << 24, DefaultAction: ActionIPsec}
	err = bad.Validate()
	for _, s := range []string{"--tenant: empty name", "--vni: 16777216", "--default-action: ipsec"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Validate(bad tenant) = %v, want %q", err, s)
		}
	}

	vm := VM{
		Name: "web1", Tenant: "acme", Dev: "vnet3", MAC: MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}, VLAN: 100,
		IPs: []netip.Addr{netip.MustParseAddr("2001:db8:1::121"), netip.MustParseAddr("192.0.2.10")},
	}
	if err := vm.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(vm)
	if err != nil || string(b) != `{"name":"web1","tenant":"acme","dev":"vnet3","mac":"52:54:00:12:34:56","vlan":100,"ips":["2001:db8:1::121","192.0.2.10"]}` {
		t.Fatalf("Marshal(vm) = %s, %v", b, err)
	}
	var vm2 VM
	if err := json.Unmarshal(b, &vm2); err != nil || !reflect.DeepEqual(vm2, vm) {
		t.Fatalf("round trip: %+v, %v", vm2, err)
	}
	badVM := VM{Name: "x", Tenant: "acme", Dev: "a-very-long-ifname0", MAC: MAC{1}, VLAN: 4095,
		IPs: []netip.Addr{netip.MustParseAddr("ff02::1"), {}, netip.MustParseAddr("fe80::1%eth0")}}
	err = badVM.Validate()
	for _, s := range []string{"--dev:", "--mac: 01:00:00:00:00:00 is a multicast", "--vlan: 4095", "--ip: ff02::1", "--ip: address 2 is not set", "--ip: fe80::1%eth0 has a zone"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Validate(bad vm) = %v, want %q", err, s)
		}
	}
	var z VM
	if err := z.Validate(); err == nil || !strings.Contains(err.Error(), "all-zero") {
		t.Errorf("zero VM: %v", err)
	}
}
