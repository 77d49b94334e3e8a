package vxlan

import (
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"

	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestHeader(t *testing.T) {
	if _, ok := ParseHeader(make([]byte, 7)); ok {
		t.Fatal("ParseHeader accepted 7 bytes")
	}
	b := make([]byte, 9)
	h, ok := ParseHeader(b)
	if !ok || len(h) != HeaderLen {
		t.Fatalf("ParseHeader(9 bytes) = %d bytes, %v", len(h), ok)
	}
	h.Put(0x123456)
	// RFC 7348 §5: flags 0x08, 24 reserved bits, VNI, 8 reserved bits.
	if want := []byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}; !bytes.Equal(h, want) {
		t.Fatalf("Put(0x123456) = % x, want % x", []byte(h), want)
	}
	if !h.Valid() || h.VNI() != 0x123456 || h.Flags() != FlagI {
		t.Fatalf("Valid %v VNI %#x Flags %#x", h.Valid(), h.VNI(), h.Flags())
	}
	h[0] = 0xf7 // every reserved bit set, I clear
	if h.Valid() {
		t.Fatal("Valid with I clear")
	}
	h[0], h[7] = 0xff, 0xff // reserved bits are ignored on receipt
	if !h.Valid() || h.VNI() != 0x123456 {
		t.Fatalf("reserved bits changed Valid %v / VNI %#x", h.Valid(), h.VNI())
	}
}

func TestEncapLayout(t *testing.T) {
	data := []byte("vifsec overlay test payload.")
	for _, tc := range []struct {
		name    string
		o       *Outer
		v6      bool
		innerV6 bool
		tos     byte
		port    uint16
	}{
		{name: "ipv4 underlay, ipv4 inner", o: outer4(42), tos: 0xb9},                         // DSCP EF, ECT(1)
		{name: "ipv4 underlay, ipv6 inner", o: outer4(42), innerV6: true, tos: 0x2a},          // AF11, ECT(0)
		{name: "ipv6 underlay, ipv4 inner", o: outer6(0xffffff), v6: true, tos: 0x03},         // CE
		{name: "ipv6 underlay, ipv6 inner", o: outer6(1), v6: true, innerV6: true, tos: 0x00}, // best effort
		{name: "tagged ipv6 underlay", o: &Outer{SrcMAC: macUplink, DstMAC: macRemote, VLAN: 100, Src: vtep6Local, Dst: vtep6Remote, VNI: 7, DstPort: 8472}, v6: true, tos: 0x10},
		{name: "ipv4-mapped addresses", o: &Outer{SrcMAC: macUplink, DstMAC: macRemote, Src: netip.AddrFrom16(vtep4Local.As16()), Dst: netip.MustParseAddr("::ffff:198.51.100.2"), VNI: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := pingFrame(tc.innerV6, tc.tos, 1, 2, data)
			buf := place(inner, 0)
			start, d := Encap(tc.o, 50000, buf, Headroom, len(inner))
			if d != drop.None {
				t.Fatalf("Encap: %v", d)
			}
			if want := Headroom - tc.o.Len(); start != want {
				t.Fatalf("start %d, want %d", start, want)
			}
			f := buf[start:]
			if !bytes.Equal(f[0:6], macRemote[:]) || !bytes.Equal(f[6:12], macUplink[:]) {
				t.Errorf("MACs % x", f[0:12])
			}
			at := 14
			if tc.o.VLAN != 0 {
				if binary.BigEndian.Uint16(f[12:14]) != header.EtherTypeVLAN || binary.BigEndian.Uint16(f[14:16]) != tc.o.VLAN {
					t.Errorf("802.1Q tag % x", f[12:16])
				}
				at += 4
			}
			et := binary.BigEndian.Uint16(f[at-2 : at])
			ip := f[at:]
			var u []byte
			if tc.v6 {
				if et != header.EtherTypeIPv6 {
					t.Fatalf("EtherType %#x", et)
				}
				if v := binary.BigEndian.Uint32(ip[0:4]); v>>28 != 6 || byte(v>>20) != tc.tos || v&0xfffff == 0 {
					t.Errorf("version/TC/flow label %#08x, want TC %#x and a label", v, tc.tos)
				}
				if ip[6] != header.ProtoUDP || ip[7] != 64 || int(binary.BigEndian.Uint16(ip[4:6])) != len(ip)-40 {
					t.Errorf("next %d hop limit %d payload length %d of %d", ip[6], ip[7], binary.BigEndian.Uint16(ip[4:6]), len(ip)-40)
				}
				u = ip[40:]
				// The checksum, against the slow reference over the
				// pseudo-header (RFC 8200 §8.1).
				ph := make([]byte, 40)
				copy(ph, ip[8:40])
				binary.BigEndian.PutUint32(ph[32:36], uint32(len(u)))
				ph[39] = header.ProtoUDP
				if c := sumRef(ph, u); c != 0 {
					t.Errorf("IPv6 UDP checksum %#04x does not verify (residue %#x)", binary.BigEndian.Uint16(u[6:8]), c)
				}
				if binary.BigEndian.Uint16(u[6:8]) == 0 {
					t.Error("IPv6 UDP checksum is zero")
				}
			} else {
				if et != header.EtherTypeIPv4 {
					t.Fatalf("EtherType %#x", et)
				}
				if ip[0] != 0x45 || ip[1] != tc.tos || ip[6]&0x40 == 0 || ip[8] != 64 || ip[9] != header.ProtoUDP {
					t.Errorf("IPv4 header % x: want TOS %#x, DF, TTL 64, UDP", ip[:20], tc.tos)
				}
				if int(binary.BigEndian.Uint16(ip[2:4])) != len(ip) {
					t.Errorf("total length %d of %d", binary.BigEndian.Uint16(ip[2:4]), len(ip))
				}
				if c := sumRef(ip[:20]); c != 0 {
					t.Errorf("IPv4 header checksum does not verify")
				}
				u = ip[20:]
				if binary.BigEndian.Uint16(u[6:8]) != 0 {
					t.Error("IPv4 UDP checksum not zero (RFC 7348 §5)")
				}
			}
			dport := tc.o.DstPort
			if dport == 0 {
				dport = DefaultPort
			}
			if sp, dp, ul := binary.BigEndian.Uint16(u[0:2]), binary.BigEndian.Uint16(u[2:4]), int(binary.BigEndian.Uint16(u[4:6])); sp != 50000 || dp != dport || ul != len(u) {
				t.Errorf("UDP ports %d→%d length %d of %d", sp, dp, ul, len(u))
			}
			h, _ := ParseHeader(u[8:])
			if !h.Valid() || h.VNI() != tc.o.VNI {
				t.Errorf("VXLAN header % x, want VNI %#x", []byte(h), tc.o.VNI)
			}
			if !bytes.Equal(u[16:], inner) {
				t.Error("inner frame changed")
			}
			// And back.
			l := remoteLocal()
			l.Port = tc.o.DstPort
			r, d := Decap(l, buf, start, len(buf)-start)
			if d != drop.None {
				t.Fatalf("Decap: %v", d)
			}
			if r.VNI != tc.o.VNI || r.Src != tc.o.Src.Unmap() || r.SrcPort != 50000 || r.VLAN != tc.o.VLAN || !bytes.Equal(buf[r.Start:r.End], inner) {
				t.Errorf("Decap = %+v", r)
			}
		})
	}
}

