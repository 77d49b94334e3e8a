package datapath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/gso"
	"github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// udpGSOSide is one gateway of the UDP GSO tests: a VM with a VIF that
// takes virtio-net headers, an ESP-in-UDP SA pair (RFC 3948, ports 4500)
// and an uplink with virtio-net headers.
type udpGSOSide struct {
	e        *Engine
	vm       *vmState
	out, in  *sa.SA
	vifW, up *worker
}

func newUDPGSOSide(t testing.TB, mac header.MAC, local, remote netip.Addr, outSPI, inSPI uint32, mode sa.Mode, vifPort, upPort vif.Port) *udpGSOSide {
	db := sa.NewDB(0)
	e := New(db, nil)
	mk := func(name string, dir sa.Direction, spi uint32, src, dst netip.Addr) *sa.SA {
		s, err := sa.New(sa.Config{Name: name, Scope: sa.Scope{MAC: mac}, SPI: spi, Dir: dir, Src: src, Dst: dst, Mode: mode,
			Enc: sa.EncAES128GCM, EncKey: satest.Key(20, byte(spi>>8)), Integ: sa.IntegNone,
			Encap: &sa.UDPEncap{SrcPort: 4500, DstPort: 4500}})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Add(s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	out := mk("acme-out", sa.DirOut, outSPI, local, remote)
	in := mk("acme-in", sa.DirIn, inSPI, remote, local)
	pol := func(name string, dir sa.Direction, src, dst netip.Addr, s string) tenant.Policy {
		return tenant.Policy{Name: name, VM: "acme", Src: netip.PrefixFrom(src, src.BitLen()), Dst: netip.PrefixFrom(dst, dst.BitLen()),
			SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoAny, Direction: dir, Action: tenant.ActionIPsec, Mode: mode, SAName: s}
	}
	pols := []tenant.Policy{pol("out", sa.DirOut, local, remote, "acme-out"), pol("in", sa.DirIn, remote, local, "acme-in")}
	tp := &txPort{Port: vifPort, vnet: true}
	vm := &vmState{name: "acme", port: tp, mac: mac, def: tenant.ActionNone, spd: tenant.Compile(pols), policies: pols,
		sas: []*sa.SA{out, in}, inBySA: compileInBySA(pols, []*sa.SA{out, in}), stats: new(VMStats), icmp: pmtu.NewRateLimiter(1, 1)}
	snap := newSnapshot()
	snap.byKey[vmKey{0, mac}] = vm
	snap.byPort[vifPort] = vm
	e.snap.Store(snap)
	upTx := &txPort{Port: upPort, vnet: true, udpGSO: true}
	e.setConfig(func(c *config) { c.uplink = upTx })
	vifW := newWorker(e, tp, false)
	if vifW.batchBufs == nil {
		// A pooled VIF worker takes its buffers when frames arrive
		// (run); this test hands it frames directly.
		vifW.batchBufs = vifW.pool.get()
	}
	return &udpGSOSide{e: e, vm: vm, out: out, in: in, vifW: vifW, up: newWorker(e, upTx, true)}
}

// TestUDPGSOTrainAcrossGateways: a guest's 60 KB TSO super-frame on an SA
// with UDP encapsulation leaves gateway A's uplink as ONE UDP GSO
// super-frame (GSO_UDP_L4, gso_size the ESP-in-UDP payload, partial
// checksum at the UDP header); gateway B, receiving it whole as a veth
// delivers it, cuts it, decrypts every ESP packet and hands its VM the TCP
// stream coalesced, byte for byte what A's guest sent.
func TestUDPGSOTrainAcrossGateways(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     sa.Mode
		src, dst netip.Addr
	}{
		{"ipv4 tunnel", sa.ModeTunnel, satest.V4A, satest.V4B},
		{"ipv6 transport", sa.ModeTransport, satest.V6A, satest.V6B},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire, wireB := viftest.Pair("upA", "upB", 8)
			wire.Record = true
			vifB, _ := viftest.Pair("vifB", "guestB", 64)
			vifB.Record = true
			a := newUDPGSOSide(t, macA1, tc.src, tc.dst, 0x1000, 0x2000, tc.mode, viftest.NewSink("vifA"), wire)
			b := newUDPGSOSide(t, macB1, tc.dst, tc.src, 0x2000, 0x1000, tc.mode, vifB, wireB)

			data := guestSuper(a.vifW, tc.src, tc.dst, 1000, 0x18, 60000, 13)

			sent := wire.Written()
			if len(sent) != 1 || a.e.GSOStats.TrainsSent.Load() != 1 {
				t.Fatalf("uplink got %d frames (%d trains), want one UDP GSO super-frame", len(sent), a.e.GSOStats.TrainsSent.Load())
			}
			gh, d := offload.ParseVnetHdr(sent[0].Data)
			if d != drop.None || gh.GSO() != offload.GSOUDPL4 || !gh.NeedsCsum() || gh.CsumOffset != 6 {
				t.Fatalf("uplink header %+v (%v): want GSO_UDP_L4 with NEEDS_CSUM at the UDP checksum", gh, d)
			}
			segs := int(a.e.GSOStats.SegmentsSent.Load())
			if want := len(sent[0].Data) - vif.VnetHdrLen - int(gh.CsumStart) - 8; segs != (want+int(gh.GSOSize)-1)/int(gh.GSOSize) {
				t.Fatalf("%d datagrams joined, but %d payload bytes / gso_size %d", segs, want, gh.GSOSize)
			}
			// Each datagram is one ESP packet as the peer will see it.
			out, sizes := make([][]byte, 64), make([]int, 64)
			for i := range out {
				out[i] = make([]byte, 2048)
			}
			ns, d := splitFrame(sent[0].Data, out, sizes)
			if d != drop.None || ns != segs {
				t.Fatalf("split: %d, %v", ns, d)
			}
			for i := range ns {
				ip := out[i][ethLen:sizes[i]]
				if len(ip) > 1500 {
					t.Fatalf("datagram %d: %d bytes, over the MTU", i, len(ip))
				}
			}

			// Gateway B's uplink reads the super-frame whole.
			b.up.sizes[0] = copy(b.up.bufs[0][readOff:], sent[0].Data)
			b.up.batch(1)
			if b.e.GSOStats.TrainsReceived.Load() != 1 {
				t.Fatalf("B split %d super-frames, want 1", b.e.GSOStats.TrainsReceived.Load())
			}
			for dr := range b.vm.stats.Drops {
				if c := b.vm.stats.Drops[dr].Load(); c != 0 {
					t.Errorf("B drops %v: %d", drop.Reason(dr), c)
				}
			}
			if got := b.in.Stats.Packets.Load(); int(got) != segs {
				t.Errorf("B's inbound SA decrypted %d packets, want %d", got, segs)
			}
			// What `vifsec stats --uplink` shows of both gateways.
			if got, want := a.e.UplinkCounts().UDPGSO, (UDPGSOCounts{TrainsSent: 1, SegmentsSent: uint64(segs)}); got != want {
				t.Errorf("A's UDP GSO counts %+v, want %+v", got, want)
			}
			if got, want := b.e.UplinkCounts().UDPGSO, (UDPGSOCounts{TrainsReceived: 1, SegmentsReceived: uint64(segs)}); got != want {
				t.Errorf("B's UDP GSO counts %+v, want %+v", got, want)
			}
			stream := vmStream(t, vifB.Written())
			if !bytes.Equal(stream, data) {
				t.Fatalf("B's VM got %d bytes of TCP payload, want the %d A's guest sent", len(stream), len(data))
			}
			if b.up.co.Segments == 0 {
				t.Errorf("nothing coalesced toward B's VM")
			}
		})
	}
}

