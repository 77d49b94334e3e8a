package gso

import (
	"bytes"
	"encoding/binary"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
)

// MaxTrainSegments is the most datagrams a Train joins: the kernel's
// UDP_MAX_SEGMENTS as Linux 5.0-6.14 define it (virtio_net_hdr_to_skb
// refuses a UDP_L4 super-frame of more segments; later kernels allow 128).
const MaxTrainSegments = 64

// Train joins a run of UDP datagrams into one UDP GSO super-frame (virtio
// GSO_UDP_L4, the kernel's SKB_GSO_UDP_L4), the inverse of Segment for
// USO: Ethernet frames with the same link-layer header, the same IP
// header except its length, ID and checksum, the same UDP ports, and the
// same payload length (the gso_size), except the last, which may be
// shorter. It is how a train of ESP-in-UDP packets cut from one TSO
// super-frame leaves on a device that takes virtio-net headers: one write
// and one trip through the kernel instead of one per packet; the kernel
// (or the NIC, or the receiver behind a veth) cuts it again.
//
// The super-frame carries the first datagram's headers with the total
// lengths, the first datagram's IPv4 ID (the kernel numbers the segments
// up from it, as Segment does) and, in the UDP checksum field, the folded
// pseudo-header sum over the total UDP length: the CHECKSUM_PARTIAL form
// __udp_gso_segment adjusts per segment. The datagrams' own checksums
// are dropped; the kernel or NIC computes each segment's (so an IPv4 ESP
// in UDP packet sent with checksum 0 leaves with a real one, which RFC
// 3948 §3.1 allows a receiver to check or ignore).
//
// Frames the train takes: Ethernet with at most one 802.1Q tag, IPv4
// (options allowed, not a fragment) or IPv6 without extension headers,
// UDP whose length is the IP payload's, no link-layer padding.
//
// A Train is one super-frame being built in a caller-owned buffer; it is
// not safe for concurrent use. The zero value is ready for Start.
type Train struct {
	buf    []byte
	off    int // where the frame starts in buf
	n      int // frame length so far
	l3, l4 int // offsets in the frame
	pay    int // offset of the payload
	v6     bool
	size   int // payload of each datagram but the last: gso_size
	segs   int
	closed bool // a shorter datagram ended the train
}

// Start begins a train with frame, copied into buf at off; buf must leave
// offload.VnetHdrLen bytes in front of off for the header the caller
// writes there. It reports false, and the train is empty, if frame is not
// a datagram a train takes or does not fit buf.
func (t *Train) Start(buf []byte, off int, frame []byte) bool {
	*t = Train{}
	l, ok := udpLayout(frame)
	if !ok || off < offload.VnetHdrLen || off > len(buf) || len(frame) > len(buf)-off {
		return false
	}
	copy(buf[off:], frame)
	*t = Train{buf: buf, off: off, n: len(frame), l3: l.l3, l4: l.l4, pay: l.pay, v6: l.v6,
		size: len(frame) - l.pay, segs: 1}
	if t.size == 0 {
		t.closed = true // nothing to cut by
	}
	return true
}

// TrainPort returns the UDP destination port of frame if it is a datagram
// a Train takes (see Train), so a caller can choose trains by port before
// it commits a buffer to one.
func TrainPort(frame []byte) (port uint16, ok bool) {
	l, ok := udpLayout(frame)
	if !ok {
		return 0, false
	}
	return binary.BigEndian.Uint16(frame[l.l4+2:]), true
}

// Len is the number of datagrams in the train.
func (t *Train) Len() int { return t.segs }

// Append adds frame's payload to the train if frame is the next datagram
// of it (same headers, a payload of gso_size, or shorter as the last)
// and the super-frame stays within MaxTrainSegments, an IP length of
// 65535 and the buffer. It reports false, changing nothing, otherwise: the
// caller finishes this train and may start another with frame.
func (t *Train) Append(frame []byte) bool {
	if t.segs == 0 || t.closed || t.segs == MaxTrainSegments || len(frame) < t.pay {
		return false
	}
	p := len(frame) - t.pay
	if p == 0 || p > t.size || t.off+t.n+p > len(t.buf) {
		return false
	}
	total := t.n + p - t.l3 // IPv4 total length
	if t.v6 {
		total -= header.IPv6Len // IPv6 payload length
	}
	if total > 0xffff || !t.same(frame) {
		return false
	}
	copy(t.buf[t.off+t.n:], frame[t.pay:])
	t.n += p
	t.segs++
	if p < t.size {
		t.closed = true
	}
	return true
}

