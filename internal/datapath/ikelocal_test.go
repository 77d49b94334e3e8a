package datapath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif/viftest"
)

// TestSendIKELocalVM: IKE from one VM to another VM on the same host (same
// VLAN, the peer's address one of its --ip) never takes the uplink: to a
// VM whose IKE the gateway runs too it goes to the IKE handler in that
// VM's scope, addresses and ports as the peer would receive them; to a
// VM that runs its own IKE its guest gets the UDP frame. A VM of another
// VLAN owning the address is no local peer.
func TestSendIKELocalVM(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	t.Cleanup(e.Close)
	got := make(chan IKEPacket, 4)
	e.SetIKEHandler(func(p IKEPacket) { got <- p })
	a4, b4, c4, d4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("192.0.2.4")
	macC := header.MAC{0x52, 0x54, 0, 0xc, 0, 1}
	macD := header.MAC{0x52, 0x54, 0, 0xd, 0, 1}
	guests := map[string]*viftest.Port{}
	var vms []VM
	for _, v := range []struct {
		name string
		mac  header.MAC
		vlan uint16
		ip   netip.Addr
		ike  bool
	}{{"a", macA1, 100, a4, true}, {"b", macB1, 100, b4, true}, {"c", macC, 100, c4, false}, {"d", macD, 200, d4, true}} {
		g, h := viftest.Pair(v.name+"-guest", v.name+"-vif", 16)
		guests[v.name] = g
		vms = append(vms, VM{Name: v.name, Port: h, MAC: v.mac, VLAN: v.vlan, IPs: []netip.Addr{v.ip}, DefaultAction: tenant.ActionNone, IKE: v.ike})
	}
	e.Update(vms)
	up, wire := viftest.Pair("up", "wire", 16)
	up.Record = true
	e.SetUplink(up, 0)
	msg := bytes.Repeat([]byte("IKE!"), 20)
	scopeA := sa.Scope{VLAN: 100, MAC: macA1}

	// a to b, both IKE VMs: the handler, in b's scope.
	if err := e.SendIKE(IKEPacket{VM: "a", Scope: scopeA, Local: netip.AddrPortFrom(a4, 500), Remote: netip.AddrPortFrom(b4, 500), Data: msg}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p.VM != "b" || p.Scope != (sa.Scope{VLAN: 100, MAC: macB1}) || p.Local != netip.AddrPortFrom(b4, 500) || p.Remote != netip.AddrPortFrom(a4, 500) || !bytes.Equal(p.Data, msg) {
			t.Fatalf("handler got %+v", p)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the IKE handler got nothing for b")
	}
	if n := e.Stats("b").IKEIn.Load(); n != 1 {
		t.Errorf("b's IKEIn %d, want 1", n)
	}
	// a to c, which runs its own IKE: c's guest gets the datagram (to
	// 4500 behind the non-ESP marker).
	if err := e.SendIKE(IKEPacket{VM: "a", Scope: scopeA, Local: netip.AddrPortFrom(a4, 4500), Remote: netip.AddrPortFrom(c4, 4500), Data: msg}); err != nil {
		t.Fatal(err)
	}
	fr := recv(t, guests["c"])
	ip := header.IPv4(fr[ethLen:])
	u := fr[ethLen+20:]
	if header.MAC(fr[0:6]) != macC || header.MAC(fr[6:12]) != macA1 || binary.BigEndian.Uint16(fr[12:]) != etherIPv4 ||
		ip.Src() != a4 || ip.Dst() != c4 || binary.BigEndian.Uint16(u[0:]) != 4500 || binary.BigEndian.Uint16(u[2:]) != 4500 ||
		!bytes.Equal(u[8:12], []byte{0, 0, 0, 0}) || !bytes.Equal(u[12:], msg) {
		t.Fatalf("c's guest got %x", fr)
	}
	if w := up.Written(); len(w) != 0 {
		t.Fatalf("%d frames on the uplink for VMs on this host", len(w))
	}
	// a to d, of another VLAN: no local peer; the uplink asks for d4.
	if err := e.SendIKE(IKEPacket{VM: "a", Scope: scopeA, Local: netip.AddrPortFrom(a4, 500), Remote: netip.AddrPortFrom(d4, 500), Data: msg}); err != nil {
		t.Fatal(err)
	}
	if fr := recv(t, wire); binary.BigEndian.Uint16(fr[16:]) != etherARP {
		t.Fatalf("the uplink sent %x, want an ARP request for d's address", fr)
	}
	select {
	case p := <-got:
		t.Fatalf("the handler got %+v for c or d", p)
	default:
	}
}
