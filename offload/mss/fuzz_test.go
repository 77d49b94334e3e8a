package mss_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/vifsec/vifsec/offload/mss"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

// refClamp is the slow reference: parse with offloadtest (which insists on
// exact lengths and valid checksums), rewrite the MSS options, and
// recompute the TCP checksum from scratch. ok is false when pkt is not a
// valid, unfragmented TCP SYN: then there is nothing to compare.
func refClamp(pkt []byte, max uint16) (out []byte, ok bool) {
	in, err := ot.Parse(pkt)
	if err != nil || in.Proto != ot.ProtoTCP || in.Frag || in.Flags&ot.SYN == 0 {
		return nil, false
	}
	out = append([]byte(nil), pkt...)
	tcp := out[in.HdrLen:]
	doff := int(tcp[12]>>4) * 4
	for i := 20; i < doff; {
		kind := tcp[i]
		if kind == 0 {
			break
		}
		if kind == 1 {
			i++
			continue
		}
		if i+1 >= doff || tcp[i+1] < 2 || i+int(tcp[i+1]) > doff {
			break
		}
		if kind == 2 && tcp[i+1] == 4 && binary.BigEndian.Uint16(tcp[i+2:]) > max {
			binary.BigEndian.PutUint16(tcp[i+2:], max)
		}
		i += int(tcp[i+1])
	}
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], ^ot.Sum(tcp, ot.Pseudo(in.Src, in.Dst, ot.ProtoTCP, len(tcp))))
	return out, true
}

// fix makes pkt's lengths and checksums consistent where its headers
// allow, so the fuzzer's mutations of options reach the comparison with
// the reference instead of failing the checksum.
func fix(pkt []byte) {
	if len(pkt) >= 20 && pkt[0]>>4 == 4 {
		hl := int(pkt[0]&15) * 4
		if hl >= 20 && hl <= len(pkt) {
			binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
			pkt[10], pkt[11] = 0, 0
			binary.BigEndian.PutUint16(pkt[10:], ^ot.Sum(pkt[:hl], 0))
		}
	}
	if len(pkt) >= 40 && pkt[0]>>4 == 6 {
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)-40))
	}
	in, _ := ot.Parse(pkt)
	if in.Proto == ot.ProtoTCP && !in.Frag && len(in.L4) >= 20 {
		in.L4[16], in.L4[17] = 0, 0
		binary.BigEndian.PutUint16(in.L4[16:], ^ot.Sum(in.L4, ot.Pseudo(in.Src, in.Dst, ot.ProtoTCP, len(in.L4))))
	}
}

// FuzzClampMSS: Clamp never panics; when it reports no change the bytes
// are untouched; a second Clamp changes nothing; and on a valid SYN its
// result (incremental checksum) equals the reference's (full
// recomputation), so the checksum stays valid.
func FuzzClampMSS(f *testing.F) {
	add := func(p ot.Packet, max uint16) { f.Add(p.IP(), max, false) }
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, Flags: ot.SYN, TCPOptions: linuxSYNOpts(1460)}, 1380)
	add(ot.Packet{Src: ot.V6A, Dst: ot.V6B, Flags: ot.SYN | ot.ACK, TCPOptions: linuxSYNOpts(1440)}, 1360)
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, Flags: ot.SYN, TCPOptions: []byte{1, 2, 4, 0x23, 0x28, 1, 1, 0}}, 1400)
	add(ot.Packet{Src: ot.V6A, Dst: ot.V6B, Flags: ot.SYN, TCPOptions: []byte{2, 4, 0xff, 0xff},
		ExtHeaders: []ot.Ext{{Type: ot.ProtoHopByHop, Body: make([]byte, 6)}}}, 1200)
	add(ot.Packet{Src: ot.V4A, Dst: ot.V4B, Flags: ot.ACK, Payload: []byte("not a syn")}, 100)
	f.Add([]byte{0x45, 0, 0, 20}, uint16(1), true)
	f.Fuzz(func(t *testing.T, in []byte, max uint16, fixIt bool) {
		pkt := append([]byte(nil), in...) // the engine saves in as the crasher: keep it intact
		if fixIt {
			fix(pkt)
		}
		before := append([]byte(nil), pkt...)
		want, ok := refClamp(pkt, max)
		changed := mss.Clamp(pkt, max)
		if !changed && !bytes.Equal(pkt, before) {
			t.Fatal("bytes changed though Clamp reported no change")
		}
		if mss.Clamp(pkt, max) {
			t.Fatal("second Clamp changed the packet")
		}
		if !ok {
			return
		}
		if !bytes.Equal(pkt, want) {
			t.Fatalf("Clamp differs from the reference:\n got %x\nwant %x", pkt, want)
		}
		if _, err := ot.Parse(pkt); err != nil {
			t.Fatalf("clamped packet does not verify: %v", err)
		}
	})
}
