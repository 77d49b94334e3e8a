package gso_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/gso"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

// headroom stands in for esp.Headroom: segments are written after it.
const headroom = 128

// batch returns n buffers of size bytes each plus their sizes slice.
func batch(n, size int) ([][]byte, []int) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out, make([]int, n)
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// check verifies segs against the reference and as a receiver would
// (offloadtest.ParseFrame: lengths and checksums), and that every IP
// packet fits mtu. It returns the parsed segments.
func check(t *testing.T, frame []byte, h offload.VnetHdr, mtu int, out [][]byte, sizes []int, n int) []ot.Info {
	t.Helper()
	l2, want, err := refSegment(frame, h, mtu)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("Segment made %d segments, reference %d", n, len(want))
	}
	infos := make([]ot.Info, n)
	for i := range n {
		seg := out[i][headroom : headroom+sizes[i]]
		if !bytes.Equal(seg[:len(l2)], l2) {
			t.Fatalf("segment %d: L2 header %x, want %x", i, seg[:len(l2)], l2)
		}
		if got := seg[len(l2):]; !bytes.Equal(got, want[i]) {
			t.Fatalf("segment %d differs from the reference:\n got %x\nwant %x", i, got, want[i])
		}
		if len(seg)-len(l2) > mtu {
			t.Fatalf("segment %d: IP packet %d bytes > mtu %d", i, len(seg)-len(l2), mtu)
		}
		in, err := ot.ParseFrame(seg)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		infos[i] = in
	}
	return infos
}