// same reports whether frame's headers are the train's, but for lengths,
// IPv4 ID and checksums; and that its lengths agree with its size.
func (t *Train) same(frame []byte) bool {
	h := t.buf[t.off : t.off+t.pay]
	if !bytes.Equal(frame[:t.l3], h[:t.l3]) {
		return false
	}
	ip, hip := frame[t.l3:], h[t.l3:]
	if t.v6 {
		if !bytes.Equal(ip[0:4], hip[0:4]) || !bytes.Equal(ip[6:header.IPv6Len], hip[6:header.IPv6Len]) ||
			int(binary.BigEndian.Uint16(ip[4:])) != len(ip)-header.IPv6Len {
			return false
		}
	} else {
		if !bytes.Equal(ip[0:2], hip[0:2]) || !bytes.Equal(ip[6:10], hip[6:10]) || !bytes.Equal(ip[12:t.l4-t.l3], hip[12:t.l4-t.l3]) ||
			int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
			return false
		}
	}
	u, hu := frame[t.l4:], h[t.l4:]
	return bytes.Equal(u[0:4], hu[0:4]) && int(binary.BigEndian.Uint16(u[4:])) == len(u)
}

// Finish completes the train and returns where its frame is in the
// buffer, buf[start:end], and the virtio_net_hdr to send in front of it.
// A train of one datagram is that frame as it was, with a header of no
// GSO and no checksum offload; a longer one is a GSO_UDP_L4 super-frame
// with NEEDS_CSUM at the UDP checksum (the kernel requires both: the
// virtio header's checksum start at the UDP header, and gso_size less
// than the UDP payload). The train is empty afterwards.
func (t *Train) Finish() (start, end int, h offload.VnetHdr) {
	start, end = t.off, t.off+t.n
	if t.segs < 2 {
		*t = Train{}
		return start, end, offload.VnetHdr{}
	}
	f := t.buf[start:end]
	ip := f[t.l3:]
	var pseudo uint16
	if t.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(len(ip)-header.IPv6Len))
		pseudo = csum.Pseudo(ip[8:24], ip[24:40], header.ProtoUDP, end-start-t.l4)
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		ihl := t.l4 - t.l3
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], csum.Checksum(ip[:ihl], 0))
		pseudo = csum.Pseudo(ip[12:16], ip[16:20], header.ProtoUDP, end-start-t.l4)
	}
	u := f[t.l4:]
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	binary.BigEndian.PutUint16(u[6:], pseudo)
	h = offload.VnetHdr{
		Flags:      offload.FlagNeedsCsum,
		GSOType:    offload.GSOUDPL4,
		HdrLen:     uint16(t.pay),
		GSOSize:    uint16(t.size),
		CsumStart:  uint16(t.l4),
		CsumOffset: 6,
	}
	*t = Train{}
	return start, end, h
}

// udpLayout finds the headers of a frame a Train takes (see Train).
func udpLayout(frame []byte) (l layout, ok bool) {
	if len(frame) < header.EthernetLen {
		return l, false
	}
	l.l3 = header.EthernetLen
	etype := binary.BigEndian.Uint16(frame[12:])
	if etype == header.EtherTypeVLAN {
		if len(frame) < l.l3+header.VLANTagLen {
			return l, false
		}
		etype = binary.BigEndian.Uint16(frame[l.l3+2:])
		l.l3 += header.VLANTagLen
	}
	ip := frame[l.l3:]
	switch etype {
	case header.EtherTypeIPv4:
		if len(ip) < header.IPv4MinLen || ip[0]>>4 != 4 || ip[9] != header.ProtoUDP {
			return l, false
		}
		ihl := int(ip[0]&0x0f) * 4
		if ihl < header.IPv4MinLen || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) || len(ip) < ihl+header.UDPLen ||
			binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return l, false
		}
		l.l4 = l.l3 + ihl
	case header.EtherTypeIPv6:
		if len(ip) < header.IPv6Len+header.UDPLen || ip[0]>>4 != 6 || ip[6] != header.ProtoUDP ||
			int(binary.BigEndian.Uint16(ip[4:]))+header.IPv6Len != len(ip) {
			return l, false
		}
		l.l4, l.v6 = l.l3+header.IPv6Len, true
	default:
		return l, false
	}
	if int(binary.BigEndian.Uint16(frame[l.l4+4:])) != len(frame)-l.l4 {
		return l, false
	}
	l.udp, l.pay, l.end = true, l.l4+header.UDPLen, len(frame)
	return l, true
}
