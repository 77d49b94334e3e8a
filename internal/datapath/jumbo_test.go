package datapath

import (
	"bytes"
	"encoding/binary"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
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

// jumbo is the uplink MTU of these tests, common under VXLAN underlays.
const jumbo = 9000

// jumboFrame builds an Ethernet frame from src to dst carrying a UDP packet
// of size payload bytes between s and d.
func jumboFrame(dst, src header.MAC, s, d netip.Addr, size int) []byte {
	b := make([]byte, ethLen+60+size)
	n := satest.UDP(b, ethLen, s, d, 1000, 2000, size)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:], etherTypeOf(b[ethLen]))
	return b[:ethLen+n]
}

// TestJumboAcrossGateways: two gateways whose uplinks have MTU 9000 and
// whose ports carry no virtio-net headers: an 8000-byte UDP packet from a
// VM becomes an ESP frame of more than 8 kB on the wire and reaches the
// peer VM whole, both ways; nothing is dropped or truncated.
func TestJumboAcrossGateways(t *testing.T) {
	mk := func(mac header.MAC, local, remote netip.Addr, outSPI, inSPI uint32) (*Engine, *viftest.Port) {
		db := sa.NewDB(0)
		e := New(db, nil)
		out, in := tenantSAs(t, "acme", mac, 100, 1, outSPI, inSPI, local, remote)
		if err := db.Apply([]*sa.SA{out, in}, nil); err != nil {
			t.Fatal(err)
		}
		guest, host := viftest.Pair("guest", "vif", 16)
		e.SetUplink(nil, jumbo) // the MTU the VIF's worker starts with
		e.Update([]VM{{Name: "acme", Port: host, MAC: mac, VLAN: 100, DefaultAction: tenant.ActionNone,
			Policies: policies("acme", netip.PrefixFrom(local, 128), netip.PrefixFrom(remote, 128)), SAs: []*sa.SA{out, in}}})
		return e, guest
	}
	a, guestA := mk(macA1, satest.V6A, satest.V6B, 0x1000, 0x2000)
	b, guestB := mk(macB1, satest.V6B, satest.V6A, 0x2000, 0x1000)
	upA, upB := viftest.Pair("uplinkA", "uplinkB", 16)
	upA.Record = true
	a.SetUplink(upA, jumbo)
	b.SetUplink(upB, jumbo)
	t.Cleanup(func() { a.Close(); b.Close() })

	for _, tc := range []struct {
		name     string
		from, to *viftest.Port
		f        []byte
	}{
		{"a to b", guestA, guestB, jumboFrame(macB1, macA1, satest.V6A, satest.V6B, 8000)},
		{"b to a", guestB, guestA, jumboFrame(macA1, macB1, satest.V6B, satest.V6A, 8000)},
	} {
		tc.from.WriteBatch([][]byte{tc.f})
		got := recv(t, tc.to)
		if !bytes.Equal(got, tc.f) {
			t.Fatalf("%s: the peer VM got %d bytes, want the %d-byte frame intact", tc.name, len(got), len(tc.f))
		}
	}
	big := 0
	for _, f := range upA.Written() {
		if len(f.Data) > 8000 {
			big++
		}
	}
	if big == 0 {
		t.Errorf("no frame above 8000 bytes left gateway A's uplink")
	}
	for _, e := range []*Engine{a, b} {
		st := e.Stats("acme")
		for d := drop.Reason(1); d < drop.NumCounted; d++ {
			if n := st.Drops[d].Load(); n != 0 {
				t.Errorf("drops %v: %d", d, n)
			}
		}
	}
}

