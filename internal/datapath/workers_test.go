package datapath

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/satest"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
	"github.com/vifsec/vifsec/vif/viftest"
)

// TestWorkersShareOneSA runs K workers on each port (viftest.Group) of two
// gateways and pushes one SA's traffic through all of them at once:
// gateway A's VIF workers encrypt on one outbound SA concurrently (each
// sequence number must be used exactly once), gateway B's uplink workers
// decrypt on one inbound SA concurrently, every frame twice on different
// queues (each must be delivered exactly once, the copy counted as a
// replay). Run with -race, it checks the SA's sequence numbers, replay
// window and counters, and the workers' shared state, under concurrency.
func TestWorkersShareOneSA(t *testing.T) {
	const k, perQueue = 4, 200
	const total = k * perQueue
	mkSA := func(name string, dir sa.Direction, src, dst netip.Addr, mac header.MAC) *sa.SA {
		s, err := sa.New(sa.Config{Name: name, Scope: sa.Scope{VLAN: 100, MAC: mac}, SPI: 0x1000, Dir: dir, Src: src, Dst: dst,
			Mode: sa.ModeTransport, Enc: sa.EncAES128GCM, EncKey: satest.Key(20, 7), Integ: sa.IntegNone, ReplayWindow: 4096})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	type gw struct {
		e      *Engine
		vif    *viftest.Group
		uplink *viftest.Group
		out    *sa.SA
		in     *sa.SA
	}
	mk := func(mac header.MAC, local, remote netip.Addr, out, in *sa.SA) *gw {
		db := sa.NewDB(0)
		var sas []*sa.SA
		for _, s := range []*sa.SA{out, in} {
			if s != nil {
				sas = append(sas, s)
			}
		}
		if err := db.Apply(sas, nil); err != nil {
			t.Fatal(err)
		}
		g := &gw{e: New(db, nil), vif: viftest.NewGroup("vif", k, total), uplink: viftest.NewGroup("uplink", k, 2*total), out: out, in: in}
		pol := policies("acme", netip.PrefixFrom(local, 128), netip.PrefixFrom(remote, 128))
		g.e.Update([]VM{{Name: "acme", Port: g.vif, MAC: mac, VLAN: 100, DefaultAction: tenant.ActionNone, Policies: pol, SAs: []*sa.SA{out, in}}})
		g.e.SetUplink(g.uplink, 0)
		t.Cleanup(g.e.Close)
		return g
	}
	outA := mkSA("acme-out", sa.DirOut, satest.V6A, satest.V6B, macA1)
	inB := mkSA("acme-in", sa.DirIn, satest.V6A, satest.V6B, macB1)
	a := mk(macA1, satest.V6A, satest.V6B, outA, nil)
	b := mk(macB1, satest.V6B, satest.V6A, nil, inB)
	if n := len(a.e.workers[a.vif]); n != k {
		t.Fatalf("VIF workers: %d, want %d", n, k)
	}
	if n := len(a.e.upWorkers); n != k {
		t.Fatalf("uplink workers: %d, want %d", n, k)
	}

	upA, vifB := merge(t, a.uplink.Peers), merge(t, b.vif.Peers)

	// Outbound on A: every VIF queue sends perQueue frames of the flow.
	f := frame(macB1, macA1, satest.V6A, satest.V6B, 100)
	var wg sync.WaitGroup
	for q := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perQueue {
				a.vif.Q[q].Inject(f, vif.Meta{})
			}
		}()
	}
	wg.Wait()
	var esp [][]byte
	seen := map[uint32]bool{}
	deadline := time.After(10 * time.Second)
	for len(esp) < total {
		var got viftest.Frame
		select {
		case got = <-upA:
		case <-deadline:
			t.Fatalf("uplink of A: %d of %d ESP frames", len(esp), total)
		}
		// Tagged Ethernet (VLAN 100), IPv6, ESP: SPI, then the sequence number.
		seq := binary.BigEndian.Uint32(got.Data[18+40+4:])
		if seen[seq] {
			t.Fatalf("sequence number %d sent twice", seq)
		}
		seen[seq] = true
		esp = append(esp, got.Data)
	}
	if got := outA.LastSeq(); got != total {
		t.Errorf("out SA's last sequence number %d, want %d", got, total)
	}

	// Inbound on B: each frame twice, on two different queues, queues fed
	// concurrently.
	for q := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, fr := range esp {
				if i%k == q || (i+1)%k == q {
					b.uplink.Q[q].Inject(fr, vif.Meta{})
				}
			}
		}()
	}
	wg.Wait()
	delivered := 0
	for delivered < total {
		select {
		case <-vifB:
			delivered++
		case <-deadline:
			t.Fatalf("VIF of B: %d of %d frames", delivered, total)
		}
	}
	st := b.e.Stats("acme")
	for st.Drops[drop.Replay].Load() < total {
		select {
		case <-deadline:
			t.Fatalf("replay drops %d, want %d", st.Drops[drop.Replay].Load(), total)
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case <-vifB:
		t.Fatal("a replayed frame was delivered")
	case <-time.After(50 * time.Millisecond):
	}
	if got := inB.Stats.Packets.Load(); got != total {
		t.Errorf("in SA counted %d packets, want %d", got, total)
	}
	if got := st.PacketsIn.Load(); got != total {
		t.Errorf("VM counted %d packets in, want %d", got, total)
	}
}

