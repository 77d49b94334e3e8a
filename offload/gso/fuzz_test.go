package gso_test

import (
	"bytes"
	"github.com/vifsec/vifsec/drop"
	"testing"

	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/gso"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

// fuzzOut is one batch shared by the fuzz iterations (they run one at a
// time per process): 256 buffers, each big enough for any segment of a
// 64 KiB frame.
var fuzzOut, fuzzSizes = batch(256, headroom+70000)

// Seeds are kept small (about 1 KB): the fuzzer minimizes every new
// interesting input, and that takes long on 64 KiB ones.
//
// FuzzParseVnetHdr feeds virtio_net_hdr + frame bytes, as AF_PACKET hands
// them over, to ParseVnetHdr, and whatever parses to Segment. Properties:
// nothing panics; a parsed header re-encodes to the same ten bytes; every
// segment Segment makes fits the MTU, passes a receiver's checks (IPv4
// header checksum, lengths, TCP/UDP checksum) and equals the reference
// segmenter's.
func FuzzParseVnetHdr(f *testing.F) {
	add := func(p ot.Packet, gs uint16, partial, ecn bool, mtu uint16) {
		frame, h := ot.Super(p, gs, partial, ecn)
		b := make([]byte, offload.VnetHdrLen, offload.VnetHdrLen+len(frame))
		h.Put(b)
		f.Add(append(b, frame...), mtu)
	}
	tsOpt := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, TCPOptions: tsOpt, Flags: ot.ACK | ot.PSH | ot.FIN, Payload: payload(1000)}, 300, true, false, 1500)
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, Flags: ot.ACK | ot.CWR, VLANs: []uint16{7}, IPOptions: []byte{1, 1, 1, 0}, Payload: payload(700)}, 536, false, true, 300)
	add(ot.Packet{Src: ot.V6A, Dst: ot.V6B, ExtHeaders: []ot.Ext{{Type: ot.ProtoHopByHop, Body: make([]byte, 6)}, {Type: ot.ProtoRouting, Body: make([]byte, 14)}},
		Payload: payload(900)}, 1200, true, false, 400)
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4C, UDP: true, Payload: payload(1000)}, 300, true, false, 1500)
	add(ot.Packet{Src: ot.V6A, Dst: ot.V6C, UDP: true, VLANs: []uint16{1, 2}, Payload: payload(500)}, 200, true, false, 1280)
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, Payload: nil}, 1448, true, false, 1500)
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, Payload: payload(100)}, 1, true, false, 41)
	// Headers that must be refused.
	f.Add([]byte{}, uint16(1500))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, uint16(1500))
	f.Add(append([]byte{1, 5, 0, 0, 0xe8, 3, 34, 0, 6, 0}, make([]byte, 40)...), uint16(1500))
	f.Add(append([]byte{0, 0x84, 0, 0, 0xe8, 3, 0, 0, 0, 0}, make([]byte, 100)...), uint16(1500))

	f.Fuzz(func(t *testing.T, b []byte, mtu uint16) {
		h, d := offload.ParseVnetHdr(b)
		if d != drop.None {
			return
		}
		var re [offload.VnetHdrLen]byte
		h.Put(re[:])
		if !bytes.Equal(re[:], b[:offload.VnetHdrLen]) {
			t.Fatalf("Put(ParseVnetHdr(%x)) = %x", b[:offload.VnetHdrLen], re)
		}
		frame := b[offload.VnetHdrLen:]
		n, d := gso.Segment(frame, h, int(mtu), fuzzOut, headroom, fuzzSizes)
		if d != drop.None {
			if n != 0 {
				t.Fatalf("dropped (%v) with n = %d", d, n)
			}
			return
		}
		l2, want, err := refSegment(frame, h, int(mtu))
		if err != nil {
			t.Fatal(err)
		}
		if n != len(want) {
			t.Fatalf("%d segments, reference %d", n, len(want))
		}
		for i := range n {
			seg := fuzzOut[i][headroom : headroom+fuzzSizes[i]]
			ip := seg[len(l2):]
			if !bytes.Equal(seg[:len(l2)], l2) || !bytes.Equal(ip, want[i]) {
				t.Fatalf("segment %d differs from the reference:\n got %x\nwant %x%x", i, seg, l2, want[i])
			}
			if len(ip) > int(mtu) {
				t.Fatalf("segment %d: %d bytes > mtu %d", i, len(ip), mtu)
			}
			in, err := ot.ParseFrame(seg)
			if err != nil {
				t.Fatalf("segment %d malformed: %v", i, err)
			}
			if h.GSO() != offload.GSOUDPL4 && i > 0 && in.Flags&ot.CWR != 0 {
				t.Fatalf("segment %d has CWR", i)
			}
		}
	})
}
