package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/tenant"
)

// Two tenants' underlay policies toward the same VTEP are told apart by
// a responder only through distinct remote identities (or selectors, or
// peers): otherwise `policy create` warns.
func TestUnderlayPolicyClashWarning(t *testing.T) {
	pol := func(tn, name, remoteID string, edit ...func(*ikeconf.Policy)) ikeconf.Policy {
		p := ikeconf.Policy{Tenant: tn, Name: name, LocalSubnets: pfx("203.0.113.1/32"), RemoteSubnets: pfx("203.0.113.2/32"),
			RemoteAddress: netip.MustParseAddr("203.0.113.2"), RemoteIdentity: remoteID, Auth: ikeconf.AuthPSK, PSK: []byte(testPSK)}
		for _, e := range edit {
			e(&p)
		}
		return p
	}
	clash := func(ws []string) string {
		for _, w := range ws {
			if strings.Contains(w, "cannot tell which tenant") {
				return w
			}
		}
		return ""
	}
	// newD has tenant t1's underlay policy u1, which expects the peer to
	// prove fqdn:vtep-b.t1.example.
	newD := func(t *testing.T) *Daemon {
		d := setup(t, storetest.NewMemory())
		must(t, d.AddTenant(tenant.Tenant{Name: "t2", VNI: 200}))
		must(t, d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayVXLAN, VXLANLocal: netip.MustParseAddr("203.0.113.1"), Protect: ProtectUnderlay}))
		w, err := d.CreatePolicy(pol("t1", "u1", "fqdn:vtep-b.t1.example"))
		must(t, err)
		if c := clash(w); c != "" {
			t.Errorf("first underlay policy: unexpected warning %q", c)
		}
		return d
	}
	for _, tc := range []struct {
		name string
		p    ikeconf.Policy
		want bool
	}{
		{"no remote identity", pol("t2", "u2", ""), true},
		{"the same identity spelt otherwise", pol("t2", "u2", "@vtep-b.t1.example"), true},
		{"a responder-only policy", pol("t2", "u2", "", func(p *ikeconf.Policy) { p.RemoteAddress = netip.Addr{} }), true},
		{"overlapping subnets", pol("t2", "u2", "", func(p *ikeconf.Policy) { p.RemoteSubnets = pfx("203.0.113.0/24") }), true},
		{"a distinct identity", pol("t2", "u2", "fqdn:vtep-b.t2.example"), false},
		{"disjoint remote subnets", pol("t2", "u2", "", func(p *ikeconf.Policy) { p.RemoteSubnets, p.RemoteAddress = pfx("198.51.100.0/24"), netip.Addr{} }), false},
		{"another peer", pol("t2", "u2", "", func(p *ikeconf.Policy) {
			p.RemoteSubnets, p.RemoteAddress = pfx("203.0.113.0/24"), netip.MustParseAddr("203.0.113.3")
		}), false},
		{"a VM policy", pol("t1", "u2", "", func(p *ikeconf.Policy) {
			p.VM, p.LocalSubnets, p.RemoteSubnets, p.RemoteAddress = "vm1", pfx("2001:db8:1::121/128"), pfx("2001:db8:2::/64"), netip.Addr{}
		}), false},
		{"the same tenant", pol("t1", "u2", ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newD(t)
			w, err := d.CreatePolicy(tc.p)
			must(t, err)
			c := clash(w)
			if (c != "") != tc.want {
				t.Errorf("warnings %q, want a clash warning: %v", w, tc.want)
			}
			if c != "" && (!strings.Contains(c, "policy u1 of tenant t1") || !strings.Contains(c, "--remote-identity")) {
				t.Errorf("warning %q should name policy u1 of tenant t1 and --remote-identity", c)
			}
			// Modifying a policy does not compare it with itself.
			w, err = d.ModifyPolicy("t1", "u1", func(p *ikeconf.Policy) error { p.LocalIdentity = "fqdn:vtep-a.t1.example"; return nil })
			must(t, err)
			if c := clash(w); (c != "") != tc.want {
				t.Errorf("modify of u1: warnings %q, want a clash warning: %v", w, tc.want)
			}
		})
	}
}
