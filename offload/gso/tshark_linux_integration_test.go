//go:build linux

package gso_test

// The independent cross-check: segments Segment made (and frames
// csum.Complete finished) are written to a pcap and decoded by tshark,
// whose IPv4, TCP and UDP dissectors recompute every checksum with
// Wireshark's own code. For every frame tshark must report each checksum
// good, and decode the lengths, IPv4 ID, TCP sequence number and flags we
// intended (computed here from the super-frame's fields, not from
// Segment's output). A copy of one segment with a flipped payload bit
// must be reported bad, so the check cannot pass vacuously.
//
// No network is used, so no namespace is made: the test needs only the
// tshark binary.

import (
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/vifsec/vifsec/internal/pcap"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/gso"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

// want is what tshark should decode from one frame.
type want struct {
	v6, udp  bool
	ipLen    int // IPv4 total length or IPv6 payload length
	id       uint16
	seq      uint32
	flags    uint8
	l4Pay    int
	bad      bool // the L4 checksum must be reported bad
	complete bool // a csum.Complete frame, not a segment
}

// tsharkFriendly replaces the random bytes randomSuper puts where tshark
// dissects structure (IPv6 options, TCP options) with well-formed ones, so
// a dissector exception cannot hide a checksum verdict.
func tsharkFriendly(r *rand.Rand, p *ot.Packet) {
	for i, e := range p.ExtHeaders {
		body := make([]byte, len(e.Body))
		if e.Type == ot.ProtoRouting {
			body[0] = 253 // experimental routing type, segments left 0
		} else {
			body[0], body[1] = 1, byte(len(body)-2) // PadN
		}
		p.ExtHeaders[i].Body = body
	}
	if !p.UDP {
		opts := make([]byte, len(p.TCPOptions))
		for i := range opts {
			opts[i] = 1
		}
		if len(opts) >= 12 && r.IntN(2) == 0 { // NOP NOP timestamps
			copy(opts[len(opts)-10:], []byte{8, 10, 1, 2, 3, 4, 5, 6, 7, 8})
		}
		p.TCPOptions = opts
	}
}

func TestIntegrationTsharkSegments(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	var frames [][]byte
	var wants []want
	out, sizes := batch(64, headroom+9100)
	for len(frames) < 1500 {
		p, gs, mtu, partial, ecn := randomSuper(r, 40)
		tsharkFriendly(r, &p)
		frame, h := ot.Super(p, gs, partial, ecn)
		n, d := gso.Segment(frame, h, mtu, out, headroom, sizes)
		if d != drop.None {
			t.Fatalf("Segment dropped %v", d)
		}
		hdr := p.L3Len() + p.L4Len()
		seg := int(gs)
		if !p.UDP {
			seg = min(seg, mtu-hdr)
		}
		for i := range n {
			frames = append(frames, append([]byte(nil), out[i][headroom:headroom+sizes[i]]...))
			pay := min(seg, len(p.Payload)-i*seg)
			w := want{v6: p.Src.Is6(), udp: p.UDP, id: p.ID + uint16(i), seq: p.Seq + uint32(i*seg), l4Pay: pay}
			w.ipLen = hdr + pay
			if w.v6 {
				w.ipLen -= 40
			}
			w.flags = p.Flags
			if i > 0 {
				w.flags &^= ot.CWR
			}
			if i < n-1 {
				w.flags &^= ot.FIN | ot.PSH
			}
			wants = append(wants, w)
		}
	}
	// A flipped payload bit must be caught: the check is not vacuous.
	flipped := append([]byte(nil), frames[0]...)
	flipped[len(flipped)-1] ^= 0x10
	w := wants[0]
	w.bad = true
	frames, wants = append(frames, flipped), append(wants, w)

	// Plain frames with a partial checksum, finished by csum.Complete.
	for i := range 100 {
		p, _, _, _, _ := randomSuper(r, 1)
		tsharkFriendly(r, &p)
		p.Payload = p.Payload[:min(len(p.Payload), 1400)]
		f, h := ot.Super(p, 1500, true, false)
		if !csum.Complete(f, int(h.CsumStart), int(h.CsumOffset)) {
			t.Fatalf("Complete refused frame %d", i)
		}
		w := want{v6: p.Src.Is6(), udp: p.UDP, id: p.ID, seq: p.Seq, flags: p.Flags, l4Pay: len(p.Payload), complete: true}
		w.ipLen = p.L3Len() + p.L4Len() + len(p.Payload)
		if w.v6 {
			w.ipLen -= 40
		}
		frames, wants = append(frames, f), append(wants, w)
	}

	rows := ot.Tshark(t, pcap.LinkTypeEthernet, frames, []string{"-o", "tcp.analyze_sequence_numbers:FALSE"},
		"frame.number", "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
		"ip.len", "ipv6.plen", "ip.id", "tcp.seq_raw", "tcp.flags", "tcp.len", "udp.length")
	if len(rows) != len(frames) {
		t.Fatalf("tshark decoded %d frames, wrote %d", len(rows), len(frames))
	}
	bad := 0
	for i, row := range rows {
		if err := checkRow(row, wants[i]); err != nil {
			t.Errorf("frame %d: %v (tshark: %q)", i+1, err, row)
			if bad++; bad > 10 {
				t.Fatal("too many mismatches")
			}
		}
	}
	t.Logf("tshark verified %d segments and %d completed frames", len(frames)-101, 100)
}

func checkRow(row []string, w want) error {
	if len(row) != 11 {
		return fmt.Errorf("%d fields", len(row))
	}
	ipSt, tcpSt, udpSt := row[1], row[2], row[3]
	l4St := tcpSt
	if w.udp {
		l4St = udpSt
	}
	wantSt := "1"
	if w.bad {
		wantSt = "0"
	}
	if l4St != wantSt {
		return fmt.Errorf("L4 checksum status %q, want %q", l4St, wantSt)
	}
	if !w.v6 && ipSt != "1" {
		return fmt.Errorf("IPv4 header checksum status %q", ipSt)
	}
	num := func(s string) (uint64, error) { return strconv.ParseUint(s, 0, 64) }
	lenField := row[4]
	if w.v6 {
		lenField = row[5]
	}
	if n, err := num(lenField); err != nil || int(n) != w.ipLen {
		return fmt.Errorf("IP length %q, want %d", lenField, w.ipLen)
	}
	if !w.v6 {
		if n, err := num(row[6]); err != nil || uint16(n) != w.id {
			return fmt.Errorf("IPv4 ID %q, want %d", row[6], w.id)
		}
	}
	if w.udp {
		if n, err := num(row[10]); err != nil || int(n) != 8+w.l4Pay {
			return fmt.Errorf("UDP length %q, want %d", row[10], 8+w.l4Pay)
		}
		return nil
	}
	if n, err := num(row[7]); err != nil || uint32(n) != w.seq {
		return fmt.Errorf("TCP seq %q, want %d", row[7], w.seq)
	}
	if n, err := num(row[8]); err != nil || uint8(n) != w.flags {
		return fmt.Errorf("TCP flags %q, want %#02x", row[8], w.flags)
	}
	if n, err := num(row[9]); err != nil || int(n) != w.l4Pay {
		return fmt.Errorf("TCP payload %q, want %d", row[9], w.l4Pay)
	}
	return nil
}
