package gso_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/gso"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

// train joins frames with a Train into a fresh buffer and returns the
// super-frame, its header and how many frames it took.
func train(t *testing.T, frames [][]byte) ([]byte, offload.VnetHdr, int) {
	t.Helper()
	buf := make([]byte, headroom+70000)
	var tr gso.Train
	if !tr.Start(buf, headroom, frames[0]) {
		t.Fatalf("Start refused %x", frames[0])
	}
	n := 1
	for _, f := range frames[1:] {
		if !tr.Append(f) {
			break
		}
		n++
	}
	if tr.Len() != n {
		t.Fatalf("Len() = %d, appended %d", tr.Len(), n)
	}
	start, end, h := tr.Finish()
	return buf[start:end], h, n
}

// TestTrainInvertsSegment: a USO super-frame cut by Segment and joined
// again by a Train is the super-frame it was, byte for byte, with the
// same virtio_net_hdr (partial checksum, gso_size, header length); and
// SplitUDP cuts it into Segment's datagrams but for the UDP checksum
// over IPv4, which it leaves 0 ("none"; over IPv6 it computes it, so
// those are Segment's byte for byte).
func TestTrainInvertsSegment(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    ot.Packet
		gs   uint16
	}{
		{"ipv4 esp-in-udp train", ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 4500, DstPort: 4500, DF: true, ID: 0xfff0, Payload: payload(20*1436 + 700)}, 1436},
		{"ipv4 exact multiple", ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: payload(4 * 1000)}, 1000},
		{"ipv4 options, tagged", ot.Packet{Src: ot.V4A, Dst: ot.V4C, UDP: true, VLANs: []uint16{42}, IPOptions: []byte{1, 1, 1, 0}, TOS: 0xb8, Payload: payload(3000)}, 1200},
		{"ipv6", ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, SrcPort: 4500, DstPort: 4500, FlowLabel: 0xabcde, Payload: payload(44*1400 + 1)}, 1400},
		{"ipv6 two", ot.Packet{Src: ot.V6A, Dst: ot.V6C, UDP: true, Payload: payload(1401)}, 1400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			super, h := ot.Super(tc.p, tc.gs, true, false)
			out, sizes := batch(64, headroom+1600)
			n, d := gso.Segment(super, h, 9000, out, headroom, sizes)
			if d != drop.None || n < 2 {
				t.Fatalf("Segment: %d, %v", n, d)
			}
			frames := make([][]byte, n)
			for i := range n {
				frames[i] = out[i][headroom : headroom+sizes[i]]
			}
			got, gh, took := train(t, frames)
			if took != n {
				t.Fatalf("train took %d of %d datagrams", took, n)
			}
			if gh != h {
				t.Errorf("header %+v, want %+v", gh, h)
			}
			if !bytes.Equal(got, super) {
				t.Errorf("super-frame differs:\n got %x\nwant %x", got, super)
			}
			// The kernel completes the partial checksum of each segment:
			// Segment, as the reference, gives the same result.
			out2, sizes2 := batch(64, headroom+1600)
			n2, d := gso.Segment(got, gh, 9000, out2, headroom, sizes2)
			if d != drop.None || n2 != n {
				t.Fatalf("Segment of the train: %d, %v", n2, d)
			}
			split, splitSizes := batch(64, headroom+1600)
			ns, d := gso.SplitUDP(got, gh, split, headroom, splitSizes)
			if d != drop.None || ns != n {
				t.Fatalf("SplitUDP: %d, %v; want %d", ns, d, n)
			}
			l4 := ot.L2Len(super) + tc.p.L3Len()
			for i := range n {
				want := frames[i]
				if s := out2[i][headroom : headroom+sizes2[i]]; !bytes.Equal(s, want) {
					t.Errorf("datagram %d of the train:\n got %x\nwant %x", i, s, want)
				}
				s := split[i][headroom : headroom+splitSizes[i]]
				w := bytes.Clone(want)
				if !tc.p.Src.Is6() {
					if binary.BigEndian.Uint16(s[l4+6:]) != 0 {
						t.Errorf("SplitUDP datagram %d: UDP checksum %#x, want 0", i, binary.BigEndian.Uint16(s[l4+6:]))
					}
					w[l4+6], w[l4+7] = 0, 0
				}
				if !bytes.Equal(s, w) {
					t.Errorf("SplitUDP datagram %d:\n got %x\nwant %x", i, s, w)
				}
			}
		})
	}
}

