package pmtu_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"testing"

	ot "github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/offload/pmtu"
)

const headroom = 128

func bufs(n, size int) ([][]byte, []int) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out, make([]int, n)
}

// reassemble checks fragments as a receiver would (header checksum,
// lengths, same ID, addresses and protocol, 8-byte multiples, MF on all
// but the last unless the original had MF) and puts the data back
// together. It returns the data and the offset (in bytes) it starts at.
func reassemble(orig []byte, frags [][]byte, mtu int) (data []byte, start int, err error) {
	oflags := binary.BigEndian.Uint16(orig[6:])
	start = int(oflags&0x1fff) * 8
	next := start
	for i, f := range frags {
		if len(f) > mtu {
			return nil, 0, fmt.Errorf("fragment %d: %d bytes > mtu %d", i, len(f), mtu)
		}
		if _, err := ot.Parse(f); err != nil {
			return nil, 0, fmt.Errorf("fragment %d: %v", i, err)
		}
		hl := int(f[0]&15) * 4
		ff := binary.BigEndian.Uint16(f[6:])
		if !bytes.Equal(f[4:6], orig[4:6]) || f[9] != orig[9] || !bytes.Equal(f[12:20], orig[12:20]) || f[1] != orig[1] || f[8] != orig[8] {
			return nil, 0, fmt.Errorf("fragment %d: ID, TOS, TTL, protocol or addresses differ", i)
		}
		if ff&0x4000 != 0 || ff&0x8000 != oflags&0x8000 {
			return nil, 0, fmt.Errorf("fragment %d: flags %#04x", i, ff)
		}
		last := i == len(frags)-1
		if wantMF := !last || oflags&0x2000 != 0; (ff&0x2000 != 0) != wantMF {
			return nil, 0, fmt.Errorf("fragment %d: MF %v, want %v", i, ff&0x2000 != 0, wantMF)
		}
		if off := int(ff&0x1fff) * 8; off != next {
			return nil, 0, fmt.Errorf("fragment %d at %d, want %d", i, off, next)
		}
		if !last && (len(f)-hl)%8 != 0 {
			return nil, 0, fmt.Errorf("fragment %d: %d data bytes, not a multiple of 8", i, len(f)-hl)
		}
		data = append(data, f[hl:]...)
		next += len(f) - hl
	}
	return data, start, nil
}

// laterOpts is what RFC 791 keeps in later fragments: options with the
// copied flag, then EOL padding.
func laterOpts(opts []byte) []byte {
	var keep []byte
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			i = len(opts)
			continue
		case 1:
			i++
			continue
		}
		if opts[i]&0x80 != 0 {
			keep = append(keep, opts[i:i+int(opts[i+1])]...)
		}
		i += int(opts[i+1])
	}
	for len(keep)%4 != 0 {
		keep = append(keep, 0)
	}
	return keep
}