func TestSegment(t *testing.T) {
	tcp4 := ot.Packet{Src: ot.V4A, Dst: ot.V4B, ID: 0xfffe, DF: true, Seq: 0xffff_f000, Ack: 7,
		Flags: ot.ACK | ot.PSH, TCPOptions: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}}
	tcp6 := tcp4
	tcp6.Src, tcp6.Dst = ot.V6A, ot.V6B
	tests := []struct {
		name    string
		p       ot.Packet
		size    int // payload bytes
		gso     uint16
		mtu     int
		partial bool
		ecn     bool
		wantN   int
		wantPay []int // payload per segment (first, then all but last equal to it, last)
	}{
		{name: "TCPv4 64KiB at MTU 1500, partial", p: tcp4, size: 65535 - 20 - 32, gso: 1448, mtu: 1500, partial: true,
			wantN: 46, wantPay: []int{1448, 65483 - 45*1448}},
		{name: "TCPv4 MTU below gso_size", p: tcp4, size: 10000, gso: 1448, mtu: 1400 - 73, partial: true,
			wantN: 8, wantPay: []int{1275, 10000 - 7*1275}},
		{name: "TCPv4 full checksum in, not partial", p: tcp4, size: 3000, gso: 1000, mtu: 1500, wantN: 3, wantPay: []int{1000, 1000}},
		{name: "TCPv4 CWR and ECN", p: func() ot.Packet { p := tcp4; p.Flags |= ot.CWR | ot.ECE; return p }(),
			size: 5000, gso: 1448, mtu: 1500, partial: true, ecn: true, wantN: 4, wantPay: []int{1448, 5000 - 3*1448}},
		{name: "TCPv4 FIN PSH URG", p: func() ot.Packet { p := tcp4; p.Flags |= ot.FIN | ot.URG; p.Urgent = 3; return p }(),
			size: 4000, gso: 1448, mtu: 1500, partial: true, wantN: 3, wantPay: []int{1448, 4000 - 2*1448}},
		{name: "TCPv4 with IP options and two VLAN tags", p: func() ot.Packet {
			p := tcp4
			p.IPOptions = []byte{0x94, 4, 0, 0, 1, 1, 1, 0} // router alert, NOPs, EOL
			p.VLANs = []uint16{100, 200}
			return p
		}(), size: 6000, gso: 1400, mtu: 1500, partial: true, wantN: 5, wantPay: []int{1400, 400}},
		{name: "TCPv4 single segment", p: tcp4, size: 1000, gso: 1448, mtu: 1500, partial: true, wantN: 1, wantPay: []int{1000}},
		{name: "TCPv4 header only", p: tcp4, size: 0, gso: 1448, mtu: 1500, partial: true, wantN: 1, wantPay: []int{0}},
		{name: "TCPv4 exactly two full segments", p: tcp4, size: 2896, gso: 1448, mtu: 1500, partial: true, wantN: 2, wantPay: []int{1448, 1448}},
		{name: "TCPv6 64KiB", p: tcp6, size: 65535 - 32, gso: 1428, mtu: 1500, partial: true,
			wantN: 46, wantPay: []int{1428, 65503 - 45*1428}},
		{name: "TCPv6 ECN", p: func() ot.Packet { p := tcp6; p.Flags |= ot.CWR; return p }(),
			size: 3000, gso: 1428, mtu: 1500, partial: true, ecn: true, wantN: 3, wantPay: []int{1428, 3000 - 2*1428}},
		{name: "TCPv6 extension headers", p: func() ot.Packet {
			p := tcp6
			p.ExtHeaders = []ot.Ext{
				{Type: ot.ProtoHopByHop, Body: []byte{1, 4, 0, 0, 0, 0}},
				{Type: ot.ProtoDstOpts, Body: []byte{1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
				{Type: ot.ProtoRouting, Body: make([]byte, 22)},
			}
			return p
		}(), size: 5000, gso: 1428, mtu: 1400, partial: true, wantN: 4, wantPay: []int{1400 - 40 - 48 - 32, 5000 - 3*1280}},
		{name: "UDP_L4 IPv4", p: ot.Packet{Src: ot.V4A, Dst: ot.V4C, UDP: true, ID: 9}, size: 12000, gso: 1200, mtu: 1500,
			partial: true, wantN: 10, wantPay: []int{1200, 1200}},
		{name: "UDP_L4 IPv6 short last", p: ot.Packet{Src: ot.V6A, Dst: ot.V6C, UDP: true}, size: 3500, gso: 1232, mtu: 1280,
			partial: true, wantN: 3, wantPay: []int{1232, 3500 - 2*1232}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Payload = payload(tc.size)
			frame, h := ot.Super(tc.p, tc.gso, tc.partial, tc.ecn)
			if d := h.Validate(frame); d != drop.None {
				t.Fatalf("builder made an invalid header: %v", d)
			}
			out, sizes := batch(64, headroom+9000)
			n, d := gso.Segment(frame, h, tc.mtu, out, headroom, sizes)
			if d != drop.None {
				t.Fatalf("Segment dropped: %v", d)
			}
			if n != tc.wantN {
				t.Fatalf("n = %d, want %d", n, tc.wantN)
			}
			infos := check(t, frame, h, tc.mtu, out, sizes, n)
			first := infos[0]
			for i, in := range infos {
				wantPay := tc.wantPay[0]
				if i == n-1 {
					wantPay = tc.wantPay[len(tc.wantPay)-1]
				}
				if in.PayloadLen != wantPay {
					t.Errorf("segment %d: payload %d, want %d", i, in.PayloadLen, wantPay)
				}
				if !in.V6 && in.ID != tc.p.ID+uint16(i) {
					t.Errorf("segment %d: IPv4 ID %#x, want %#x", i, in.ID, tc.p.ID+uint16(i))
				}
				if tc.p.UDP {
					continue
				}
				if want := tc.p.Seq + uint32(i*tc.wantPay[0]); in.Seq != want {
					t.Errorf("segment %d: seq %#x, want %#x", i, in.Seq, want)
				}
				wantFlags := tc.p.Flags
				if i > 0 {
					wantFlags &^= ot.CWR
				}
				if i < n-1 {
					wantFlags &^= ot.FIN | ot.PSH
				}
				if in.Flags != wantFlags {
					t.Errorf("segment %d: flags %#02x, want %#02x", i, in.Flags, wantFlags)
				}
				if in.Ack != first.Ack {
					t.Errorf("segment %d: ack changed", i)
				}
			}
		})
	}
}

