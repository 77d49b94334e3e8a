package gro_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/gro"
	"github.com/vifsec/vifsec/offload/gso"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

const headroom = 64

var tsOpt = []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}

func payload(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

// flow returns n consecutive segments of size bytes of one TCP flow
// (IPv4 IDs counting up, as a sender's do), the last with PSH.
func flow(base ot.Packet, n, size int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		p := base
		p.Seq = base.Seq + uint32(i*size)
		p.ID = base.ID + uint16(i)
		p.Flags = ot.ACK
		if i == n-1 {
			p.Flags |= ot.PSH
		}
		p.Payload = payload(size, i)
		out = append(out, p.Frame())
	}
	return out
}

func TestEligible(t *testing.T) {
	v4 := ot.Packet{Src: ot.V4A, Dst: ot.V4B, Payload: payload(100, 0)}
	v6 := ot.Packet{Src: ot.V6A, Dst: ot.V6B, Payload: payload(100, 0)}
	with := func(p ot.Packet, f func(*ot.Packet)) []byte { f(&p); return p.Frame() }
	for _, tc := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"IPv4 ACK with data", v4.Frame(), true},
		{"IPv6 ACK with data", v6.Frame(), true},
		{"IPv4 DF", with(v4, func(p *ot.Packet) { p.DF = true }), true},
		{"PSH", with(v4, func(p *ot.Packet) { p.Flags = ot.ACK | ot.PSH }), true},
		{"ECE", with(v4, func(p *ot.Packet) { p.Flags = ot.ACK | ot.ECE }), true},
		{"timestamps", with(v6, func(p *ot.Packet) { p.TCPOptions = tsOpt }), true},
		{"SYN", with(v4, func(p *ot.Packet) { p.Flags = ot.ACK | ot.SYN }), false},
		{"FIN", with(v4, func(p *ot.Packet) { p.Flags = ot.ACK | ot.FIN }), false},
		{"RST", with(v4, func(p *ot.Packet) { p.Flags = ot.ACK | ot.RST }), false},
		{"URG", with(v4, func(p *ot.Packet) { p.Flags = ot.ACK | ot.URG }), false},
		{"CWR", with(v6, func(p *ot.Packet) { p.Flags = ot.ACK | ot.CWR }), false},
		{"no ACK", with(v4, func(p *ot.Packet) { p.Flags = ot.PSH }), false},
		{"no payload", with(v4, func(p *ot.Packet) { p.Payload = nil }), false},
		{"IPv4 options", with(v4, func(p *ot.Packet) { p.IPOptions = []byte{1, 1, 1, 0} }), false},
		{"IPv4 MF", with(v4, func(p *ot.Packet) { p.MF = true }), false},
		{"IPv4 fragment offset", with(v4, func(p *ot.Packet) { p.FragOff = 8 }), false},
		{"IPv6 extension header", with(v6, func(p *ot.Packet) { p.ExtHeaders = []ot.Ext{{Type: ot.ProtoDstOpts, Body: make([]byte, 6)}} }), false},
		{"UDP", with(v4, func(p *ot.Packet) { p.UDP = true }), false},
		{"802.1Q tag", with(v4, func(p *ot.Packet) { p.VLANs = []uint16{7} }), false},
		{"Ethernet padding", append(v4.Frame(), 0, 0), false},
		{"truncated", v4.Frame()[:40], false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := gro.Eligible(tc.frame); ok != tc.want {
				t.Errorf("Eligible = %v, want %v", ok, tc.want)
			}
		})
	}
}

// run offers frames to c as an uplink worker does, and returns what it
// would send: each finished run (copied) with its header.
func run(c *gro.Coalescer, frames [][]byte) (out [][]byte, hdrs []offload.VnetHdr) {
	finish := func() {
		if buf, start, end, h, ok := c.Finish(); ok {
			out, hdrs = append(out, bytes.Clone(buf[start:end])), append(hdrs, h)
		}
	}
	for _, f := range frames {
		s, ok := gro.Eligible(f)
		if !ok {
			finish()
			out, hdrs = append(out, f), append(hdrs, offload.VnetHdr{})
			continue
		}
		if c.Append(f, s) {
			continue
		}
		finish()
		if !c.Start(f, s) {
			out, hdrs = append(out, f), append(hdrs, offload.VnetHdr{})
		}
	}
	finish()
	return out, hdrs
}