// TestJumboSuperFrameSegments: with an uplink MTU of 9000, a guest's 60 KB
// TCP super-frame is cut into segments that fill the jumbo MTU after ESP
// (not refused for want of room), allocating nothing once the segment
// buffers exist.
func TestJumboSuperFrameSegments(t *testing.T) {
	db := sa.NewDB(0)
	e := New(db, nil)
	e.setConfig(func(c *config) { c.mtu = jumbo })
	out, _ := tenantSAs(t, "acme", macA1, 100, 1, 0x1000, 0x2000, satest.V6A, satest.V6B)
	_ = db.Add(out)
	vifA, up := viftest.NewSink("vifA"), viftest.NewSink("up")
	pol := []tenant.Policy{{Name: "all-out", VM: "acme", Src: netip.PrefixFrom(satest.V6A, 128), Dst: netip.PrefixFrom(satest.V6B, 128),
		SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoAny, Direction: sa.DirOut, Action: tenant.ActionIPsec, Mode: sa.ModeTransport, SAName: "acme-out"}}
	tp := &txPort{Port: vifA, vnet: true}
	vm := &vmState{name: "acme", port: tp, mac: macA1, vlan: 100, def: tenant.ActionNone,
		spd: tenant.Compile(pol), policies: pol, sas: []*sa.SA{out}, stats: new(VMStats), icmp: pmtu.NewRateLimiter(1, 1)}
	e.snap.Store(&snapshot{byKey: map[vmKey]*vmState{}, byPort: map[vif.Port]*vmState{vifA: vm}})
	e.setConfig(func(c *config) { c.uplink = &txPort{Port: up} })
	w := newTestWorker(e, tp, false)

	p := offloadtest.Packet{Src: satest.V6A, Dst: satest.V6B, Seq: 1000, Flags: 0x18, Payload: make([]byte, 60000)}
	frame, h := offloadtest.Super(p, 8900, true, false)
	copy(frame[0:6], macB1[:])
	copy(frame[6:12], macA1[:])
	mss := jumbo - espOverhead(out) - 40 - 20
	wantSegs := (60000 + mss - 1) / mss
	send := func() {
		h.Put(w.bufs[0][readOff:])
		w.sizes[0] = vif.VnetHdrLen + copy(w.bufs[0][readOff+vif.VnetHdrLen:], frame)
		before := up.Frames
		w.batch(1)
		if got := up.Frames - before; got != wantSegs {
			t.Fatalf("uplink got %d frames, want %d segments of MSS %d (drops: %v)", got, wantSegs, mss, drops(vm.stats))
		}
	}
	send()
	if allocs := testing.AllocsPerRun(20, send); allocs != 0 {
		t.Fatalf("jumbo GSO pipeline allocates %v per super-frame", allocs)
	}
	if up.LastN <= 1500+ethLen+vlanTagSize || up.LastN > jumbo+ethLen+vlanTagSize {
		t.Fatalf("last frame %d bytes: want a jumbo frame within the MTU", up.LastN)
	}
	if d := drops(vm.stats); len(d) != 0 {
		t.Errorf("drops: %v", d)
	}
}

// drops lists a VM's non-zero drop counters.
func drops(st *VMStats) map[drop.Reason]uint64 {
	out := map[drop.Reason]uint64{}
	for d := drop.Reason(1); d < drop.NumCounted; d++ {
		if n := st.Drops[d].Load(); n != 0 {
			out[d] = n
		}
	}
	return out
}

// TestFrameBuffersFollowMTU: a worker's buffers at the default MTU are the
// small ones they always were (an attached VM costs no more memory), and
// grow only when the uplink's MTU needs it; segment buffers follow an MTU
// raised after the worker started.
func TestFrameBuffersFollowMTU(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	plain := newTestWorker(e, &txPort{Port: viftest.NewSink("vif")}, false)
	vnet := newTestWorker(e, &txPort{Port: viftest.NewSink("vnet"), vnet: true}, false)
	if len(plain.bufs[0]) != bufSize || len(plain.spare[0]) != bufSize {
		t.Errorf("MTU 1500: read buffers %d, spares %d bytes; want %d", len(plain.bufs[0]), len(plain.spare[0]), bufSize)
	}
	if vnet.seg != nil {
		t.Errorf("segment buffers allocated before the first super-frame")
	}
	vnet.ensureSeg()
	if len(vnet.seg[0]) != bufSize {
		t.Errorf("MTU 1500: segment buffers %d bytes, want %d", len(vnet.seg[0]), bufSize)
	}

	e.setConfig(func(c *config) { c.mtu = jumbo })
	vnet.cfg = e.cfg.Load() // as the next batch starts
	vnet.ensureSeg()
	if len(vnet.seg[0]) < jumbo+ethLen+vif.VnetHdrLen+readOff {
		t.Errorf("MTU %d: segment buffers %d bytes", jumbo, len(vnet.seg[0]))
	}
	big := newTestWorker(e, &txPort{Port: viftest.NewSink("vif2")}, false)
	if len(big.bufs[0]) < jumbo+ethLen+readOff {
		t.Errorf("MTU %d: read buffers %d bytes", jumbo, len(big.bufs[0]))
	}
	for _, w := range []*worker{plain, vnet, big} {
		w.port.Close()
	}
}