func TestSegmentDrops(t *testing.T) {
	tcp4 := ot.Packet{Src: ot.V4A, Dst: ot.V4B, Payload: payload(4000)}
	tcp6 := ot.Packet{Src: ot.V6A, Dst: ot.V6B, Payload: payload(4000)}
	udp4 := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: payload(4000)}
	super := func(p ot.Packet, mod func(f []byte, h *offload.VnetHdr)) ([]byte, offload.VnetHdr) {
		f, h := ot.Super(p, 1000, true, false)
		if mod != nil {
			mod(f, &h)
		}
		return f, h
	}
	with := func(p ot.Packet, mod func(*ot.Packet)) ot.Packet { mod(&p); return p }
	tests := []struct {
		name     string
		frame    []byte
		h        offload.VnetHdr
		mtu      int
		nbuf     int
		bufSize  int
		offset   int
		want     drop.Reason
		noModify bool
	}{
		{name: "GSO_NONE", want: drop.Unsupported, frame: tcp4.Frame(), h: offload.VnetHdr{}},
		{name: "UFO", want: drop.Unsupported, frame: udp4.Frame(), h: offload.VnetHdr{GSOType: offload.GSOUDP, GSOSize: 1000}},
		{name: "bad vnet hdr flags", want: drop.BadVnetHdr, frame: tcp4.Frame(), h: offload.VnetHdr{Flags: 4, GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "TCPv4 type on IPv6 frame", want: drop.BadVnetHdr, frame: tcp6.Frame(), h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "TCPv6 type on IPv4 frame", want: drop.BadVnetHdr, frame: tcp4.Frame(), h: offload.VnetHdr{GSOType: offload.GSOTCPv6, GSOSize: 1000}},
		{name: "TCP type on UDP", want: drop.BadVnetHdr, frame: udp4.Frame(), h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "UDP_L4 type on TCP", want: drop.BadVnetHdr,
			frame: tcp4.Frame(), h: offload.VnetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOUDPL4, GSOSize: 1000, CsumStart: 34, CsumOffset: 6}},
		{name: "csum_start not at L4", want: drop.BadVnetHdr,
			frame: tcp4.Frame(), h: offload.VnetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, GSOSize: 1000, CsumStart: 30, CsumOffset: 16}},
		{name: "ARP frame", want: drop.BadVnetHdr, frame: func() []byte {
			f := tcp4.Frame()
			f[12], f[13] = 0x08, 0x06
			return f
		}(), h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "IPv4 fragment", want: drop.Fragment, frame: with(tcp4, func(p *ot.Packet) { p.MF = true }).Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "IPv6 fragment header", want: drop.Fragment,
			frame: with(tcp6, func(p *ot.Packet) { p.ExtHeaders = []ot.Ext{{Type: ot.ProtoFragment, Body: make([]byte, 6)}} }).Frame(),
			h:     offload.VnetHdr{GSOType: offload.GSOTCPv6, GSOSize: 1000}},
		{name: "IPv6 hop-by-hop not first", want: drop.Malformed,
			frame: with(tcp6, func(p *ot.Packet) {
				p.ExtHeaders = []ot.Ext{{Type: ot.ProtoDstOpts, Body: make([]byte, 6)}, {Type: ot.ProtoHopByHop, Body: make([]byte, 6)}}
			}).Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv6, GSOSize: 1000}},
		{name: "IPv4 loose source route", want: drop.Unsupported,
			frame: with(tcp4, func(p *ot.Packet) { p.IPOptions = []byte{1, 0x83, 7, 4, 192, 0, 2, 9} }).Frame(),
			h:     offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "IPv4 strict source route", want: drop.Unsupported,
			frame: with(tcp4, func(p *ot.Packet) { p.IPOptions = []byte{0x89, 7, 4, 192, 0, 2, 9, 0} }).Frame(),
			h:     offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "IPv6 routing header with segments left", want: drop.Unsupported,
			frame: with(tcp6, func(p *ot.Packet) {
				p.ExtHeaders = []ot.Ext{{Type: ot.ProtoRouting, Body: append([]byte{4, 1}, make([]byte, 20)...)}}
			}).Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv6, GSOSize: 1000}},
		{name: "SYN", want: drop.Unsupported, frame: with(tcp4, func(p *ot.Packet) { p.Flags = ot.SYN }).Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "RST", want: drop.Unsupported, frame: with(tcp4, func(p *ot.Packet) { p.Flags = ot.RST | ot.ACK }).Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "truncated Ethernet", want: drop.Malformed, frame: make([]byte, 10), h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "truncated TCP header", want: drop.Malformed, frame: func() []byte {
			f := with(tcp4, func(p *ot.Packet) { p.Payload = nil }).Frame()[:14+20+10]
			binary.BigEndian.PutUint16(f[16:], 30)
			return f
		}(), h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "IPv4 total length beyond frame", want: drop.Malformed, frame: func() []byte {
			f := tcp4.Frame()
			binary.BigEndian.PutUint16(f[16:], uint16(len(f)))
			return f
		}(), h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "IPv4 total length 0 (BIG TCP)", want: drop.Unsupported, frame: func() []byte {
			f := tcp4.Frame()
			binary.BigEndian.PutUint16(f[16:], 0)
			return f
		}(), h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "TCP data offset 4", want: drop.Malformed, frame: func() []byte {
			f := tcp4.Frame()
			f[34+12] = 4 << 4
			return f
		}(), h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "UDP length disagrees with IP", want: drop.Malformed, frame: func() []byte {
			f, _ := super(udp4, nil)
			binary.BigEndian.PutUint16(f[34+4:], 100)
			return f
		}(), h: func() offload.VnetHdr { _, h := super(udp4, nil); return h }()},
		{name: "USO gso_size above the MTU room", want: drop.TooBig, mtu: 1000 + 28 - 1,
			frame: func() []byte { f, _ := super(udp4, nil); return f }(), h: func() offload.VnetHdr { _, h := super(udp4, nil); return h }()},
		{name: "MTU smaller than the headers", want: drop.TooBig, mtu: 40, frame: tcp4.Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "batch too small", want: drop.TooManySegments, nbuf: 3, frame: tcp4.Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "buffer too small", want: drop.NoRoom, bufSize: headroom + 1000, frame: tcp4.Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
		{name: "negative offset", want: drop.NoRoom, offset: -1, frame: tcp4.Frame(),
			h: offload.VnetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mtu == 0 {
				tc.mtu = 1500
			}
			if tc.nbuf == 0 {
				tc.nbuf = 8
			}
			if tc.bufSize == 0 {
				tc.bufSize = headroom + 2000
			}
			if tc.offset == 0 {
				tc.offset = headroom
			}
			out, sizes := batch(tc.nbuf, tc.bufSize)
			n, d := gso.Segment(tc.frame, tc.h, tc.mtu, out, tc.offset, sizes)
			if d != tc.want || n != 0 {
				t.Fatalf("Segment = %d, %v; want 0, %v", n, d, tc.want)
			}
			for i := range out {
				if !bytes.Equal(out[i], make([]byte, tc.bufSize)) {
					t.Fatalf("buffer %d written on a drop", i)
				}
			}
		})
	}
}