// TestRoundTrip: a flow's segments merge into one super-frame that
// offload/gso cuts back into the very same frames, byte for byte
// (lengths, IPv4 IDs and checksums, sequence numbers, PSH on the last,
// TCP checksums), and whose header a receiver accepts.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    ot.Packet
		n    int
		size int
	}{
		{"IPv4", ot.Packet{Src: ot.V4A, Dst: ot.V4B, Seq: 1000, Ack: 77, ID: 300, DF: true}, 10, 1448},
		{"IPv4 timestamps", ot.Packet{Src: ot.V4A, Dst: ot.V4B, Seq: 0xfffff000, ID: 0xfffe, TCPOptions: tsOpt}, 8, 1000},
		{"IPv6", ot.Packet{Src: ot.V6A, Dst: ot.V6B, Seq: 5, FlowLabel: 0x12345, TOS: 0x20}, 12, 1428},
		{"IPv6 timestamps", ot.Packet{Src: ot.V6A, Dst: ot.V6B, Seq: 5, TCPOptions: tsOpt}, 3, 536},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames := flow(tc.p, tc.n, tc.size)
			c := gro.New(65535+100, headroom)
			out, hdrs := run(c, frames)
			if len(out) != 1 {
				t.Fatalf("%d frames out, want 1 super-frame", len(out))
			}
			h := hdrs[0]
			wantType := offload.GSOTCPv4
			if tc.p.Src.Is6() {
				wantType = offload.GSOTCPv6
			}
			if h.GSOType != wantType || int(h.GSOSize) != tc.size || !h.NeedsCsum() || c.Segments != uint64(tc.n) {
				t.Fatalf("header %+v, %d merged; want GSO type %d, size %d, NEEDS_CSUM, %d merged", h, c.Segments, wantType, tc.size, tc.n)
			}
			if d := h.Validate(out[0]); d != drop.None {
				t.Fatalf("a receiver refuses the header: %v", d)
			}
			mtu := len(frames[0]) - 14
			segs, sizes := make([][]byte, 64), make([]int, 64)
			for i := range segs {
				segs[i] = make([]byte, 2000)
			}
			n, d := gso.Segment(out[0], h, mtu, segs, 0, sizes)
			if d != drop.None || n != tc.n {
				t.Fatalf("gso.Segment: %d segments, %v; want %d", n, d, tc.n)
			}
			for i := 0; i < n; i++ {
				if got := segs[i][:sizes[i]]; !bytes.Equal(got, frames[i]) {
					t.Fatalf("segment %d:\n got %x\nwant %x", i, got, frames[i])
				}
			}
		})
	}
}