func TestEncapDrops(t *testing.T) {
	inner := pingFrame(false, 0, 1, 1, nil)
	for _, tc := range []struct {
		name   string
		o      *Outer
		buf    []byte
		off, n int
		want   drop.Reason
	}{
		{"no headroom", outer4(1), make([]byte, 49+len(inner)), 49, len(inner), drop.NoRoom},
		{"exact headroom ipv4", outer4(1), make([]byte, 50+len(inner)), 50, len(inner), drop.None},
		{"no headroom ipv6", outer6(1), make([]byte, 69+len(inner)), 69, len(inner), drop.NoRoom},
		{"frame past buffer", outer4(1), make([]byte, 100), 64, 37, drop.NoRoom},
		{"negative offset", outer4(1), make([]byte, 100), -1, 20, drop.NoRoom},
		{"negative length", outer4(1), make([]byte, 100), 64, -1, drop.NoRoom},
		{"runt inner frame", outer4(1), make([]byte, 100), 64, 13, drop.Malformed},
		{"VNI too big", outer4(1 << 24), make([]byte, 200), 100, 60, drop.BadOuter},
		{"mixed families", &Outer{Src: vtep4Local, Dst: vtep6Remote}, make([]byte, 200), 100, 60, drop.BadOuter},
		{"no addresses", &Outer{}, make([]byte, 200), 100, 60, drop.BadOuter},
		{"no destination", &Outer{Src: vtep6Local}, make([]byte, 200), 100, 60, drop.BadOuter},
		{"too big ipv4", outer4(1), make([]byte, 100+65535), 100, 65535 - 35, drop.TooBig},
		{"largest ipv4", outer4(1), make([]byte, 100+65535), 100, 65535 - 36, drop.None},
		{"largest ipv6", outer6(1), make([]byte, 100+65535), 100, 65535 - 16, drop.None},
		{"too big ipv6", outer6(1), make([]byte, 100+65535), 100, 65535 - 15, drop.TooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.off >= 0 && tc.off+len(inner) <= len(tc.buf) {
				copy(tc.buf[tc.off:], inner)
			}
			before := bytes.Clone(tc.buf)
			_, d := Encap(tc.o, 50000, tc.buf, tc.off, tc.n)
			if d != tc.want {
				t.Fatalf("Encap = %v, want %v", d, tc.want)
			}
			if d != drop.None && !bytes.Equal(before, tc.buf) {
				t.Error("a dropped Encap changed the buffer")
			}
		})
	}
}