// randomSuper describes a random valid super-frame and an MTU and
// gso_size that Segment must accept, with at most maxSegs segments.
func randomSuper(r *rand.Rand, maxSegs int) (p ot.Packet, gsoSize uint16, mtu int, partial, ecn bool) {
	v6 := r.IntN(2) == 0
	p.UDP = r.IntN(3) == 0
	if v6 {
		p.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.Uint32())})
		p.Dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(r.Uint32()), 15: byte(r.Uint32())})
		p.FlowLabel = r.Uint32() & 0xfffff
		for i := range r.IntN(4) {
			typ := []uint8{ot.ProtoDstOpts, ot.ProtoRouting, ot.ProtoHopByHop}[r.IntN(3)]
			if i > 0 && typ == ot.ProtoHopByHop {
				typ = ot.ProtoDstOpts
			}
			body := make([]byte, 6+8*r.IntN(3))
			for j := range body {
				body[j] = byte(r.Uint32())
			}
			if typ == ot.ProtoRouting {
				body[1] = 0 // segments left: the header's destination is the final one
			}
			p.ExtHeaders = append(p.ExtHeaders, ot.Ext{Type: typ, Body: body})
		}
	} else {
		p.Src = netip.AddrFrom4([4]byte{192, 0, 2, byte(r.Uint32())})
		p.Dst = netip.AddrFrom4([4]byte{203, 0, 113, byte(r.Uint32())})
		p.ID, p.DF = uint16(r.Uint32()), r.IntN(2) == 0
		if r.IntN(4) == 0 {
			p.IPOptions = randomIPOptions(r)
		}
	}
	p.TOS, p.TTL = byte(r.Uint32()), byte(1+r.IntN(255))
	p.SrcPort, p.DstPort = uint16(r.Uint32()), uint16(r.Uint32())
	for range r.IntN(3) {
		p.VLANs = append(p.VLANs, uint16(r.IntN(4095)))
	}
	if !p.UDP {
		p.Seq, p.Ack, p.Window, p.Urgent = r.Uint32(), r.Uint32(), uint16(r.Uint32()), uint16(r.Uint32())
		p.Flags = ot.ACK | byte(r.Uint32())&(ot.PSH|ot.FIN|ot.CWR|ot.ECE|ot.URG)
		p.TCPReserved = byte(r.Uint32()) & 0x0f
		p.TCPOptions = make([]byte, 4*r.IntN(11))
		for j := range p.TCPOptions {
			p.TCPOptions[j] = byte(r.Uint32())
		}
		ecn = p.Flags&ot.CWR != 0 && r.IntN(2) == 0
	}
	hdr := p.L3Len() + p.L4Len()
	mtu = hdr + 1 + r.IntN(9000-hdr)
	if r.IntN(3) == 0 {
		mtu = []int{1280, 1500, 1400, 9000}[r.IntN(4)]
		if mtu <= hdr {
			mtu = hdr + 1
		}
	}
	gsoSize = uint16(1 + r.IntN(9000))
	if r.IntN(8) == 0 {
		gsoSize = uint16(1 + r.IntN(16))
	}
	if p.UDP && int(gsoSize) > mtu-hdr {
		gsoSize = uint16(mtu - hdr)
	}
	seg := min(int(gsoSize), mtu-hdr)
	maxPay := min(65535-hdr, seg*maxSegs)
	if !v6 {
		maxPay = min(maxPay, 65535-hdr)
	}
	switch r.IntN(5) {
	case 0:
		p.Payload = payload(r.IntN(min(maxPay, 3*seg) + 1))
	default:
		p.Payload = payload(r.IntN(maxPay + 1))
	}
	return p, gsoSize, mtu, p.UDP || r.IntN(4) != 0, ecn // USO requires NEEDS_CSUM
}

