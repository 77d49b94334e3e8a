package vif

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/offload/offloadtest"
)

// BenchmarkReceive measures PacketPort's recvmmsg against the other ways
// of reading frames: how many frames per second one reader takes off the
// host end of a veth while a sender goroutine floods it from the guest
// end with sendmmsg batches of 64, and at what CPU cost. The readers
// differ only in how frames leave the kernel:
//
//	recvmmsg-64  PacketPort.ReadBatch with 64 buffers (what vifsec does)
//	recvmmsg-1   PacketPort.ReadBatch with 1 buffer
//	read         read(2) on the same socket, one frame per call
//	ring         a TPACKET_V3 receive ring (ringPort.ReadBatch, 64
//	             buffers): the kernel copies frames into shared blocks,
//	             ReadBatch copies them out into the caller's buffers
//	af-xdp       an AF_XDP socket in copy mode (xskPort.ReadBatch, 64
//	             buffers) fed by an XDP program on the veth (native
//	             mode) that redirects every frame to it
//
// The vnet cases send 64 KiB TCP super-frames described by a
// virtio_net_hdr (both ports with PACKET_VNET_HDR), as a guest with TSO
// does.
//
// frames/s is what the reader got; offered/s what the sender pushed (the
// rest was dropped in the kernel when the reader fell behind); cpu-ns/frame
// the reader thread's user+system time (getrusage RUSAGE_THREAD, the
// reader locked to its thread) per frame received, proc-cpu-ns/frame the
// whole process's (reader, sender, and the kernel's delivery work that
// ran on their threads); frames/read the mean batch a read returned. An
// op is one frame received.
//
// On a 2-core machine the sender is the limit for frames of 1500 bytes
// and less (got ≈ offered in every mode), so frames/s tells the readers
// apart less than cpu-ns/frame, the reader's own cost, does. doc.go says
// what the numbers decided.
//
// Run as root, under the lab lock:
//
//	flock /tmp/vifsec-lab.lock go test ./vif -run '^$' -bench 'Receive|Transmit|Latency'
func BenchmarkReceive(b *testing.B) {
	testutil.NeedRoot(b)
	hv, vm := newNetns(b, "hv"), newNetns(b, "vm")
	vethPair(b, hv, "vif0", vm, "eth0")
	for _, size := range []int{64, 512, 1500, superSize} {
		for _, mode := range []string{"recvmmsg-64", "recvmmsg-1", "read", "ring", "af-xdp"} {
			if size == superSize && (mode == "recvmmsg-1" || mode == "read" || mode == "af-xdp") {
				continue
			}
			name := fmt.Sprintf("%s/%dB", mode, size)
			if size == superSize {
				name = mode + "/vnet-64KB"
			}
			b.Run(name, func(b *testing.B) {
				benchReceive(b, hv, vm, mode, size)
			})
		}
	}
}

// superSize stands for a 64 KiB TCP super-frame with a virtio_net_hdr.
const superSize = 64 << 10

// superFrame is a guest's TSO super-frame of about 64 KiB behind its
// virtio_net_hdr, addressed from macVM to macHV.
func superFrame() []byte {
	f, h := offloadtest.Super(offloadtest.Packet{Payload: make([]byte, 65000)}, 1448, true, false)
	copy(f[0:6], macHV)
	copy(f[6:12], macVM)
	out := make([]byte, VnetHdrLen+len(f))
	h.Put(out)
	copy(out[VnetHdrLen:], f)
	return out
}