// vxlanFrame encapsulates inner with o and returns the whole outer frame.
func vxlanFrame(t testing.TB, o *Outer, inner []byte) []byte {
	t.Helper()
	buf := place(inner, 0)
	start, d := Encap(o, 55555, buf, Headroom, len(inner))
	if d != drop.None {
		t.Fatalf("Encap: %v", d)
	}
	return buf[start:]
}

// edit returns a copy of f changed by fn, with the outer IPv4 header
// checksum recomputed if fix4 (so a test reaches the check after it).
func edit(f []byte, fix4 bool, fn func(f []byte)) []byte {
	f = bytes.Clone(f)
	fn(f)
	if fix4 {
		ip := f[14:34]
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], sumRef(ip))
	}
	return f
}

func TestDecapDrops(t *testing.T) {
	in4 := pingFrame(false, 0x02, 1, 1, []byte("data"))
	in6 := pingFrame(true, 0x02, 1, 1, []byte("data"))
	f4 := vxlanFrame(t, outer4(42), in4)
	f6 := vxlanFrame(t, outer6(42), in6)
	// IPv6 UDP checksum fix-up after an edit: recompute from scratch.
	fix6 := func(f []byte) {
		u := f[54:]
		u[6], u[7] = 0, 0
		ph := make([]byte, 40)
		copy(ph, f[22:54])
		binary.BigEndian.PutUint32(ph[32:36], uint32(len(u)))
		ph[39] = header.ProtoUDP
		binary.BigEndian.PutUint16(u[6:8], sumRef(ph, u))
	}
	l := remoteLocal()
	for _, tc := range []struct {
		name string
		f    []byte
		l    *Local
		want drop.Reason
	}{
		{"ipv4 ok", f4, l, drop.None},
		{"ipv6 ok", f6, l, drop.None},
		{"ipv4 padded to 60 bytes ok", append(bytes.Clone(f4), make([]byte, 20)...), l, drop.None},
		{"empty", nil, l, drop.Malformed},
		{"runt ethernet", f4[:13], l, drop.Malformed},
		{"arp", edit(f4, false, func(f []byte) { f[12], f[13] = 0x08, 0x06 }), l, drop.NotVXLAN},
		{"truncated tag", edit(f4[:16], false, func(f []byte) { f[12], f[13] = 0x81, 0x00 }), l, drop.Malformed},
		{"truncated ipv4", f4[:14+19], l, drop.Malformed},
		{"ipv4 version 5", edit(f4, true, func(f []byte) { f[14] = 0x55 }), l, drop.Malformed},
		{"ipv4 ihl 4", edit(f4, true, func(f []byte) { f[14] = 0x44 }), l, drop.Malformed},
		{"ipv4 total length beyond frame", edit(f4, true, func(f []byte) { binary.BigEndian.PutUint16(f[16:18], uint16(len(f))) }), l, drop.Malformed},
		{"ipv4 total length below ihl", edit(f4, true, func(f []byte) { binary.BigEndian.PutUint16(f[16:18], 19) }), l, drop.Malformed},
		{"ipv4 tcp", edit(f4, true, func(f []byte) { f[23] = 6 }), l, drop.NotVXLAN},
		{"ipv4 non-first fragment", edit(f4, true, func(f []byte) { f[20], f[21] = 0x00, 0x10 }), l, drop.NotVXLAN},
		{"ipv4 first fragment", edit(f4, true, func(f []byte) { f[20] = 0x20 }), l, drop.Fragment},
		{"ipv4 other port", edit(f4, false, func(f []byte) { f[36], f[37] = 0x11, 0x94 }), l, drop.NotVXLAN},
		{"ipv4 other destination", edit(f4, true, func(f []byte) { f[33] = 3 }), l, drop.NotLocal},
		{"ipv4 family not configured", f4, &Local{Addr6: vtep6Remote}, drop.NotLocal},
		{"ipv4 bad header checksum", edit(f4, false, func(f []byte) { f[22]-- }), l, drop.BadChecksum},
		{"ipv4 short udp length", edit(f4, false, func(f []byte) { f[38], f[39] = 0, 15 }), l, drop.Malformed},
		{"ipv4 udp length beyond ip", edit(f4, false, func(f []byte) { binary.BigEndian.PutUint16(f[38:40], uint16(len(f)-34+1)) }), l, drop.Malformed},
		{"ipv4 udp header cut", edit(f4[:14+20+7], true, func(f []byte) { binary.BigEndian.PutUint16(f[16:18], 27) }), l, drop.Malformed},
		{"ipv4 bad udp checksum", edit(f4, false, func(f []byte) { f[40], f[41] = 0x12, 0x34 }), l, drop.BadChecksum},
		{"ipv4 bad flags", edit(f4, false, func(f []byte) { f[42] = 0 }), l, drop.BadFlags},
		{"ipv4 no inner frame", edit(f4[:14+20+16+13], true, func(f []byte) {
			binary.BigEndian.PutUint16(f[16:18], 20+16+13)
			binary.BigEndian.PutUint16(f[38:40], 16+13)
		}), l, drop.Malformed},
		{"inner vlan", edit(f4, false, func(f []byte) { f[62], f[63] = 0x81, 0x00 }), l, drop.InnerVLAN},
		{"inner qinq", edit(f4, false, func(f []byte) { f[62], f[63] = 0x88, 0xa8 }), l, drop.InnerVLAN},
		{"inner vlan allowed", edit(f4, false, func(f []byte) { f[62], f[63] = 0x81, 0x00 }), &Local{Addr4: vtep4Remote, InnerVLAN: true}, drop.None},
		{"truncated ipv6", f6[:14+39], l, drop.Malformed},
		{"ipv6 version 4", edit(f6, false, func(f []byte) { f[14] = 0x40 }), l, drop.Malformed},
		{"ipv6 jumbogram", edit(f6, false, func(f []byte) { f[18], f[19] = 0, 0 }), l, drop.Malformed},
		{"ipv6 payload beyond frame", edit(f6, false, func(f []byte) { binary.BigEndian.PutUint16(f[18:20], uint16(len(f))) }), l, drop.Malformed},
		{"ipv6 tcp", edit(f6, false, func(f []byte) { f[20] = 6 }), l, drop.NotVXLAN},
		{"ipv6 other port", edit(f6, false, func(f []byte) { f[56], f[57] = 0x11, 0x94 }), l, drop.NotVXLAN},
		{"ipv6 other destination", edit(f6, false, func(f []byte) { f[53] = 3 }), l, drop.NotLocal},
		{"ipv6 family not configured", f6, &Local{Addr4: vtep4Remote}, drop.NotLocal},
		{"ipv6 zero checksum", edit(f6, false, func(f []byte) { f[60], f[61] = 0, 0 }), l, drop.ZeroChecksum},
		{"ipv6 bad checksum", edit(f6, false, func(f []byte) { f[60]++ }), l, drop.BadChecksum},
		{"ipv6 bad checksum in inner frame", edit(f6, false, func(f []byte) { f[len(f)-1]++ }), l, drop.BadChecksum},
		{"ipv6 bad checksum in VNI", edit(f6, false, func(f []byte) { f[66]++ }), l, drop.BadChecksum},
		{"ipv6 bad flags", edit(f6, false, func(f []byte) { f[62] = 0; fix6(f) }), l, drop.BadFlags},
		{"ipv6 inner vlan", edit(f6, false, func(f []byte) { f[82], f[83] = 0x81, 0; fix6(f) }), l, drop.InnerVLAN},
		{"ipv6 udp length beyond payload", edit(f6, false, func(f []byte) { binary.BigEndian.PutUint16(f[58:60], uint16(len(f)-54+1)) }), l, drop.Malformed},
		{"ipv6 hop-by-hop then vxlan", withExt(f6, header.ProtoHopByHop), l, drop.None},
		{"ipv6 destination options then vxlan", withExt(f6, header.ProtoDstOpts), l, drop.None},
		{"ipv6 spent routing header then vxlan", withExt(f6, header.ProtoRouting), l, drop.None},
		{"ipv6 routing header with segments left", edit(withExt(f6, header.ProtoRouting), false, func(f []byte) { f[57] = 1 }), l, drop.NotVXLAN},
		{"ipv6 first fragment", withExt(f6, header.ProtoFragment), l, drop.Fragment},
		{"ipv6 non-first fragment", edit(withExt(f6, header.ProtoFragment), false, func(f []byte) { f[57] = 8 }), l, drop.NotVXLAN},
		{"ipv6 extension header beyond payload", edit(withExt(f6, header.ProtoDstOpts), false, func(f []byte) { f[55] = 200 }), l, drop.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := append(make([]byte, 3), tc.f...) // at an offset
			r, d := Decap(tc.l, buf, 3, len(tc.f))
			if d != tc.want {
				t.Fatalf("Decap = %v, want %v", d, tc.want)
			}
			if d == drop.None && (r.VNI != 42 || r.End-r.Start < 14) {
				t.Errorf("Decap = %+v", r)
			}
		})
	}
}

