package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/overlay/vxlan"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// TestOverlayESPInVXLAN: with a VXLAN underlay, a VM's ESP leaves inside
// VXLAN (VNI of its tenant, outer UDP 4789 from a port in 49152-65535) and
// the remote gateway decapsulates both layers to the right VM; two tenants
// with the same SPI stay apart by VNI.
func TestOverlayESPInVXLAN(t *testing.T) { testOverlay(t, false) }

// TestOverlayProtectUnderlay: with --protect underlay, the VXLAN packet
// itself travels inside ESP between the VTEPs, with each tenant's underlay
// SA; the wire shows only ESP between the VTEP addresses.
func TestOverlayProtectUnderlay(t *testing.T) { testOverlay(t, true) }

// TestOverlayProtectUnderlayNATT: the same with the underlay SAs' ESP in
// UDP (RFC 3948), as IKE between the VTEPs sets up across a NAT.
func TestOverlayProtectUnderlayNATT(t *testing.T) { testOverlayWith(t, true, true) }

func testOverlay(t *testing.T, protect bool) { testOverlayWith(t, protect, false) }

func testOverlayWith(t *testing.T, protect, natt bool) {
	a, b, wire := build(t)
	vtepA, vtepB := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	upMACA, upMACB := header.MAC{2, 0, 0, 0, 0, 0xa}, header.MAC{2, 0, 0, 0, 0, 0xb}
	vni := map[string]uint32{"acme": 1000, "globex": 2000}
	for _, gw := range []struct {
		s              *side
		local, remote  netip.Addr
		upMAC, peerMAC header.MAC
		remoteVMs      map[string]header.MAC
	}{
		{a, vtepA, vtepB, upMACA, upMACB, map[string]header.MAC{"acme": macB1, "globex": macB2}},
		{b, vtepB, vtepA, upMACB, upMACA, map[string]header.MAC{"acme": macA1, "globex": macA2}},
	} {
		fdb := map[FDBKey]netip.Addr{}
		for tn, mac := range gw.remoteVMs {
			fdb[FDBKey{vni[tn], mac}] = gw.remote
		}
		ov := &Overlay{Local: gw.local, UplinkMAC: gw.upMAC, FDB: fdb, ProtectUnderlay: protect}
		if protect {
			for tn, base := range map[string]uint32{"acme": 0x5000, "globex": 0x6000} {
				// SPI base from A to B, base+1 back; a key per tenant.
				outSPI, inSPI := base, base+1
				if gw.s == b {
					outSPI, inSPI = inSPI, outSPI
				}
				for _, d := range []struct {
					dir      sa.Direction
					spi      uint32
					src, dst netip.Addr
				}{{sa.DirOut, outSPI, gw.local, gw.remote}, {sa.DirIn, inSPI, gw.remote, gw.local}} {
					c := sa.Config{Name: fmt.Sprintf("%s-u%x", tn, d.spi), SPI: d.spi, Dir: d.dir, Src: d.src, Dst: d.dst,
						Mode: sa.ModeTransport, Enc: sa.EncAES128GCM, EncKey: satest.Key(20, byte(d.spi>>8)), Integ: sa.IntegNone}
					if natt {
						c.Encap = &sa.UDPEncap{SrcPort: 4500, DstPort: 4500}
					}
					s, err := sa.New(c)
					if err != nil {
						t.Fatal(err)
					}
					if err := gw.s.db.Add(s); err != nil {
						t.Fatal(err)
					}
					ov.Underlay = append(ov.Underlay, UnderlaySA{VNI: vni[tn], SA: s})
				}
			}
		}
		gw.s.e.SetOverlay(ov)
		gw.s.e.SetNeighbors(map[netip.Addr]header.MAC{gw.remote: gw.peerMAC})
		// Re-publish the VMs with their VNI.
		snap := gw.s.e.snap.Load()
		next := newSnapshot()
		for k, v := range snap.byKey {
			v2 := *v
			v2.vni = vni[map[header.MAC]string{macA1: "acme", macB1: "acme", macA2: "globex", macB2: "globex"}[v.mac]]
			next.byKey[k] = &v2
			next.byVLAN[v2.vlan] = append(next.byVLAN[v2.vlan], &v2)
			next.byVNIMAC[FDBKey{v2.vni, v2.mac}] = &v2
			next.byVNI[v2.vni] = append(next.byVNI[v2.vni], &v2)
		}
		for p, v := range snap.byPort {
			next.byPort[p] = next.byKey[vmKey{v.vlan, v.mac}]
		}
		gw.s.e.snap.Store(next)
	}
	for _, tc := range []struct {
		name     string
		src, dst header.MAC
	}{{"acme", macA1, macB1}, {"globex", macA2, macB2}} {
		f := frame(tc.dst, tc.src, satest.V6A, satest.V6B, 300)
		a.guests[tc.name].WriteBatch([][]byte{f})
		if got := recv(t, b.guests[tc.name]); !bytes.Equal(got, f) {
			t.Fatalf("%s: delivered frame differs", tc.name)
		}
	}
	w := wire.Written()
	if len(w) != 2 {
		t.Fatalf("wire carried %d frames, want 2", len(w))
	}
	for i, tn := range []string{"acme", "globex"} {
		fr := w[i].Data
		if protect {
			// Outer: IPv4 ESP between the VTEPs with the tenant's
			// underlay SPI; nothing of VXLAN or the tenant is visible.
			spi := binary.BigEndian.Uint32(fr[14+20:])
			proto := byte(50)
			if natt {
				spi, proto = binary.BigEndian.Uint32(fr[14+28:]), 17
				if binary.BigEndian.Uint16(fr[14+22:]) != 4500 {
					t.Fatalf("%s: underlay ESP in UDP not to port 4500: %x", tn, fr[:50])
				}
			}
			want := map[string]uint32{"acme": 0x5000, "globex": 0x6000}[tn]
			if binary.BigEndian.Uint16(fr[12:]) != etherIPv4 || fr[14+9] != proto || spi != want ||
				netip.AddrFrom4([4]byte(fr[14+12:14+16])) != vtepA || netip.AddrFrom4([4]byte(fr[14+16:14+20])) != vtepB {
				t.Fatalf("%s: not underlay ESP SPI %#x between the VTEPs: %x", tn, want, fr[:40])
			}
			continue
		}
		if !bytes.Equal(fr[0:6], upMACB[:]) || binary.BigEndian.Uint16(fr[12:]) != etherIPv4 || fr[14+9] != 17 {
			t.Fatalf("%s: outer frame is not IPv4/UDP to gateway B: %x", tn, fr[:40])
		}
		udp := fr[14+20:]
		sport, dport := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:])
		if dport != vxlan.DefaultPort || sport < 49152 {
			t.Fatalf("%s: UDP %d -> %d", tn, sport, dport)
		}
		h, _ := vxlan.ParseHeader(udp[8:])
		if h.VNI() != vni[tn] {
			t.Fatalf("%s: VNI %d, want %d", tn, h.VNI(), vni[tn])
		}
		inner := udp[8+8:]
		// Inner frame: untagged Ethernet, IPv6, ESP with the shared SPI.
		if binary.BigEndian.Uint16(inner[12:]) != etherIPv6 || inner[14+6] != 50 || binary.BigEndian.Uint32(inner[14+40:]) != 0x1000 {
			t.Fatalf("%s: inner is not ESP SPI 0x1000: %x", tn, inner[:60])
		}
	}
	if protect {
		// No downgrade: plain VXLAN (a valid frame for acme's VM, just
		// without the underlay ESP) is refused and counted.
		inner := frame(macB1, macA1, satest.V6A, satest.V6B, 100)
		buf := make([]byte, 256+len(inner))
		copy(buf[256:], inner)
		o := vxlan.Outer{SrcMAC: upMACA, DstMAC: upMACB, Src: vtepA, Dst: vtepB, VNI: vni["acme"]}
		st, d := vxlan.Encap(&o, 50000, buf, 256, len(inner))
		if d != drop.None {
			t.Fatal(d)
		}
		b.uplink.Inject(buf[st:], vif.Meta{})
		deadline := time.Now().Add(2 * time.Second)
		for b.e.OverlayStats.Unprotected.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if b.e.OverlayStats.Unprotected.Load() != 1 {
			t.Fatal("unprotected VXLAN was not refused")
		}
		select {
		case f := <-recvCh(b.guests["acme"]):
			t.Fatalf("acme received unprotected VXLAN: %x", f.Data[:20])
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestOverlayAllocs: VM frame → ESP → VXLAN → underlay ESP (protect mode)
// → uplink, allocating nothing per batch.
func TestOverlayAllocs(t *testing.T) {
	for _, protect := range []bool{false, true} {
		db := sa.NewDB(0)
		e := New(db, nil)
		out, _ := tenantSAs(t, "acme", macA1, 100, 1, 0x1000, 0x2000, satest.V6A, satest.V6B)
		_ = db.Add(out)
		vtepA, vtepB := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
		ov := &Overlay{Local: vtepA, UplinkMAC: header.MAC{2, 0, 0, 0, 0, 0xa}, FDB: map[FDBKey]netip.Addr{{1000, macB1}: vtepB}, ProtectUnderlay: protect}
		if protect {
			u, err := sa.New(sa.Config{Name: "u", SPI: 0x5000, Dir: sa.DirOut, Src: vtepA, Dst: vtepB, Mode: sa.ModeTransport,
				Enc: sa.EncAES128GCM, EncKey: satest.Key(20, 9), Integ: sa.IntegNone})
			if err != nil {
				t.Fatal(err)
			}
			ov.Underlay = []UnderlaySA{{VNI: 1000, SA: u}}
		}
		e.SetOverlay(ov)
		e.SetNeighbors(map[netip.Addr]header.MAC{vtepB: {2, 0, 0, 0, 0, 0xb}})
		vifA, up := viftest.NewSink("vifA"), viftest.NewSink("up")
		pol := policies("acme", netip.PrefixFrom(satest.V6A, 128), netip.PrefixFrom(satest.V6B, 128))
		vm := &vmState{name: "acme", port: &txPort{Port: vifA}, mac: macA1, vlan: 100, vni: 1000, def: tenant.ActionNone,
			spd: tenant.Compile(pol), policies: pol, sas: []*sa.SA{out, nil}, stats: new(VMStats)}
		snap := newSnapshot()
		snap.byPort[vifA] = vm
		e.snap.Store(snap)
		e.setConfig(func(c *config) { c.uplink = &txPort{Port: up} })
		w := newTestWorker(e, vm.port, false)
		f := frame(macB1, macA1, satest.V6A, satest.V6B, 1000)
		const batch = 32
		allocs := testing.AllocsPerRun(50, func() {
			for i := 0; i < batch; i++ {
				w.sizes[i] = copy(w.bufs[i][readOff:], f)
			}
			before := up.Frames
			w.batch(batch)
			if up.Frames-before != batch {
				t.Fatalf("protect=%v: uplink got %d frames", protect, up.Frames-before)
			}
		})
		if allocs != 0 {
			t.Fatalf("protect=%v: overlay pipeline allocates %v per batch", protect, allocs)
		}
	}
}

// holdRig is one gateway with acme's VM on VNI 1000 and an overlay whose
// FDB puts macB1 behind vtepB, with no neighbour known yet; frames the VM
// sends go through w synchronously.
type holdRig struct {
	e     *Engine
	w     *worker
	up    *viftest.Port
	peer  *viftest.Port
	vtepB netip.Addr
	macB  header.MAC
	clock time.Time
}

func newHoldRig(t *testing.T, protect bool, remotes ...netip.Addr) *holdRig {
	t.Helper()
	db := sa.NewDB(0)
	e := New(db, nil)
	out, _ := tenantSAs(t, "acme", macA1, 100, 1, 0x1000, 0x2000, satest.V6A, satest.V6B)
	_ = db.Add(out)
	r := &holdRig{e: e, vtepB: netip.MustParseAddr("203.0.113.2"), macB: header.MAC{2, 0, 0, 0, 0, 0xb}, clock: time.Unix(1e9, 0)}
	e.now = func() time.Time { return r.clock }
	vtepA := netip.MustParseAddr("203.0.113.1")
	fdb := map[FDBKey]netip.Addr{{1000, macB1}: r.vtepB}
	for i, rm := range remotes {
		fdb[FDBKey{1000, header.MAC{0x52, 0x54, 0, 9, 9, byte(i)}}] = rm
	}
	ov := &Overlay{Local: vtepA, UplinkMAC: header.MAC{2, 0, 0, 0, 0, 0xa}, FDB: fdb, ProtectUnderlay: protect}
	if protect {
		for _, rm := range append([]netip.Addr{r.vtepB}, remotes...) {
			u, err := sa.New(sa.Config{Name: "u" + rm.String(), SPI: 0x5000 + uint32(rm.As4()[3]), Dir: sa.DirOut, Src: vtepA, Dst: rm,
				Mode: sa.ModeTransport, Enc: sa.EncAES128GCM, EncKey: satest.Key(20, 9), Integ: sa.IntegNone})
			if err != nil {
				t.Fatal(err)
			}
			ov.Underlay = append(ov.Underlay, UnderlaySA{VNI: 1000, SA: u})
		}
	}
	e.SetOverlay(ov)
	vifA := viftest.NewSink("vifA")
	r.up, r.peer = viftest.Pair("up", "peer", 256)
	r.up.Record = true
	pol := policies("acme", netip.PrefixFrom(satest.V6A, 128), netip.PrefixFrom(satest.V6B, 128))
	vm := &vmState{name: "acme", port: &txPort{Port: vifA}, mac: macA1, vlan: 100, vni: 1000, def: tenant.ActionNone,
		spd: tenant.Compile(pol), policies: pol, sas: []*sa.SA{out, nil}, stats: new(VMStats)}
	snap := newSnapshot()
	snap.byPort[vifA] = vm
	e.snap.Store(snap)
	e.setConfig(func(c *config) { c.uplink = &txPort{Port: r.up} })
	r.w = newTestWorker(e, vm.port, false)
	return r
}

// send has the VM send one frame of size bytes of UDP payload to dst.
func (r *holdRig) send(dst header.MAC, size int) {
	f := frame(dst, macA1, satest.V6A, satest.V6B, size)
	r.w.sizes[0] = copy(r.w.bufs[0][readOff:], f)
	r.w.batch(1)
}

// sizes returns the outer IP lengths of what the uplink wrote since from,
// after checking each went to mac.
func (r *holdRig) written(t *testing.T, from int, mac header.MAC) []int {
	t.Helper()
	var n []int
	for _, f := range r.up.Written()[from:] {
		if !bytes.Equal(f.Data[0:6], mac[:]) || !bytes.Equal(f.Data[6:12], []byte{2, 0, 0, 0, 0, 0xa}) {
			t.Fatalf("frame from the hold: MACs %x, want to %x from the uplink", f.Data[0:12], mac)
		}
		n = append(n, len(f.Data))
	}
	return n
}

// TestOverlayHoldsFramesUntilNeighbor: frames toward a remote VTEP whose
// MAC is not resolved yet wait, and leave in order, whole and addressed to
// the MAC, when SetNeighbors learns it; nothing is lost or counted as
// dropped, and the remote is reported as a miss so the daemon resolves
// it. Later frames go straight out.
func TestOverlayHoldsFramesUntilNeighbor(t *testing.T) {
	for _, protect := range []bool{false, true} {
		t.Run(fmt.Sprintf("protect=%v", protect), func(t *testing.T) {
			r := newHoldRig(t, protect)
			for _, size := range []int{100, 200, 300} {
				r.send(macB1, size)
			}
			if n := len(r.up.Written()); n != 0 {
				t.Fatalf("%d frames left for a VTEP with no known MAC", n)
			}
			select {
			case m := <-r.e.NeighborMisses():
				if m != r.vtepB {
					t.Fatalf("miss for %v, want %v", m, r.vtepB)
				}
			default:
				t.Fatal("no miss reported for the unresolved VTEP")
			}
			r.clock = r.clock.Add(NeighborHoldTime - time.Millisecond)
			r.e.SetNeighbors(map[netip.Addr]header.MAC{r.vtepB: r.macB})
			got := r.written(t, 0, r.macB)
			if len(got) != 3 || !(got[0] < got[1] && got[1] < got[2]) {
				t.Fatalf("after the MAC was learned the uplink got frames of %v bytes, want the 3 held ones in order", got)
			}
			for i, f := range r.up.Written() {
				data := f.Data
				if protect {
					if data[14+9] != 50 || binary.BigEndian.Uint32(data[14+24:]) != uint32(i+1) {
						t.Fatalf("held frame %d: not underlay ESP with sequence number %d: %x", i, i+1, data[:42])
					}
					continue
				}
				inner := data[14+20+8+8:]
				want := frame(macB1, macA1, satest.V6A, satest.V6B, []int{100, 200, 300}[i])
				// The VM's ESP is inside: compare the Ethernet header only.
				if !bytes.Equal(inner[:12], want[:12]) || inner[14+6] != 50 {
					t.Fatalf("held frame %d: inner %x", i, inner[:60])
				}
			}
			r.send(macB1, 400)
			if got := r.written(t, 3, r.macB); len(got) != 1 {
				t.Fatalf("a frame after the MAC was learned: uplink got %v", got)
			}
			if d := r.e.OverlayStats.NoNeighbor.Load(); d != 0 {
				t.Fatalf("no-neighbor drops %d, want 0", d)
			}
		})
	}
}

// TestOverlayHoldBounds: the hold keeps the newest holdPerKey frames of a
// (VNI, remote); frames older than NeighborHoldTime are dropped, never
// sent late; when every slot is taken, a remote with nothing held still
// gets its frame in at the expense of the remote holding the most. Every
// drop is counted as no-neighbor.
func TestOverlayHoldBounds(t *testing.T) {
	t.Run("per-remote", func(t *testing.T) {
		r := newHoldRig(t, false)
		// Payloads 4 bytes apart keep ESP's padding the same: the frames
		// differ in length by 4.
		for i := range holdPerKey + 2 {
			r.send(macB1, 100+4*i)
		}
		r.e.SetNeighbors(map[netip.Addr]header.MAC{r.vtepB: r.macB})
		got := r.written(t, 0, r.macB)
		r.send(macB1, 100+4*2) // the oldest frame that should have stayed, for its length
		ref := r.written(t, len(got), r.macB)
		if len(got) != holdPerKey || len(ref) != 1 {
			t.Fatalf("uplink got %v, then %v; want the newest %d frames, then 1", got, ref, holdPerKey)
		}
		for i := range got {
			if got[i] != ref[0]+4*i {
				t.Fatalf("uplink got frames of %v bytes; want the newest %d, oldest first, from %d bytes on", got, holdPerKey, ref[0])
			}
		}
		if d := r.e.OverlayStats.NoNeighbor.Load(); d != 2 {
			t.Fatalf("no-neighbor drops %d, want 2", d)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		r := newHoldRig(t, false)
		r.send(macB1, 100)
		r.clock = r.clock.Add(NeighborHoldTime + time.Millisecond)
		r.e.SetNeighbors(map[netip.Addr]header.MAC{r.vtepB: r.macB})
		if n := len(r.up.Written()); n != 0 {
			t.Fatalf("a frame held longer than %v was sent", NeighborHoldTime)
		}
		if d := r.e.OverlayStats.NoNeighbor.Load(); d != 1 {
			t.Fatalf("no-neighbor drops %d, want 1", d)
		}
	})
	t.Run("fair-share", func(t *testing.T) {
		var remotes []netip.Addr
		for i := range holdSlots / holdPerKey {
			remotes = append(remotes, netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}))
		}
		r := newHoldRig(t, false, remotes...)
		// Each remote fills its share but the last, one short: the hold
		// has room for one more frame.
		for i := range remotes {
			for range holdPerKey - i/(len(remotes)-1) {
				r.send(header.MAC{0x52, 0x54, 0, 9, 9, byte(i)}, 100)
			}
		}
		r.send(macB1, 100) // the last free slot
		r.send(macB1, 101) // evicts the oldest of a remote with a full share
		known := map[netip.Addr]header.MAC{r.vtepB: r.macB}
		for _, rm := range remotes {
			known[rm] = r.macB
		}
		r.e.SetNeighbors(known)
		n, toB := 0, 0
		for _, f := range r.up.Written() {
			n++
			if netip.AddrFrom4([4]byte(f.Data[14+16:14+20])) == r.vtepB {
				toB++
			}
		}
		if n != holdSlots || toB != 2 {
			t.Fatalf("uplink got %d frames, %d to %v; want %d, 2", n, toB, r.vtepB, holdSlots)
		}
		if d := r.e.OverlayStats.NoNeighbor.Load(); d != 1 {
			t.Fatalf("no-neighbor drops %d, want 1", d)
		}
	})
}

// TestOverlayHoldAllocs: holding frames for an unresolved VTEP, bounds
// and drops included, allocates nothing per batch.
func TestOverlayHoldAllocs(t *testing.T) {
	r := newHoldRig(t, true)
	r.up.Record = false
	f := frame(macB1, macA1, satest.V6A, satest.V6B, 1000)
	const batch = 32
	allocs := testing.AllocsPerRun(50, func() {
		for i := 0; i < batch; i++ {
			r.w.sizes[i] = copy(r.w.bufs[i][readOff:], f)
		}
		r.w.batch(batch)
	})
	if allocs != 0 {
		t.Fatalf("holding frames allocates %v per batch", allocs)
	}
	if r.e.OverlayStats.NoNeighbor.Load() == 0 {
		t.Fatal("the hold never overflowed: the test did not hold frames")
	}
}

// stallPort is an uplink whose WriteBatch blocks until release is closed;
// entered is closed when a write first blocks.
type stallPort struct {
	entered, release, closed chan struct{}
	once                     sync.Once
}

func (p *stallPort) Name() string { return "stall" }
func (p *stallPort) Close() error {
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	return nil
}
func (p *stallPort) ReadBatch([][]byte, []int, []vif.Meta, int) (int, error) {
	<-p.closed
	return 0, vif.ErrClosed
}
func (p *stallPort) WriteBatch(frames [][]byte) (int, error) {
	p.once.Do(func() { close(p.entered) })
	<-p.release
	return len(frames), nil
}

// TestQuiesceWaitsForBatch: Quiesce does not return while a worker is
// still sending a batch it began with the old table, and returns once it
// is done.
func TestQuiesceWaitsForBatch(t *testing.T) {
	e := New(sa.NewDB(0), nil)
	guest, host := viftest.Pair("guest", "vif", 16)
	up := &stallPort{entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
	e.Update([]VM{{Name: "vm", Port: host, MAC: macA1, DefaultAction: tenant.ActionNone}})
	e.SetUplink(up, 0)
	defer e.Close()
	e.Quiesce() // nothing under way: returns
	guest.WriteBatch([][]byte{frame(macB1, macA1, satest.V6A, satest.V6B, 100)})
	select {
	case <-up.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the frame never reached the uplink")
	}
	done := make(chan struct{})
	go func() { e.Quiesce(); close(done) }()
	select {
	case <-done:
		t.Fatal("Quiesce returned while a worker was in the middle of a batch")
	case <-time.After(50 * time.Millisecond):
	}
	close(up.release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Quiesce did not return after the batch ended")
	}
}
