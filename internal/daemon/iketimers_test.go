package daemon

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/storetest"
)

func TestPolicyTimersPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.OpenBolt(path, 0)
	must(t, err)
	d := setup(t, st)
	p := pskPolicy("timed")
	p.IKELifetime, p.ESPLifetime, p.DPDInterval, p.DPDAction = 20*time.Minute, 90*time.Second, 30*time.Second, ikeconf.DPDClear
	must2(t)(d.CreatePolicy(p))
	plain := pskPolicy("plain")
	must2(t)(d.CreatePolicy(plain))
	infos, err := d.Policies("t1")
	must(t, err)
	got := map[string]ikeconf.Policy{}
	for _, i := range infos {
		got[i.Policy.Name] = i.Policy
	}
	if g := got["timed"]; g.IKELifetime != 20*time.Minute || g.ESPLifetime != 90*time.Second || g.DPDInterval != 30*time.Second || g.DPDAction != ikeconf.DPDClear {
		t.Errorf("listed %+v", g)
	}
	g := got["plain"]
	if ikeL, espL := g.Lifetimes(); ikeL != 4*time.Hour || espL != time.Hour || g.DPDInterval != 0 || g.EffectiveDPDAction() != ikeconf.DPDRestart {
		t.Errorf("defaults: lifetimes %v %v, DPD %v %v", ikeL, espL, g.DPDInterval, g.EffectiveDPDAction())
	}
	// Modify: back to the defaults, then new values.
	_, err = d.ModifyPolicy("t1", "timed", func(p *ikeconf.Policy) error {
		p.IKELifetime, p.DPDAction = 0, ikeconf.DPDRestart
		p.ESPLifetime = 10 * time.Second
		return nil
	})
	must(t, err)
	before := observeIKE(d)
	d2, st2 := reopen(t, st, path)
	if after := observeIKE(d2); !reflect.DeepEqual(before, after) {
		t.Errorf("restored IKE state differs:\nbefore %+v\nafter  %+v", before.Policies, after.Policies)
	}
	if r := d2.ike.policies["t1/timed"]; r.IKELifetime != 0 || r.ESPLifetime != 10*time.Second || r.DPDInterval != 30*time.Second || r.DPDAction != ikeconf.DPDRestart {
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
	mod := func(f func(p *ikeconf.Policy)) ikeconf.Policy {
		p := pskPolicy("x")
		f(&p)
		return p
	}
	create := func(p ikeconf.Policy) func() error { return func() error { _, err := d.CreatePolicy(p); return err } }
	modify := func(f func(p *ikeconf.Policy)) func() error {
		return func() error {
			_, err := d.ModifyPolicy("t1", "pol1", func(p *ikeconf.Policy) error { f(p); return nil })
			return err
		}
	}
	tests := []struct {
		name string
		do   func() error
		flag string
	}{
		{"ike lifetime too short", create(mod(func(p *ikeconf.Policy) { p.IKELifetime = 9 * time.Second })), "--ike-lifetime 9s"},
		{"ike lifetime too long", create(mod(func(p *ikeconf.Policy) { p.IKELifetime = 8 * 24 * time.Hour })), "--ike-lifetime"},
		{"ike lifetime negative", create(mod(func(p *ikeconf.Policy) { p.IKELifetime = -time.Hour })), "--ike-lifetime"},
		{"esp lifetime too short", create(mod(func(p *ikeconf.Policy) { p.ESPLifetime = time.Second })), "--esp-lifetime 1s"},
		{"dpd too short", create(mod(func(p *ikeconf.Policy) { p.DPDInterval = 500 * time.Millisecond })), "--dpd-interval"},
		{"dpd too long", create(mod(func(p *ikeconf.Policy) { p.DPDInterval = 25 * time.Hour })), "--dpd-interval"},
		{"dpd negative", create(mod(func(p *ikeconf.Policy) { p.DPDInterval = -time.Second })), "--dpd-interval"},
		{"dpd action unknown", create(mod(func(p *ikeconf.Policy) { p.DPDAction = 7 })), "--dpd-action"},
		{"restart without remote", create(mod(func(p *ikeconf.Policy) { p.DPDAction, p.RemoteAddress = ikeconf.DPDRestart, netip.Addr{} })), "--remote-address"},
		{"modify lifetime", modify(func(p *ikeconf.Policy) { p.ESPLifetime = time.Second }), "--esp-lifetime"},
		{"modify drops remote under restart", modify(func(p *ikeconf.Policy) { p.DPDAction, p.RemoteAddress = ikeconf.DPDRestart, netip.Addr{} }), "--dpd-action restart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused(t, everything(d, st), tt.do, CodeInvalid, tt.flag)
		})
	}
	// Bounds are inclusive.
	ok := pskPolicy("edge")
	ok.IKELifetime, ok.ESPLifetime, ok.DPDInterval = ikeconf.MinLifetime, ikeconf.MaxLifetime, ikeconf.MinDPDInterval
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
