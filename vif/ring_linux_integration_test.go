//go:build linux

package vif

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
)

func openRingPort(t testing.TB, name, ns string, opt PacketOptions) *ringPort {
	t.Helper()
	r, err := openRing(name, ns, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestIntegrationRing holds the TPACKET_V3 ring port to the Port
// contract by reading and writing beside a PacketPort, the reference:
// what the ring port reads and what it makes a peer read must be what
// the PacketPort reads and makes it read, byte for byte, with the same
// metadata, in the same order.
func TestIntegrationRing(t *testing.T) {
	testutil.NeedRoot(t)

	t.Run("veth", func(t *testing.T) {
		hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
		vethPair(t, hv, "vif0", vm, "eth0")
		host, guest := openRingPort(t, "vif0", hv, PacketOptions{}), openRingPort(t, "eth0", vm, PacketOptions{})
		// Sizes from the smallest to a full 1500-byte MTU frame: more
		// than a ring block holds, less than the ring.
		var out [][]byte
		for i := range 1000 {
			out = append(out, testFrame(macVM, macHV, uint32(i), 60+i%1455))
		}
		writeAll(t, host, out)
		got, _ := readFrames(t, guest, 2048, len(out), keepTest)
		sameFrames(t, "ring→ring", got, out)
		in := frames(macHV, macVM, 200, 1514)
		writeAll(t, guest, in)
		got, first := readFrames(t, host, 2048, len(in), keepTest)
		sameFrames(t, "ring→ring back", got, in)
		if first != MaxBatch {
			t.Errorf("first ReadBatch with 200 frames queued returned %d, want %d", first, MaxBatch)
		}
		if host.Truncated.Load() != 0 || host.BadRing.Load() != 0 || host.TxDropped.Load() != 0 {
			t.Errorf("counters: Truncated %d BadRing %d TxDropped %d, want 0", host.Truncated.Load(), host.BadRing.Load(), host.TxDropped.Load())
		}
	})

	t.Run("receive-like-recvmmsg", func(t *testing.T) {
		hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
		vethPair(t, hv, "vif0", vm, "eth0")
		opt := PacketOptions{VnetHdr: true}
		ring := openRingPort(t, "vif0", hv, opt)
		ref, err := OpenPacketWith("vif0", hv, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ref.Close() })
		// Frames a guest sends through its qdisc with an 802.1Q tag in
		// skb metadata (the kernel hands it over beside the frame), and
		// TSO super-frames described by a virtio_net_hdr.
		vlanPushOnEgress(t, vm, "eth0", 5<<13|100)
		plain := openPlain(t, "eth0", vm)
		for i := range 20 {
			if err := plain.send(testFrame(macHV, macVM, uint32(i), 100+i)); err != nil {
				t.Fatal(err)
			}
		}
		sender, err := OpenPacketWith("eth0", vm, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sender.Close() })
		super := superFrame()
		small := append(make([]byte, VnetHdrLen), testFrame(macHV, macVM, 99, 300)...)
		writeAll(t, sender, [][]byte{super, small, super})

		keep := func(f []byte) bool { return bytes.Contains(f, []byte("vifsec")) || len(f) > 60000 }
		const bufSize = VnetHdrLen + 65536 + 64
		want, _ := readFrames(t, ref, bufSize, 23, keep)
		got, _ := readFrames(t, ring, bufSize, 23, keep)
		tagged := 0
		for i := range want {
			if !bytes.Equal(got[i].data, want[i].data) || got[i].meta != want[i].meta {
				t.Fatalf("frame %d: ring read meta %+v %d bytes %.40x…, recvmmsg read meta %+v %d bytes %.40x…",
					i, got[i].meta, len(got[i].data), got[i].data, want[i].meta, len(want[i].data), want[i].data)
			}
			if got[i].meta.Tagged {
				tagged++
			}
		}
		if tagged != 20 || len(got[20].data) != len(super) {
			t.Fatalf("read %d tagged frames and a %d-byte frame 20, want 20 and the %d-byte super-frame: the test did not test", tagged, len(got[20].data), len(super))
		}
	})

	t.Run("transmit-like-sendmmsg", func(t *testing.T) {
		hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
		vethPair(t, hv, "vif0", vm, "eth0")
		opt := PacketOptions{VnetHdr: true}
		ring := openRingPort(t, "vif0", hv, opt)
		ref, err := OpenPacketWith("vif0", hv, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ref.Close() })
		guest, err := OpenPacketWith("eth0", vm, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { guest.Close() })
		// Small frames in slots, super-frames (larger than a slot)
		// through sendmmsg between them: the order must hold.
		super := superFrame()
		var batch [][]byte
		for i := range 100 {
			if i%30 == 29 {
				batch = append(batch, super)
				continue
			}
			batch = append(batch, append(make([]byte, VnetHdrLen), testFrame(macVM, macHV, uint32(i), 64+i*14)...))
		}
		keep := func(f []byte) bool { return bytes.Contains(f, []byte("vifsec")) || len(f) > 60000 }
		const bufSize = VnetHdrLen + 65536 + 64
		writeAll(t, ref, batch)
		want, _ := readFrames(t, guest, bufSize, len(batch), keep)
		writeAll(t, ring, batch)
		got, _ := readFrames(t, guest, bufSize, len(batch), keep)
		for i := range want {
			if !bytes.Equal(got[i].data, want[i].data) || got[i].meta != want[i].meta {
				t.Fatalf("frame %d: after the ring's write the guest read %d bytes %.40x…, after sendmmsg's %d bytes %.40x…",
					i, len(got[i].data), got[i].data, len(want[i].data), want[i].data)
			}
		}
		if ring.TxDropped.Load() != 0 {
			t.Fatalf("TxDropped = %d, want 0", ring.TxDropped.Load())
		}
	})

	t.Run("truncated", func(t *testing.T) {
		hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
		vethPair(t, hv, "vif0", vm, "eth0")
		host, guest := openRingPort(t, "vif0", hv, PacketOptions{}), openPort(t, "eth0", vm)
		const room = 512
		small0, big, small1 := testFrame(macHV, macVM, 0, 100), testFrame(macHV, macVM, 1, room+1), testFrame(macHV, macVM, 2, room)
		writeAll(t, guest, [][]byte{small0, big, small1})
		got, _ := readFrames(t, host, room, 3, nil)
		if !bytes.Equal(got[0].data, small0) || len(got[1].data) != 0 || !bytes.Equal(got[2].data, small1) {
			t.Fatalf("read sizes %d, %d, %d, want 100, 0 (dropped), %d with their contents", len(got[0].data), len(got[1].data), len(got[2].data), room)
		}
		if n := host.Truncated.Load(); n != 1 {
			t.Fatalf("Truncated = %d, want 1", n)
		}
	})

	t.Run("link-down", func(t *testing.T) {
		// A send on a down link fails whole: the slots are dropped and
		// counted, and the ring works again once the link is up (where
		// the first send reports the link's going down, once).
		hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
		vethPair(t, hv, "vif0", vm, "eth0")
		host, guest := openRingPort(t, "vif0", hv, PacketOptions{}), openPort(t, "eth0", vm)
		run(t, "ip", "-n", hv, "link", "set", "vif0", "down")
		if n, err := host.WriteBatch(frames(macVM, macHV, 10, 100)); err != nil || n != 10 {
			t.Fatalf("WriteBatch on a down link: %d, %v; want 10 (dropped), nil", n, err)
		}
		if n := host.TxDropped.Load(); n != 10 {
			t.Fatalf("TxDropped = %d, want 10", n)
		}
		run(t, "ip", "-n", hv, "link", "set", "vif0", "up")
		out := frames(macVM, macHV, 5, 100)
		writeAll(t, host, out)
		got, _ := readFrames(t, guest, 2048, len(out), keepTest)
		sameFrames(t, "after link up", got, out)
	})

	t.Run("close-unblocks", func(t *testing.T) {
		hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
		vethPair(t, hv, "vif0", vm, "eth0")
		host := openRingPort(t, "vif0", hv, PacketOptions{})
		errc := make(chan error, 1)
		go func() {
			bufs, sizes, meta := [][]byte{make([]byte, 2048)}, make([]int, 1), make([]Meta, 1)
			_, err := host.ReadBatch(bufs, sizes, meta, 0)
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond) // let it park; the test holds either way
		host.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("ReadBatch after Close: %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ReadBatch still blocked 5 s after Close")
		}
		if _, err := host.WriteBatch(frames(macVM, macHV, 1, 100)); !errors.Is(err, ErrClosed) {
			t.Fatalf("WriteBatch after Close: %v, want ErrClosed", err)
		}
	})
}

