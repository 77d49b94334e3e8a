package ikectl

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
)

// Lifetimes, DPD and rekey-now, from the operator's policy to the engine.

func TestEnginePolicyTimers(t *testing.T) {
	local := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name      string
		edit      func(p *ikeconf.Policy)
		ikeLife   time.Duration
		childLife time.Duration
		dpd       time.Duration
		clear     bool
	}{
		{name: "defaults, initiating", edit: func(*ikeconf.Policy) {}, ikeLife: 4 * time.Hour, childLife: time.Hour, clear: false},
		{name: "defaults, responding", edit: func(p *ikeconf.Policy) { p.RemoteAddress = netip.Addr{} }, ikeLife: 4 * time.Hour, childLife: time.Hour, clear: true},
		{name: "set", edit: func(p *ikeconf.Policy) {
			p.IKELifetime, p.ESPLifetime, p.DPDInterval, p.DPDAction = 20*time.Minute, 90*time.Second, 30*time.Second, ikeconf.DPDClear
		}, ikeLife: 20 * time.Minute, childLife: 90 * time.Second, dpd: 30 * time.Second, clear: true},
		{name: "restart", edit: func(p *ikeconf.Policy) { p.DPDInterval, p.DPDAction = time.Second, ikeconf.DPDRestart },
			ikeLife: 4 * time.Hour, childLife: time.Hour, dpd: time.Second, clear: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := pskPolicy("p1", "", "192.0.2.1/32", "192.0.2.2/32", "192.0.2.2")
			d.Mode = sa.ModeTransport
			tc.edit(&d)
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
			p, why := enginePolicy(daemon.IKEPolicyConfig{Policy: d, Local: local})
			if why != "" {
				t.Fatal(why)
			}
			if p.IKELifetime != tc.ikeLife || p.ChildLifetime != tc.childLife || p.DPD != tc.dpd || p.DPDClear != tc.clear {
				t.Errorf("engine policy: IKE %v child %v DPD %v clear %v; want %v %v %v %v",
					p.IKELifetime, p.ChildLifetime, p.DPD, p.DPDClear, tc.ikeLife, tc.childLife, tc.dpd, tc.clear)
			}
			if err := p.Validate(); err != nil {
				t.Errorf("engine refuses it: %v", err)
			}
		})
	}
}

// TestEnginePolicyForceEncap: --encapsulation udp reaches the IKE engine.
func TestEnginePolicyForceEncap(t *testing.T) {
	for _, force := range []bool{false, true} {
		d := pskPolicy("p1", "", "192.0.2.1/32", "192.0.2.2/32", "192.0.2.2")
		d.ForceEncap = force
		p, why := enginePolicy(daemon.IKEPolicyConfig{Policy: d, Local: netip.MustParseAddr("192.0.2.1")})
		if why != "" || p.ForceEncap != force {
			t.Errorf("ForceEncap %v: engine policy has %v (%s)", force, p.ForceEncap, why)
		}
	}
}

func TestBackToBackRekeyNowAndLifetime(t *testing.T) {
	w := newWire(t)
	a := newGateway(t, w, "a", "52:54:00:00:00:0a", 10, "2001:db8:1::121")
	b := newGateway(t, w, "b", "52:54:00:00:00:0b", 20, "2001:db8:2::5")
	pa := pskPolicy("p1", "vm1", "2001:db8:1::121/128", "2001:db8:2::/64", "2001:db8:2::5")
	pa.ESPLifetime, pa.IKELifetime, pa.DPDInterval = 10*time.Minute, 2*time.Hour, 30*time.Second
	mustW(t)(a.d.CreatePolicy(pa))
	mustW(t)(b.d.CreatePolicy(pskPolicy("p1", "vm1", "2001:db8:2::5/128", "2001:db8:1::/64", "")))
	// Nothing is established yet.
	if _, err := a.d.RekeyPolicy("t1", "p1", false); daemon.CodeOf(err) != daemon.CodeNotFound {
		t.Errorf("rekey before IKE ran: %v", err)
	}
	start(t, w, a, b)
	ra := waitChildren(t, a, 1)[0]
	// --esp-lifetime is the Child SA's hard lifetime in the SA database.
	in := a.d.SADB().Lookup(sa.Key{Scope: a.scope, SPI: ra.InboundSPI})
	if got := in.ConfigWithKeys().Lifetime.Hard.Seconds; got != 600 {
		t.Errorf("child hard lifetime %d s, want 600 (--esp-lifetime 10m)", got)
	}
	// Rekey the Child SA now: a new pair replaces the old on both sides.
	n, err := a.d.RekeyPolicy("t1", "p1", false)
	if err != nil || n != 1 {
		t.Fatalf("RekeyPolicy child = %d, %v", n, err)
	}
	testutil.WaitUntil(t, "the child rekeyed on a", 10*time.Second, func() bool {
		rows := waitChildren(t, a, 1)
		return rows[0].InboundSPI != ra.InboundSPI
	})
	ra, rb := waitChildren(t, a, 1)[0], waitChildren(t, b, 1)[0]
	checkPair(t, a, b, ra, rb)
	// Rekey the IKE SA now, from the responder: new SPIs, same child.
	before, err := a.d.IKESAs("t1")
	must(t, err)
	n, err = b.d.RekeyPolicy("t1", "p1", true)
	if err != nil || n != 1 {
		t.Fatalf("RekeyPolicy IKE = %d, %v", n, err)
	}
	testutil.WaitUntil(t, "the IKE SA rekeyed", 10*time.Second, func() bool {
		s, _ := a.d.IKESAs("t1")
		return len(s) == 1 && s[0].State == "ESTABLISHED" && s[0].InitiatorSPI != before[0].InitiatorSPI
	})
	if got := waitChildren(t, a, 1)[0]; got.InboundSPI != ra.InboundSPI {
		t.Error("an IKE SA rekey replaced the child")
	}
	// Unknown policies and tenants are refused by name.
	if _, err := a.d.RekeyPolicy("t1", "nope", false); daemon.CodeOf(err) != daemon.CodeNotFound {
		t.Errorf("rekey of an unknown policy: %v", err)
	}
	if _, err := a.d.RekeyPolicy("t9", "p1", true); daemon.CodeOf(err) != daemon.CodeNotFound {
		t.Errorf("rekey in an unknown tenant: %v", err)
	}
}