// openKind opens a port of the kind a benchmark mode names.
func openKind(tb testing.TB, mode, name, ns string, vnet bool) Port {
	tb.Helper()
	opt := PacketOptions{VnetHdr: vnet}
	var p Port
	var err error
	switch mode {
	case "ring", "tx-ring":
		p, err = openRing(name, ns, opt)
	case "af-xdp":
		p, err = openXSK(name, ns)
	case "sendmmsg-64-qdisc", "sendmmsg-64-pfifo":
		opt.Qdisc = true
		p, err = OpenPacketWith(name, ns, opt)
	default:
		p, err = OpenPacketWith(name, ns, opt)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// threadCPU is the calling thread's user+system time.
func threadCPU(tb testing.TB) time.Duration { return cpuTime(tb, unix.RUSAGE_THREAD) }

// procCPU is the process's user+system time: every thread, and the
// softirq work the kernel did while one of them was running.
func procCPU(tb testing.TB) time.Duration { return cpuTime(tb, unix.RUSAGE_SELF) }

func cpuTime(tb testing.TB, who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchReceive(b *testing.B, hv, vm, mode string, size int) {
	vnet := size == superSize
	rx := openKind(b, mode, "vif0", hv, vnet)
	if x, ok := rx.(*xskPort); ok {
		defer x.free() // after Close, with the reader done
	}
	defer rx.Close()
	tx := openKind(b, "sendmmsg", "eth0", vm, vnet)
	defer tx.Close()

	var stop atomic.Bool
	var offered atomic.Uint64
	done := make(chan struct{})
	batch := frames(macHV, macVM, MaxBatch, size)
	room := 2048
	if vnet {
		f := superFrame()
		for i := range batch {
			batch[i] = f
		}
		room = VnetHdrLen + 65536 + 64
	}
	go func() {
		defer close(done)
		for !stop.Load() {
			n, err := tx.WriteBatch(batch)
			if err != nil {
				return
			}
			offered.Add(uint64(n))
		}
	}()
	// Whatever happens, the sender stops and ReadBatch cannot block
	// past the end.
	defer func() { stop.Store(true); <-done }()

	n := MaxBatch
	if mode == "recvmmsg-1" || mode == "read" {
		n = 1
	}
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, headroom+room)
	}
	sizes, meta := make([]int, n), make([]Meta, n)
	watchdog := time.AfterFunc(time.Minute, func() { rx.Close() })
	defer watchdog.Stop()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu, pcpu := offered.Load(), threadCPU(b), procCPU(b)
	got, empty, reads := 0, 0, 0
	for got < b.N {
		var n int
		var err error
		if mode == "read" {
			_, err = rx.(*PacketPort).f.Read(bufs[0])
			n = 1
		} else {
			n, err = rx.ReadBatch(bufs, sizes, meta, headroom)
			for i, s := range sizes[:n] {
				if _, ok := isTest(bufs[i][headroom : headroom+s]); !ok && !vnet {
					empty++
				} else if s == 0 {
					empty++
				}
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		got += n
		reads++
	}
	b.StopTimer()
	cpu, pcpu = threadCPU(b)-cpu, procCPU(b)-pcpu
	if empty > 0 {
		b.Fatalf("%d of %d frames came back empty (truncated) or not as sent", empty, got)
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(got)/secs, "frames/s")
	b.ReportMetric(float64(offered.Load()-start)/secs, "offered/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(got), "cpu-ns/frame")
	b.ReportMetric(float64(pcpu.Nanoseconds())/float64(got), "proc-cpu-ns/frame")
	b.ReportMetric(float64(got)/float64(reads), "frames/read")
}

// BenchmarkTransmit: how many frames per second one writer pushes into
// the host end of a veth with batches of 64, through sendmmsg
// (PacketPort.WriteBatch) or a TPACKET_V3 transmit ring (ringPort:
// copy into slots, one send(2) per batch). The guest end's stack takes
// the frames and drops them (an EtherType nobody handles). An op is one
// frame sent; cpu-ns/frame is the writer thread's user+system time per
// frame, which includes the veth's delivery to its peer.
//
// sendmmsg-64 bypasses the qdisc (PACKET_QDISC_BYPASS, a VIF's port);
// sendmmsg-64-qdisc is the same through the qdisc (PacketOptions.Qdisc,
// the uplink's port) on the veth's own noqueue; sendmmsg-64-pfifo
// through a root pfifo_fast, the default qdisc of a NIC's queues (a
// frame that finds it empty goes straight to the driver).
func BenchmarkTransmit(b *testing.B) {
	testutil.NeedRoot(b)
	hv, vm := newNetns(b, "hv"), newNetns(b, "vm")
	vethPair(b, hv, "vif0", vm, "eth0")
	for _, size := range []int{64, 512, 1500} {
		for _, mode := range []string{"sendmmsg-64", "sendmmsg-64-qdisc", "sendmmsg-64-pfifo", "tx-ring"} {
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				if mode == "sendmmsg-64-pfifo" {
					run(b, "ip", "netns", "exec", hv, "tc", "qdisc", "replace", "dev", "vif0", "root", "pfifo_fast")
					defer run(b, "ip", "netns", "exec", hv, "tc", "qdisc", "del", "dev", "vif0", "root")
				}
				tx := openKind(b, mode, "vif0", hv, false)
				defer tx.Close()
				batch := frames(macVM, macHV, MaxBatch, size)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				cpu := threadCPU(b)
				sent := 0
				for sent < b.N {
					n, err := tx.WriteBatch(batch)
					if err != nil {
						b.Fatal(err)
					}
					sent += n
				}
				b.StopTimer()
				cpu = threadCPU(b) - cpu
				b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "frames/s")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(sent), "cpu-ns/frame")
			})
		}
	}
}

// BenchmarkLatency: the time from one frame written at the guest end of
// a veth to its ReadBatch returning at the host end, on an otherwise
// quiet link (one frame in flight; an op is one frame). A TPACKET_V3
// ring hands a block over when it is full or when its retire timer
// fires, so a lone frame waits for the timer.
func BenchmarkLatency(b *testing.B) {
	testutil.NeedRoot(b)
	hv, vm := newNetns(b, "hv"), newNetns(b, "vm")
	vethPair(b, hv, "vif0", vm, "eth0")
	for _, mode := range []string{"recvmmsg-64", "ring"} {
		b.Run(mode, func(b *testing.B) {
			rx := openKind(b, mode, "vif0", hv, false)
			defer rx.Close()
			tx := openKind(b, "sendmmsg", "eth0", vm, false)
			defer tx.Close()
			frame := frames(macHV, macVM, 1, 64)
			bufs := make([][]byte, MaxBatch)
			for i := range bufs {
				bufs[i] = make([]byte, headroom+2048)
			}
			sizes, meta := make([]int, MaxBatch), make([]Meta, MaxBatch)
			watchdog := time.AfterFunc(time.Minute, func() { rx.Close() })
			defer watchdog.Stop()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := tx.WriteBatch(frame); err != nil {
					b.Fatal(err)
				}
				for got := false; !got; {
					n, err := rx.ReadBatch(bufs, sizes, meta, headroom)
					if err != nil {
						b.Fatal(err)
					}
					for i := range n {
						_, ok := isTest(bufs[i][headroom : headroom+sizes[i]])
						got = got || ok
					}
				}
			}
		})
	}
}