// TestTrainRefuses: what a Train must not join, and a train of one.
func TestTrainRefuses(t *testing.T) {
	base := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 4500, DstPort: 4500, DF: true, Payload: payload(1000)}
	frame := func(mod func(*ot.Packet)) []byte {
		p := base
		mod(&p)
		return p.Frame()
	}
	first := base.Frame()
	for _, tc := range []struct {
		name string
		next []byte
	}{
		{"other destination", frame(func(p *ot.Packet) { p.Dst = ot.V4C })},
		{"other source port", frame(func(p *ot.Packet) { p.SrcPort = 4501 })},
		{"other TOS", frame(func(p *ot.Packet) { p.TOS = 4 })},
		{"other TTL", frame(func(p *ot.Packet) { p.TTL = 3 })},
		{"no DF", frame(func(p *ot.Packet) { p.DF = false })},
		{"longer", frame(func(p *ot.Packet) { p.Payload = payload(1001) })},
		{"tagged", frame(func(p *ot.Packet) { p.VLANs = []uint16{5} })},
		{"tcp", frame(func(p *ot.Packet) { p.UDP = false })},
		{"empty payload", frame(func(p *ot.Packet) { p.Payload = nil })},
		{"ethernet padding", append(bytes.Clone(first), 0, 0)},
		{"truncated", first[:len(first)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, headroom+70000)
			var tr gso.Train
			if !tr.Start(buf, headroom, first) {
				t.Fatal("Start refused the first frame")
			}
			if tr.Append(tc.next) {
				t.Fatal("appended")
			}
			start, end, h := tr.Finish()
			if h != (offload.VnetHdr{}) || !bytes.Equal(buf[start:end], first) {
				t.Errorf("a train of one: header %+v, frame changed: %v", h, !bytes.Equal(buf[start:end], first))
			}
		})
	}
	t.Run("after a shorter one", func(t *testing.T) {
		buf := make([]byte, headroom+70000)
		var tr gso.Train
		tr.Start(buf, headroom, first)
		if !tr.Append(frame(func(p *ot.Packet) { p.Payload = payload(10) })) {
			t.Fatal("shorter last datagram refused")
		}
		if tr.Append(first) {
			t.Fatal("appended after the train was closed")
		}
	})
	t.Run("65535 bytes", func(t *testing.T) {
		buf := make([]byte, headroom+70000)
		var tr gso.Train
		tr.Start(buf, headroom, first)
		n := 1
		for tr.Append(first) {
			n++
		}
		// 20 + 8 + n*1000 <= 65535 (IPv4 total length).
		if n != 65 && n != gso.MaxTrainSegments {
			t.Errorf("took %d datagrams", n)
		}
		if n > gso.MaxTrainSegments {
			t.Errorf("took %d > MaxTrainSegments", n)
		}
	})
	t.Run("total length", func(t *testing.T) {
		big := frame(func(p *ot.Packet) { p.Payload = payload(9000) })
		buf := make([]byte, headroom+70000)
		var tr gso.Train
		tr.Start(buf, headroom, big)
		n := 1
		for tr.Append(big) {
			n++
		}
		if n != 7 { // 7*9000+28 = 63028; 8 would be 72028
			t.Errorf("took %d datagrams of 9000, want 7", n)
		}
	})
	t.Run("buffer", func(t *testing.T) {
		buf := make([]byte, headroom+len(first)+500)
		var tr gso.Train
		if !tr.Start(buf, headroom, first) || tr.Append(first) {
			t.Error("appended beyond the buffer")
		}
		if tr.Start(buf[:headroom+10], headroom, first) || tr.Start(buf, 2, first) {
			t.Error("started without room for the frame or the virtio-net header")
		}
	})
}

// TestTrainChecksum: the partial checksum a Train leaves, completed as a
// NIC would over the whole super-frame's UDP, is the checksum of the
// super-frame as one datagram (the pseudo-header counts its total length).
func TestTrainChecksum(t *testing.T) {
	p := ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, SrcPort: 4500, DstPort: 4500, Payload: payload(3 * 1300)}
	whole := p.Frame()
	super, h := ot.Super(p, 1300, true, false)
	out, sizes := batch(8, headroom+1600)
	n, _ := gso.Segment(super, h, 9000, out, headroom, sizes)
	frames := make([][]byte, n)
	for i := range n {
		frames[i] = out[i][headroom : headroom+sizes[i]]
	}
	got, gh, _ := train(t, frames)
	if !csum.Complete(got, int(gh.CsumStart), int(gh.CsumOffset)) || !bytes.Equal(got, whole) {
		t.Errorf("completed train:\n got %x\nwant %x", got, whole)
	}
}