// merge receives what the engine writes on any of ports' peers, until the
// test ends.
func merge(t *testing.T, peers []*viftest.Port) <-chan viftest.Frame {
	c := make(chan viftest.Frame, 1024)
	for _, p := range peers {
		t.Cleanup(func() { p.Close() })
		go func() {
			for {
				f, ok := p.Recv()
				if !ok {
					return
				}
				c <- f
			}
		}()
	}
	return c
}

// TestWorkersKeepFlowOrder: with two queues and workers on every port,
// each flow's frames come out in the order they went in, through both
// gateways: A's VIF workers encrypt (each on its own SA, one per peer
// address) and write on their own uplink queue, B's uplink workers
// decrypt what arrives on each queue and deliver it. A frame's size
// tells its place in its flow.
func TestWorkersKeepFlowOrder(t *testing.T) {
	const k, perFlow = 2, 150
	peers := []netip.Addr{satest.V6B, netip.MustParseAddr("2001:db8:1::3")}
	mkSA := func(i int, dir sa.Direction, mac header.MAC, src, dst netip.Addr) *sa.SA {
		s, err := sa.New(sa.Config{Name: fmt.Sprintf("acme-%d-%s", i, dir), Scope: sa.Scope{VLAN: 100, MAC: mac}, SPI: 0x1000 + uint32(i), Dir: dir,
			Src: src, Dst: dst, Mode: sa.ModeTransport, Enc: sa.EncAES128GCM, EncKey: satest.Key(20, byte(i)), Integ: sa.IntegNone})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mk := func(mac header.MAC, out bool, vifG *viftest.Group) *viftest.Group {
		db := sa.NewDB(0)
		var pol []tenant.Policy
		var sas []*sa.SA
		for i, peer := range peers {
			var s *sa.SA
			dir := sa.DirIn
			if out {
				s, dir = mkSA(i, sa.DirOut, mac, satest.V6A, peer), sa.DirOut
			} else {
				s = mkSA(i, sa.DirIn, mac, satest.V6A, peer)
			}
			if err := db.Add(s); err != nil {
				t.Fatal(err)
			}
			p := tenant.Policy{Name: fmt.Sprintf("p%d", i), VM: "acme", SrcPort: tenant.PortAny, DstPort: tenant.PortAny,
				ULProto: tenant.ProtoUDP, Direction: dir, Action: tenant.ActionIPsec, Mode: sa.ModeTransport}
			// B stands for both peers: it receives what A's VM sends.
			p.Src, p.Dst = netip.PrefixFrom(satest.V6A, 128), netip.PrefixFrom(peer, 128)
			pol, sas = append(pol, p), append(sas, s)
		}
		e := New(db, nil)
		t.Cleanup(e.Close)
		upG := viftest.NewGroup("uplink", k, 2*perFlow)
		e.SetUplink(upG, 0)
		e.Update([]VM{{Name: "acme", Port: vifG, MAC: mac, VLAN: 100, DefaultAction: tenant.ActionNone, Policies: pol, SAs: sas}})
		return upG
	}
	// Flow q: from the VM to peer q, on VIF queue q (as the fanout hash
	// would keep it), sizes 100, 101, … in order; queued before the
	// workers start, so they read full batches.
	vifA, vifB := viftest.NewGroup("vifA", k, 2*perFlow), viftest.NewGroup("vifB", k, 2*perFlow)
	for q := range k {
		for i := range perFlow {
			vifA.Q[q].Inject(udp(peerMAC, macA1, satest.V6A, peers[q], 1000, 2000, 100+i), vif.Meta{})
		}
	}
	upB := mk(macA1, false, vifB)
	upA := mk(macA1, true, vifA)
	// A's uplink queue j feeds B's uplink queue j, in the order written,
	// to B's VM. On the way, each SA's sequence numbers must rise.
	for j := range k {
		go func() {
			last := map[uint32]uint32{}
			for {
				f, ok := upA.Peers[j].Recv()
				if !ok {
					return
				}
				// Tagged Ethernet (VLAN 100), IPv6, ESP: SPI, sequence number.
				spi, seq := binary.BigEndian.Uint32(f.Data[18+40:]), binary.BigEndian.Uint32(f.Data[18+40+4:])
				if seq <= last[spi] {
					t.Errorf("uplink queue %d: SPI %#x sequence number %d after %d", j, spi, seq, last[spi])
				}
				last[spi] = seq
				copy(f.Data[0:6], macA1[:])
				copy(f.Data[6:12], peerMAC[:])
				upB.Q[j].Inject(f.Data, vif.Meta{})
			}
		}()
	}
	got := merge(t, vifB.Peers)
	next := make([]int, k)
	deadline := time.After(10 * time.Second)
	for n := 0; n < k*perFlow; n++ {
		var f viftest.Frame
		select {
		case f = <-got:
		case <-deadline:
			t.Fatalf("VIF of B: %d of %d frames", n, k*perFlow)
		}
		ip := f.Data[ethLen:]
		q := slices.Index(peers, netip.AddrFrom16([16]byte(ip[24:40])))
		if q < 0 {
			t.Fatalf("frame to %x", ip[24:40])
		}
		if size := len(ip) - ipv6HeaderLen - 8; size != 100+next[q] {
			t.Fatalf("flow %d: frame %d of the flow came as number %d", q, size-100, next[q])
		}
		next[q]++
	}
}
