package daemon

import (
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
)

// TestRebindIKEChild: an installed IKE Child SA in ESP in UDP moves to its
// peer's new endpoint in place: the same SA objects (sequence numbers
// and replay window kept), the outbound one sending to the new address
// and port, the inbound one expecting them, and show-ipsecsa showing
// them; and IKEInboundPackets reads the inbound SA's counter.
func TestRebindIKEChild(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	p := pskPolicy("pol1")
	p.Mode, p.RemoteSubnets = sa.ModeTunnel, pfx("2001:db8:2::/64")
	must2(t)(d.CreatePolicy(p))
	scope := sa.Scope{VLAN: 10, MAC: header.MAC{0x52, 0x54, 0, 0, 0, 1}}
	in, err := d.AllocIKESPI(scope)
	must(t, err)
	a, b := gcmSA(t, "", in, sa.ModeTunnel), gcmSA(t, "", 0x7000, sa.ModeTunnel)
	peer := netip.MustParseAddr("2001:db8:2::5")
	a.Src, a.Dst, a.Dir, a.Scope = peer, netip.MustParseAddr("2001:db8:1::121"), sa.DirIn, scope
	b.Src, b.Dst, b.Dir, b.Scope = a.Dst, a.Src, sa.DirOut, scope
	a.Encap = &sa.UDPEncap{SrcPort: 40001, DstPort: 4500}
	b.Encap = &sa.UDPEncap{SrcPort: 4500, DstPort: 40001}
	must(t, d.InstallIKEChild(IKEChild{Tenant: "t1", Policy: "pol1", In: a, Out: b,
		LocalTS: pfx("2001:db8:1::121/128"), RemoteTS: pfx("2001:db8:2::/64")}))
	sin, sout := d.SADB().Lookup(sa.Key{Scope: scope, SPI: in}), d.SADB().Lookup(sa.Key{Scope: scope, SPI: 0x7000})
	if sin == nil || sout == nil {
		t.Fatalf("the child's SAs are not in the database: %v %v", sin, sout)
	}
	sin.Account(100)
	sin.Account(100)
	if n := d.IKEInboundPackets(scope, in); n != 2 {
		t.Errorf("IKEInboundPackets %d, want 2", n)
	}
	if n := d.IKEInboundPackets(scope, 0x7000); n != 0 {
		t.Errorf("IKEInboundPackets of the outbound SA %d, want 0", n)
	}
	remote := func() (netip.Addr, uint16) {
		rows, err := d.IPsecSAs("t1")
		must(t, err)
		if len(rows) != 1 {
			t.Fatalf("show-ipsecsa: %d rows, want the child's one: %+v", len(rows), rows)
		}
		return rows[0].Remote, rows[0].RemotePort
	}
	if a, p := remote(); a != peer || p != 40001 {
		t.Errorf("show-ipsecsa before the rebind: remote %v port %d, want %v port 40001", a, p, peer)
	}
	to := netip.MustParseAddrPort("[2001:db8:9::5]:41000")
	must(t, d.RebindIKEChild(sin.Name(), sout.Name(), to))
	if a, p := remote(); a != to.Addr() || p != to.Port() {
		t.Errorf("show-ipsecsa after the rebind: remote %v port %d, want %v", a, p, to)
	}
	if d.SADB().Get(sin.Name()) != sin || d.SADB().Get(sout.Name()) != sout {
		t.Fatal("RebindIKEChild replaced the SAs")
	}
	for _, s := range []*sa.SA{sin, sout} {
		if got, _ := s.Peer(); got != to {
			t.Errorf("%s: peer %v, want %v", s.Name(), got, to)
		}
	}
	if e, _ := sout.Encap(); e != (sa.UDPEncap{SrcPort: 4500, DstPort: 41000}) || sout.OuterDst() != to.Addr() {
		t.Errorf("outbound SA sends to %v port %d", sout.OuterDst(), e.DstPort)
	}
	if err := d.RebindIKEChild(sin.Name(), sout.Name(), netip.MustParseAddrPort("192.0.2.9:4500")); err == nil {
		t.Error("a rebind to the other family accepted")
	}
}
