package daemon

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/storetest"
)

func TestParseTimerValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30s", 30 * time.Second, false},
		{"5m", 5 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"3600", time.Hour, false},
		{" 10s ", 10 * time.Second, false},
		{"off", 0, false},
		{"0", 0, false},
		{"1.5s", 1500 * time.Millisecond, false},
		{"-5s", 0, true},
		{"1d", 0, true},
		{"", 0, true},
		{"fast", 0, true},
		{"99999999999", 0, true},
	} {
		got, err := ParseTimerValue(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseTimerValue(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "30s") {
			t.Errorf("ParseTimerValue(%q): message %q does not say what is accepted", tc.in, err)
		}
	}
	for d, want := range map[time.Duration]string{
		4 * time.Hour: "4h", time.Hour + 30*time.Minute: "1h30m", 30 * time.Second: "30s", 0: "off",
		90 * time.Second: "1m30s", 2*time.Hour + 30*time.Second: "2h0m30s", 10 * time.Minute: "10m",
	} {
		if got := FormatTimer(d); got != want {
			t.Errorf("FormatTimer(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseTimerValue(FormatTimer(d)); err != nil || back != d {
			t.Errorf("FormatTimer(%v) does not parse back: %v, %v", d, back, err)
		}
	}
	for _, s := range []string{"clear", "CLEAR", "restart", ""} {
		a, err := ParseDPDAction(s)
		if err != nil || a.String() != strings.ToLower(s) {
			t.Errorf("ParseDPDAction(%q) = %v, %v", s, a, err)
		}
	}
	if _, err := ParseDPDAction("hold"); err == nil || !strings.Contains(err.Error(), "clear") {
		t.Errorf("ParseDPDAction(hold) = %v", err)
	}
}

func TestPolicyTimersPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.OpenBolt(path, 0)
	must(t, err)
	d := setup(t, st)
	p := pskPolicy("timed")
	p.IKELifetime, p.ESPLifetime, p.DPDInterval, p.DPDAction = 20*time.Minute, 90*time.Second, 30*time.Second, DPDClear
	must2(t)(d.CreatePolicy(p))
	plain := pskPolicy("plain")
	must2(t)(d.CreatePolicy(plain))
	infos, err := d.Policies("t1")
	must(t, err)
	got := map[string]IKEPolicy{}
	for _, i := range infos {
		got[i.Policy.Name] = i.Policy
	}
	if g := got["timed"]; g.IKELifetime != 20*time.Minute || g.ESPLifetime != 90*time.Second || g.DPDInterval != 30*time.Second || g.DPDAction != DPDClear {
		t.Errorf("listed %+v", g)
	}
	g := got["plain"]
	if ikeL, espL := g.Lifetimes(); ikeL != 4*time.Hour || espL != time.Hour || g.DPDInterval != 0 || g.EffectiveDPDAction() != DPDRestart {
		t.Errorf("defaults: lifetimes %v %v, DPD %v %v", ikeL, espL, g.DPDInterval, g.EffectiveDPDAction())
	}
	// Modify: back to the defaults, then new values.
	_, err = d.ModifyPolicy("t1", "timed", func(p *IKEPolicy) error {
		p.IKELifetime, p.DPDAction = 0, DPDRestart
		p.ESPLifetime = 10 * time.Second
		return nil
	})
	must(t, err)
	before := observeIKE(d)
	must(t, st.Close())
	st2, err := store.OpenBolt(path, 0)
	must(t, err)
	defer st2.Close()
	d2, err := New(st2, nil)
	must(t, err)
	if after := observeIKE(d2); !reflect.DeepEqual(before, after) {
		t.Errorf("restored IKE state differs:\nbefore %+v\nafter  %+v", before.Policies, after.Policies)
	}
	if r := d2.ike.policies["t1/timed"]; r.IKELifetime != 0 || r.ESPLifetime != 10*time.Second || r.DPDInterval != 30*time.Second || r.DPDAction != DPDRestart {
		t.Errorf("restored %+v", r)
	}
	// The record is readable: timers as an operator writes them.
	recs, err := st2.Load()
	must(t, err)
	var rec string
	for _, r := range recs {
		if r.Kind == store.KindPolicy && r.Name == "t1/timed" {
			rec = string(r.Value)
		}
	}
	if !strings.Contains(rec, `"esp_lifetime":"10s"`) || !strings.Contains(rec, `"dpd_action":"restart"`) || strings.Contains(rec, "ike_lifetime") {
		t.Errorf("stored record %s", rec)
	}
}