// splitFrame cuts a virtio-net header + UDP GSO super-frame as the kernel
// would (gso.SplitUDP, checksums aside).
func splitFrame(b []byte, out [][]byte, sizes []int) (int, drop.Reason) {
	h, d := offload.ParseVnetHdr(b)
	if d != drop.None {
		return 0, d
	}
	return gsoSplit(b[vif.VnetHdrLen:], h, out, sizes)
}

// TestUDPGSOTrainAllocs: the train path — TSO super-frame, segmentation,
// ESP in UDP per segment, one UDP GSO super-frame to the uplink — and the
// receiving side's split, decryption and coalescing allocate nothing.
func TestUDPGSOTrainAllocs(t *testing.T) {
	upSink, vifSink := viftest.NewSink("up"), viftest.NewSink("vifB")
	wire := &captureOne{}
	a := newUDPGSOSide(t, macA1, satest.V4A, satest.V4B, 0x1000, 0x2000, sa.ModeTunnel, viftest.NewSink("vifA"), wire)
	b := newUDPGSOSide(t, macB1, satest.V4B, satest.V4A, 0x2000, 0x1000, sa.ModeTunnel, vifSink, upSink)
	p := offloadtest.Packet{Src: satest.V4A, Dst: satest.V4B, Seq: 1000, Flags: 0x10, Payload: make([]byte, 60000)}
	frame, h := offloadtest.Super(p, 1448, true, false)
	copy(frame[0:6], macB1[:])
	copy(frame[6:12], macA1[:])
	allocs := testing.AllocsPerRun(20, func() {
		h.Put(a.vifW.bufs[0][readOff:])
		a.vifW.sizes[0] = vif.VnetHdrLen + copy(a.vifW.bufs[0][readOff+vif.VnetHdrLen:], frame)
		a.vifW.batch(1)
		b.up.sizes[0] = copy(b.up.bufs[0][readOff:], wire.buf[:wire.n])
		b.up.batch(1)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per super-frame through both gateways", allocs)
	}
	if runs := uint64(21); a.e.GSOStats.TrainsSent.Load() != runs || b.e.GSOStats.TrainsReceived.Load() != runs {
		t.Fatalf("%d trains sent, %d split; want %d each", a.e.GSOStats.TrainsSent.Load(), b.e.GSOStats.TrainsReceived.Load(), runs)
	}
	if vifSink.Frames == 0 || b.up.co.Segments == 0 {
		t.Fatalf("B's VM got %d frames, %d segments coalesced", vifSink.Frames, b.up.co.Segments)
	}
}

// captureOne is a vif.Port that keeps the last frame written, without
// allocating.
type captureOne struct {
	buf [70000]byte
	n   int
}

func (c *captureOne) ReadBatch([][]byte, []int, []vif.Meta, int) (int, error) {
	return 0, vif.ErrClosed
}
func (c *captureOne) WriteBatch(frames [][]byte) (int, error) {
	for _, f := range frames {
		c.n = copy(c.buf[:], f)
	}
	return len(frames), nil
}
func (c *captureOne) Name() string { return "capture" }
func (c *captureOne) Close() error { return nil }

func gsoSplit(frame []byte, h offload.VnetHdr, out [][]byte, sizes []int) (int, drop.Reason) {
	return gso.SplitUDP(frame, h, out, 0, sizes)
}

// TestUDPGSONeedsDevice: toward an uplink whose device does not segment
// UDP GSO itself (UplinkOptions.UDPGSO false), or with SetUDPGSO(false),
// the ESP-in-UDP packets leave one by one: the kernel would have to cut a
// super-frame in software, which a PACKET_QDISC_BYPASS socket cannot.
func TestUDPGSONeedsDevice(t *testing.T) {
	for _, tc := range []struct {
		name   string
		device bool
		on     bool
	}{{"device without USO", false, true}, {"SetUDPGSO(false)", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			up := viftest.NewSink("up")
			a := newUDPGSOSide(t, macA1, satest.V4A, satest.V4B, 0x1000, 0x2000, sa.ModeTunnel, viftest.NewSink("vifA"), up)
			a.e.cfg.Load().uplink.udpGSO = tc.device
			a.e.SetUDPGSO(tc.on)
			p := offloadtest.Packet{Src: satest.V4A, Dst: satest.V4B, Seq: 1000, Flags: 0x10, Payload: make([]byte, 20000)}
			frame, h := offloadtest.Super(p, 1448, true, false)
			copy(frame[0:6], macB1[:])
			copy(frame[6:12], macA1[:])
			h.Put(a.vifW.bufs[0][readOff:])
			a.vifW.sizes[0] = vif.VnetHdrLen + copy(a.vifW.bufs[0][readOff+vif.VnetHdrLen:], frame)
			a.vifW.batch(1)
			if a.e.GSOStats.TrainsSent.Load() != 0 || up.Frames < 14 { // 20000 bytes at an MSS below 1448
				t.Fatalf("%d trains, %d frames to the uplink; want every ESP packet on its own", a.e.GSOStats.TrainsSent.Load(), up.Frames)
			}
		})
	}
}