func TestTrainAndSplitAllocs(t *testing.T) {
	p := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 4500, DstPort: 4500, Payload: payload(44 * 1400)}
	super, h := ot.Super(p, 1400, true, false)
	out, sizes := batch(64, headroom+1600)
	n, _ := gso.Segment(super, h, 9000, out, headroom, sizes)
	buf := make([]byte, headroom+70000)
	var tr gso.Train
	split, splitSizes := batch(64, headroom+1600)
	if a := testing.AllocsPerRun(100, func() {
		tr.Start(buf, headroom, out[0][headroom:headroom+sizes[0]])
		for i := 1; i < n; i++ {
			tr.Append(out[i][headroom : headroom+sizes[i]])
		}
		s, e, h := tr.Finish()
		if _, d := gso.SplitUDP(buf[s:e], h, split, headroom, splitSizes); d != drop.None {
			panic(d)
		}
	}); a != 0 {
		t.Errorf("%v allocations per train and split, want 0", a)
	}
}

// TestSplitUDPDrops: untrusted super-frames SplitUDP refuses.
func TestSplitUDPDrops(t *testing.T) {
	p := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 4500, DstPort: 4500, Payload: payload(3000)}
	super, h := ot.Super(p, 1000, true, false)
	tcp, th := ot.Super(ot.Packet{Src: ot.V4A, Dst: ot.V4B, Payload: payload(3000)}, 1000, true, false)
	for _, tc := range []struct {
		name  string
		frame []byte
		h     func(offload.VnetHdr) offload.VnetHdr
		out   int
		size  int
		want  drop.Reason
	}{
		{name: "gso_size 0", frame: super, h: func(h offload.VnetHdr) offload.VnetHdr { h.GSOSize = 0; return h }, want: drop.BadVnetHdr},
		{name: "no NEEDS_CSUM", frame: super, h: func(h offload.VnetHdr) offload.VnetHdr { h.Flags = 0; return h }, want: drop.BadVnetHdr},
		{name: "csum_start not UDP", frame: super, h: func(h offload.VnetHdr) offload.VnetHdr { h.CsumStart -= 4; return h }, want: drop.BadVnetHdr},
		{name: "tcp", frame: tcp, h: func(offload.VnetHdr) offload.VnetHdr { return th }, want: drop.Unsupported},
		{name: "udp_l4 over tcp", frame: tcp, h: func(offload.VnetHdr) offload.VnetHdr {
			th.GSOType = offload.GSOUDPL4
			th.CsumOffset = 6
			return th
		}, want: drop.BadVnetHdr},
		{name: "truncated", frame: super[:len(super)-1], want: drop.Malformed},
		{name: "too many", frame: super, out: 2, want: drop.TooManySegments},
		{name: "too small", frame: super, size: headroom + 500, want: drop.NoRoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hh := h
			if tc.h != nil {
				hh = tc.h(h)
			}
			nout, size := 64, headroom+1600
			if tc.out != 0 {
				nout = tc.out
			}
			if tc.size != 0 {
				size = tc.size
			}
			out, sizes := batch(nout, size)
			n, d := gso.SplitUDP(tc.frame, hh, out, headroom, sizes)
			if d != tc.want || n != 0 {
				t.Errorf("SplitUDP = %d, %v; want 0, %v", n, d, tc.want)
			}
		})
	}
	// gso_size beyond the payload: one datagram, the frame as it was but
	// for the checksum.
	hh := h
	hh.GSOSize = 5000
	out, sizes := batch(4, headroom+4000)
	if n, d := gso.SplitUDP(super, hh, out, headroom, sizes); n != 1 || d != drop.None || sizes[0] != len(super) {
		t.Errorf("gso_size > payload: %d, %v, size %d", n, d, sizes[0])
	}
}

func TestTrainPort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		port  uint16
		ok    bool
	}{
		{"esp in udp", ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 4500, DstPort: 4500, Payload: payload(100)}.Frame(), 4500, true},
		{"vxlan over ipv6, tagged", ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, DstPort: 4789, VLANs: []uint16{3}, Payload: payload(100)}.Frame(), 4789, true},
		{"tcp", ot.Packet{Src: ot.V4A, Dst: ot.V4B, DstPort: 4500, Payload: payload(100)}.Frame(), 0, false},
		{"truncated", ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, DstPort: 4500, Payload: payload(100)}.Frame()[:40], 0, false},
	} {
		if port, ok := gso.TrainPort(tc.frame); port != tc.port || ok != tc.ok {
			t.Errorf("%s: TrainPort = %d, %v; want %d, %v", tc.name, port, ok, tc.port, tc.ok)
		}
	}
}