// TestIntegrationPortAllocs: a batch written and read back costs no
// allocation, on a PacketPort and on a ring port.
func TestIntegrationPortAllocs(t *testing.T) {
	testutil.NeedRoot(t)
	for _, kind := range []string{"recvmmsg", "ring"} {
		t.Run(kind, func(t *testing.T) {
			hv, vm := newNetns(t, "hv"), newNetns(t, "vm")
			vethPair(t, hv, "vif0", vm, "eth0")
			var host, guest Port
			if kind == "ring" {
				host, guest = openRingPort(t, "vif0", hv, PacketOptions{}), openRingPort(t, "eth0", vm, PacketOptions{})
			} else {
				host, guest = openPort(t, "vif0", hv), openPort(t, "eth0", vm)
			}
			batch := frames(macHV, macVM, MaxBatch, 200)
			bufs := make([][]byte, MaxBatch)
			for i := range bufs {
				bufs[i] = make([]byte, headroom+2048)
			}
			sizes, meta := make([]int, MaxBatch), make([]Meta, MaxBatch)
			watchdog := time.AfterFunc(time.Minute, func() { host.Close() })
			defer watchdog.Stop()
			var err error
			allocs := testing.AllocsPerRun(50, func() {
				if _, err = guest.WriteBatch(batch); err != nil {
					return
				}
				for got := 0; got < len(batch); {
					var n int
					if n, err = host.ReadBatch(bufs, sizes, meta, headroom); err != nil {
						return
					}
					for i := range n {
						if _, ok := isTest(bufs[i][headroom : headroom+sizes[i]]); ok {
							got++
						}
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if allocs != 0 {
				t.Fatalf("%v allocations per batch written and read, want 0", allocs)
			}
		})
	}
}
