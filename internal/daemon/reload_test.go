package daemon

import (
	"encoding/json"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// state is what a daemon shows: enough to compare two daemons.
func shownState(d *Daemon) string {
	var b strings.Builder
	for _, t := range d.Tenants() {
		b.WriteString("tenant " + t.Name + "\n")
	}
	for _, v := range d.VMs() {
		j, _ := json.Marshal(v)
		b.WriteString("vm " + string(j) + "\n")
	}
	for _, s := range d.SAs() {
		b.WriteString("sa " + s.Config.String() + " vm=" + s.VM + " tenant=" + s.Tenant + " used=" + strings.Join(s.UsedBy, ",") + "\n")
	}
	for _, p := range d.SPs() {
		j, _ := json.Marshal(p)
		b.WriteString("sp " + string(j) + "\n")
	}
	for _, e := range d.FDB("") {
		b.WriteString("fdb " + e.Tenant + " " + e.MAC.String() + " " + e.Remote.String() + "\n")
	}
	if u, ok := d.Uplink(); ok {
		b.WriteString("uplink " + u.Dev + "\n")
	}
	if d.Enabled() {
		b.WriteString("enabled\n")
	}
	return b.String()
}

func load(t *testing.T, m *storetest.Memory) []store.Record {
	t.Helper()
	recs, err := m.Load()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestConverge: a daemon B follows the records that daemon A writes into
// a shared store, as a fleet host follows etcd.
func TestConverge(t *testing.T) {
	m := storetest.NewMemory()
	a := setup(t, m)
	must(t, a.SetUplink(Uplink{Dev: "eth1", Overlay: OverlayNone}))
	mustW(t)(a.AddSA("vm1", gcmSA(t, "out1", 0x1000, sa.ModeTransport)))
	mustW(t)(a.AddSA("vm1", gcmSA(t, "in1", 0x2000, sa.ModeTransport)))
	must(t, a.AddSP(policy("sp-out", "vm1", "out1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)))
	must(t, a.AddSP(policy("sp-in", "vm1", "in1", sa.DirIn, tenant.ActionIPsec, sa.ModeTransport)))
	must(t, a.AddFDB(fdb("t1", "52:54:00:00:00:99", "203.0.113.9")))

	b, conv, probs, err := NewFleet(m, nil, nil)
	if err != nil || len(probs) > 0 {
		t.Fatalf("NewFleet: %v %v", err, probs)
	}
	if shownState(b) != shownState(a) {
		t.Fatalf("B differs from A:\nA:\n%s\nB:\n%s", shownState(a), shownState(b))
	}

	t.Run("idempotent", func(t *testing.T) {
		gen := b.Generation()
		out1 := b.SADB().Get("out1")
		res := conv.Converge(load(t, m), nil)
		if res.Changed || b.Generation() != gen || len(res.Problems) > 0 {
			t.Errorf("converging to the same records: %+v, generation %d → %d", res, gen, b.Generation())
		}
		if b.SADB().Get("out1") != out1 {
			t.Error("an unchanged SA was replaced")
		}
	})

	t.Run("unchanged SA keeps its counter", func(t *testing.T) {
		out1 := b.SADB().Get("out1")
		for range 41 {
			out1.NextSeq()
		}
		must(t, a.AddTenant(tenant.Tenant{Name: "t2"}))
		res := conv.Converge(load(t, m), nil)
		if !res.Changed || res.Added[store.KindTenant] != 1 {
			t.Errorf("tenant add: %+v", res)
		}
		if b.SADB().Get("out1") != out1 {
			t.Fatal("out1 replaced by an unrelated change")
		}
		if seq, _ := out1.NextSeq(); seq != 42 {
			t.Errorf("out1's next sequence number %d, want 42", seq)
		}
		if shownState(b) != shownState(a) {
			t.Errorf("B differs from A:\nA:\n%s\nB:\n%s", shownState(a), shownState(b))
		}
	})

	t.Run("changed SA replaced, SP follows", func(t *testing.T) {
		// Change out1's key in the store behind A's back (another host).
		recs := load(t, m)
		var raw []byte
		for _, r := range recs {
			if r.Kind == store.KindSA && r.Name == "out1" {
				raw = r.Value
			}
		}
		var rec map[string]any
		json.Unmarshal(raw, &rec)
		rec["enc_key"] = "ZGVmZ2hpamtsbW5vcHFyc3R1dnc=" // another 20-byte key
		nv, _ := json.Marshal(rec)
		must(t, m.Commit([]store.Op{store.Put(store.KindSA, "out1", nv)}))
		old := b.SADB().Get("out1")
		in1 := b.SADB().Get("in1")
		res := conv.Converge(load(t, m), nil)
		if res.Updated[store.KindSA] != 1 || !res.Changed {
			t.Errorf("key change: %+v", res)
		}
		nw := b.SADB().Get("out1")
		if nw == old || !old.Expired() {
			t.Error("out1 was not replaced (or the old one not retired)")
		}
		if b.SADB().Get("in1") != in1 {
			t.Error("in1 replaced")
		}
		snap := b.Snapshot()
		for _, v := range snap.VMs {
			for i, p := range v.Policies {
				if p.Name == "sp-out" && v.PolicySAs[i] != nw {
					t.Error("sp-out does not use the new out1")
				}
			}
		}
	})

	t.Run("self commits", func(t *testing.T) {
		// B's own changes come back through the store: no change.
		must(t, b.AddTenant(tenant.Tenant{Name: "t3"}))
		mustW(t)(b.AddSA("vm2", gcmSA(t, "b-sa", 0x3000, sa.ModeTunnel)))
		gen := b.Generation()
		s := b.SADB().Get("b-sa")
		res := conv.Converge(load(t, m), nil)
		if res.Changed || b.Generation() != gen || b.SADB().Get("b-sa") != s {
			t.Errorf("own commits converged again: %+v", res)
		}
	})

	t.Run("removal in a safe order", func(t *testing.T) {
		a2, err := New(m, nil) // another writer at the current state
		if err != nil {
			t.Fatal(err)
		}
		must(t, a2.RemoveSP("sp-out"))
		must(t, a2.RemoveSP("sp-in"))
		must(t, a2.RemoveSA("out1"))
		must(t, a2.RemoveSA("in1"))
		must(t, a2.DetachVM("vm1"))
		res := conv.Converge(load(t, m), nil)
		if res.Removed[store.KindSA] != 2 || res.Removed[store.KindSP] != 2 || res.Removed[store.KindVM] != 1 {
			t.Errorf("removal: %+v", res)
		}
		if b.SADB().Get("out1") != nil || len(b.SPs()) != 0 {
			t.Error("SA or SPs left behind")
		}
		if shownState(b) != shownState(a2) {
			t.Errorf("B differs:\nwant\n%s\ngot\n%s", shownState(a2), shownState(b))
		}
	})

	t.Run("problems", func(t *testing.T) {
		gen := b.Generation()
		bad := tenant.VM{Name: "orphan", Tenant: "nope", Dev: "x", MAC: tenant.MAC{0x52, 0, 0, 0, 0, 7}}
		must(t, m.Commit([]store.Op{
			store.Put(store.KindVM, "orphan", mustJSON(bad)),
			store.Put(store.KindTenant, "broken", []byte("{")),
			store.Put(store.KindTenant, "t9", mustJSON(tenant.Tenant{Name: "t9", DefaultAction: tenant.ActionNone})),
		}))
		res := conv.Converge(load(t, m), nil)
		var got []string
		for _, p := range res.Problems {
			got = append(got, string(p.Kind)+"/"+p.Name)
		}
		if strings.Join(got, " ") != "tenant/broken vm/orphan" {
			t.Errorf("problems %v", res.Problems)
		}
		if !res.Changed || b.Generation() == gen || !hasTenant(b, "t9") {
			t.Error("the good record was not applied beside the bad ones")
		}
		must(t, m.Commit([]store.Op{store.Delete(store.KindVM, "orphan"), store.Delete(store.KindTenant, "broken")}))
		if res := conv.Converge(load(t, m), nil); len(res.Problems) != 0 || res.Changed {
			t.Errorf("after removing the bad records: %+v", res)
		}
	})

	t.Run("begin refuses", func(t *testing.T) {
		must(t, m.Commit([]store.Op{store.Put(store.KindTenant, "t10", mustJSON(tenant.Tenant{Name: "t10", DefaultAction: tenant.ActionNone}))}))
		res := conv.Converge(load(t, m), func() bool { return false })
		if !res.Skipped || hasTenant(b, "t10") {
			t.Errorf("begin false: %+v", res)
		}
	})

	t.Run("sequence reservations", func(t *testing.T) {
		// b owns reservations (a fleet host's daemon); an SA that another
		// writer stored with its reservation continues above it, one
		// stored without any refuses to send.
		b.seqs.mu.Lock()
		b.seqs.on = true
		b.seqs.mu.Unlock()
		defer func() { b.seqs.mu.Lock(); b.seqs.on = false; b.seqs.mu.Unlock() }()
		c1 := gcmSA(t, "h1", 0x4000, sa.ModeTransport)
		c2 := gcmSA(t, "h2", 0x4001, sa.ModeTransport)
		for _, c := range []*sa.Config{&c1, &c2} {
			c.Scope = sa.Scope{VLAN: 10, MAC: header.MAC{0x52, 0x54, 0, 0, 0, 2}}
			c.Created = time.Unix(1700000000, 0).UTC()
		}
		r1, _ := encodeSA(saOwner{vm: "vm2"}, &c1)
		r2, _ := encodeSA(saOwner{vm: "vm2"}, &c2)
		moved := newSeqRecord(&c1, 5000) // a host sent up to 5000, then the VM moved here
		must(t, m.Commit([]store.Op{store.Put(store.KindSA, "h1", r1), seqOp("h1", moved), store.Put(store.KindSA, "h2", r2)}))
		res := conv.Converge(load(t, m), nil)
		if len(res.Problems) > 0 {
			t.Fatal(res.Problems)
		}
		h1, h2 := b.SADB().Get("h1"), b.SADB().Get("h2")
		if _, d := h1.NextSeq(); d != drop.SeqReservation {
			t.Errorf("h1 before its first renewal: %v, want seq-reservation", d)
		}
		b.renewSeqs()
		if s, d := h1.NextSeq(); d != drop.None || s <= 5000 {
			t.Errorf("h1 continues at %d (%v), want above 5000", s, d)
		}
		var rec seqRecord
		json.Unmarshal(m.Get(store.KindSeq, "h1"), &rec)
		if rec.Limit < h1.SeqLimit() || h1.SeqLimit() <= 5000 {
			t.Errorf("h1's limit %d is not durable (stored %d)", h1.SeqLimit(), rec.Limit)
		}
		if _, d := h2.NextSeq(); d != drop.SeqRefused || !strings.Contains(h2.Refused(), "no sequence reservation") {
			t.Errorf("h2 without a reservation: %v %q, want seq-refused", d, h2.Refused())
		}
		info := b.SAs()
		for _, x := range info {
			if x.Config.Name == "h2" && x.Refused == "" {
				t.Error("SAInfo of h2 does not say it refuses")
			}
		}
		// The reservation is taken away (a move): h1 stops at its limit.
		must(t, m.Commit([]store.Op{store.Delete(store.KindSeq, "h1")}))
		lim := h1.SeqLimit()
		h1.SetNextSeq(lim - 10) // near its limit: it asks for a renewal
		h1.NextSeq()
		b.renewSeqs()
		if h1.SeqLimit() != 0 {
			t.Errorf("h1 still sends (limit %d) after its reservation left", h1.SeqLimit())
		}
		must(t, m.Commit([]store.Op{store.Delete(store.KindSA, "h1"), store.Delete(store.KindSA, "h2")}))
		conv.Converge(load(t, m), nil)
	})
}

func hasTenant(d *Daemon, name string) bool {
	for _, t := range d.Tenants() {
		if t.Name == name {
			return true
		}
	}
	return false
}

func mustW(t *testing.T) func([]string, error) {
	return func(_ []string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestNewFleetTolerates: a record that breaks a rule does not keep the
// daemon from starting (New refuses it); it is reported.
func TestNewFleetTolerates(t *testing.T) {
	m := storetest.NewMemory()
	a := setup(t, m)
	mustW(t)(a.AddSA("vm1", gcmSA(t, "s1", 0x1000, sa.ModeTransport)))
	must(t, m.Commit([]store.Op{store.Put(store.KindSP, "dangling", mustJSON(spRecord{Seq: 9,
		Policy: policy("dangling", "gone", "s1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)}))}))
	if _, err := New(m, nil); err == nil {
		t.Fatal("New accepted an SP of a missing VM")
	}
	b, _, probs, err := NewFleet(m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].Name != "dangling" {
		t.Errorf("problems %v", probs)
	}
	if b.SADB().Get("s1") == nil || len(b.VMs()) != 2 {
		t.Error("the good records were not restored")
	}
	// Discard zeroes keys and leaves the store alone.
	before := m.Commits()
	s := b.SADB().Get("s1")
	b.Discard()
	if !s.Expired() || b.SADB().Len() != 0 || m.Commits() != before {
		t.Error("Discard")
	}
}

// TestMoveHelpers: the records that move with a VM, and what is changed
// on the way.
func TestMoveHelpers(t *testing.T) {
	m := storetest.NewMemory()
	a := setup(t, m)
	mustW(t)(a.AddSA("vm1", gcmSA(t, "s1", 0x1000, sa.ModeTransport)))
	mustW(t)(a.AddSA("vm2", gcmSA(t, "s2", 0x1000, sa.ModeTransport)))
	must(t, a.AddSP(policy("p1", "vm1", "s1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)))
	recs := load(t, m)
	moved, err := VMRecords(recs, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range moved {
		got = append(got, string(r.Kind)+"/"+r.Name)
	}
	if strings.Join(got, " ") != "vm/vm1 sa/s1 sp/p1" {
		t.Errorf("VMRecords = %v", got)
	}
	if _, err := VMRecords(recs, "nope"); CodeOf(err) != CodeNotFound {
		t.Errorf("VMRecords of a missing VM: %v", err)
	}
	vmRec, err := WithDevice(moved[0].Value, "tap9", "")
	if err != nil || !strings.Contains(string(vmRec), `"tap9"`) {
		t.Errorf("WithDevice: %s %v", vmRec, err)
	}
	if _, err := WithDevice(moved[0].Value, "bad/name", ""); err == nil {
		t.Error("WithDevice accepted a bad --dev")
	}
	// Checking a host's records plus moved ones: vm1's SA clashes with
	// nothing, but a second vm1 does.
	probs, err := CheckRecords(recs)
	if err != nil || len(probs) != 0 {
		t.Errorf("CheckRecords of a consistent state: %v %v", probs, err)
	}
	probs, _ = CheckRecords(append(recs, store.Record{Kind: store.KindVM, Name: "vm1", Value: vmRec}))
	if len(probs) != 1 || probs[0].Err != "stored twice" {
		t.Errorf("CheckRecords with vm1 twice: %v", probs)
	}
}

// FuzzConverge: arbitrary bytes as stored records of every kind never
// make Converge panic, and what it applies is consistent (every SA's VM
// or tenant exists, every SP's VM exists).
func FuzzConverge(f *testing.F) {
	m := storetest.NewMemory()
	d, _ := New(m, nil)
	d.AddTenant(tenant.Tenant{Name: "t1"})
	d.AttachVM(vm("vm1", "t1", "52:54:00:00:00:01", 10))
	key, _ := sa.ParseKey("0x000102030405060708090a0b0c0d0e0f10111213")
	d.AddSA("vm1", sa.Config{Name: "s1", SPI: 0x1000, Mode: sa.ModeTransport, Src: mustAddr("2001:db8::1"), Dst: mustAddr("2001:db8::2"),
		Enc: sa.EncAES128GCM, EncKey: key, Integ: sa.IntegNone})
	d.AddSP(policy("p1", "vm1", "s1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport))
	recs, _ := m.Load()
	for _, r := range recs {
		f.Add(string(r.Kind), r.Name, r.Value)
	}
	f.Add("sa", "s2", []byte(`{"vm":"vm1","name":"s2","spi":1,"mode":"tunnel"}`))
	f.Add("sp", "p2", []byte(`{"seq":1,"policy":{"name":"p2","vm":"ghost"}}`))
	f.Add("policy", "t1/x", []byte(`{}`))
	f.Fuzz(func(t *testing.T, kind, name string, value []byte) {
		if name == "" {
			return
		}
		set := append(append([]store.Record(nil), recs...), store.Record{Kind: store.Kind(kind), Name: name, Value: value})
		b, c, _, err := NewFleet(staticStore(set[:len(recs)]), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Discard()
		c.Converge(set, nil)
		vms := map[string]bool{}
		for _, v := range b.VMs() {
			vms[v.Name] = true
		}
		for _, s := range b.SAs() {
			if s.VM != "" && !vms[s.VM] {
				t.Fatalf("SA %s of missing VM %s", s.Config.Name, s.VM)
			}
		}
		for _, p := range b.SPs() {
			if !vms[p.Policy.VM] {
				t.Fatalf("SP %s of missing VM %s", p.Policy.Name, p.Policy.VM)
			}
		}
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestConvergeIKE: IKE policies are fleet-wide; another host's create,
// change and delete of one applies live, and a policy of a VM that is not
// on this host is dormant here, not a problem.
func TestConvergeIKE(t *testing.T) {
	m := storetest.NewMemory()
	a := setup(t, m)
	b, conv, probs, err := NewFleet(m, nil, nil)
	if err != nil || len(probs) > 0 {
		t.Fatalf("NewFleet: %v %v", err, probs)
	}
	names := func(d *Daemon) []string {
		var out []string
		ps, err := d.Policies("")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			out = append(out, p.Policy.Name)
		}
		return out
	}
	if _, err := a.CreatePolicy(pskPolicy("p1")); err != nil {
		t.Fatal(err)
	}
	res := conv.Converge(load(t, m), nil)
	if !res.Changed || len(res.Problems) > 0 || strings.Join(names(b), ",") != "p1" {
		t.Fatalf("created: %+v, policies %v", res, names(b))
	}
	if got := b.IKEConfig().Policies[0].Policy.PSK; string(got) != testPSK {
		t.Fatalf("converged policy's PSK %q, want the stored one", got)
	}

	// A host without vm1 (it moved): the policy is dormant, not refused.
	c := storetest.NewMemory()
	recs := load(t, m)
	var keep []store.Op
	for _, r := range recs {
		if r.Kind == store.KindVM && r.Name == "vm1" {
			continue
		}
		keep = append(keep, store.Put(r.Kind, r.Name, r.Value))
	}
	must(t, c.Commit(keep))
	o, _, probs, err := NewFleet(c, nil, nil)
	if err != nil || len(probs) > 0 || strings.Join(names(o), ",") != "p1" {
		t.Fatalf("host without the VM: %v, problems %v, policies %v", err, probs, names(o))
	}
	if sc := o.IKEConfig().Policies[0].Scope; sc != (sa.Scope{}) {
		t.Fatalf("dormant policy has scope %v", sc)
	}

	if err := a.DeletePolicy("t1", "p1"); err != nil {
		t.Fatal(err)
	}
	res = conv.Converge(load(t, m), nil)
	if !res.Changed || len(res.Problems) > 0 || len(names(b)) != 0 {
		t.Fatalf("deleted: %+v, policies %v", res, names(b))
	}
}

// TestConvergeVMLeavesWithIKESAs: when a VM leaves a fleet host (detached
// elsewhere, moved), the SAs IKE installed for it there go with it and its
// policy stays, dormant.
func TestConvergeVMLeavesWithIKESAs(t *testing.T) {
	m := storetest.NewMemory()
	a := setup(t, m)
	if _, err := a.CreatePolicy(pskPolicy("p1")); err != nil {
		t.Fatal(err)
	}
	b, conv, probs, err := NewFleet(m, nil, nil)
	if err != nil || len(probs) > 0 {
		t.Fatalf("NewFleet: %v %v", err, probs)
	}
	scope := b.IKEConfig().Policies[0].Scope
	in, out := gcmSA(t, "", 0x5001, sa.ModeTransport), gcmSA(t, "", 0x5002, sa.ModeTransport)
	local, remote := netip.MustParseAddr("2001:db8:1::121"), netip.MustParseAddr("2001:db8:2::5")
	in.Src, in.Dst, in.Dir, in.Scope = remote, local, sa.DirIn, scope
	out.Src, out.Dst, out.Dir, out.Scope = local, remote, sa.DirOut, scope
	must(t, b.InstallIKEChild(IKEChild{Tenant: "t1", Policy: "p1", In: in, Out: out,
		LocalTS: pfx("2001:db8:1::121/128"), RemoteTS: pfx("2001:db8:2::5/128")}))
	if n := len(b.SADB().List()); n != 2 {
		t.Fatalf("%d SAs in the DB after the child, want 2", n)
	}
	must(t, a.DetachVM("vm1")) // the VM leaves, as a move to another host does
	res := conv.Converge(load(t, m), nil)
	if !res.Changed || len(res.Problems) > 0 {
		t.Fatalf("converge: %+v", res)
	}
	if n := len(b.SADB().List()); n != 0 {
		t.Fatalf("%d SAs left in the DB after the VM left, want 0", n)
	}
	if ps, _ := b.Policies("t1"); len(ps) != 1 {
		t.Fatalf("policy gone with the VM: %+v", ps)
	}
}

// TestRestoreAndConvergeShareRules: a record that breaks a rule of the
// stored state makes New fail naming it, and makes NewFleet (a Converger)
// leave it out with the same message, for every kind of rule.
func TestRestoreAndConvergeShareRules(t *testing.T) {
	base := storetest.NewMemory()
	d := setup(t, base)
	mustW(t)(d.AddSA("vm1", gcmSA(t, "s1", 0x1000, sa.ModeTransport)))
	stored := map[recKey][]byte{}
	for _, r := range load(t, base) {
		stored[recKey{r.Kind, r.Name}] = r.Value
	}
	edit := func(kind store.Kind, name string, v any, change func()) []byte {
		must(t, json.Unmarshal(stored[recKey{kind, name}], v))
		change()
		return mustJSON(v)
	}
	var t2 tenant.Tenant
	var both, twin saRecord
	good := pskPolicy("p")
	for _, tc := range []struct {
		name string
		bad  store.Op
		want string // in the message
	}{
		{"tenant with a VNI taken", store.Put(store.KindTenant, "t2", edit(store.KindTenant, "t1", &t2, func() { t2.Name = "t2" })), "VNI 100"},
		{"VM of a missing tenant", store.Put(store.KindVM, "vm9", mustJSON(vm("vm9", "ghost", "52:54:00:00:00:09", 10))), `tenant "ghost"`},
		{"SA of a VM and a tenant", store.Put(store.KindSA, "s1", edit(store.KindSA, "s1", &both, func() { both.Tenant = "t1" })), "both or neither"},
		{"SA with a key taken", store.Put(store.KindSA, "s2", edit(store.KindSA, "s1", &twin, func() { twin.Name = "s2" })), "SPI 0x1000"},
		{"SP with another VM's SA", store.Put(store.KindSP, "p9", mustJSON(spRecord{Seq: 9, Policy: policy("p9", "vm2", "s1", sa.DirOut, tenant.ActionIPsec, sa.ModeTransport)})), `not an SA of VM "vm2"`},
		{"FDB entry under another name", store.Put(store.KindFDB, "t1/52:54:00:00:00:99", mustJSON(FDBEntry{Tenant: "t1", MAC: tenant.MAC{0x52, 0x54, 0, 0, 0, 0x98}, Remote: netip.MustParseAddr("192.0.2.9")})), "holds fdb"},
		{"policy of a missing tenant", store.Put(store.KindPolicy, "ghost/p", encodePolicy(&ikeconf.Policy{Tenant: "ghost", Name: "p", LocalSubnets: good.LocalSubnets, RemoteSubnets: good.RemoteSubnets, Mode: sa.ModeTransport, Auth: ikeconf.AuthPSK, PSK: []byte(testPSK)})), `no tenant named "ghost"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := storetest.NewMemory()
			var ops []store.Op
			for k, v := range stored {
				ops = append(ops, store.Put(k.kind, k.name, v))
			}
			must(t, st.Commit(append(ops, tc.bad)))
			_, _, probs, err := NewFleet(st, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(probs) != 1 || probs[0].Kind != tc.bad.Kind || probs[0].Name != tc.bad.Name || !strings.Contains(probs[0].Err, tc.want) {
				t.Fatalf("NewFleet's problems %q, want one of %s %q saying %q", probs, tc.bad.Kind, tc.bad.Name, tc.want)
			}
			_, err = New(st, nil)
			if want := "restore state: " + probs[0].String(); err == nil || err.Error() != want {
				t.Errorf("New = %v\nwant %s", err, want)
			}
		})
	}
}