func TestFragment(t *testing.T) {
	udp := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, ID: 0x1234, TOS: 0x28, Payload: make([]byte, 2972)}
	for i := range udp.Payload {
		udp.Payload[i] = byte(i * 3)
	}
	with := func(p ot.Packet, f func(*ot.Packet)) ot.Packet { f(&p); return p }
	tests := []struct {
		name  string
		pkt   []byte
		mtu   int
		wantN int
	}{
		{name: "UDP 3000 at 1500", pkt: udp.IP(), mtu: 1500, wantN: 3},
		{name: "MTU not a multiple of 8 plus header", pkt: udp.IP(), mtu: 1283, wantN: 3},
		{name: "tiny MTU", pkt: udp.IP(), mtu: 28, wantN: 373},
		{name: "exactly fits", pkt: udp.IP(), mtu: 3000, wantN: 1},
		{name: "copied and not copied options", pkt: with(udp, func(p *ot.Packet) {
			p.IPOptions = []byte{0x07, 7, 4, 0, 0, 0, 0, 0x01, 0x94, 4, 0, 0} // record route, NOP, router alert
		}).IP(), mtu: 1500, wantN: 3},
		{name: "copied option needing EOL padding", pkt: with(udp, func(p *ot.Packet) {
			p.IPOptions = []byte{0x83, 7, 4, 192, 0, 2, 9, 0x01} // loose source route, NOP
		}).IP(), mtu: 1500, wantN: 3},
		{name: "options end at EOL", pkt: with(udp, func(p *ot.Packet) {
			p.IPOptions = []byte{0x94, 4, 0, 0, 0, 0xff, 0xff, 0xff}
		}).IP(), mtu: 1500, wantN: 3},
		{name: "a middle fragment refragmented", pkt: with(udp, func(p *ot.Packet) { p.FragOff, p.MF = 100, true }).IP(), mtu: 1000, wantN: 4},
		{name: "a last fragment refragmented", pkt: with(udp, func(p *ot.Packet) { p.FragOff = 100 }).IP(), mtu: 1000, wantN: 4},
		{name: "reserved flag kept", pkt: with(udp, func(p *ot.Packet) { p.RF = true }).IP(), mtu: 1500, wantN: 3},
		{name: "TCP", pkt: ot.Packet{Src: ot.V4C, Dst: ot.V4A, Payload: make([]byte, 9000)}.IP(), mtu: 1500, wantN: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, sizes := bufs(400, headroom+1600)
			if tc.mtu > 1500 {
				out, sizes = bufs(4, headroom+tc.mtu)
			}
			n, d := pmtu.Fragment(tc.pkt, tc.mtu, out, headroom, sizes)
			if d != drop.None || n != tc.wantN {
				t.Fatalf("Fragment = %d, %v; want %d, none", n, d, tc.wantN)
			}
			frags := make([][]byte, n)
			for i := range n {
				frags[i] = out[i][headroom : headroom+sizes[i]]
			}
			if n == 1 {
				if !bytes.Equal(frags[0], tc.pkt) {
					t.Fatal("a packet that fits was not copied as is")
				}
				return
			}
			data, start, err := reassemble(tc.pkt, frags, tc.mtu)
			if err != nil {
				t.Fatal(err)
			}
			hl := int(tc.pkt[0]&15) * 4
			if start != int(binary.BigEndian.Uint16(tc.pkt[6:])&0x1fff)*8 || !bytes.Equal(data, tc.pkt[hl:]) {
				t.Fatal("reassembled data differs from the original")
			}
			if !bytes.Equal(frags[0][20:hl], tc.pkt[20:hl]) {
				t.Error("first fragment lost options")
			}
			want := laterOpts(tc.pkt[20:hl])
			for i := 1; i < n; i++ {
				fhl := int(frags[i][0]&15) * 4
				if got := frags[i][20:fhl]; !bytes.Equal(got, want) {
					t.Fatalf("fragment %d options %x, want %x", i, got, want)
				}
			}
			// The first fragment's header is the original's but for
			// length, flags/offset and checksum.
			a, b := append([]byte(nil), frags[0][:hl]...), append([]byte(nil), tc.pkt[:hl]...)
			for _, x := range [][]byte{a, b} {
				x[2], x[3], x[6], x[7], x[10], x[11] = 0, 0, 0, 0, 0, 0
			}
			if !bytes.Equal(a, b) {
				t.Errorf("first fragment header %x, original %x", a, b)
			}
		})
	}
}

