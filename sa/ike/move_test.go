package ike

import (
	"github.com/vifsec/vifsec/header"
	"slices"
	"testing"
	"time"

	"github.com/vifsec/vifsec/sa"
)

// TestDropPolicyVMMoved: a VM's initiating policy is dropped on the host
// it leaves (nothing is sent from its address there, no retransmission,
// no re-initiation, nothing left listed), and set up again on its new
// host; the IKE_AUTH from there carries INITIAL_CONTACT, on which the
// peer drops the IKE SA and Child SA of the old host: it has exactly one
// of each, paired with the new host's.
func TestDropPolicyVMMoved(t *testing.T) {
	pa, pb := pskPair()
	pa.VM, pa.Scope = "web", sa.Scope{VLAN: 100, MAC: header.MAC{0x52, 0x54, 0, 1, 0x0b, 1}}
	pb.VM, pb.Scope = "db", sa.Scope{VLAN: 100, MAC: header.MAC{0x52, 0x54, 0, 1, 0x0c, 1}}
	n := newNet(t)
	// Each host's data path hands IKE to its engine in its VM's scope.
	n.filter = func(p *Packet) bool {
		p.Scope = pa.Scope
		if p.Remote.Addr() == addrB {
			p.Scope = pb.Scope
		}
		return true
	}
	a, b := n.add("a", addrA.String(), nil), n.add("b", addrB.String(), nil)
	for _, x := range []struct {
		nd *node
		p  Policy
	}{{b, pb}, {a, pa}} {
		if err := x.nd.e.SetPolicies([]Policy{x.p}); err != nil {
			t.Fatal(err)
		}
	}
	n.pump()
	wantUp(t, a, b, 1)
	old := onlyChild(t, b)

	if got := a.e.DropPolicies("acme/nothing"); got != 0 {
		t.Fatalf("DropPolicies of no policy dropped %d IKE SAs", got)
	}
	sent := len(n.sent)
	if got := a.e.DropPolicies("acme/p1"); got != 1 {
		t.Fatalf("DropPolicies dropped %d IKE SAs, want 1", got)
	}
	n.pump()
	if len(a.e.IKESAs()) != 0 || len(a.e.ChildSAs()) != 0 || len(a.children()) != 0 {
		t.Fatalf("a after the drop: IKE SAs %+v, Child SAs %+v, installed %d", a.e.IKESAs(), a.e.ChildSAs(), len(a.children()))
	}
	if len(a.removed) != 1 {
		t.Fatalf("a removed %v from the data path, want its one child", a.removed)
	}
	// The policy is gone as SetPolicies without it would have it gone:
	// given nothing, a has nothing to delete.
	if err := a.e.SetPolicies(nil); err != nil {
		t.Fatal(err)
	}
	n.advance(10 * time.Minute)
	if len(n.sent) != sent {
		t.Fatalf("a sent %d datagrams after its policy was dropped, want none", len(n.sent)-sent)
	}
	if len(b.established()) != 1 || len(b.children()) != 1 {
		t.Fatal("b lost its SAs without being told")
	}

	// The VM's new host has its address and speaks for it.
	a2 := n.add("a2", addrA.String(), nil)
	if err := a2.e.SetPolicies([]Policy{pa}); err != nil {
		t.Fatal(err)
	}
	n.pump()
	wantUp(t, a2, b, 1) // one IKE SA and one child on b, paired with a2's
	if len(b.e.IKESAs()) != 1 || len(b.e.ChildSAs()) != 1 {
		t.Fatalf("b: IKE SAs %+v, Child SAs %+v; want the new host's only", b.e.IKESAs(), b.e.ChildSAs())
	}
	if !slices.Contains(b.removed, old.In.Name) {
		t.Fatalf("b removed %v, not the old host's child %s", b.removed, old.In.Name)
	}
	if c := onlyChild(t, b); c.In.SPI == old.In.SPI {
		t.Fatal("b kept the old host's child")
	}
}