// withExt puts one IPv6 extension header (8 bytes) of kind proto between
// the IPv6 header and UDP of the VXLAN frame f (untagged) and fixes the
// payload length. The UDP checksum does not cover extension headers: the
// one f had still holds.
func withExt(f []byte, proto byte) []byte {
	g := make([]byte, 0, len(f)+8)
	g = append(g, f[:54]...)
	ext := []byte{header.ProtoUDP, 0, 0, 0, 0, 0, 0, 0}
	if proto == header.ProtoFragment {
		ext = []byte{header.ProtoUDP, 0, 0, 1, 0, 0, 0, 1} // offset 0, M set
	}
	g = append(g, ext...)
	g = append(g, f[54:]...)
	g[20] = proto
	binary.BigEndian.PutUint16(g[18:20], uint16(len(g)-54))
	return g
}

func TestDecapECN(t *testing.T) {
	const notECT, ect1, ect0, ce = 0, 1, 2, 3
	for _, tc := range []struct {
		name      string
		outer     byte
		inner     byte
		want      drop.Reason
		wantInner byte
	}{
		{"not-ECT over not-ECT", notECT, notECT, drop.None, notECT},
		{"CE over not-ECT", ce, notECT, drop.ECN, 0},
		{"CE over ECT(0)", ce, ect0, drop.None, ce},
		{"CE over ECT(1)", ce, ect1, drop.None, ce},
		{"CE over CE", ce, ce, drop.None, ce},
		{"ECT(1) over ECT(0)", ect1, ect0, drop.None, ect1},
		{"ECT(0) over ECT(1)", ect0, ect1, drop.None, ect1},
		{"not-ECT over CE", notECT, ce, drop.None, ce},
	} {
		for _, v6 := range []bool{false, true} {
			name := tc.name + " ipv4"
			if v6 {
				name = tc.name + " ipv6"
			}
			t.Run(name, func(t *testing.T) {
				const dscp = 0x28 << 2 // AF11
				inner := pingFrame(v6, dscp|tc.inner, 1, 1, nil)
				o := outer4(9)
				buf := place(inner, 0)
				start, _ := Encap(o, 50000, buf, Headroom, len(inner))
				// Rewrite the outer ECN, as a congested router would.
				ip := buf[start+14:]
				ip[1] = ip[1]&^3 | tc.outer
				ip[10], ip[11] = 0, 0
				binary.BigEndian.PutUint16(ip[10:12], sumRef(ip[:20]))
				r, d := Decap(remoteLocal(), buf, start, len(buf)-start)
				if d != tc.want {
					t.Fatalf("Decap = %v, want %v", d, tc.want)
				}
				if d != drop.None {
					return
				}
				tos, l3, _, _ := innerTOS(buf[r.Start:r.End])
				if tos != dscp|tc.wantInner {
					t.Errorf("inner TOS %#x, want %#x", tos, dscp|tc.wantInner)
				}
				if !v6 && sumRef(buf[r.Start+l3:r.Start+l3+20]) != 0 {
					t.Error("inner IPv4 header checksum broken by the ECN update")
				}
			})
		}
	}
}

func TestAllocs(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		inner := pingFrame(v6, 0, 1, 1, make([]byte, 1000))
		o, l := outer4(42), remoteLocal()
		if v6 {
			o = outer6(42)
		}
		buf := place(inner, 0)
		encaps := testing.AllocsPerRun(100, func() {
			if _, d := Encap(o, 50000, buf, Headroom, len(inner)); d != drop.None {
				t.Fatal(d)
			}
		})
		start := Headroom - o.Len()
		decaps := testing.AllocsPerRun(100, func() {
			if _, d := Decap(l, buf, start, len(buf)-start); d != drop.None {
				t.Fatal(d)
			}
		})
		if encaps != 0 || decaps != 0 {
			t.Errorf("v6=%v: Encap %v allocs, Decap %v allocs, want 0", v6, encaps, decaps)
		}
	}
}