// TestUDPGSOVXLANTrain: over the VXLAN underlay, the VXLAN packets made
// from one guest TSO super-frame (each carrying one ESP packet) leave as
// one UDP GSO super-frame to the remote VTEP's port 4789; the remote
// gateway, receiving it whole, cuts it, decapsulates VXLAN and ESP, and
// its VM gets the guest's TCP stream.
func TestUDPGSOVXLANTrain(t *testing.T) {
	wire, wireB := viftest.Pair("upA", "upB", 8)
	wire.Record = true
	vifB, _ := viftest.Pair("vifB", "guestB", 64)
	vifB.Record = true
	a := newUDPGSOSide(t, macA1, satest.V4A, satest.V4B, 0x1000, 0x2000, sa.ModeTransport, viftest.NewSink("vifA"), wire)
	b := newUDPGSOSide(t, macB1, satest.V4B, satest.V4A, 0x2000, 0x1000, sa.ModeTransport, vifB, wireB)
	const vni = 1000
	vtepA, vtepB := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	upMACA, upMACB := header.MAC{2, 0, 0, 0, 0, 0xa}, header.MAC{2, 0, 0, 0, 0, 0xb}
	for _, s := range []struct {
		side           *udpGSOSide
		local, remote  netip.Addr
		upMAC, peerMAC header.MAC
		peerVM         header.MAC
	}{{a, vtepA, vtepB, upMACA, upMACB, macB1}, {b, vtepB, vtepA, upMACB, upMACA, macA1}} {
		s.side.vm.vni = vni
		snap := s.side.e.snap.Load()
		snap.byVNIMAC[FDBKey{vni, s.side.vm.mac}] = s.side.vm
		snap.byVNI[vni] = []*vmState{s.side.vm}
		s.side.e.SetOverlay(&Overlay{Local: s.local, UplinkMAC: s.upMAC, FDB: map[FDBKey]netip.Addr{{vni, s.peerVM}: s.remote}})
		s.side.e.SetNeighbors(map[netip.Addr]header.MAC{s.remote: s.peerMAC})
	}
	data := guestSuper(a.vifW, satest.V4A, satest.V4B, 1, 0x10, 40000, 7)
	sent := wire.Written()
	if len(sent) != 1 || a.e.GSOStats.TrainsSent.Load() != 1 {
		t.Fatalf("uplink got %d frames (%d trains), want one UDP GSO super-frame", len(sent), a.e.GSOStats.TrainsSent.Load())
	}
	gh, _ := offload.DecodeVnetHdr(sent[0].Data)
	fr := sent[0].Data[vif.VnetHdrLen:]
	if gh.GSO() != offload.GSOUDPL4 || binary.BigEndian.Uint16(fr[int(gh.CsumStart)+2:]) != 4789 {
		t.Fatalf("header %+v: want GSO_UDP_L4 to VXLAN port 4789", gh)
	}
	b.up.sizes[0] = copy(b.up.bufs[0][readOff:], sent[0].Data)
	b.up.batch(1)
	if b.e.GSOStats.TrainsReceived.Load() != 1 {
		t.Fatalf("B split %d super-frames, want 1", b.e.GSOStats.TrainsReceived.Load())
	}
	stream := vmStream(t, vifB.Written())
	if !bytes.Equal(stream, data) {
		t.Fatalf("B's VM got %d bytes of the %d A's guest sent (overlay drops %d/%d)", len(stream), len(data),
			b.e.OverlayStats.DecapErrors.Load(), b.e.UplinkRx.Malformed.Load())
	}
}

