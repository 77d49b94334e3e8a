package offload

import (
	"bytes"
	"encoding/binary"
	"github.com/vifsec/vifsec/drop"
	"testing"
)

// frame is a stand-in frame of n bytes: ParseVnetHdr checks offsets
// against the frame's length, not its contents.
func frame(n int) []byte { return make([]byte, n) }

func TestDecodePut(t *testing.T) {
	h := VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4 | GSOECN, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	var b [VnetHdrLen]byte
	if !h.Put(b[:]) {
		t.Fatal("Put refused a 10-byte buffer")
	}
	// The fields are host order: spell the bytes out with NativeEndian so
	// the test also holds on a big-endian host.
	want := []byte{FlagNeedsCsum, GSOTCPv4 | GSOECN}
	want = binary.NativeEndian.AppendUint16(want, 66)
	want = binary.NativeEndian.AppendUint16(want, 1448)
	want = binary.NativeEndian.AppendUint16(want, 34)
	want = binary.NativeEndian.AppendUint16(want, 16)
	if !bytes.Equal(b[:], want) {
		t.Fatalf("Put = %x, want %x", b, want)
	}
	got, ok := DecodeVnetHdr(b[:])
	if !ok || got != h {
		t.Fatalf("DecodeVnetHdr = %+v, %v; want %+v", got, ok, h)
	}
	if _, ok := DecodeVnetHdr(b[:9]); ok {
		t.Error("DecodeVnetHdr accepted 9 bytes")
	}
	if h.Put(make([]byte, 9)) {
		t.Error("Put accepted 9 bytes")
	}
	if !h.NeedsCsum() || h.GSO() != GSOTCPv4 || !h.ECN() {
		t.Errorf("accessors: NeedsCsum %v GSO %d ECN %v", h.NeedsCsum(), h.GSO(), h.ECN())
	}
}

