package datapath

import (
	"bytes"
	"encoding/binary"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"testing"
	"time"

	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

var (
	macA1 = header.MAC{0x52, 0x54, 0, 0xa, 0, 1} // acme VM on gateway A
	macB1 = header.MAC{0x52, 0x54, 0, 0xb, 0, 1} // acme VM on gateway B
	macA2 = header.MAC{0x52, 0x54, 0, 0xa, 0, 2} // globex VM on gateway A
	macB2 = header.MAC{0x52, 0x54, 0, 0xb, 0, 2} // globex VM on gateway B
)

// frame builds an Ethernet frame carrying a UDP packet.
func frame(dst, src header.MAC, s, d netip.Addr, size int) []byte {
	b := make([]byte, 2048)
	n := satest.UDP(b, ethLen, s, d, 1000, 2000, size)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:], etherTypeOf(b[ethLen]))
	return b[:ethLen+n]
}

type side struct {
	e      *Engine
	db     *sa.DB
	guests map[string]*viftest.Port
	uplink *viftest.Port // the engine's end
}

// tenantSAs returns the out and in SA of a VM for a given key seed: both
// gateways use SPI 0x1000 for every tenant, as the seeds do.
func tenantSAs(t testing.TB, name string, mac header.MAC, vlan uint16, keySeed byte, outSPI, inSPI uint32, local, remote netip.Addr) (out, in *sa.SA) {
	mk := func(n string, dir sa.Direction, spi uint32, src, dst netip.Addr) *sa.SA {
		c := sa.Config{Name: n, Scope: sa.Scope{VLAN: vlan, MAC: mac}, SPI: spi, Dir: dir, Src: src, Dst: dst,
			Mode: sa.ModeTransport, Enc: sa.EncAES128GCM, EncKey: satest.Key(20, keySeed+byte(spi)), Integ: sa.IntegNone}
		s, err := sa.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return mk(name+"-out", sa.DirOut, outSPI, local, remote), mk(name+"-in", sa.DirIn, inSPI, remote, local)
}

func policies(vm string, local, remote netip.Prefix) []tenant.Policy {
	p := func(name string, dir sa.Direction, src, dst netip.Prefix, sa string, act tenant.Action) tenant.Policy {
		return tenant.Policy{Name: name, VM: vm, Src: src, Dst: dst, SrcPort: tenant.PortAny, DstPort: tenant.PortAny,
			ULProto: tenant.ProtoUDP, Direction: dir, Action: act, Mode: 1, SAName: sa}
	}
	return []tenant.Policy{
		p("out", sa.DirOut, local, remote, vm+"-out", tenant.ActionIPsec),
		p("in", sa.DirIn, remote, local, vm+"-in", tenant.ActionIPsec),
	}
}

// build makes gateway A and B joined by an in-memory wire, each with an
// acme VM (VLAN 100) and a globex VM (VLAN 200) using the same addresses
// and SPI 0x1000 with different keys.
func build(t *testing.T) (a, b *side, wireA *viftest.Port) { return buildWith(t, nil) }

// buildWith is build with setup, if not nil, applied to each engine
// before it has a port.
func buildWith(t *testing.T, setup func(*Engine)) (a, b *side, wireA *viftest.Port) {
	mk := func(macAcme, macGlobex header.MAC, local, remote netip.Addr, outSPI, inSPI uint32) *side {
		s := &side{db: sa.NewDB(0), guests: map[string]*viftest.Port{}}
		s.e = New(s.db, nil)
		if setup != nil {
			setup(s.e)
		}
		var vms []VM
		for _, tc := range []struct {
			name string
			mac  header.MAC
			vlan uint16
			seed byte
		}{{"acme", macAcme, 100, 1}, {"globex", macGlobex, 200, 2}} {
			guest, host := viftest.Pair(tc.name+"-guest", tc.name+"-vif", 256)
			s.guests[tc.name] = guest
			out, in := tenantSAs(t, tc.name, tc.mac, tc.vlan, tc.seed, outSPI, inSPI, local, remote)
			if err := s.db.Apply([]*sa.SA{out, in}, nil); err != nil {
				t.Fatal(err)
			}
			pol := policies(tc.name, netip.PrefixFrom(local, 128), netip.PrefixFrom(remote, 128))
			vms = append(vms, VM{Name: tc.name, Port: host, MAC: tc.mac, VLAN: tc.vlan, DefaultAction: tenant.ActionNone,
				Policies: pol, SAs: []*sa.SA{out, in}})
		}
		s.e.Update(vms)
		return s
	}
	a = mk(macA1, macA2, satest.V6A, satest.V6B, 0x1000, 0x2000)
	b = mk(macB1, macB2, satest.V6B, satest.V6A, 0x2000, 0x1000)
	upA, upB := viftest.Pair("uplinkA", "uplinkB", 256)
	upA.Record = true
	a.uplink, b.uplink = upA, upB
	a.e.SetUplink(upA, 0)
	b.e.SetUplink(upB, 0)
	t.Cleanup(func() { a.e.Close(); b.e.Close() })
	return a, b, upA
}

func recv(t *testing.T, p *viftest.Port) []byte {
	t.Helper()
	select {
	case f := <-recvCh(p):
		return f.Data
	case <-time.After(2 * time.Second):
		t.Fatalf("%s: no frame", p.Name())
	}
	return nil
}

func recvCh(p *viftest.Port) <-chan viftest.Frame {
	c := make(chan viftest.Frame, 1)
	go func() {
		if f, ok := p.Recv(); ok {
			c <- f
		}
	}()
	return c
}

func TestTwoTenantsSameSPI(t *testing.T) {
	a, b, wire := build(t)
	for _, tc := range []struct {
		name     string
		src, dst header.MAC
		size     int
	}{{"acme", macA1, macB1, 100}, {"globex", macA2, macB2, 200}} {
		f := frame(tc.dst, tc.src, satest.V6A, satest.V6B, tc.size)
		a.guests[tc.name].WriteBatch([][]byte{f})
		got := recv(t, b.guests[tc.name])
		if !bytes.Equal(got, f) {
			t.Fatalf("%s: delivered frame differs\n got %x\nwant %x", tc.name, got, f)
		}
	}
	// On the wire: 802.1Q-tagged ESP, SPI 0x1000 in both VLANs.
	w := wire.Written()
	if len(w) != 2 {
		t.Fatalf("wire carried %d frames, want 2", len(w))
	}
	for i, vlan := range []uint16{100, 200} {
		fr := w[i].Data
		if binary.BigEndian.Uint16(fr[12:]) != etherVLAN || binary.BigEndian.Uint16(fr[14:])&0xfff != vlan {
			t.Fatalf("frame %d: not tagged VLAN %d: %x", i, vlan, fr[:18])
		}
		if fr[18+6] != 50 || binary.BigEndian.Uint32(fr[18+40:]) != 0x1000 {
			t.Fatalf("frame %d: not ESP SPI 0x1000", i)
		}
	}
	if got := b.e.Stats("acme").PacketsIn.Load(); got != 1 {
		t.Fatalf("acme delivered %d", got)
	}
}

func TestCrossTenantAndReplayDrops(t *testing.T) {
	a, b, wire := build(t)
	f := frame(macB1, macA1, satest.V6A, satest.V6B, 64)
	a.guests["acme"].WriteBatch([][]byte{f})
	recv(t, b.guests["acme"])
	esp := wire.Written()[0].Data

	// Replay the captured acme ESP frame.
	b.uplink.Inject(esp, vif.Meta{})
	// Re-address it to globex (VLAN 200, globex MAC): same SPI, wrong key.
	x := append([]byte(nil), esp...)
	copy(x[0:6], macB2[:])
	binary.BigEndian.PutUint16(x[14:], 200)
	b.uplink.Inject(x, vif.Meta{})

	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if b.e.Stats("acme").Drops[drop.Replay].Load() == 1 && b.e.Stats("globex").Drops[drop.AuthFailed].Load() == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.e.Stats("acme").Drops[drop.Replay].Load(); got != 1 {
		t.Errorf("acme replay drops %d, want 1", got)
	}
	if got := b.e.Stats("globex").Drops[drop.AuthFailed].Load(); got != 1 {
		t.Errorf("globex auth-failed drops %d, want 1", got)
	}
	if got := b.e.Stats("globex").PacketsIn.Load(); got != 0 {
		t.Errorf("globex received %d packets of acme's", got)
	}
}

func TestDisabledPassesClear(t *testing.T) {
	a, b, wire := build(t)
	a.e.SetEnabled(false)
	b.e.SetEnabled(false)
	f := frame(macB1, macA1, satest.V6A, satest.V6B, 64)
	a.guests["acme"].WriteBatch([][]byte{f})
	if got := recv(t, b.guests["acme"]); !bytes.Equal(got, f) {
		t.Fatal("frame changed with IPsec disabled")
	}
	if fr := wire.Written()[0].Data; fr[18+6] != 17 {
		t.Fatalf("wire carries next header %d, want clear UDP", fr[18+6])
	}
}

func TestSpoofedSourceDropped(t *testing.T) {
	a, _, wire := build(t)
	f := frame(macB1, macA2, satest.V6A, satest.V6B, 64) // globex's MAC on acme's VIF
	a.guests["acme"].WriteBatch([][]byte{f})
	deadline := time.Now().Add(2 * time.Second)
	for a.e.Stats("acme").Drops[drop.SpoofedSource].Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if a.e.Stats("acme").Drops[drop.SpoofedSource].Load() != 1 || len(wire.Written()) != 0 {
		t.Fatal("spoofed frame not dropped")
	}
}

// TestPipelineAllocs drives whole batches through a worker of each
// gateway: VIF → SPD → ESP → 802.1Q → uplink, and uplink → SA lookup →
// decap → inbound SPD → VIF.
func TestPipelineAllocs(t *testing.T) {
	dbA, dbB := sa.NewDB(0), sa.NewDB(0)
	ea, eb := New(dbA, nil), New(dbB, nil)
	outA, _ := tenantSAs(t, "acme", macA1, 100, 1, 0x1000, 0x2000, satest.V6A, satest.V6B)
	_, inB := tenantSAs(t, "acme", macB1, 100, 1, 0x2000, 0x1000, satest.V6B, satest.V6A)
	_ = dbA.Add(outA)
	_ = dbB.Add(inB)
	vifA, upA, vifB := viftest.NewSink("vifA"), viftest.NewSink("upA"), viftest.NewSink("vifB")
	polA := policies("acme", netip.PrefixFrom(satest.V6A, 128), netip.PrefixFrom(satest.V6B, 128))
	polB := policies("acme", netip.PrefixFrom(satest.V6B, 128), netip.PrefixFrom(satest.V6A, 128))
	snapA := &snapshot{byKey: map[vmKey]*vmState{}, byPort: map[vif.Port]*vmState{}}
	vmA := &vmState{name: "acme", port: &txPort{Port: vifA}, mac: macA1, vlan: 100, def: tenant.ActionNone,
		spd: tenant.Compile(polA), policies: polA, sas: []*sa.SA{outA, nil}, stats: new(VMStats)}
	snapA.byPort[vifA] = vmA
	ea.snap.Store(snapA)
	ea.setConfig(func(c *config) { c.uplink = &txPort{Port: upA} })
	snapB := &snapshot{byKey: map[vmKey]*vmState{}, byPort: map[vif.Port]*vmState{}}
	vmB := &vmState{name: "acme", port: &txPort{Port: vifB}, mac: macB1, vlan: 100, def: tenant.ActionNone,
		spd: tenant.Compile(polB), policies: polB, sas: []*sa.SA{nil, inB}, stats: new(VMStats)}
	snapB.byKey[vmKey{100, macB1}] = vmB
	eb.snap.Store(snapB)

	wa := newTestWorker(ea, vmA.port, false)
	wb := newTestWorker(eb, &txPort{Port: viftest.NewSink("upB")}, true)
	clearFrame := frame(macB1, macA1, satest.V6A, satest.V6B, 1000)
	const batch = 32
	allocs := testing.AllocsPerRun(50, func() {
		for i := 0; i < batch; i++ {
			wa.sizes[i] = copy(wa.bufs[i][readOff:], clearFrame)
		}
		before := upA.Frames
		wa.batch(batch)
		if upA.Frames-before != batch {
			t.Fatalf("uplink got %d frames", upA.Frames-before)
		}
		// Feed the last ESP frame and the batch's others: copy what the
		// uplink sink saw into B's buffers.
		for i := 0; i < batch; i++ {
			wb.sizes[i] = copy(wb.bufs[i][readOff:], upA.Last[:upA.LastN])
		}
		wb.batch(1) // only one is fresh; the rest would be replays
	})
	if allocs != 0 {
		t.Fatalf("pipeline allocates %v per batch of %d", allocs, batch)
	}
	if vmB.stats.PacketsIn.Load() == 0 || vifB.Frames == 0 {
		t.Fatal("B delivered nothing")
	}
	if !bytes.Equal(vifB.Last[:vifB.LastN], clearFrame) {
		t.Fatal("B delivered a different frame")
	}
}

// TestPipelineGSOAllocs feeds a guest's 60 KB TCP super-frame with a
// partial checksum (as a TSO guest hands it over) through a VIF worker:
// it must leave as MTU-sized ESP frames, allocating nothing.
func TestPipelineGSOAllocs(t *testing.T) {
	db := sa.NewDB(0)
	e := New(db, nil)
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
	frame, h := offloadtest.Super(p, 1440, true, false)
	copy(frame[0:6], macB1[:])
	copy(frame[6:12], macA1[:])
	mss := 1500 - espOverhead(out) - 40 - 20
	wantSegs := (60000 + mss - 1) / mss
	allocs := testing.AllocsPerRun(20, func() {
		h.Put(w.bufs[0][readOff:])
		w.sizes[0] = vif.VnetHdrLen + copy(w.bufs[0][readOff+vif.VnetHdrLen:], frame)
		before := up.Frames
		w.batch(1)
		if got := up.Frames - before; got != wantSegs {
			t.Fatalf("uplink got %d frames, want %d segments of MSS %d", got, wantSegs, mss)
		}
	})
	if allocs != 0 {
		t.Fatalf("GSO pipeline allocates %v per super-frame", allocs)
	}
	if up.LastN > 1500+ethLen+vlanTagSize {
		t.Fatalf("last frame %d bytes: over the MTU", up.LastN)
	}
	for d := range vm.stats.Drops {
		if c := vm.stats.Drops[d].Load(); c != 0 {
			t.Errorf("drops %v: %d", drop.Reason(d), c)
		}
	}
}

// TestUplinkSuperFrameToVM: a TCP super-frame the uplink's GRO coalesced
// arrives with its virtio-net header; it passes the VM's inbound policy
// (none) and reaches the VM whole, header included, and nothing allocates.
func TestUplinkSuperFrameToVM(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	vifB := viftest.NewSink("vifB")
	vm := &vmState{name: "acme", port: &txPort{Port: vifB, vnet: true}, mac: macB1, vlan: 0, def: tenant.ActionNone,
		spd: tenant.Compile(nil), stats: new(VMStats)}
	snap := newSnapshot()
	snap.byKey[vmKey{0, macB1}] = vm
	e.snap.Store(snap)
	up := &txPort{Port: viftest.NewSink("up"), vnet: true}
	w := newTestWorker(e, up, true)
	p := offloadtest.Packet{Src: satest.V4A, Dst: satest.V4B, Seq: 7, Payload: make([]byte, 30000)}
	frame, h := offloadtest.Super(p, 1448, false, false)
	copy(frame[0:6], macB1[:])
	copy(frame[6:12], macA1[:])
	allocs := testing.AllocsPerRun(20, func() {
		h.Put(w.bufs[0][readOff:])
		w.sizes[0] = vif.VnetHdrLen + copy(w.bufs[0][readOff+vif.VnetHdrLen:], frame)
		w.batch(1)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per super-frame", allocs)
	}
	if vifB.Frames == 0 || vifB.LastN != vif.VnetHdrLen+len(frame) && vifB.LastN != len(vifB.Last) {
		t.Fatalf("VM got %d frames, last %d bytes; want the %d-byte super-frame with its header", vifB.Frames, vifB.LastN, vif.VnetHdrLen+len(frame))
	}
	got, _ := offload.DecodeVnetHdr(vifB.Last[:vif.VnetHdrLen])
	if got.GSO() != offload.GSOTCPv4 || got.GSOSize != 1448 {
		t.Fatalf("header to the VM: %+v, want GSO TCPv4 size 1448", got)
	}
	if vm.stats.PacketsIn.Load() == 0 {
		t.Fatal("not counted as delivered")
	}
}

// TestCoalesceTowardVM: ten consecutive TCP segments of one flow from the
// uplink reach a VM that takes virtio-net headers as one super-frame
// (GSO TCPv4, gso_size = the segment size), allocating nothing.
func TestCoalesceTowardVM(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	vifB := viftest.NewSink("vifB")
	vm := &vmState{name: "acme", port: &txPort{Port: vifB, vnet: true}, mac: macB1, def: tenant.ActionNone,
		spd: tenant.Compile(nil), stats: new(VMStats)}
	snap := newSnapshot()
	snap.byKey[vmKey{0, macB1}] = vm
	e.snap.Store(snap)
	w := newTestWorker(e, &txPort{Port: viftest.NewSink("up")}, true)
	const segs, size = 10, 1000
	var frames [][]byte
	for i := 0; i < segs; i++ {
		f := offloadtest.Packet{Src: satest.V4A, Dst: satest.V4B, Seq: uint32(5000 + i*size), Payload: make([]byte, size)}.Frame()
		copy(f[0:6], macB1[:])
		copy(f[6:12], macA1[:])
		frames = append(frames, f)
	}
	before := w.co.Segments
	allocs := testing.AllocsPerRun(20, func() {
		for i, f := range frames {
			w.sizes[i] = copy(w.bufs[i][readOff:], f)
		}
		w.batch(segs)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
	runs := uint64(21) // AllocsPerRun's warm-up run and 20 measured
	if got := w.co.Segments - before; got != runs*segs {
		t.Fatalf("coalesced %d segments, want %d", got, runs*segs)
	}
	if vifB.Frames != int(runs) || vifB.Bytes != int(runs)*(vif.VnetHdrLen+14+20+20+segs*size) {
		t.Fatalf("VM got %d frames, %d bytes; want %d super-frames", vifB.Frames, vifB.Bytes, runs)
	}
	h, _ := offload.DecodeVnetHdr(vifB.Last[:vif.VnetHdrLen])
	if h.GSO() != offload.GSOTCPv4 || h.GSOSize != size || !h.NeedsCsum() {
		t.Fatalf("header %+v: want GSO TCPv4, size %d, NEEDS_CSUM", h, size)
	}
}
