package gso_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vifsec/vifsec/offload"
	ot "github.com/vifsec/vifsec/offload/offloadtest"
)

// refSegment is the slow, obviously-correct segmenter the fast one is
// diffed against. It shares no code with Segment: it decodes the
// super-frame into an offloadtest.Packet (every header field by name),
// cuts the payload, and rebuilds each segment from those fields with
// offloadtest's builder and its own RFC 1071 checksum.
//
// It returns the L2 header to put in front of every segment and the IP
// packets. It assumes a frame Segment accepted: it checks nothing.
func refSegment(frame []byte, h offload.VnetHdr, mtu int) (l2 []byte, pkts [][]byte, err error) {
	n := ot.L2Len(frame)
	if n < 0 {
		return nil, nil, fmt.Errorf("no L2")
	}
	l2, ip := frame[:n], frame[n:]
	p := ot.Packet{NoDefaults: true}
	var hdr int
	if ip[0]>>4 == 4 {
		hl := int(ip[0]&15) * 4
		ip = ip[:binary.BigEndian.Uint16(ip[2:])]
		p.TOS, p.ID, p.TTL = ip[1], binary.BigEndian.Uint16(ip[4:]), ip[8]
		p.RF, p.DF = ip[6]&0x80 != 0, ip[6]&0x40 != 0
		p.Src, p.Dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		p.IPOptions = ip[20:hl]
		p.UDP = ip[9] == ot.ProtoUDP
		hdr = hl
	} else {
		ip = ip[:40+int(binary.BigEndian.Uint16(ip[4:]))]
		w := binary.BigEndian.Uint32(ip[0:])
		p.TOS, p.FlowLabel, p.TTL = uint8(w>>20), w&0xfffff, ip[7]
		p.Src, p.Dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		next, off := ip[6], 40
		for next == ot.ProtoHopByHop || next == ot.ProtoRouting || next == ot.ProtoDstOpts {
			l := (int(ip[off+1]) + 1) * 8
			p.ExtHeaders = append(p.ExtHeaders, ot.Ext{Type: next, Body: ip[off+2 : off+l]})
			next, off = ip[off], off+l
		}
		p.UDP = next == ot.ProtoUDP
		hdr = off
	}
	l4 := ip[hdr:]
	p.SrcPort, p.DstPort = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
	var payload []byte
	if p.UDP {
		payload = l4[8:]
		hdr += 8
	} else {
		doff := int(l4[12]>>4) * 4
		p.Seq, p.Ack = binary.BigEndian.Uint32(l4[4:]), binary.BigEndian.Uint32(l4[8:])
		p.TCPReserved, p.Flags = l4[12]&0x0f, l4[13]
		p.Window, p.Urgent = binary.BigEndian.Uint16(l4[14:]), binary.BigEndian.Uint16(l4[18:])
		p.TCPOptions = l4[20:doff]
		payload = l4[doff:]
		hdr += doff
	}
	size := int(h.GSOSize)
	if !p.UDP && mtu-hdr < size {
		size = mtu - hdr
	}
	var chunks [][]byte
	for len(payload) > size {
		chunks = append(chunks, payload[:size])
		payload = payload[size:]
	}
	chunks = append(chunks, payload)
	for i, c := range chunks {
		s := p
		s.Payload = c
		s.ID = p.ID + uint16(i)
		s.Seq = p.Seq + uint32(i*size)
		if i > 0 {
			s.Flags &^= ot.CWR
		}
		if i < len(chunks)-1 {
			s.Flags &^= ot.FIN | ot.PSH
		}
		pkts = append(pkts, s.IP())
	}
	return l2, pkts, nil
}
