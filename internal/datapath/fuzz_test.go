package datapath

import (
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// FuzzPipeline feeds arbitrary bytes to every entry of the data path — a
// guest's frame with its virtio-net header, a wire frame on a plain and on
// a virtio-net uplink, flat and with the VXLAN underlay (protected or not) —
// with real SAs and policies behind them. No input may panic: guests and
// the wire are untrusted.
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

	db := sa.NewDB(0)
	e := New(db, nil)
	out, in := tenantSAs(f, "acme", macA1, 100, 1, 0x1000, 0x2000, satest.V6A, satest.V6B)
	_ = db.Apply([]*sa.SA{out, in}, nil)
	vtepA, vtepB := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	u, _ := sa.New(sa.Config{Name: "u", SPI: 0x5000, Src: vtepB, Dst: vtepA, Mode: sa.ModeTransport,
		Enc: sa.EncAES128GCM, EncKey: satest.Key(20, 9), Integ: sa.IntegNone})
	_ = db.Add(u)
	pol := policies("acme", netip.PrefixFrom(satest.V6A, 128), netip.PrefixFrom(satest.V6B, 128))
	vifA := viftest.NewSink("vifA")
	vm := &vmState{name: "acme", port: &txPort{Port: vifA, vnet: true}, mac: macA1, vlan: 100, vni: 1000, def: tenant.ActionNone,
		spd: tenant.Compile(pol), policies: pol, sas: []*sa.SA{out, in}, stats: new(VMStats), icmp: pmtu.NewRateLimiter(1<<20, 1<<10)}
	snap := newSnapshot()
	snap.byPort[vifA] = vm
	snap.byKey[vmKey{100, macA1}] = vm
	snap.byVLAN[100] = []*vmState{vm}
	snap.byVNIMAC[FDBKey{1000, macA1}] = vm
	snap.byVNI[1000] = []*vmState{vm}
	e.snap.Store(snap)
	plainUp, vnetUp := &txPort{Port: viftest.NewSink("up")}, &txPort{Port: viftest.NewSink("upv"), vnet: true}
	e.uplink.Store(plainUp)
	e.SetNeighbors(map[netip.Addr]sa.MAC{vtepB: {2, 0, 0, 0, 0, 0xb}})
	overlays := []*Overlay{nil,
		{Local: vtepA, UplinkMAC: sa.MAC{2, 0, 0, 0, 0, 0xa}, FDB: map[FDBKey]netip.Addr{{1000, macB1}: vtepB}},
		{Local: vtepA, UplinkMAC: sa.MAC{2, 0, 0, 0, 0, 0xa}, FDB: map[FDBKey]netip.Addr{{1000, macB1}: vtepB}, ProtectUnderlay: true,
			Underlay: []UnderlaySA{{VNI: 1000, SA: u}}}}
	vmW := newWorker(e, vm.port, false)
	upW := newWorker(e, plainUp, true)
	upVW := newWorker(e, vnetUp, true)

	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		e.SetOverlay(overlays[int(sel>>4)%len(overlays)])
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
		w.batch(1)
	})
}
