package daemon

import (
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
)

// rekeyRig is a VM with policy pol1 and an installed, switched Child SA
// (inbound SPI In, outbound 0x0a0a0a0a), whose daemon has a data path
// that has applied every generation so far.
type rekeyRig struct {
	d     *Daemon
	scope sa.Scope
	in    uint32
}

func newRekeyRig(t *testing.T) *rekeyRig {
	t.Helper()
	d := setup(t, storetest.NewMemory())
	must2(t)(d.CreatePolicy(pskPolicy("pol1")))
	v := d.Snapshot().VMs[0]
	r := &rekeyRig{d: d, scope: sa.Scope{VLAN: v.VM.VLAN, MAC: header.MAC(v.VM.MAC)}}
	r.in = r.install(t, 0x0a0a0a0a, false)
	d.DataPathApplied(d.Snapshot().Gen)
	return r
}

// install installs a child with outbound SPI out (pending: not carrying
// traffic until switched) and returns its inbound SPI.
func (r *rekeyRig) install(t *testing.T, out uint32, pending bool) uint32 {
	t.Helper()
	in, err := r.d.AllocIKESPI(r.scope)
	must(t, err)
	a, b := gcmSA(t, "", in, sa.ModeTransport), gcmSA(t, "", out, sa.ModeTransport)
	local, remote := netip.MustParseAddr("2001:db8:1::121"), netip.MustParseAddr("2001:db8:2::5")
	a.Src, a.Dst, a.Dir, a.Scope = remote, local, sa.DirIn, r.scope
	b.Src, b.Dst, b.Dir, b.Scope = local, remote, sa.DirOut, r.scope
	must(t, r.d.InstallIKEChild(IKEChild{Tenant: "t1", Policy: "pol1", In: a, Out: b,
		LocalTS: pfx("2001:db8:1::121/128"), RemoteTS: pfx("2001:db8:2::5/128"), Pending: pending}))
	return in
}

// outSPI is the SPI of the SA the VM's first outbound SP names (0: none).
func (r *rekeyRig) outSPI() uint32 {
	v := r.d.Snapshot().VMs[0]
	for i, p := range v.Policies {
		if p.Direction == sa.DirOut {
			if v.PolicySAs[i] == nil {
				return 0
			}
			return v.PolicySAs[i].SPI()
		}
	}
	return 0
}

// inbound reports whether an inbound SP names the SA with SPI spi.
func (r *rekeyRig) inbound(spi uint32) bool {
	v := r.d.Snapshot().VMs[0]
	for i, p := range v.Policies {
		if p.Direction == sa.DirIn && v.PolicySAs[i] != nil && v.PolicySAs[i].SPI() == spi {
			return true
		}
	}
	return false
}

// published waits until the daemon publishes a generation after gen and
// returns it.
func (r *rekeyRig) published(t *testing.T, gen uint64) uint64 {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if g, _ := r.d.Watch(); g > gen {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("no generation after %d published", gen)
		}
	}
}

func returned(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// TestRekeyRemoveOldWaitsForDataPath: the peer deletes the old Child SA
// of a rekey before the engine switched to the new one (the responder's
// order). The new one takes over the outbound traffic at once; the old
// one keeps receiving, and its SAs stay alive (not expired, keys intact)
// until the data path reports it runs tables without them: a packet the
// data path is encrypting with the old SA meanwhile is not dropped.
func TestRekeyRemoveOldWaitsForDataPath(t *testing.T) {
	r := newRekeyRig(t)
	r.install(t, 0x0b0b0b0b, true)
	r.d.DataPathApplied(r.d.Snapshot().Gen)
	g0, _ := r.d.Watch()
	old := r.d.SADB().Lookup(sa.Key{Scope: r.scope, SPI: 0x0a0a0a0a})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.d.RemoveIKEChild(r.scope, r.in); err != nil {
			t.Error(err)
		}
	}()
	g1 := r.published(t, g0)
	if got := r.outSPI(); got != 0x0b0b0b0b {
		t.Errorf("outbound SA after the old child's delete: %#x, want the new child's 0x0b0b0b0b", got)
	}
	if !r.inbound(r.in) {
		t.Error("the old child stopped receiving before the data path moved on")
	}
	if returned(done) || old.Expired() || r.d.SADB().Get(old.Name()) == nil {
		t.Fatalf("the old outbound SA went (returned %v, expired %v) before the data path ran generation %d", returned(done), old.Expired(), g1)
	}
	r.d.DataPathApplied(g1)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RemoveIKEChild still waits after the data path applied its change")
	}
	if !old.Expired() || r.d.SADB().Lookup(sa.Key{Scope: r.scope, SPI: r.in}) != nil {
		t.Errorf("the old child's SAs are still there (outbound expired: %v)", old.Expired())
	}
	if got := r.outSPI(); got != 0x0b0b0b0b {
		t.Errorf("outbound SA after the removal: %#x, want 0x0b0b0b0b", got)
	}
}

// TestRekeySwitchWaitsForDataPath: SwitchIKEChild returns only once the
// data path sends with the new SA, so that the engine deletes the old one
// with the peer only then.
func TestRekeySwitchWaitsForDataPath(t *testing.T) {
	r := newRekeyRig(t)
	in := r.install(t, 0x0b0b0b0b, true)
	r.d.DataPathApplied(r.d.Snapshot().Gen)
	g0, _ := r.d.Watch()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.d.SwitchIKEChild(r.scope, in); err != nil {
			t.Error(err)
		}
	}()
	g1 := r.published(t, g0)
	if got := r.outSPI(); got != 0x0b0b0b0b {
		t.Errorf("outbound SA after the switch: %#x, want 0x0b0b0b0b", got)
	}
	if returned(done) {
		t.Fatalf("SwitchIKEChild returned before the data path ran generation %d", g1)
	}
	r.d.DataPathApplied(g1)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SwitchIKEChild still waits after the data path applied its change")
	}
}