// TestUDPGSODataValidFromUplink: a NIC or the kernel doing UDP GRO (for
// forwarding) hands the uplink the ESP-in-UDP datagrams of a peer's
// super-frame merged into one with DATA_VALID instead of NEEDS_CSUM: the
// gateway takes it as a train (not a malformed frame), cuts it, decrypts
// every datagram and its VM gets the guest's TCP stream; a guest's own
// UDP super-frame merged so goes to its VM whole, with the partial
// checksum a writer must give UDP GSO.
func TestUDPGSODataValidFromUplink(t *testing.T) {
	wire, wireB := viftest.Pair("upA", "upB", 8)
	wire.Record = true
	vifB, _ := viftest.Pair("vifB", "guestB", 64)
	vifB.Record = true
	a := newUDPGSOSide(t, macA1, satest.V6A, satest.V6B, 0x1000, 0x2000, sa.ModeTransport, viftest.NewSink("vifA"), wire)
	b := newUDPGSOSide(t, macB1, satest.V6B, satest.V6A, 0x2000, 0x1000, sa.ModeTransport, vifB, wireB)
	data := guestSuper(a.vifW, satest.V6A, satest.V6B, 7, 0x18, 30000, 11)
	sent := wire.Written()
	if len(sent) != 1 {
		t.Fatalf("uplink got %d frames, want one train", len(sent))
	}
	// As UDP GRO would hand it over: DATA_VALID, no checksum offsets.
	gh, _ := offload.DecodeVnetHdr(sent[0].Data)
	segs := int(a.e.GSOStats.SegmentsSent.Load())
	gro := bytes.Clone(sent[0].Data)
	binary.BigEndian.PutUint16(gro[vif.VnetHdrLen+int(gh.CsumStart)+6:], 0xbeef)
	(offload.VnetHdr{Flags: offload.FlagDataValid, GSOType: offload.GSOUDPL4, GSOSize: gh.GSOSize, HdrLen: gh.HdrLen}).Put(gro)

	b.up.sizes[0] = copy(b.up.bufs[0][readOff:], gro)
	b.up.batch(1)
	if m := b.e.UplinkRx.Malformed.Load(); m != 0 {
		t.Fatalf("B counted the UDP GRO super-frame malformed (%d)", m)
	}
	if got := b.e.UplinkCounts().UDPGSO; got.TrainsReceived != 1 || int(got.SegmentsReceived) != segs {
		t.Fatalf("B's UDP GSO counts %+v, want 1 train of %d datagrams", got, segs)
	}
	if got := b.in.Stats.Packets.Load(); int(got) != segs {
		t.Errorf("B's inbound SA decrypted %d packets, want %d", got, segs)
	}
	stream := vmStream(t, vifB.Written())
	if !bytes.Equal(stream, data) {
		t.Fatalf("B's VM got %d bytes of TCP payload, want the %d A's guest sent", len(stream), len(data))
	}

	// A guest's own UDP (no SA names it), merged by UDP GRO: to the VM
	// whole, NEEDS_CSUM at its UDP header.
	n0 := len(vifB.Written())
	u := offloadtest.Packet{Src: satest.V6A, Dst: satest.V6B, UDP: true, SrcPort: 5000, DstPort: 6000, Payload: make([]byte, 4000)}
	uf, _ := offloadtest.Super(u, 1000, false, false)
	copy(uf[0:6], macB1[:])
	copy(uf[6:12], macA1[:])
	ub := make([]byte, vif.VnetHdrLen, vif.VnetHdrLen+len(uf))
	l4 := offloadtest.L2Len(uf) + u.L3Len()
	(offload.VnetHdr{Flags: offload.FlagDataValid, GSOType: offload.GSOUDPL4, GSOSize: 1000, HdrLen: uint16(l4 + 8)}).Put(ub)
	ub = append(ub, uf...)
	b.vm.policies, b.vm.spd, b.vm.sas, b.vm.inBySA = nil, tenant.Compile(nil), nil, nil // clear UDP passes
	b.up.sizes[0] = copy(b.up.bufs[0][readOff:], ub)
	b.up.batch(1)
	got := vifB.Written()[n0:]
	if len(got) != 1 {
		t.Fatalf("B's VM got %d frames of the guest's UDP super-frame, want it whole", len(got))
	}
	vh, _ := offload.DecodeVnetHdr(got[0].Data)
	if vh.GSO() != offload.GSOUDPL4 || !vh.NeedsCsum() || int(vh.CsumStart) != l4 || vh.CsumOffset != 6 {
		t.Fatalf("header to the VM %+v: want GSO_UDP_L4, NEEDS_CSUM at %d", vh, l4)
	}
	if d := vh.Validate(got[0].Data[vif.VnetHdrLen:]); d != drop.None {
		t.Fatalf("header to the VM refused from a writer: %v", d)
	}
}

