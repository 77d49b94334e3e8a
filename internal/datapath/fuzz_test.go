package datapath

import (
	"encoding/binary"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// FuzzPipeline feeds arbitrary bytes to every entry of the data path — a
// guest's frame with its virtio-net header, a wire frame on a plain and on
// a virtio-net uplink, flat and with the VXLAN underlay (protected or not) —
// with real SAs and policies behind them (plain ESP and ESP in UDP), to a
// VM whose IKE the gateway runs and for which SendIKE is resolving its
// peers' addresses. No input may panic: guests and the wire are untrusted.
// Nothing may leave with more than one VLAN tag, a tag other than the VM's
// VLAN 100, or an EtherType off the allow-list; nothing the VM is
// delivered is tagged.
func FuzzPipeline(f *testing.F) {
	// Seeds: genuine frames of each kind.
	clear := frame(macB1, macA1, satest.V6A, satest.V6B, 200)
	f.Add(append(make([]byte, vif.VnetHdrLen), clear...), uint8(0))
	super, h := offloadtest.Super(offloadtest.Packet{Src: satest.V4A, Dst: satest.V4B, Payload: make([]byte, 5000)}, 1400, true, false)
	copy(super[6:12], macA1[:])
	hb := make([]byte, vif.VnetHdrLen)
	h.Put(hb)
	f.Add(append(hb, super...), uint8(1))
	f.Add(clear, uint8(2))
	f.Add(clear, uint8(3))
	f.Add([]byte{}, uint8(4))
	// Tags, fragments, ARP and neighbour discovery from the guest (sel 0:
	// its VIF, no tag in metadata) and from the wire (sel 1).
	v4 := udp(peerMAC, macA1, satest.V4A, satest.V4B, 1000, 5000, 100)
	for _, fr := range [][]byte{
		withTags(clear, 0x8100, 100, 0x8100, 100, 0x8100, 200),
		withTags(clear, 0x8100, 100, 0x88a8, 0),
		withTags(clear, 0x8100, 0),
		withTags(clear, 0x9100, 100),
		withEtherType(clear, 0x88b5),
		fragment4(v4, 0, true),
		fragment4(v4, 1480, false),
		arpFrame(broadcastMAC, macA1, arpRequest, macA1, satest.V4A, header.MAC{}, satest.V4B),
		ndFrame(peerMAC, macA1, satest.V6A, satest.V6B, ndSolicit, nsBody(satest.V6B, 1, macA1, 1100)),
		ndFrame(peerMAC, macA1, satest.V6A, satest.V6B, ndAdvert, naBody(0x60, satest.V6A, macA1)),
	} {
		f.Add(append(make([]byte, vif.VnetHdrLen), fr...), uint8(0))
	}
	in4 := udp(macA1, peerMAC, satest.V4B, satest.V4A, 1000, 5000, 100)
	for _, fr := range [][]byte{
		withTags(in4, 0x8100, 100, 0x8100, 0),
		withTags(in4, 0x8100, 100, 0x88a8, 200),
		withTags(fragment4(in4, 1480, false), 0x8100, 100),
		withTags(fragment4(in4, 0, true), 0x8100, 100),
		withTags(withEtherType(in4, 0x8847), 0x8100, 100),
		withTags(padded(arpFrame(macA1, peerMAC, arpReply, peerMAC, satest.V4B, macA1, satest.V4A), 1000), 0x8100, 100),
	} {
		f.Add(fr, uint8(1))
	}

	db := sa.NewDB(0)
	e := New(db, nil)
	_, in := tenantSAs(f, "acme", macA1, 100, 1, 0x1000, 0x2000, satest.V6A, satest.V6B)
	// ESP in UDP (RFC 3948): the VM's outbound SA, and a second inbound
	// SA; what the peer would send on each inbound SA makes the seeds.
	outUDP, inUDP := natSAs(f, macA1, sa.ModeTransport, true, 0x1000, 0x3000, satest.V6A, satest.V6B)
	peerPlain, _ := tenantSAs(f, "acme", macB1, 100, 1, 0x2000, 0x1000, satest.V6B, satest.V6A)
	peerUDP, _ := natSAs(f, macB1, sa.ModeTransport, true, 0x3000, 0x1000, satest.V6B, satest.V6A)
	out := outUDP // the VM sends ESP in UDP; its plain outbound SA is not used
	if err := db.Apply([]*sa.SA{out, in, inUDP}, nil); err != nil {
		f.Fatal(err)
	}
	// Wire frames to the VM (VLAN 100 in the frame; sel 1: plain uplink,
	// no overlay): ESP, ESP in UDP, IKE on 500 and 4500, a keepalive.
	tagged := func(fr []byte) []byte {
		return append(append(append([]byte(nil), fr[:12]...), 0x81, 0, 0, 100), fr[12:]...)
	}
	sealed := func(s *sa.SA) []byte {
		fr := frame(macA1, macB1, satest.V6B, satest.V6A, 100)
		buf := make([]byte, readOff+len(fr)+64)
		copy(buf[readOff:], fr)
		var sc sa.Scratch
		st, en, _ := esp.Encap(s, &sc, buf, readOff+ethLen, len(fr)-ethLen)
		copy(buf[st-ethLen:], fr[:ethLen])
		return buf[st-ethLen : en]
	}
	ikeMsg := append([]byte{1, 2, 3, 4, 5, 6, 7, 8}, make([]byte, 20)...)
	for _, fr := range [][]byte{
		sealed(peerPlain), sealed(peerUDP),
		udpFrame(macA1, peerMAC, satest.V6B, satest.V6A, 500, 500, ikeMsg),
		udpFrame(macA1, peerMAC, satest.V6B, satest.V6A, 4500, 4500, append([]byte{0, 0, 0, 0}, ikeMsg...)),
		udpFrame(macA1, peerMAC, satest.V4B, satest.V4A, 4500, 4500, []byte{0xff}),
		udpFrame(macA1, peerMAC, satest.V4B, satest.V4A, 4500, 4500, make([]byte, 40)),
		// Answers to what SendIKE asks (see the re-arming below).
		arpFrame(macA1, peerMAC, 2, peerMAC, satest.V4B, macA1, satest.V4A),
		naFrame(macA1, peerMAC, satest.V6B, satest.V6A, satest.V6B, naOpts{flags: 0x60, hop: 255, tlla: &peerMAC}),
	} {
		f.Add(tagged(fr), uint8(1))
	}
	vtepA, vtepB := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	u, _ := sa.New(sa.Config{Name: "u", SPI: 0x5000, Src: vtepB, Dst: vtepA, Mode: sa.ModeTransport,
		Enc: sa.EncAES128GCM, EncKey: satest.Key(20, 9), Integ: sa.IntegNone})
	_ = db.Add(u)
	pol := policies("acme", netip.PrefixFrom(satest.V6A, 128), netip.PrefixFrom(satest.V6B, 128))
	vifA := viftest.NewSink("vifA")
	vm := &vmState{name: "acme", port: &txPort{Port: vifA, vnet: true}, mac: macA1, vlan: 100, vni: 1000, def: tenant.ActionNone,
		spd: tenant.Compile(pol), policies: pol, sas: []*sa.SA{out, in}, stats: new(VMStats), icmp: pmtu.NewRateLimiter(1<<20, 1<<10),
		ike: true, ips: []netip.Addr{satest.V6A, satest.V4A}}
	e.SetIKEHandler(func(p IKEPacket) {
		if len(p.Data) > 0xffff || !p.Local.IsValid() {
			panic("IKE handler got a packet that cannot have come off the wire")
		}
	})
	snap := newSnapshot()
	snap.byPort[vifA] = vm
	snap.byKey[vmKey{100, macA1}] = vm
	snap.byVLAN[100] = []*vmState{vm}
	snap.byVNIMAC[FDBKey{1000, macA1}] = vm
	snap.byVNI[1000] = []*vmState{vm}
	e.snap.Store(snap)
	up := viftest.NewSink("up")
	plainUp, vnetUp := &txPort{Port: up}, &txPort{Port: viftest.NewSink("upv"), vnet: true}
	e.setConfig(func(c *config) { c.uplink = plainUp })
	e.SetNeighbors(map[netip.Addr]header.MAC{vtepB: {2, 0, 0, 0, 0, 0xb}})
	overlays := []*Overlay{nil,
		{Local: vtepA, UplinkMAC: header.MAC{2, 0, 0, 0, 0, 0xa}, FDB: map[FDBKey]netip.Addr{{1000, macB1}: vtepB}},
		{Local: vtepA, UplinkMAC: header.MAC{2, 0, 0, 0, 0, 0xa}, FDB: map[FDBKey]netip.Addr{{1000, macB1}: vtepB}, ProtectUnderlay: true,
			Underlay: []UnderlaySA{{VNI: 1000, SA: u}}}}
	vmW := newTestWorker(e, vm.port, false)
	upW := newTestWorker(e, plainUp, true)
	upVW := newTestWorker(e, vnetUp, true)

	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		e.SetOverlay(overlays[int(sel>>4)%len(overlays)])
		// SendIKE waits for both peers' MACs, with a datagram each: an
		// answer among the inputs is learned and sends it.
		now := e.now()
		for _, r := range []netip.Addr{satest.V4B, satest.V6B} {
			l := satest.V4A
			if r.Is6() {
				l = satest.V6A
			}
			q := &queuedUDP{p: IKEPacket{Scope: sa.Scope{VLAN: 100, MAC: macA1}, Local: netip.AddrPortFrom(l, 500),
				Remote: netip.AddrPortFrom(r, 500), Data: []byte("IKE")}, marker: true, at: now}
			_, _ = e.ikeNeigh.miss(keyOf(vm, r), q, now)
		}
		var w *worker
		switch sel % 3 {
		case 0:
			w = vmW
		case 1:
			w = upW
		default:
			w = upVW
		}
		if len(data) > len(w.bufs[0])-readOff {
			return
		}
		w.sizes[0] = copy(w.bufs[0][readOff:], data)
		w.meta[0] = vif.Meta{VLAN: uint16(sel) & 0xfff, Tagged: sel&8 != 0}
		wire, toVM := up.Frames, vifA.Frames
		w.batch(1)
		if up.Frames != wire {
			l := up.Last[:up.LastN]
			et := binary.BigEndian.Uint16(l[12:14])
			if et == etherVLAN {
				if binary.BigEndian.Uint16(l[14:16])&vidMask != 100 {
					t.Fatalf("wire frame tagged % x", l[12:16])
				}
				et = binary.BigEndian.Uint16(l[16:18])
			}
			if !etherTypeAllowed(et) {
				t.Fatalf("wire frame with EtherType %#x: % x", et, l[:min(len(l), 40)])
			}
		}
		if vifA.Frames != toVM {
			if et := binary.BigEndian.Uint16(vifA.Last[vif.VnetHdrLen+12:]); !etherTypeAllowed(et) {
				t.Fatalf("VM delivered EtherType %#x", et)
			}
		}
	})
}