func TestParseVnetHdr(t *testing.T) {
	tcp := VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	udp := VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, HdrLen: 42, GSOSize: 1200, CsumStart: 34, CsumOffset: 6}
	mod := func(h VnetHdr, f func(*VnetHdr)) VnetHdr { f(&h); return h }
	tests := []struct {
		name  string
		h     VnetHdr
		frame int
		want  drop.Reason
		// rxOK: ParseReceivedVnetHdr (a header the kernel wrote) takes
		// what ParseVnetHdr refuses; else both agree.
		rxOK bool
	}{
		{name: "TSO IPv4 partial", h: tcp, frame: 3000},
		{name: "TSO IPv6 with ECN", h: mod(tcp, func(h *VnetHdr) { h.GSOType = GSOTCPv6 | GSOECN; h.CsumStart = 54 }), frame: 3000},
		{name: "TSO without NEEDS_CSUM", h: mod(tcp, func(h *VnetHdr) { h.Flags = 0 }), frame: 3000},
		{name: "USO", h: udp, frame: 3000},
		{name: "plain frame", h: VnetHdr{}, frame: 60},
		{name: "plain frame, csum fields ignored without NEEDS_CSUM", h: VnetHdr{CsumStart: 9999, CsumOffset: 9999}, frame: 60},
		{name: "DATA_VALID", h: VnetHdr{Flags: FlagDataValid}, frame: 60},
		{name: "partial, non-GSO, any offset", h: VnetHdr{Flags: FlagNeedsCsum, CsumStart: 20, CsumOffset: 0}, frame: 22},
		{name: "partial, field ends at frame end", h: VnetHdr{Flags: FlagNeedsCsum, CsumStart: 34, CsumOffset: 6}, frame: 42},
		{name: "UFO parses", h: VnetHdr{GSOType: GSOUDP, GSOSize: 1000}, frame: 3000},
		{name: "hdr_len equal to the frame", h: mod(tcp, func(h *VnetHdr) { h.HdrLen = 3000 }), frame: 3000},

		{name: "too short for a header", h: VnetHdr{}, frame: -1, want: drop.BadVnetHdr},
		{name: "RSC_INFO flag", h: VnetHdr{Flags: 4}, frame: 60, want: drop.BadVnetHdr},
		{name: "NEEDS_CSUM and DATA_VALID", h: VnetHdr{Flags: 3, CsumStart: 34, CsumOffset: 16}, frame: 60, want: drop.BadVnetHdr},
		{name: "unknown GSO type 2", h: VnetHdr{GSOType: 2, GSOSize: 1}, frame: 60, want: drop.BadVnetHdr},
		{name: "unknown GSO type 6", h: VnetHdr{GSOType: 6, GSOSize: 1}, frame: 60, want: drop.BadVnetHdr},
		{name: "AccECN bit 0x40", h: mod(tcp, func(h *VnetHdr) { h.GSOType |= 0x40 }), frame: 3000, want: drop.BadVnetHdr},
		{name: "UDP tunnel bit 0x20", h: mod(tcp, func(h *VnetHdr) { h.GSOType |= 0x20 }), frame: 3000, want: drop.BadVnetHdr},
		{name: "ECN on USO", h: mod(udp, func(h *VnetHdr) { h.GSOType |= GSOECN }), frame: 3000, want: drop.BadVnetHdr},
		{name: "ECN without GSO", h: VnetHdr{GSOType: GSOECN}, frame: 60, want: drop.BadVnetHdr},
		{name: "gso_size 0", h: mod(tcp, func(h *VnetHdr) { h.GSOSize = 0 }), frame: 3000, want: drop.BadVnetHdr},
		{name: "gso_size GSO_BY_FRAGS", h: mod(tcp, func(h *VnetHdr) { h.GSOSize = 0xffff }), frame: 3000, want: drop.BadVnetHdr},
		{name: "hdr_len beyond the frame", h: mod(tcp, func(h *VnetHdr) { h.HdrLen = 3001 }), frame: 3000, want: drop.BadVnetHdr},
		{name: "csum field beyond the frame", h: VnetHdr{Flags: FlagNeedsCsum, CsumStart: 34, CsumOffset: 7}, frame: 42, want: drop.BadVnetHdr},
		{name: "csum_start beyond the frame", h: VnetHdr{Flags: FlagNeedsCsum, CsumStart: 0xffff, CsumOffset: 0xffff}, frame: 60, want: drop.BadVnetHdr},
		{name: "TSO with UDP's csum offset", h: mod(tcp, func(h *VnetHdr) { h.CsumOffset = 6 }), frame: 3000, want: drop.BadVnetHdr},
		{name: "TSO with TCP header past the end", h: mod(tcp, func(h *VnetHdr) { h.HdrLen = 0 }), frame: 34 + 19, want: drop.BadVnetHdr},
		{name: "USO with TCP's csum offset", h: mod(udp, func(h *VnetHdr) { h.CsumOffset = 16 }), frame: 3000, want: drop.BadVnetHdr},
		{name: "USO without NEEDS_CSUM", h: mod(udp, func(h *VnetHdr) { h.Flags = 0 }), frame: 3000, want: drop.BadVnetHdr},
		{name: "USO with DATA_VALID (UDP GRO)", h: mod(udp, func(h *VnetHdr) { h.Flags = FlagDataValid; h.CsumStart, h.CsumOffset = 0, 0 }), frame: 3000, want: drop.BadVnetHdr, rxOK: true},
		{name: "USO with DATA_VALID, csum fields ignored", h: mod(udp, func(h *VnetHdr) { h.Flags = FlagDataValid; h.CsumStart = 0xffff }), frame: 3000, want: drop.BadVnetHdr, rxOK: true},
		{name: "USO with DATA_VALID, hdr_len beyond the frame", h: mod(udp, func(h *VnetHdr) { h.Flags = FlagDataValid; h.HdrLen = 3001 }), frame: 3000, want: drop.BadVnetHdr},
		{name: "USO with DATA_VALID, gso_size 0", h: mod(udp, func(h *VnetHdr) { h.Flags = FlagDataValid; h.GSOSize = 0 }), frame: 3000, want: drop.BadVnetHdr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, VnetHdrLen)
			tc.h.Put(b)
			if tc.frame < 0 {
				b = b[:VnetHdrLen-1]
			} else {
				b = append(b, frame(tc.frame)...)
			}
			h, d := ParseVnetHdr(b)
			if d != tc.want {
				t.Fatalf("ParseVnetHdr = %v, want %v", d, tc.want)
			}
			if d == drop.None && h != tc.h {
				t.Errorf("header = %+v, want %+v", h, tc.h)
			}
			if d != drop.None && h != (VnetHdr{}) {
				t.Errorf("a refused header came back non-zero: %+v", h)
			}
			want := tc.want
			if tc.rxOK {
				want = drop.None
			}
			if h, d := ParseReceivedVnetHdr(b); d != want || d == drop.None && h != tc.h {
				t.Errorf("ParseReceivedVnetHdr = %+v, %v; want %v", h, d, want)
			}
		})
	}
}

func TestShift(t *testing.T) {
	h := VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: 70, GSOSize: 1448, CsumStart: 38, CsumOffset: 16}
	got, ok := h.Shift(-4)
	if !ok || got.CsumStart != 34 || got.HdrLen != 66 || got.CsumOffset != 16 {
		t.Errorf("Shift(-4) = %+v, %v", got, ok)
	}
	if _, ok := h.Shift(-39); ok {
		t.Error("Shift below 0 accepted")
	}
	plain := VnetHdr{CsumStart: 2}
	if got, ok := plain.Shift(-4); !ok || got != plain {
		t.Errorf("Shift of a header without NEEDS_CSUM or hdr_len = %+v, %v; want it unchanged", got, ok)
	}
}

func TestParseVnetHdrAllocs(t *testing.T) {
	b := make([]byte, VnetHdrLen+3000)
	VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}.Put(b)
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseVnetHdr(b) }); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}