// TestRunEnds: what ends a run, and what never joins one.
func TestRunEnds(t *testing.T) {
	base := ot.Packet{Src: ot.V4A, Dst: ot.V4B, Seq: 1000, TCPOptions: tsOpt}
	seg := func(i int, f func(*ot.Packet)) []byte {
		p := base
		p.Seq = base.Seq + uint32(i*1000)
		p.ID = uint16(i)
		p.Payload = payload(1000, i)
		if f != nil {
			f(&p)
		}
		return p.Frame()
	}
	same := func(*ot.Packet) {}
	for _, tc := range []struct {
		name   string
		frames [][]byte
		want   []int // segments per frame out
	}{
		{"one flow", [][]byte{seg(0, nil), seg(1, nil), seg(2, nil)}, []int{3}},
		{"a gap", [][]byte{seg(0, nil), seg(2, nil), seg(3, nil)}, []int{1, 2}},
		{"a retransmission", [][]byte{seg(0, nil), seg(1, nil), seg(1, same)}, []int{2, 1}},
		{"PSH closes", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.Flags = ot.ACK | ot.PSH }), seg(2, nil)}, []int{2, 1}},
		{"a shorter segment closes", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.Payload = p.Payload[:500] }), seg(2, func(p *ot.Packet) { p.Seq -= 500 })}, []int{2, 1}},
		{"a bigger segment starts anew", [][]byte{seg(0, func(p *ot.Packet) { p.Payload = p.Payload[:500] }), seg(0, func(p *ot.Packet) { p.Seq += 500 })}, []int{1, 1}},
		{"another port", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.SrcPort = 1 })}, []int{1, 1}},
		{"another ACK", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.Ack = 9 })}, []int{1, 1}},
		{"another window", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.Window = 9 })}, []int{1, 1}},
		{"other options", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.TCPOptions = []byte{1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 2} })}, []int{1, 1}},
		{"another TOS", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.TOS = 4 })}, []int{1, 1}},
		{"another TTL", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.TTL = 3 })}, []int{1, 1}},
		{"another source", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.Src = ot.V4C })}, []int{1, 1}},
		{"a FIN", [][]byte{seg(0, nil), seg(1, func(p *ot.Packet) { p.Flags = ot.ACK | ot.FIN }), seg(2, nil)}, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, hdrs := run(gro.New(65535, headroom), tc.frames)
			var got []int
			for i, f := range out {
				n := 1
				if hdrs[i].GSOType != offload.GSONone {
					n = (len(f) - int(hdrs[i].HdrLen) + int(hdrs[i].GSOSize) - 1) / int(hdrs[i].GSOSize)
				}
				got = append(got, n)
			}
			if !equal(got, tc.want) {
				t.Fatalf("segments per frame out %v, want %v", got, tc.want)
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMaxPayload: a run stops short of a 64 KiB IP packet, and a frame
// bigger than the buffer passes as it is.
func TestMaxPayload(t *testing.T) {
	frames := flow(ot.Packet{Src: ot.V6A, Dst: ot.V6B}, 50, 1440)
	out, _ := run(gro.New(65535, headroom), frames)
	for i, f := range out {
		if ip := len(f) - 14; ip-40 > gro.MaxPayload {
			t.Errorf("frame %d: %d bytes of IP payload", i, ip-40)
		}
	}
	if len(out) != 2 {
		t.Errorf("%d frames out, want 2", len(out))
	}
	small := gro.New(1000, headroom)
	f := frames[0]
	s, _ := gro.Eligible(f)
	if small.Start(f, s) || small.Pending() {
		t.Error("a frame bigger than the buffer started a run")
	}
}

// TestAllocs: merging allocates nothing.
func TestAllocs(t *testing.T) {
	frames := flow(ot.Packet{Src: ot.V4A, Dst: ot.V4B}, 20, 1448)
	c := gro.New(65535, headroom)
	allocs := testing.AllocsPerRun(50, func() {
		for _, f := range frames {
			s, ok := gro.Eligible(f)
			if !ok || c.Append(f, s) {
				continue
			}
			c.Finish()
			c.Start(f, s)
		}
		c.Finish()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
	if c.Segments != 51*20 {
		t.Fatalf("%d segments merged, want %d", c.Segments, 51*20)
	}
}

// FuzzCoalesce offers the frames cut from b (each prefixed by a 2-byte
// length) to a Coalescer. Properties: nothing panics; every super-frame
// has a header a receiver accepts, and offload/gso cuts it into segments
// whose payloads are, in order, those of the frames merged into it.
func FuzzCoalesce(f *testing.F) {
	add := func(frames ...[]byte) {
		var b []byte
		for _, fr := range frames {
			b = binary.BigEndian.AppendUint16(b, uint16(len(fr)))
			b = append(b, fr...)
		}
		f.Add(b)
	}
	add(flow(ot.Packet{Src: ot.V4A, Dst: ot.V4B, TCPOptions: tsOpt}, 3, 100)...)
	add(flow(ot.Packet{Src: ot.V6A, Dst: ot.V6B}, 4, 64)...)
	v4 := flow(ot.Packet{Src: ot.V4A, Dst: ot.V4B}, 3, 80)
	add(v4[0], v4[2], v4[1])
	add(v4[0], ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: payload(50, 1)}.Frame(), v4[1])
	f.Add([]byte{0, 60})

	segs, sizes := make([][]byte, 256), make([]int, 256)
	for i := range segs {
		segs[i] = make([]byte, 70000)
	}
	c := gro.New(65535+100, headroom)
	f.Fuzz(func(t *testing.T, b []byte) {
		var frames [][]byte
		for len(b) >= 2 {
			n := int(binary.BigEndian.Uint16(b))
			b = b[2:]
			n = min(n, len(b))
			frames = append(frames, bytes.Clone(b[:n]))
			b = b[n:]
		}
		// The payloads each run took, to compare with what gso makes.
		var runPay [][]byte
		var pays [][][]byte
		finish := func() {
			buf, start, end, h, ok := c.Finish()
			if !ok {
				return
			}
			if h.GSOType != offload.GSONone {
				frame := buf[start:end]
				if d := h.Validate(frame); d != drop.None {
					t.Fatalf("header %+v refused: %v", h, d)
				}
				mtu := int(h.HdrLen) - 14 + int(h.GSOSize)
				n, d := gso.Segment(frame, h, mtu, segs, 0, sizes)
				if d != drop.None || n != len(runPay) {
					t.Fatalf("gso.Segment: %d segments, %v; want %d", n, d, len(runPay))
				}
				for i := 0; i < n; i++ {
					if got := segs[i][int(h.HdrLen):sizes[i]]; !bytes.Equal(got, runPay[i]) {
						t.Fatalf("segment %d payload %x, want %x", i, got, runPay[i])
					}
				}
			}
			pays = append(pays, runPay)
			runPay = nil
		}
		for _, fr := range frames {
			s, ok := gro.Eligible(fr)
			if !ok {
				finish()
				continue
			}
			if c.Append(fr, s) {
				runPay = append(runPay, payloadOf(fr))
				continue
			}
			finish()
			if c.Start(fr, s) {
				runPay = append(runPay, payloadOf(fr))
			}
		}
		finish()
	})
}

// payloadOf is the TCP payload of an eligible frame.
func payloadOf(f []byte) []byte {
	l4 := 14 + 20
	if binary.BigEndian.Uint16(f[12:]) == 0x86dd {
		l4 = 14 + 40
	}
	return bytes.Clone(f[l4+int(f[l4+12]>>4)*4:])
}
