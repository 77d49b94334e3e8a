package gro

import (
	"encoding/binary"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
)

// Stages (per frame offered to a receiver):
//  1. Not eligible (not TCP, options in IPv4, extension headers, flags):
//     the caller finishes the pending run and passes the frame as it is.
//  2. Same flow, next in sequence, not bigger than the run's segments:
//     its payload is appended (Append).
//  3. Otherwise the caller finishes the pending run and starts a new one
//     with the frame (Start).

// MaxPayload is the most IP payload a super-frame may reach: an IP
// packet's 16-bit length less room for the largest IPv4 header.
const MaxPayload = 65535 - header.IPv4MaxLen

const (
	ethLen  = header.EthernetLen
	ipv4Len = header.IPv4MinLen
	ipv6Len = header.IPv6Len
	tcpLen  = 20

	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpCWR = 0x80
)

// Seg describes an eligible TCP segment in an Ethernet frame (Eligible).
type Seg struct {
	l4, pay int // offsets of the TCP header and of the payload
	v6      bool
}

// Eligible reports whether frame, an untagged Ethernet frame, is a plain
// TCP data segment that can be merged (stage 1), and where its headers
// are.
func Eligible(frame []byte) (Seg, bool) {
	if len(frame) < ethLen+ipv4Len+tcpLen {
		return Seg{}, false
	}
	ip := frame[ethLen:]
	var l4 int
	var v6 bool
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case header.EtherTypeIPv4:
		if ip[0] != 0x45 || ip[9] != header.ProtoTCP || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 ||
			int(binary.BigEndian.Uint16(ip[2:4])) != len(ip) {
			return Seg{}, false
		}
		l4 = ethLen + ipv4Len
	case header.EtherTypeIPv6:
		if len(ip) < ipv6Len || ip[0]>>4 != 6 || ip[6] != header.ProtoTCP ||
			ipv6Len+int(binary.BigEndian.Uint16(ip[4:6])) != len(ip) {
			return Seg{}, false
		}
		l4, v6 = ethLen+ipv6Len, true
	default:
		return Seg{}, false
	}
	if len(frame) < l4+tcpLen {
		return Seg{}, false
	}
	t := frame[l4:]
	doff := int(t[12]>>4) * 4
	flags := t[13]
	// ACK must be set; SYN, FIN, RST, URG, CWR end or forbid merging.
	if doff < tcpLen || l4+doff >= len(frame) || flags&tcpACK == 0 || flags&(tcpFIN|tcpSYN|tcpRST|tcpURG|tcpCWR) != 0 {
		return Seg{}, false
	}
	return Seg{l4: l4, pay: l4 + doff, v6: v6}, true
}

// Coalescer builds one super-frame at a time in its own buffer. It is
// not safe for concurrent use.
type Coalescer struct {
	buf      []byte // headroom, then the frame
	headroom int

	pending bool
	n       int // frame length so far
	l4      int // offset of the TCP header
	pay     int // offset of the payload of the first segment
	v6      bool
	size    int // payload of each segment (gso_size)
	segs    int
	next    uint32 // sequence number expected next
	done    bool   // a short or PSH segment ended the run

	// Segments counts the segments merged into super-frames (a run of
	// one segment is not counted).
	Segments uint64
}

// New returns a Coalescer whose buffer holds headroom bytes (at least
// offload.VnetHdrLen, for the super-frame's header) and then frames of
// up to size bytes.
func New(size, headroom int) *Coalescer {
	return &Coalescer{buf: make([]byte, headroom+size), headroom: headroom}
}

// Pending reports whether a run waits to be finished.
func (c *Coalescer) Pending() bool { return c.pending }

// Append merges frame, described by s (Eligible), into the pending run
// when it continues it (stage 2) and reports whether it did; false means
// the caller must Finish the run (if any) and Start a new one.
func (c *Coalescer) Append(frame []byte, s Seg) bool {
	if !c.pending || c.done || !c.sameFlow(frame, s) {
		return false
	}
	pay := frame[s.pay:]
	if len(pay) > c.size || c.n-ethLen+len(pay) > MaxPayload || c.headroom+c.n+len(pay) > len(c.buf) {
		return false
	}
	c.n += copy(c.buf[c.headroom+c.n:], pay)
	c.segs++
	c.next += uint32(len(pay))
	flags := frame[s.l4+13]
	c.buf[c.headroom+c.l4+13] |= flags & tcpPSH
	if len(pay) < c.size || flags&tcpPSH != 0 {
		c.done = true
	}
	return true
}