func TestFragmentDrops(t *testing.T) {
	udp := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: make([]byte, 2972)}
	with := func(p ot.Packet, f func(*ot.Packet)) ot.Packet { f(&p); return p }
	tests := []struct {
		name   string
		pkt    []byte
		mtu    int
		nbuf   int
		size   int
		offset int
		want   drop.Reason
	}{
		{name: "DF", pkt: with(udp, func(p *ot.Packet) { p.DF = true }).IP(), mtu: 1500, want: drop.TooBig},
		{name: "MTU leaves less than 8 bytes", pkt: udp.IP(), mtu: 27, want: drop.TooBig},
		{name: "MTU leaves less than 8 bytes after options", pkt: with(udp, func(p *ot.Packet) { p.IPOptions = []byte{0x94, 4, 0, 0} }).IP(), mtu: 31, want: drop.TooBig},
		{name: "IPv6", pkt: ot.Packet{Src: ot.V6A, Dst: ot.V6B, UDP: true, Payload: make([]byte, 3000)}.IP(), mtu: 1500, want: drop.Unsupported},
		{name: "not IP", pkt: make([]byte, 100), mtu: 50, want: drop.Malformed},
		{name: "truncated", pkt: udp.IP()[:19], mtu: 1500, want: drop.Malformed},
		{name: "total length beyond the bytes", pkt: udp.IP()[:2000], mtu: 1500, want: drop.Malformed},
		{name: "option length 1", pkt: with(udp, func(p *ot.Packet) { p.IPOptions = []byte{0x94, 1, 0, 0} }).IP(), mtu: 1500, want: drop.Malformed},
		{name: "option overruns the header", pkt: with(udp, func(p *ot.Packet) { p.IPOptions = []byte{1, 1, 0x94, 4} }).IP(), mtu: 1500, want: drop.Malformed},
		{name: "offsets beyond 64 KiB", pkt: with(udp, func(p *ot.Packet) { p.FragOff = 0x1f00 }).IP(), mtu: 1500, want: drop.Malformed},
		{name: "too few buffers", pkt: udp.IP(), mtu: 1500, nbuf: 2, want: drop.TooManySegments},
		{name: "no buffer for a packet that fits", pkt: udp.IP(), mtu: 3000, nbuf: -1, want: drop.TooManySegments},
		{name: "short buffer", pkt: udp.IP(), mtu: 1500, size: headroom + 1499, want: drop.NoRoom},
		{name: "short buffer for a packet that fits", pkt: udp.IP(), mtu: 3000, size: headroom + 2999, want: drop.NoRoom},
		{name: "negative offset", pkt: udp.IP(), mtu: 1500, offset: -1, want: drop.NoRoom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.nbuf == 0:
				tc.nbuf = 8
			case tc.nbuf < 0:
				tc.nbuf = 0
			}
			if tc.size == 0 {
				tc.size = headroom + 3100
			}
			if tc.offset == 0 {
				tc.offset = headroom
			}
			out, sizes := bufs(tc.nbuf, tc.size)
			n, d := pmtu.Fragment(tc.pkt, tc.mtu, out, tc.offset, sizes)
			if n != 0 || d != tc.want {
				t.Fatalf("Fragment = %d, %v; want 0, %v", n, d, tc.want)
			}
			for i := range out {
				if !bytes.Equal(out[i], make([]byte, tc.size)) {
					t.Fatalf("buffer %d written on a drop", i)
				}
			}
		})
	}
}

func TestFragmentAllocs(t *testing.T) {
	pkt := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, IPOptions: []byte{0x94, 4, 0, 0}, Payload: make([]byte, 8000)}.IP()
	out, sizes := bufs(8, headroom+1500)
	if n := testing.AllocsPerRun(100, func() { pmtu.Fragment(pkt, 1500, out, headroom, sizes) }); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

// FuzzFragment: no panic on any bytes; fragments fit the MTU, verify, and
// reassemble to the original.
func FuzzFragment(f *testing.F) {
	f.Add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: make([]byte, 1000)}.IP(), uint16(300))
	f.Add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, IPOptions: []byte{0x07, 7, 4, 0, 0, 0, 0, 0x01, 0x94, 4, 0, 0}, Payload: make([]byte, 500)}.IP(), uint16(100))
	f.Add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, FragOff: 10, MF: true, Payload: make([]byte, 200)}.IP(), uint16(60))
	out, sizes := bufs(1100, 1600)
	f.Fuzz(func(t *testing.T, in []byte, mtu uint16) {
		pkt := append([]byte(nil), in...)
		n, d := pmtu.Fragment(pkt, int(mtu), out, 0, sizes)
		if !bytes.Equal(pkt, in) {
			t.Fatal("input modified")
		}
		if d != drop.None || n < 2 {
			return
		}
		frags := make([][]byte, n)
		for i := range n {
			frags[i] = out[i][:sizes[i]]
		}
		total := int(binary.BigEndian.Uint16(pkt[2:]))
		data, _, err := reassemble(pkt[:total], frags, int(mtu))
		if err != nil {
			t.Fatal(err)
		}
		if hl := int(pkt[0]&15) * 4; !bytes.Equal(data, pkt[hl:total]) {
			t.Fatal("reassembly differs")
		}
	})
}