// guestSuper hands w (a VIF worker of macA1's gateway) one guest TCP
// super-frame from src to dst toward macB1, as a guest with TSO writes it
// (segments of 1448 bytes, partial checksum): n bytes of payload, byte i
// being i*mul, which it returns.
func guestSuper(w *worker, src, dst netip.Addr, seq uint32, flags byte, n int, mul byte) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i) * mul
	}
	p := offloadtest.Packet{Src: src, Dst: dst, Seq: seq, Flags: flags, Payload: data}
	frame, h := offloadtest.Super(p, 1448, true, false)
	copy(frame[0:6], macB1[:])
	copy(frame[6:12], macA1[:])
	h.Put(w.bufs[0][readOff:])
	w.sizes[0] = vif.VnetHdrLen + copy(w.bufs[0][readOff+vif.VnetHdrLen:], frame)
	w.batch(1)
	return data
}

// vmStream is the TCP payload of the frames a VM was given, in order;
// each frame's partial checksum, if it has one, must complete.
func vmStream(t *testing.T, frames []viftest.Frame) []byte {
	t.Helper()
	var stream []byte
	for _, f := range frames {
		vh, _ := offload.DecodeVnetHdr(f.Data)
		fr := f.Data[vif.VnetHdrLen:]
		if vh.NeedsCsum() && !csum.Complete(fr, int(vh.CsumStart), int(vh.CsumOffset)) {
			t.Fatalf("frame to the VM: bad partial checksum %+v", vh)
		}
		in, err := offloadtest.ParseFrame(fr)
		if err != nil {
			t.Fatalf("frame to the VM (%+v): %v", vh, err)
		}
		stream = append(stream, in.L4[len(in.L4)-in.PayloadLen:]...)
	}
	return stream
}
