package mss_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/vifsec/vifsec/offload/mss"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

// Linux's SYN options: MSS, SACK-permitted, timestamps, NOP, window scale.
func linuxSYNOpts(m uint16) []byte {
	return []byte{2, 4, byte(m >> 8), byte(m), 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
}

// mssOf returns the MSS option values of the TCP segment in pkt.
func mssOf(t *testing.T, pkt []byte) []uint16 {
	t.Helper()
	in, err := ot.Parse(pkt)
	if err != nil {
		t.Fatalf("packet does not verify: %v", err)
	}
	tcp := in.L4
	var v []uint16
	for i, doff := 20, int(tcp[12]>>4)*4; i < doff; {
		switch tcp[i] {
		case 0:
			return v
		case 1:
			i++
			continue
		}
		if tcp[i] == 2 {
			v = append(v, binary.BigEndian.Uint16(tcp[i+2:]))
		}
		i += int(tcp[i+1])
	}
	return v
}

func TestClamp(t *testing.T) {
	syn4 := ot.Packet{Src: ot.V4A, Dst: ot.V4B, Flags: ot.SYN, TCPOptions: linuxSYNOpts(1460)}
	with := func(p ot.Packet, f func(*ot.Packet)) ot.Packet { f(&p); return p }
	syn6 := with(syn4, func(p *ot.Packet) { p.Src, p.Dst = ot.V6A, ot.V6B; p.TCPOptions = linuxSYNOpts(1440) })
	tests := []struct {
		name    string
		p       ot.Packet
		max     uint16
		changed bool
		want    []uint16
	}{
		{name: "IPv4 SYN", p: syn4, max: 1380, changed: true, want: []uint16{1380}},
		{name: "IPv4 SYN-ACK", p: with(syn4, func(p *ot.Packet) { p.Flags = ot.SYN | ot.ACK }), max: 1380, changed: true, want: []uint16{1380}},
		{name: "IPv6 SYN", p: syn6, max: 1360, changed: true, want: []uint16{1360}},
		{name: "IPv6 SYN behind extension headers", p: with(syn6, func(p *ot.Packet) {
			p.ExtHeaders = []ot.Ext{{Type: ot.ProtoHopByHop, Body: make([]byte, 6)}, {Type: ot.ProtoDstOpts, Body: make([]byte, 14)}}
		}), max: 1360, changed: true, want: []uint16{1360}},
		{name: "MSS already below", p: syn4, max: 1460, want: []uint16{1460}},
		{name: "MSS at odd offset", p: with(syn4, func(p *ot.Packet) {
			p.TCPOptions = []byte{1, 2, 4, 0x23, 0x28, 1, 1, 0} // NOP, MSS 9000, NOP, NOP, EOL
		}), max: 1400, changed: true, want: []uint16{1400}},
		{name: "MSS after other options", p: with(syn4, func(p *ot.Packet) {
			p.TCPOptions = []byte{4, 2, 1, 3, 3, 7, 2, 4, 0xff, 0xff, 0, 0}
		}), max: 1200, changed: true, want: []uint16{1200}},
		{name: "two MSS options both clamped", p: with(syn4, func(p *ot.Packet) {
			p.TCPOptions = []byte{2, 4, 0x05, 0xb4, 2, 4, 0x23, 0x28}
		}), max: 1000, changed: true, want: []uint16{1000, 1000}},
		{name: "option walk stops at a zero length", p: with(syn4, func(p *ot.Packet) {
			p.TCPOptions = []byte{8, 0, 1, 1, 2, 4, 0x23, 0x28}
		}), max: 1000, want: []uint16{9000}},
		{name: "option walk stops at EOL", p: with(syn4, func(p *ot.Packet) {
			p.TCPOptions = []byte{0, 1, 1, 1, 2, 4, 0x23, 0x28}
		}), max: 1000},
		{name: "option overrunning the header", p: with(syn4, func(p *ot.Packet) {
			p.TCPOptions = []byte{1, 1, 1, 1, 1, 1, 2, 4}
		}), max: 1000},
		{name: "MSS option of wrong length", p: with(syn4, func(p *ot.Packet) {
			p.TCPOptions = []byte{2, 3, 0x23, 1, 1, 1, 1, 0}
		}), max: 1000, want: nil},
		{name: "no options", p: with(syn4, func(p *ot.Packet) { p.TCPOptions = nil }), max: 1000},
		{name: "not a SYN", p: with(syn4, func(p *ot.Packet) { p.Flags = ot.ACK }), max: 1000, want: []uint16{1460}},
		{name: "SYN with data", p: with(syn4, func(p *ot.Packet) { p.Payload = []byte("fast open") }), max: 1000, changed: true, want: []uint16{1000}},
		{name: "IPv4 first fragment left alone", p: with(syn4, func(p *ot.Packet) { p.MF = true }), max: 1000},
		{name: "clamp to zero", p: syn4, max: 0, changed: true, want: []uint16{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkt := tc.p.IP()
			before := append([]byte(nil), pkt...)
			if got := mss.Clamp(pkt, tc.max); got != tc.changed {
				t.Fatalf("Clamp = %v, want %v", got, tc.changed)
			}
			if !tc.changed {
				if !bytes.Equal(pkt, before) {
					t.Fatal("packet changed though Clamp reported no change")
				}
				return
			}
			if got := mssOf(t, pkt); !equal(got, tc.want) {
				t.Errorf("MSS options = %v, want %v", got, tc.want)
			}
			if mss.Clamp(pkt, tc.max) {
				t.Error("a second Clamp changed the packet again")
			}
		})
	}
}

func equal(a, b []uint16) bool {
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

func TestClampLeavesOthersAlone(t *testing.T) {
	udp := ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, Payload: linuxSYNOpts(9000)}.IP()
	syn := ot.Packet{Src: ot.V4A, Dst: ot.V4B, Flags: ot.SYN, TCPOptions: linuxSYNOpts(9000)}.IP()
	frag6 := ot.Packet{Src: ot.V6A, Dst: ot.V6B, Flags: ot.SYN, TCPOptions: linuxSYNOpts(9000),
		ExtHeaders: []ot.Ext{{Type: ot.ProtoFragment, Body: make([]byte, 6)}}}.IP()
	tests := []struct {
		name string
		pkt  []byte
	}{
		{name: "empty", pkt: nil},
		{name: "one byte", pkt: []byte{0x45}},
		{name: "UDP", pkt: udp},
		{name: "IPv6 fragment", pkt: frag6},
		{name: "truncated in the options", pkt: syn[:len(syn)-4]},
		{name: "truncated IPv4 header", pkt: syn[:19]},
		{name: "version 5", pkt: append([]byte{0x55}, syn[1:]...)},
		{name: "IHL below 5", pkt: append([]byte{0x44}, syn[1:]...)},
		{name: "data offset past the packet", pkt: func() []byte {
			b := append([]byte(nil), syn...)
			b[20+12] = 0xf0
			return b[:60]
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]byte(nil), tc.pkt...)
			if mss.Clamp(tc.pkt, 500) {
				t.Fatal("Clamp changed the packet")
			}
			if !bytes.Equal(before, tc.pkt) {
				t.Fatal("bytes changed")
			}
		})
	}
}

func TestClampAllocs(t *testing.T) {
	pkt := ot.Packet{Src: ot.V6A, Dst: ot.V6B, Flags: ot.SYN, TCPOptions: linuxSYNOpts(1440)}.IP()
	if n := testing.AllocsPerRun(100, func() {
		binary.BigEndian.PutUint16(pkt[40+22:], 1440) // reset (checksum drifts, irrelevant here)
		mss.Clamp(pkt, 1300)
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}
