package pmtu_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	ot "github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/offload/pmtu"
)

// icmpErr is an ICMP or ICMPv6 error as checkICMP decoded it.
type icmpErr struct {
	v6         bool
	src, dst   netip.Addr
	typ, code  byte
	mtu        uint32 // IPv4: the low 16 bits of the second word
	unused     uint16 // IPv4: the high 16 bits, must be 0
	quote      []byte
	ttl        byte
	df         bool
	totalBytes int
}

// checkICMP verifies an error as a receiving stack would: IP header and
// lengths (offloadtest.Parse), and the ICMP checksum (ICMPv6 with its
// pseudo-header).
func checkICMP(b []byte) (icmpErr, error) {
	var e icmpErr
	in, err := ot.Parse(b)
	if err != nil {
		return e, err
	}
	e.v6, e.src, e.dst, e.totalBytes, e.df = in.V6, in.Src, in.Dst, len(b), in.DF
	m := in.L4
	if len(m) < 8 {
		return e, fmt.Errorf("ICMP message %d bytes", len(m))
	}
	if in.V6 {
		e.ttl = b[7]
		if in.Proto != ot.ProtoICMPv6 || in.HdrLen != 40 {
			return e, fmt.Errorf("next header %d", in.Proto)
		}
		if s := ot.Sum(m, ot.Pseudo(in.Src, in.Dst, ot.ProtoICMPv6, len(m))); s != 0xffff {
			return e, fmt.Errorf("ICMPv6 checksum bad (sum %#04x)", s)
		}
		e.mtu = binary.BigEndian.Uint32(m[4:])
	} else {
		e.ttl = b[8]
		if in.Proto != ot.ProtoICMP {
			return e, fmt.Errorf("protocol %d", in.Proto)
		}
		if s := ot.Sum(m, 0); s != 0xffff {
			return e, fmt.Errorf("ICMP checksum bad (sum %#04x)", s)
		}
		e.unused, e.mtu = binary.BigEndian.Uint16(m[4:]), uint32(binary.BigEndian.Uint16(m[6:]))
	}
	e.typ, e.code, e.quote = m[0], m[1], m[8:]
	return e, nil
}