// Start begins a new run with frame, described by s (stage 3); false
// when the frame does not fit the buffer (the caller passes it as it
// is). A pending run is discarded: Finish it first.
func (c *Coalescer) Start(frame []byte, s Seg) bool {
	if len(frame) > len(c.buf)-c.headroom {
		c.pending = false
		return false
	}
	*c = Coalescer{buf: c.buf, headroom: c.headroom, Segments: c.Segments,
		pending: true, n: copy(c.buf[c.headroom:], frame), l4: s.l4, pay: s.pay, v6: s.v6, size: len(frame) - s.pay, segs: 1}
	c.next = binary.BigEndian.Uint32(frame[s.l4+4:]) + uint32(c.size)
	c.done = frame[s.l4+13]&tcpPSH != 0
	return true
}

// sameFlow compares everything but the sequence number, the payload, the
// IP length/ID/checksum and the TCP flags/checksum with the run's first
// segment, and checks that the sequence number is the one expected next.
func (c *Coalescer) sameFlow(frame []byte, s Seg) bool {
	h := c.buf[c.headroom : c.headroom+c.pay]
	if s.v6 != c.v6 || s.pay != c.pay || len(frame) < s.pay {
		return false
	}
	if string(frame[0:12]) != string(h[0:12]) {
		return false
	}
	ip, hip := frame[ethLen:], h[ethLen:]
	if c.v6 {
		// Version, traffic class, flow label; next header, hop limit; addresses.
		if string(ip[0:4]) != string(hip[0:4]) || string(ip[6:40]) != string(hip[6:40]) {
			return false
		}
	} else if ip[1] != hip[1] || ip[8] != hip[8] || string(ip[12:20]) != string(hip[12:20]) {
		return false
	}
	t, ht := frame[s.l4:s.pay], h[c.l4:c.pay]
	return binary.BigEndian.Uint32(t[4:8]) == c.next &&
		string(t[0:4]) == string(ht[0:4]) && // ports
		string(t[8:12]) == string(ht[8:12]) && // ACK
		string(t[14:16]) == string(ht[14:16]) && // window
		string(t[20:]) == string(ht[20:]) // options (timestamps included)
}

// Finish ends the pending run and returns its frame, buf[start:end] in
// the Coalescer's buffer (reused by the next Start: send it first), and
// the virtio-net header that describes it: GSONone for a run of one
// segment, which is the frame as it came; otherwise a GSO TCP super-frame
// whose IP length and IPv4 header checksum are set and whose TCP checksum
// field holds the pseudo-header sum (NEEDS_CSUM). ok is false when no run
// was pending.
func (c *Coalescer) Finish() (buf []byte, start, end int, h offload.VnetHdr, ok bool) {
	if !c.pending {
		return nil, 0, 0, offload.VnetHdr{}, false
	}
	c.pending = false
	start, end = c.headroom, c.headroom+c.n
	if c.segs == 1 {
		return c.buf, start, end, offload.VnetHdr{}, true
	}
	f := c.buf[start:end]
	ip := f[ethLen:]
	var src, dst []byte
	gsoType := offload.GSOTCPv4
	if c.v6 {
		binary.BigEndian.PutUint16(ip[4:6], uint16(len(ip)-ipv6Len))
		src, dst = ip[8:24], ip[24:40]
		gsoType = offload.GSOTCPv6
	} else {
		binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], ^csum.Sum(ip[:ipv4Len], 0))
		src, dst = ip[12:16], ip[16:20]
	}
	// NEEDS_CSUM: the receiver treats the data as locally checksummed (the
	// sender checked it, or ESP's ICV authenticated it); the field holds
	// the pseudo-header sum, as a TSO sender leaves it.
	binary.BigEndian.PutUint16(f[c.l4+16:], csum.Pseudo(src, dst, header.ProtoTCP, c.n-c.l4))
	c.Segments += uint64(c.segs)
	return c.buf, start, end, offload.VnetHdr{Flags: offload.FlagNeedsCsum, GSOType: gsoType, HdrLen: uint16(c.pay),
		GSOSize: uint16(c.size), CsumStart: uint16(c.l4), CsumOffset: 16}, true
}