// randomIPOptions returns 4 to 40 bytes of IPv4 options that parse:
// NOPs, router alerts, an unknown copied option with random data, and EOL
// padding (no source route: Segment refuses those).
func randomIPOptions(r *rand.Rand) []byte {
	n := 4 * (1 + r.IntN(10))
	var b []byte
	for len(b) < n {
		switch room := n - len(b); {
		case room >= 8 && r.IntN(3) == 0:
			b = append(b, 0x9e, 8, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()))
		case room >= 4 && r.IntN(2) == 0:
			b = append(b, 0x94, 4, 0, 0)
		default:
			b = append(b, 1)
		}
	}
	if r.IntN(2) == 0 {
		b[len(b)-1] = 0
	}
	return b
}

// TestSegmentMatchesReference diffs Segment against refSegment over many
// random super-frames: both families, TCP and USO, VLAN tags, IPv4
// options, IPv6 extension headers, TCP options and flags, MTUs and
// gso_sizes from 1 byte up.
func TestSegmentMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const maxSegs = 256
	out, sizes := batch(maxSegs, headroom+9100)
	iters := 3000
	if testing.Short() {
		iters = 300
	}
	for i := range iters {
		p, gs, mtu, partial, ecn := randomSuper(r, maxSegs)
		frame, h := ot.Super(p, gs, partial, ecn)
		n, d := gso.Segment(frame, h, mtu, out, headroom, sizes)
		if d != drop.None {
			t.Fatalf("case %d (%+v, gso %d, mtu %d): dropped %v", i, h, gs, mtu, d)
		}
		t.Run("", func(t *testing.T) {
			check(t, frame, h, mtu, out, sizes, n)
		})
		if t.Failed() {
			t.Fatalf("case %d: v6=%v udp=%v payload=%d gso=%d mtu=%d", i, p.Src.Is6(), p.UDP, len(p.Payload), gs, mtu)
		}
	}
}

// TestSegmentAllocs is the acceptance check: segmenting a 64 KiB
// super-frame into a caller-provided batch allocates nothing.
func TestSegmentAllocs(t *testing.T) {
	for _, tc := range benchCases() {
		t.Run(tc.name, func(t *testing.T) {
			frame, h := ot.Super(tc.p, tc.gso, true, false)
			out, sizes := batch(64, headroom+1600)
			var d drop.Reason
			allocs := testing.AllocsPerRun(100, func() {
				_, d = gso.Segment(frame, h, 1500, out, headroom, sizes)
			})
			if d != drop.None {
				t.Fatal(d)
			}
			if allocs != 0 {
				t.Errorf("allocs per 64 KiB super-frame = %v, want 0", allocs)
			}
		})
	}
}

type benchCase struct {
	name string
	p    ot.Packet
	gso  uint16
}

// benchCases are 64 KiB super-frames as a Linux guest sends them: TCP with
// timestamps, and USO.
func benchCases() []benchCase {
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	return []benchCase{
		{name: "TCPv4", p: ot.Packet{Src: ot.V4A, Dst: ot.V4B, DF: true, TCPOptions: ts, Payload: payload(65535 - 20 - 32)}, gso: 1448},
		{name: "TCPv6", p: ot.Packet{Src: ot.V6A, Dst: ot.V6B, TCPOptions: ts, Payload: payload(65535 - 32)}, gso: 1428},
		{name: "UDPv4", p: ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: payload(64 * 1000)}, gso: 1000},
	}
}

// BenchmarkSegment reports the cost of one 64 KiB super-frame into MTU
// 1500 segments (SetBytes is the super-frame, so MB/s is the input rate).
func BenchmarkSegment(b *testing.B) {
	for _, tc := range benchCases() {
		frame, h := ot.Super(tc.p, tc.gso, true, false)
		out, sizes := batch(64, headroom+1600)
		b.Run(fmt.Sprintf("%s/%dB", tc.name, len(frame)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, d := gso.Segment(frame, h, 1500, out, headroom, sizes); d != drop.None {
					b.Fatal(d)
				}
			}
		})
	}
}
