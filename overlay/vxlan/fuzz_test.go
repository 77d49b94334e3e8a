package vxlan

import (
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"

	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecap: Decap never panics, and what it accepts is consistent: the
// inner range lies inside the frame, is at least an Ethernet header, and
// the VNI fits 24 bits. The seeds are valid frames of every shape Decap
// knows and a few broken ones; go test runs them as ordinary tests.
func FuzzDecap(f *testing.F) {
	in4 := pingFrame(false, 0x01, 1, 1, []byte("fuzz"))
	in6 := pingFrame(true, 0x02, 1, 1, []byte("fuzz"))
	arp := ether([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macVM, 0x0806, make([]byte, 28))
	tagged := &Outer{SrcMAC: macUplink, DstMAC: macRemote, VLAN: 7, Src: vtep6Local, Dst: vtep6Remote, VNI: 42}
	f6 := vxlanFrame(f, outer6(42), in6)
	for _, fr := range [][]byte{
		vxlanFrame(f, outer4(42), in4),
		vxlanFrame(f, outer4(MaxVNI), arp),
		f6,
		vxlanFrame(f, tagged, in4),
		withExt(f6, header.ProtoHopByHop),
		withExt(f6, header.ProtoFragment),
		f6[:60],
		arp,
		nil,
	} {
		f.Add(fr)
	}
	l := &Local{Addr4: vtep4Remote, Addr6: vtep6Remote}
	f.Fuzz(func(t *testing.T, frame []byte) {
		buf := append([]byte{0xee}, frame...)
		r, d := Decap(l, buf, 1, len(frame))
		if d >= drop.NumReasons {
			t.Fatalf("drop %d out of range", d)
		}
		if d != drop.None {
			return
		}
		if r.Start < 1 || r.End > len(buf) || r.End-r.Start < header.EthernetLen || r.VNI > MaxVNI || !r.Src.IsValid() {
			t.Fatalf("accepted with %+v (frame %d bytes)", r, len(frame))
		}
	})
}

// FuzzRoundTrip: whatever the inner frame, VNI, ports, family and tag,
// Decap of Encap's output gives back the VNI, the source, the source port
// and the inner frame unchanged (Encap copies the inner ECN to the outer,
// so RFC 6040 decapsulation changes nothing).
func FuzzRoundTrip(f *testing.F) {
	f.Add(pingFrame(false, 0xb9, 1, 1, []byte("x")), uint32(42), uint16(50000), uint16(0), uint16(0), false)
	f.Add(pingFrame(true, 0x03, 1, 1, nil), uint32(MaxVNI), uint16(65535), uint16(8472), uint16(100), true)
	f.Add(make([]byte, 14), uint32(0), uint16(0), uint16(1), uint16(4095), true)
	f.Fuzz(func(t *testing.T, inner []byte, vni uint32, sport, dport, vlan uint16, v6 bool) {
		vni &= MaxVNI
		vlan &= 0x0fff
		if len(inner) < header.EthernetLen || len(inner) > 9216 {
			return
		}
		if et := binary.BigEndian.Uint16(inner[12:14]); et == header.EtherTypeVLAN || et == 0x88a8 {
			inner[12] = 0x08 // inner tags are refused by default; tested elsewhere
		}
		o := &Outer{SrcMAC: macUplink, DstMAC: macRemote, VLAN: vlan, Src: vtep4Local, Dst: vtep4Remote, DstPort: dport, VNI: vni}
		if v6 {
			o.Src, o.Dst = vtep6Local, vtep6Remote
		}
		buf := place(inner, 5)
		start, d := Encap(o, sport, buf, Headroom, len(inner))
		if d != drop.None {
			t.Fatalf("Encap: %v", d)
		}
		l := remoteLocal()
		l.Port = dport
		r, d := Decap(l, buf, start, Headroom+len(inner)-start)
		if d != drop.None {
			t.Fatalf("Decap: %v", d)
		}
		if r.VNI != vni || r.Src != o.Src || r.SrcPort != sport || r.VLAN != vlan || !bytes.Equal(buf[r.Start:r.End], inner) {
			t.Fatalf("round trip: %+v", r)
		}
	})
}
