package vif

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
)

// BenchmarkReceive is why PacketPort reads with recvmmsg: how many
// frames per second one reader takes off the host end of a veth while a
// sender goroutine floods it from the guest end with sendmmsg batches of
// 64. The readers share socket, options and netpoller and differ only in
// frames per system call:
//
//	recvmmsg-64  PacketPort.ReadBatch with 64 buffers (what vifsec does)
//	recvmmsg-1   PacketPort.ReadBatch with 1 buffer
//	read         read(2) on the same socket, one frame per call
//
// frames/s is what the reader got; offered/s what the sender pushed (the
// rest was dropped in the kernel when the reader fell behind). An op is
// one frame received. TPACKET_V3 rings are not implemented, so they are
// not measured.
//
// Run as root: go test ./vif -run '^$' -bench Receive
func BenchmarkReceive(b *testing.B) {
	testutil.NeedRoot(b)
	hv, vm := newNetns(b, "hv"), newNetns(b, "vm")
	vethPair(b, hv, "vif0", vm, "eth0")
	for _, size := range []int{64, 512, 1500} {
		for _, mode := range []string{"recvmmsg-64", "recvmmsg-1", "read"} {
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				benchReceive(b, hv, vm, mode, size)
			})
		}
	}
}

func benchReceive(b *testing.B, hv, vm, mode string, size int) {
	rx, err := OpenPacket("vif0", hv)
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	tx, err := OpenPacket("eth0", vm)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()

	var stop atomic.Bool
	var offered atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch := frames(macHV, macVM, MaxBatch, size)
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

	batch := MaxBatch
	if mode != "recvmmsg-64" {
		batch = 1
	}
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, headroom+2048)
	}
	sizes, meta := make([]int, batch), make([]Meta, batch)
	watchdog := time.AfterFunc(time.Minute, func() { rx.Close() })
	defer watchdog.Stop()

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := offered.Load()
	got := 0
	for got < b.N {
		var n int
		var err error
		if mode == "read" {
			_, err = rx.f.Read(bufs[0])
			n = 1
		} else {
			n, err = rx.ReadBatch(bufs, sizes, meta, headroom)
		}
		if err != nil {
			b.Fatal(err)
		}
		got += n
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(got)/secs, "frames/s")
	b.ReportMetric(float64(offered.Load()-start)/secs, "offered/s")
}
