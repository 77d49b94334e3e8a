//go:build linux

package pmtu_test

// The independent cross-check: ICMP errors from ICMPTooBig and fragments
// from Fragment are written to a pcap and decoded by tshark. For each
// error it must report the IPv4 header and ICMP/ICMPv6 checksums good and
// decode the type, code and MTU we asked for. Fragments must each have a
// good header checksum, and tshark's own reassembly (ip.defragment) must
// rebuild each datagram so that its UDP or TCP checksum, computed over the
// whole original datagram, verifies: the fragments carry exactly the
// original bytes at the right offsets.
//
// No network is used, so no namespace is made: the test needs only the
// tshark binary.

import (
	"github.com/vifsec/vifsec/drop"
	"strconv"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/pcap"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
	"github.com/vifsec/vifsec/offload/pmtu"
)

func TestIntegrationTsharkICMP(t *testing.T) {
	type tc struct {
		orig []byte
		mtu  int
	}
	var cases []tc
	for i, size := range []int{600, 1400, 1460, 8000} {
		cases = append(cases,
			tc{orig: ot.Packet{Src: ot.V4A, Dst: ot.V4B, DF: true, ID: uint16(i), Payload: make([]byte, size)}.IP(), mtu: 576 + 100*i},
			tc{orig: ot.Packet{Src: ot.V4C, Dst: ot.V4A, UDP: true, DF: true, IPOptions: []byte{0x94, 4, 0, 0}, Payload: make([]byte, size)}.IP(), mtu: 1280},
			tc{orig: ot.Packet{Src: ot.V6A, Dst: ot.V6B, Payload: make([]byte, size)}.IP(), mtu: 1280 + 50*i},
			tc{orig: ot.Packet{Src: ot.V6C, Dst: ot.V6A, UDP: true, Payload: make([]byte, size),
				ExtHeaders: []ot.Ext{{Type: ot.ProtoHopByHop, Body: []byte{1, 4, 0, 0, 0, 0}}}}.IP(), mtu: 1400})
	}
	var pkts [][]byte
	for i, c := range cases {
		dst := make([]byte, 1500)
		n := pmtu.ICMPTooBig(dst, c.orig, c.mtu)
		if n == 0 {
			t.Fatalf("case %d: no error built", i)
		}
		pkts = append(pkts, dst[:n])
	}
	rows := ot.Tshark(t, pcap.LinkTypeRaw, pkts, nil,
		"ip.checksum.status", "icmp.checksum.status", "icmp.type", "icmp.code", "icmp.mtu",
		"icmpv6.checksum.status", "icmpv6.type", "icmpv6.mtu")
	if len(rows) != len(pkts) {
		t.Fatalf("tshark decoded %d packets, wrote %d", len(rows), len(pkts))
	}
	first := func(s string) string { return strings.Split(s, ",")[0] }
	for i, row := range rows {
		v6 := cases[i].orig[0]>>4 == 6
		var got, want []string
		if v6 {
			got = []string{row[5], row[6], row[7]}
			want = []string{"1", "2", strconv.Itoa(cases[i].mtu)}
		} else {
			got = []string{first(row[0]), row[1], first(row[2]), first(row[3]), row[4]}
			want = []string{"1", "1", "3", "4", strconv.Itoa(cases[i].mtu)}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("packet %d: tshark says %q, want %q (row %q)", i+1, got, want, row)
		}
	}
}

func TestIntegrationTsharkFragments(t *testing.T) {
	var pkts [][]byte
	datagrams := 0
	lastFrame := map[int]bool{} // frame numbers that complete a datagram
	for i, c := range []struct {
		p   ot.Packet
		mtu int
	}{
		{p: ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, ID: 100, Payload: make([]byte, 3000)}, mtu: 1500},
		{p: ot.Packet{Src: ot.V4A, Dst: ot.V4B, UDP: true, ID: 101, Payload: make([]byte, 20000)}, mtu: 1283},
		{p: ot.Packet{Src: ot.V4C, Dst: ot.V4A, ID: 102, Payload: make([]byte, 9000)}, mtu: 1400},
		{p: ot.Packet{Src: ot.V4A, Dst: ot.V4C, UDP: true, ID: 103, Payload: make([]byte, 4000),
			IPOptions: []byte{0x07, 7, 4, 0, 0, 0, 0, 0x01, 0x94, 4, 0, 0}}, mtu: 576},
		{p: ot.Packet{Src: ot.V4B, Dst: ot.V4A, UDP: true, ID: 104, Payload: make([]byte, 65000)}, mtu: 9000},
	} {
		for j := range c.p.Payload {
			c.p.Payload[j] = byte(j*13 + i)
		}
		out, sizes := bufs(200, headroom+9000)
		n, d := pmtu.Fragment(c.p.IP(), c.mtu, out, headroom, sizes)
		if d != drop.None || n < 2 {
			t.Fatalf("datagram %d: Fragment = %d, %v", i, n, d)
		}
		for j := range n {
			pkts = append(pkts, out[j][headroom:headroom+sizes[j]])
		}
		lastFrame[len(pkts)] = true
		datagrams++
	}
	rows := ot.Tshark(t, pcap.LinkTypeRaw, pkts, []string{"-o", "ip.defragment:TRUE"},
		"frame.number", "ip.checksum.status", "ip.flags.mf", "udp.checksum.status", "tcp.checksum.status", "ip.reassembled.length")
	if len(rows) != len(pkts) {
		t.Fatalf("tshark decoded %d packets, wrote %d", len(rows), len(pkts))
	}
	reassembled := 0
	for i, row := range rows {
		if row[1] != "1" {
			t.Errorf("fragment %d: header checksum status %q", i+1, row[1])
		}
		if !lastFrame[i+1] {
			continue
		}
		if row[5] == "" {
			t.Errorf("frame %d: tshark did not reassemble the datagram", i+1)
			continue
		}
		if l4 := row[3] + row[4]; l4 != "1" {
			t.Errorf("frame %d: reassembled datagram's L4 checksum status %q, want good", i+1, l4)
		}
		reassembled++
	}
	if reassembled != datagrams {
		t.Errorf("tshark reassembled %d datagrams, want %d", reassembled, datagrams)
	}
}