func TestPolicyTimerRefusalsChangeNothing(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	must2(t)(d.CreatePolicy(pskPolicy("pol1")))
	mod := func(f func(p *IKEPolicy)) IKEPolicy {
		p := pskPolicy("x")
		f(&p)
		return p
	}
	create := func(p IKEPolicy) func() error { return func() error { _, err := d.CreatePolicy(p); return err } }
	modify := func(f func(p *IKEPolicy)) func() error {
		return func() error {
			_, err := d.ModifyPolicy("t1", "pol1", func(p *IKEPolicy) error { f(p); return nil })
			return err
		}
	}
	tests := []struct {
		name string
		do   func() error
		flag string
	}{
		{"ike lifetime too short", create(mod(func(p *IKEPolicy) { p.IKELifetime = 9 * time.Second })), "--ike-lifetime 9s"},
		{"ike lifetime too long", create(mod(func(p *IKEPolicy) { p.IKELifetime = 8 * 24 * time.Hour })), "--ike-lifetime"},
		{"ike lifetime negative", create(mod(func(p *IKEPolicy) { p.IKELifetime = -time.Hour })), "--ike-lifetime"},
		{"esp lifetime too short", create(mod(func(p *IKEPolicy) { p.ESPLifetime = time.Second })), "--esp-lifetime 1s"},
		{"dpd too short", create(mod(func(p *IKEPolicy) { p.DPDInterval = 500 * time.Millisecond })), "--dpd-interval"},
		{"dpd too long", create(mod(func(p *IKEPolicy) { p.DPDInterval = 25 * time.Hour })), "--dpd-interval"},
		{"dpd negative", create(mod(func(p *IKEPolicy) { p.DPDInterval = -time.Second })), "--dpd-interval"},
		{"dpd action unknown", create(mod(func(p *IKEPolicy) { p.DPDAction = 7 })), "--dpd-action"},
		{"restart without remote", create(mod(func(p *IKEPolicy) { p.DPDAction, p.RemoteAddress = DPDRestart, netip.Addr{} })), "--remote-address"},
		{"modify lifetime", modify(func(p *IKEPolicy) { p.ESPLifetime = time.Second }), "--esp-lifetime"},
		{"modify drops remote under restart", modify(func(p *IKEPolicy) { p.DPDAction, p.RemoteAddress = DPDRestart, netip.Addr{} }), "--dpd-action restart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, ikeBefore, commits, gen := observe(d), observeIKE(d), st.Commits(), d.Generation()
			err := tt.do()
			if err == nil {
				t.Fatal("accepted, want refused")
			}
			if CodeOf(err) != CodeInvalid {
				t.Errorf("code %v, want invalid (%v)", CodeOf(err), err)
			}
			if !strings.Contains(err.Error(), tt.flag) {
				t.Errorf("message %q does not name %s", err, tt.flag)
			}
			if after := observe(d); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed")
			}
			if after := observeIKE(d); !reflect.DeepEqual(ikeBefore, after) {
				t.Errorf("IKE state changed")
			}
			if st.Commits() != commits || d.Generation() != gen {
				t.Errorf("refusal committed or bumped the generation")
			}
		})
	}
	// Bounds are inclusive.
	ok := pskPolicy("edge")
	ok.IKELifetime, ok.ESPLifetime, ok.DPDInterval = MinLifetime, MaxLifetime, MinDPDInterval
	must2(t)(d.CreatePolicy(ok))
}

func TestRestoreRefusesBadTimers(t *testing.T) {
	good := pskPolicy("p")
	good.VM = ""
	for name, edit := range map[string]func(r *policyRecord){
		"bad duration": func(r *policyRecord) { r.IKELifetime = "soon" },
		"out of range": func(r *policyRecord) { r.DPDInterval = "1ms" },
		"bad action":   func(r *policyRecord) { r.DPDAction = "hold" },
	} {
		t.Run(name, func(t *testing.T) {
			var r policyRecord
			if err := json.Unmarshal(encodePolicy(&good), &r); err != nil {
				t.Fatal(err)
			}
			edit(&r)
			st := storetest.NewMemory()
			setup(t, st) // stores tenant t1 and its VMs
			must(t, st.Commit([]store.Op{store.Put(store.KindPolicy, "t1/p", mustJSON(r))}))
			if _, err := New(st, nil); err == nil || !strings.Contains(err.Error(), `"t1/p"`) {
				t.Fatalf("New = %v, want an error naming the policy", err)
			}
		})
	}
}