func TestICMPTooBig(t *testing.T) {
	big4 := ot.Packet{Src: ot.V4A, Dst: ot.V4B, DF: true, Payload: make([]byte, 1460)}
	big6 := ot.Packet{Src: ot.V6A, Dst: ot.V6B, Payload: make([]byte, 1440)}
	with := func(p ot.Packet, f func(*ot.Packet)) ot.Packet { f(&p); return p }
	icmpv4 := func(typ byte) []byte {
		b := ot.Packet{Src: ot.V4A, Dst: ot.V4B, Proto: ot.ProtoICMP, UDP: true, Payload: make([]byte, 1500)}.IP()
		b[20] = typ
		return b
	}
	icmpv6 := func(typ byte, ext []ot.Ext) []byte {
		b := ot.Packet{Src: ot.V6A, Dst: ot.V6B, Proto: ot.ProtoICMPv6, UDP: true, ExtHeaders: ext, Payload: make([]byte, 1500)}.IP()
		hl := 40
		for _, e := range ext {
			hl += 2 + len(e.Body)
		}
		b[hl] = typ
		return b
	}
	for i := range big4.Payload {
		big4.Payload[i] = byte(i)
	}
	for i := range big6.Payload {
		big6.Payload[i] = byte(i)
	}
	tests := []struct {
		name   string
		orig   []byte
		mtu    int
		dstLen int
		want   int // length of the error; 0: none
	}{
		{name: "IPv4 TCP with DF", orig: big4.IP(), mtu: 1400, want: 576},
		{name: "IPv4 with options", orig: with(big4, func(p *ot.Packet) { p.IPOptions = []byte{0x94, 4, 0, 0} }).IP(), mtu: 1400, want: 576},
		{name: "IPv4 small packet quoted whole", orig: with(big4, func(p *ot.Packet) { p.Payload = p.Payload[:100] }).IP(), mtu: 100, want: 28 + 140},
		{name: "IPv4 UDP", orig: ot.Packet{Src: ot.V4C, Dst: ot.V4A, UDP: true, DF: true, Payload: make([]byte, 2000)}.IP(), mtu: 1280, want: 576},
		{name: "IPv4 echo request is not an error", orig: icmpv4(8), mtu: 1400, want: 576},
		{name: "IPv4 short dst quotes less", orig: big4.IP(), mtu: 1400, dstLen: 100, want: 100},
		{name: "IPv4 truncated copy of orig", orig: big4.IP()[:300], mtu: 1400, want: 328},
		{name: "IPv4 MTU 68", orig: big4.IP(), mtu: 68, want: 576},
		{name: "IPv4 first fragment", orig: with(big4, func(p *ot.Packet) { p.DF, p.MF = false, true }).IP(), mtu: 1400, want: 576},
		{name: "IPv6 TCP", orig: big6.IP(), mtu: 1400, want: 1280},
		{name: "IPv6 small packet quoted whole", orig: with(big6, func(p *ot.Packet) { p.Payload = p.Payload[:200] }).IP(), mtu: 200, want: 48 + 260},
		{name: "IPv6 below the minimum MTU is still reported", orig: big6.IP(), mtu: 1200, want: 1280},
		{name: "IPv6 echo request is not an error", orig: icmpv6(128, nil), mtu: 1400, want: 1280},
		{name: "IPv6 with extension headers", orig: with(big6, func(p *ot.Packet) {
			p.ExtHeaders = []ot.Ext{{Type: ot.ProtoHopByHop, Body: make([]byte, 6)}, {Type: ot.ProtoDstOpts, Body: make([]byte, 6)}}
		}).IP(), mtu: 1400, want: 1280},
		{name: "IPv6 short dst", orig: big6.IP(), mtu: 1400, dstLen: 100, want: 100},

		{name: "IPv4 ICMP error", orig: icmpv4(3), mtu: 1400},
		{name: "IPv4 ICMP time exceeded", orig: icmpv4(11), mtu: 1400},
		{name: "IPv4 ICMP without its header", orig: icmpv4(8)[:20], mtu: 1400},
		{name: "IPv4 later fragment", orig: with(big4, func(p *ot.Packet) { p.DF, p.FragOff = false, 185 }).IP(), mtu: 1400},
		{name: "IPv4 multicast destination", orig: with(big4, func(p *ot.Packet) { p.Dst = netip.MustParseAddr("224.0.0.251") }).IP(), mtu: 1400},
		{name: "IPv4 broadcast destination", orig: with(big4, func(p *ot.Packet) { p.Dst = netip.MustParseAddr("255.255.255.255") }).IP(), mtu: 1400},
		{name: "IPv4 unspecified source", orig: with(big4, func(p *ot.Packet) { p.Src = netip.MustParseAddr("0.0.0.0") }).IP(), mtu: 1400},
		{name: "IPv4 loopback source", orig: with(big4, func(p *ot.Packet) { p.Src = netip.MustParseAddr("127.0.0.1") }).IP(), mtu: 1400},
		{name: "IPv4 MTU 67", orig: big4.IP(), mtu: 67},
		{name: "IPv4 MTU 65536", orig: big4.IP(), mtu: 65536},
		{name: "IPv4 dst too short for header and 8 bytes", orig: big4.IP(), mtu: 1400, dstLen: 28 + 27},
		{name: "IPv4 IHL 4", orig: append([]byte{0x44}, big4.IP()[1:]...), mtu: 1400},
		{name: "IPv4 total length below IHL", orig: func() []byte { b := big4.IP(); b[2], b[3] = 0, 19; return b }(), mtu: 1400},
		{name: "IPv6 ICMPv6 error", orig: icmpv6(1, nil), mtu: 1400},
		{name: "IPv6 ICMPv6 packet too big behind extension headers", orig: icmpv6(2, []ot.Ext{{Type: ot.ProtoDstOpts, Body: make([]byte, 6)}}), mtu: 1400},
		{name: "IPv6 multicast destination", orig: with(big6, func(p *ot.Packet) { p.Dst = netip.MustParseAddr("ff02::1") }).IP(), mtu: 1400},
		{name: "IPv6 unspecified source", orig: with(big6, func(p *ot.Packet) { p.Src = netip.IPv6Unspecified() }).IP(), mtu: 1400},
		{name: "IPv6 loopback source", orig: with(big6, func(p *ot.Packet) { p.Src = netip.IPv6Loopback() }).IP(), mtu: 1400},
		{name: "IPv6 MTU 0", orig: big6.IP(), mtu: 0},
		{name: "IPv6 truncated header", orig: big6.IP()[:39], mtu: 1400},
		{name: "empty", orig: nil, mtu: 1400},
		{name: "version 5", orig: append([]byte{0x55}, big4.IP()[1:]...), mtu: 1400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.dstLen == 0 {
				tc.dstLen = 2000
			}
			dst := make([]byte, tc.dstLen)
			orig := append([]byte(nil), tc.orig...)
			n := pmtu.ICMPTooBig(dst, orig, tc.mtu)
			if !bytes.Equal(orig, tc.orig) {
				t.Fatal("orig modified")
			}
			if n != tc.want {
				t.Fatalf("ICMPTooBig = %d, want %d", n, tc.want)
			}
			if n == 0 {
				if !bytes.Equal(dst, make([]byte, tc.dstLen)) {
					t.Fatal("dst written though nothing was built")
				}
				return
			}
			e, err := checkICMP(dst[:n])
			if err != nil {
				t.Fatal(err)
			}
			osrc, odst := addrs(tc.orig)
			if e.src != odst || e.dst != osrc {
				t.Errorf("error %v → %v, want %v → %v", e.src, e.dst, odst, osrc)
			}
			if e.ttl != 64 {
				t.Errorf("TTL %d, want 64", e.ttl)
			}
			if e.mtu != uint32(tc.mtu) || e.unused != 0 {
				t.Errorf("MTU field %d (unused %d), want %d", e.mtu, e.unused, tc.mtu)
			}
			wantType, wantCode := byte(3), byte(4)
			if e.v6 {
				wantType, wantCode = 2, 0
			}
			if e.typ != wantType || e.code != wantCode {
				t.Errorf("type/code %d/%d, want %d/%d", e.typ, e.code, wantType, wantCode)
			}
			if !bytes.HasPrefix(tc.orig, e.quote) {
				t.Errorf("quote is not a prefix of the original packet")
			}
		})
	}
}