// TestSplitUDPDataValid: a UDP GSO super-frame as AF_PACKET hands over
// one that a NIC or the kernel merged by UDP GRO (DATA_VALID, no checksum
// offsets, the UDP checksum field left from the merge) is taken on
// receipt — never from a sender — and cut into datagrams whose UDP
// checksums a receiver accepts: none (0) over IPv4, computed over IPv6;
// and PartialUDP gives it the partial checksum a sender needs to pass it
// on whole, which the kernel's segmentation (Segment) completes.
func TestSplitUDPDataValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    ot.Packet
		gs   uint16
	}{
		{"ipv4 esp-in-udp", ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, SrcPort: 4500, DstPort: 4500, DF: true, Payload: payload(10*1400 + 3)}, 1400},
		{"ipv4 tagged, options", ot.Packet{Src: ot.V4A, Dst: ot.V4C, UDP: true, VLANs: []uint16{7}, IPOptions: []byte{1, 1, 1, 0}, Payload: payload(3000)}, 1000},
		{"ipv6 vxlan", ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, SrcPort: 4789, DstPort: 4789, Payload: payload(7 * 1200)}, 1200},
		{"ipv6 destination options", ot.Packet{Src: ot.V6A, Dst: ot.V6C, UDP: true, ExtHeaders: []ot.Ext{{Type: ot.ProtoDstOpts, Body: make([]byte, 6)}}, Payload: payload(2500)}, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			super, _ := ot.Super(tc.p, tc.gs, false, false)
			l4 := ot.L2Len(super) + tc.p.L3Len()
			binary.BigEndian.PutUint16(super[l4+6:], 0x1234) // what GRO left: no datagram's checksum
			h := offload.VnetHdr{Flags: offload.FlagDataValid, GSOType: offload.GSOUDPL4, GSOSize: tc.gs, HdrLen: uint16(l4 + 8)}
			b := make([]byte, offload.VnetHdrLen, offload.VnetHdrLen+len(super))
			h.Put(b)
			b = append(b, super...)
			if _, d := offload.ParseVnetHdr(b); d != drop.BadVnetHdr {
				t.Errorf("ParseVnetHdr (a sender's header) = %v, want %v: the kernel refuses UDP_L4 without NEEDS_CSUM", d, drop.BadVnetHdr)
			}
			rh, d := offload.ParseReceivedVnetHdr(b)
			if d != drop.None || rh != h {
				t.Fatalf("ParseReceivedVnetHdr = %+v, %v; want %+v", rh, d, h)
			}
			out, sizes := batch(64, headroom+1600)
			n, d := gso.SplitUDP(super, h, out, headroom, sizes)
			if want := (len(super) - l4 - 8 + int(tc.gs) - 1) / int(tc.gs); d != drop.None || n != want {
				t.Fatalf("SplitUDP = %d, %v; want %d datagrams", n, d, want)
			}
			var joined []byte
			for i := range n {
				s := out[i][headroom : headroom+sizes[i]]
				in, err := ot.ParseFrame(s)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if c := binary.BigEndian.Uint16(s[l4+6:]); tc.p.Src.Is6() == (c == 0) {
					t.Errorf("datagram %d: UDP checksum %#04x", i, c)
				}
				joined = append(joined, in.L4[8:]...)
			}
			if !bytes.Equal(joined, super[l4+8:]) {
				t.Errorf("payloads differ from the super-frame's")
			}

			// Passed on whole: a partial checksum, completed per segment.
			whole := bytes.Clone(super)
			ph, d := gso.PartialUDP(whole, h)
			if d != drop.None || !ph.NeedsCsum() || int(ph.CsumStart) != l4 || ph.CsumOffset != 6 || ph.GSOSize != tc.gs {
				t.Fatalf("PartialUDP = %+v, %v", ph, d)
			}
			if d := ph.Validate(whole); d != drop.None {
				t.Fatalf("PartialUDP's header %+v refused from a sender: %v", ph, d)
			}
			seg, segSizes := batch(64, headroom+1600)
			ns, d := gso.Segment(whole, ph, 9000, seg, headroom, segSizes)
			if d != drop.None || ns != n {
				t.Fatalf("Segment of PartialUDP's super-frame: %d, %v; want %d", ns, d, n)
			}
			for i := range ns {
				if _, err := ot.ParseFrame(seg[i][headroom : headroom+segSizes[i]]); err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
			}
		})
	}
	// A sender's header needs NEEDS_CSUM; both flags are never valid.
	p := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: payload(3000)}
	super, h := ot.Super(p, 1000, true, false)
	h.Flags |= offload.FlagDataValid
	out, sizes := batch(8, headroom+1600)
	if n, d := gso.SplitUDP(super, h, out, headroom, sizes); d != drop.BadVnetHdr || n != 0 {
		t.Errorf("NEEDS_CSUM|DATA_VALID: %d, %v", n, d)
	}
}
