package vif

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// The ring's views reject headers that point outside the block.
func TestRingFrameCheck(t *testing.T) {
	hdr := func(snap, mac int) ringFrame {
		f := make(ringFrame, 256)
		putU32(f[hdrSnaplen:], uint32(snap))
		putU32(f[hdrLen:], uint32(snap))
		f[hdrMac], f[hdrMac+1] = byte(mac), byte(mac>>8)
		return f
	}
	tests := []struct {
		name      string
		f         ringFrame
		vnet      int
		ok        bool
		wantBytes int
	}{
		{name: "fits", f: hdr(100, 80), ok: true, wantBytes: 100},
		{name: "fits-exactly", f: hdr(176, 80), ok: true, wantBytes: 176},
		{name: "vnet", f: hdr(100, 80), vnet: VnetHdrLen, ok: true, wantBytes: 110},
		{name: "past-end", f: hdr(177, 80)},
		{name: "huge-snaplen", f: hdr(1<<31, 80)},
		{name: "mac-in-header", f: hdr(10, 40)},
		{name: "no-room-for-vnet", f: hdr(10, 50), vnet: VnetHdrLen},
		{name: "mac-past-end", f: hdr(0, 300)},
		{name: "short-header", f: hdr(0, 80)[:47]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := tc.f.check(tc.vnet)
			if ok != tc.ok || ok && len(c.data) != tc.wantBytes {
				t.Fatalf("check = %d bytes, %t; want %d, %t", len(c.data), ok, tc.wantBytes, tc.ok)
			}
		})
	}
}

func putU32(b []byte, v uint32) { binary.NativeEndian.PutUint32(b, v) }

// FuzzRingBlock: whatever a receive block holds, walking it never reads
// outside the block, never returns a frame larger than the caller's
// room, and gives the block back.
func FuzzRingBlock(f *testing.F) {
	// A block holding two frames of 60 and 100 bytes, one with a VLAN.
	blk := make([]byte, 512)
	putU32(blk[blkNumPkts:], 2)
	putU32(blk[blkFirstPkt:], blkDescLen)
	h0, h1 := blk[blkDescLen:], blk[blkDescLen+160:]
	putU32(h0[hdrNextOffset:], 160)
	for _, h := range []struct {
		b    []byte
		size int
	}{{h0, 60}, {h1, 100}} {
		putU32(h.b[hdrSnaplen:], uint32(h.size))
		putU32(h.b[hdrLen:], uint32(h.size))
		binary.NativeEndian.PutUint16(h.b[hdrMac:], 82)
	}
	putU32(h1[hdrStatus:], unix.TP_STATUS_VLAN_VALID)
	putU32(h1[hdrVLANTCI:], 0xa064)
	putU32(blk[blkLen:], uint32(blkDescLen+160+82+100))
	f.Add(blk)
	f.Add(blk[:blkDescLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > rxBlockSize {
			b = b[:rxBlockSize]
		}
		r := &ringPort{PacketPort: &PacketPort{}, rx: make([]byte, rxBlocks*rxBlockSize)}
		copy(r.rx, b)
		putU32(r.rx[blkStatus:], unix.TP_STATUS_USER)
		bufs := make([][]byte, MaxBatch)
		for i := range bufs {
			bufs[i] = make([]byte, 8+128)
		}
		sizes, meta := make([]int, MaxBatch), make([]Meta, MaxBatch)
		for range 1 + rxBlockSize/tpacket3Len/MaxBatch {
			n := r.fill(bufs, sizes, meta, 8)
			for i := range n {
				if sizes[i] > 128 {
					t.Fatalf("frame %d: %d bytes in a 128-byte room", i, sizes[i])
				}
			}
			if r.cur != 0 {
				break
			}
		}
		if r.cur != 1 || loadStatus(r.rx, blkStatus) != unix.TP_STATUS_KERNEL {
			t.Fatalf("block not given back: cur %d status %#x", r.cur, loadStatus(r.rx, blkStatus))
		}
	})
}