// minQuote is the least ICMPTooBig may quote: the IP header and 8 bytes
// (RFC 792), or the whole datagram if it is shorter.
func minQuote(orig []byte) int {
	if orig[0]>>4 == 6 {
		end := 40 + int(binary.BigEndian.Uint16(orig[4:]))
		if end == 40 || end > len(orig) {
			end = len(orig)
		}
		return min(end, 48)
	}
	total := min(int(binary.BigEndian.Uint16(orig[2:])), len(orig))
	return min(total, int(orig[0]&15)*4+8)
}

func addrs(b []byte) (src, dst netip.Addr) {
	if b[0]>>4 == 6 {
		return netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	}
	return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
}

func TestICMPTooBigAllocs(t *testing.T) {
	orig := ot.Packet{Src: ot.V6A, Dst: ot.V6B, Payload: make([]byte, 1440)}.IP()
	dst := make([]byte, 1280)
	if n := testing.AllocsPerRun(100, func() { pmtu.ICMPTooBig(dst, orig, 1400) }); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

// FuzzICMPTooBig: no panic on any bytes; whatever is built fits dst and
// the RFC size limit, verifies (IP and ICMP checksums, lengths), swaps
// the addresses, carries the MTU, and quotes a prefix of orig.
func FuzzICMPTooBig(f *testing.F) {
	f.Add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, DF: true, Payload: make([]byte, 600)}.IP(), 1400, uint16(2000))
	f.Add(ot.Packet{Src: ot.V6A, Dst: ot.V6B, Payload: make([]byte, 1300)}.IP(), 1280, uint16(1280))
	f.Add(ot.Packet{Src: ot.V6A, Dst: ot.V6B, Proto: ot.ProtoICMPv6, UDP: true, Payload: []byte{128, 0}}.IP(), 1280, uint16(100))
	f.Add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, Proto: ot.ProtoICMP, UDP: true, Payload: []byte{3, 4}}.IP(), 576, uint16(100))
	f.Add([]byte{0x60}, 1280, uint16(2000))
	f.Fuzz(func(t *testing.T, in []byte, mtu int, dstLen uint16) {
		orig := append([]byte(nil), in...)
		dst := make([]byte, dstLen)
		n := pmtu.ICMPTooBig(dst, orig, mtu)
		if !bytes.Equal(orig, in) {
			t.Fatal("orig modified")
		}
		if n == 0 {
			return
		}
		if n > len(dst) {
			t.Fatalf("n = %d > len(dst) %d", n, len(dst))
		}
		e, err := checkICMP(dst[:n])
		if err != nil {
			t.Fatalf("built error does not verify: %v", err)
		}
		limit := pmtu.MaxICMPv4
		if e.v6 {
			limit = pmtu.MaxICMPv6
		}
		if n > limit {
			t.Fatalf("error is %d bytes > %d", n, limit)
		}
		osrc, odst := addrs(orig)
		if e.src != odst || e.dst != osrc || uint64(e.mtu) != uint64(mtu) {
			t.Fatalf("addresses %v→%v mtu %d for %v→%v mtu %d", e.src, e.dst, e.mtu, osrc, odst, mtu)
		}
		if !bytes.HasPrefix(orig, e.quote) || len(e.quote) < minQuote(orig) {
			t.Fatalf("quote of %d bytes is not a prefix of orig or too short", len(e.quote))
		}
	})
}
