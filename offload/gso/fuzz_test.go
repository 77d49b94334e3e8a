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

// FuzzSplitUDP feeds virtio_net_hdr + frame bytes, as AF_PACKET hands
// over a UDP GSO super-frame (a peer's, whole through a veth, with
// NEEDS_CSUM; or one a NIC or the kernel merged by UDP GRO, with
// DATA_VALID), to ParseReceivedVnetHdr and SplitUDP. Properties: nothing
// panics; every datagram passes a receiver's checks (lengths, IPv4 header
// checksum, the UDP checksum: none over IPv4, valid over IPv6) with the
// super-frame's headers; the payloads, in order, are the super-frame's;
// every one but the last carries gso_size; and where a Train takes the
// datagrams, it joins them back into the super-frame (but for the
// checksum fields it rewrites).
func FuzzSplitUDP(f *testing.F) {
	add := func(p ot.Packet, gs uint16) {
		frame, h := ot.Super(p, gs, true, false)
		b := make([]byte, offload.VnetHdrLen, offload.VnetHdrLen+len(frame))
		h.Put(b)
		f.Add(append(b, frame...))
	}
	// UDP GRO's super-frames: DATA_VALID, no checksum offsets, the UDP
	// checksum field left from the merge (here the whole frame's sum).
	addGRO := func(p ot.Packet, gs uint16) {
		frame, h := ot.Super(p, gs, false, false)
		h.Flags = offload.FlagDataValid
		b := make([]byte, offload.VnetHdrLen, offload.VnetHdrLen+len(frame))
		h.Put(b)
		f.Add(append(b, frame...))
	}
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 4500, DstPort: 4500, DF: true, Payload: payload(1000)}, 300)
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, IPOptions: []byte{1, 1, 1, 0}, VLANs: []uint16{9}, Payload: payload(600)}, 200)
	add(ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, SrcPort: 4500, DstPort: 4500, Payload: payload(900)}, 400)
	add(ot.Packet{Src: ot.V6A, Dst: ot.V6C, UDP: true, ExtHeaders: []ot.Ext{{Type: ot.ProtoHopByHop, Body: make([]byte, 6)}}, Payload: payload(500)}, 100)
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: payload(100)}, 1000) // gso_size beyond the payload
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: payload(100)}, 1)    // too many segments
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: payload(100)}, 0)    // gso_size 0
	addGRO(ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 4500, DstPort: 4500, DF: true, Payload: payload(1000)}, 300)
	addGRO(ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, SrcPort: 4789, DstPort: 4789, VLANs: []uint16{5}, Payload: payload(900)}, 400)
	addGRO(ot.Packet{Src: ot.V6A, Dst: ot.V6C, UDP: true, ExtHeaders: []ot.Ext{{Type: ot.ProtoDstOpts, Body: make([]byte, 6)}}, Payload: payload(500)}, 100)
	f.Add([]byte{})
	f.Add(append([]byte{1, 5, 0, 0, 0xe8, 3, 34, 0, 6, 0}, make([]byte, 60)...))
	f.Add(append([]byte{2, 5, 0, 0, 0xe8, 3, 0, 0, 0, 0}, make([]byte, 60)...))
	f.Add(append([]byte{3, 5, 0, 0, 0xe8, 3, 34, 0, 6, 0}, make([]byte, 60)...)) // both flags

	f.Fuzz(func(t *testing.T, b []byte) {
		h, d := offload.ParseReceivedVnetHdr(b)
		if d != drop.None {
			return
		}
		frame := b[offload.VnetHdrLen:]
		n, d := gso.SplitUDP(frame, h, fuzzOut, headroom, fuzzSizes)
		if d != drop.None {
			if n != 0 {
				t.Fatalf("dropped (%v) with n = %d", d, n)
			}
			return
		}
		l4, pay := 0, 0
		var joined []byte
		for i := range n {
			seg := fuzzOut[i][headroom : headroom+fuzzSizes[i]]
			in, err := ot.ParseFrame(seg)
			if err != nil {
				t.Fatalf("datagram %d malformed: %v\n%x", i, err, seg)
			}
			if i == 0 {
				l4 = ot.L2Len(seg) + in.HdrLen
				pay = l4 + 8
				if h.NeedsCsum() && l4 != int(h.CsumStart) {
					t.Fatalf("UDP header at %d, csum_start %d", l4, h.CsumStart)
				}
			}
			if !sameButLengths(seg[:pay], frame[:pay], l4) {
				t.Fatalf("datagram %d headers differ:\n got %x\nwant %x", i, seg[:pay], frame[:pay])
			}
			if p := len(seg) - pay; i < n-1 && p != int(h.GSOSize) || p > int(h.GSOSize) && n > 1 {
				t.Fatalf("datagram %d of %d carries %d, gso_size %d", i, n, p, h.GSOSize)
			}
			joined = append(joined, seg[pay:]...)
		}
		if want := frame[pay : pay+len(joined)]; !bytes.Equal(joined, want) {
			t.Fatalf("payloads joined differ from the super-frame's")
		}
		if n < 2 || n > gso.MaxTrainSegments {
			return
		}
		buf := make([]byte, headroom+70000)
		var tr gso.Train
		if !tr.Start(buf, headroom, fuzzOut[0][headroom:headroom+fuzzSizes[0]]) {
			return // extension headers, two tags: not a Train's
		}
		for i := 1; i < n; i++ {
			if !tr.Append(fuzzOut[i][headroom : headroom+fuzzSizes[i]]) {
				t.Fatalf("Train refused datagram %d of %d", i, n)
			}
		}
		s, e, th := tr.Finish()
		if th.GSOSize != h.GSOSize || int(th.CsumStart) != l4 || e-s != pay+len(joined) {
			t.Fatalf("Train header %+v for %+v", th, h)
		}
		if !sameButLengths(buf[s:e], frame[:e-s], l4) || !bytes.Equal(buf[s+pay:e], frame[pay:e-s]) {
			t.Fatalf("Train of the datagrams differs from the super-frame")
		}
	})
}

// sameButLengths reports whether the headers a and b (a frame's up to the
// end of its UDP header at l4+8) are equal but for the fields a split or a
// train rewrites: IP lengths, IPv4 ID and header checksum, UDP length and
// checksum.
func sameButLengths(a, b []byte, l4 int) bool {
	if len(a) < l4+8 || len(b) < l4+8 {
		return false
	}
	a, b = bytes.Clone(a[:l4+8]), bytes.Clone(b[:l4+8])
	l3 := ot.L2Len(a)
	for _, x := range [][]byte{a, b} {
		ip := x[l3:]
		if ip[0]>>4 == 4 {
			copy(ip[2:6], []byte{0, 0, 0, 0})
			ip[10], ip[11] = 0, 0
		} else {
			ip[4], ip[5] = 0, 0
		}
		copy(x[l4+4:l4+8], []byte{0, 0, 0, 0})
	}
	return bytes.Equal(a, b)
}
