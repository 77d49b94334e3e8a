// Package offloadtest builds and checks packets for the offload packages'
// tests: Ethernet frames and IP packets with TCP or UDP, VLAN tags, IPv4
// options and IPv6 extension headers, with correct lengths and checksums,
// and GSO super-frames with their virtio_net_hdr. Addresses are from the
// documentation ranges (RFC 5737, RFC 3849).
//
// Its checksum code is its own RFC 1071 loop, not offload/csum's, so a
// packet it calls valid was judged by code the offload packages do not
// share. It is for tests only: it allocates freely and panics on
// descriptions it cannot build.
package offloadtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vifsec/vifsec/offload"
)

// Documentation addresses and locally administered MACs.
var (
	V4A = netip.MustParseAddr("192.0.2.1")
	V4B = netip.MustParseAddr("198.51.100.2")
	V4C = netip.MustParseAddr("203.0.113.3")
	V6A = netip.MustParseAddr("2001:db8::1")
	V6B = netip.MustParseAddr("2001:db8:1::2")
	V6C = netip.MustParseAddr("2001:db8:2::3")

	MACA = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}
	MACB = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x53, 0x02}
)

// IP protocol numbers and TCP flags.
const (
	ProtoHopByHop = 0
	ProtoICMP     = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoICMPv6   = 58
	ProtoDstOpts  = 60

	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
	URG = 0x20
	ECE = 0x40
	CWR = 0x80
)

// Ext is one IPv6 extension header: its type (ProtoHopByHop, ProtoRouting,
// ProtoDstOpts, ProtoFragment) and the bytes after its next-header and
// length bytes; len(Body)+2 must be a multiple of 8.
type Ext struct {
	Type uint8
	Body []byte
}

// Packet describes a packet to build. Zero fields get defaults: TTL 64,
// window 65535, ports 40000 → 443, flags ACK for TCP.
type Packet struct {
	Src, Dst netip.Addr // both IPv4 or both IPv6
	VLANs    []uint16   // Ethernet only: 802.1Q tags, outermost first

	TOS        uint8 // IPv4 TOS / IPv6 traffic class
	TTL        uint8
	ID         uint16 // IPv4
	DF, MF     bool   // IPv4
	FragOff    uint16 // IPv4, in 8-byte units
	IPOptions  []byte // IPv4, len multiple of 4
	FlowLabel  uint32 // IPv6
	ExtHeaders []Ext  // IPv6

	UDP              bool
	Proto            uint8 // overrides TCP/UDP in the IP header (the L4 is still built as TCP/UDP)
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8 // 0 means ACK
	Window           uint16
	Urgent           uint16
	TCPOptions       []byte // len multiple of 4
	Payload          []byte

	// NoL4Checksum leaves the L4 checksum field 0.
	NoL4Checksum bool
	// RF sets the IPv4 reserved flag; TCPReserved is the low nibble of TCP
	// byte 12 (reserved bits and AccECN's AE).
	RF          bool
	TCPReserved uint8
	// NoDefaults builds zero fields as zero (for rebuilding parsed packets).
	NoDefaults bool
}

func (p Packet) v6() bool { return p.Src.Is6() }

func (p Packet) defaults() Packet {
	if p.NoDefaults {
		return p
	}
	if p.TTL == 0 {
		p.TTL = 64
	}
	if p.Window == 0 {
		p.Window = 65535
	}
	if p.SrcPort == 0 {
		p.SrcPort = 40000
	}
	if p.DstPort == 0 {
		p.DstPort = 443
	}
	if p.Flags == 0 && !p.UDP {
		p.Flags = ACK
	}
	if !p.Src.IsValid() {
		p.Src, p.Dst = V4A, V4B
	}
	return p
}

// L4Len is the transport header length.
func (p Packet) L4Len() int {
	if p.UDP {
		return 8
	}
	return 20 + len(p.TCPOptions)
}

// L3Len is the IP header length with options or extension headers.
func (p Packet) L3Len() int {
	if p.Src.Is6() {
		n := 40
		for _, e := range p.ExtHeaders {
			n += 2 + len(e.Body)
		}
		return n
	}
	return 20 + len(p.IPOptions)
}

// L2Len is the Ethernet header length with tags.
func (p Packet) L2Len() int { return 14 + 4*len(p.VLANs) }

// IP returns the IP packet.
func (p Packet) IP() []byte {
	p = p.defaults()
	if len(p.IPOptions)%4 != 0 || len(p.TCPOptions)%4 != 0 || len(p.TCPOptions) > 40 || len(p.IPOptions) > 40 {
		panic("offloadtest: options must be a multiple of 4 bytes, at most 40")
	}
	l4 := p.l4()
	proto := uint8(ProtoTCP)
	if p.UDP {
		proto = ProtoUDP
	}
	src, dst := p.Src.AsSlice(), p.Dst.AsSlice()
	if !p.NoL4Checksum {
		ps := pseudo(src, dst, proto, len(l4))
		off := 16
		if p.UDP {
			off = 6
		}
		c := ^sum(l4, ps)
		if p.UDP && c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[off:], c)
	}
	if p.Proto != 0 {
		proto = p.Proto
	}
	var b []byte
	if p.v6() {
		b = make([]byte, 40, p.L3Len()+len(l4))
		binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(p.TOS)<<20|p.FlowLabel&0xfffff)
		binary.BigEndian.PutUint16(b[4:], uint16(p.L3Len()-40+len(l4)))
		b[7] = p.TTL
		copy(b[8:], src)
		copy(b[24:], dst)
		next := &b[6]
		for _, e := range p.ExtHeaders {
			if (len(e.Body)+2)%8 != 0 {
				panic("offloadtest: extension header not a multiple of 8 bytes")
			}
			*next = e.Type
			b = append(b, 0, byte((len(e.Body)+2)/8-1))
			next = &b[len(b)-2]
			b = append(b, e.Body...)
		}
		*next = proto
	} else {
		hl := 20 + len(p.IPOptions)
		b = make([]byte, hl, hl+len(l4))
		b[0] = 0x40 | byte(hl/4)
		b[1] = p.TOS
		binary.BigEndian.PutUint16(b[2:], uint16(hl+len(l4)))
		binary.BigEndian.PutUint16(b[4:], p.ID)
		ff := p.FragOff & 0x1fff
		if p.DF {
			ff |= 0x4000
		}
		if p.MF {
			ff |= 0x2000
		}
		if p.RF {
			ff |= 0x8000
		}
		binary.BigEndian.PutUint16(b[6:], ff)
		b[8] = p.TTL
		b[9] = proto
		copy(b[12:], src)
		copy(b[16:], dst)
		copy(b[20:], p.IPOptions)
		binary.BigEndian.PutUint16(b[10:], ^sum(b[:hl], 0))
	}
	return append(b, l4...)
}

func (p Packet) l4() []byte {
	if p.UDP {
		b := make([]byte, 8, 8+len(p.Payload))
		binary.BigEndian.PutUint16(b[0:], p.SrcPort)
		binary.BigEndian.PutUint16(b[2:], p.DstPort)
		binary.BigEndian.PutUint16(b[4:], uint16(8+len(p.Payload)))
		return append(b, p.Payload...)
	}
	hl := 20 + len(p.TCPOptions)
	b := make([]byte, hl, hl+len(p.Payload))
	binary.BigEndian.PutUint16(b[0:], p.SrcPort)
	binary.BigEndian.PutUint16(b[2:], p.DstPort)
	binary.BigEndian.PutUint32(b[4:], p.Seq)
	binary.BigEndian.PutUint32(b[8:], p.Ack)
	b[12] = byte(hl/4)<<4 | p.TCPReserved&0x0f
	b[13] = p.Flags
	binary.BigEndian.PutUint16(b[14:], p.Window)
	binary.BigEndian.PutUint16(b[18:], p.Urgent)
	copy(b[20:], p.TCPOptions)
	return append(b, p.Payload...)
}

// Frame returns the Ethernet frame (MACB ← MACA) carrying p.IP().
func (p Packet) Frame() []byte {
	p = p.defaults()
	b := make([]byte, 0, p.L2Len()+p.L3Len()+p.L4Len()+len(p.Payload))
	b = append(b, MACB[:]...)
	b = append(b, MACA[:]...)
	for _, v := range p.VLANs {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, v)
	}
	et := uint16(0x0800)
	if p.v6() {
		et = 0x86dd
	}
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, p.IP()...)
}

// Super returns p as a GSO super-frame with its virtio_net_hdr: GSO type
// from the family and protocol (ecn adds GSO_ECN), gso_size gsoSize, and,
// with partial, NEEDS_CSUM with the pseudo-header sum in the L4 checksum
// field as a guest's stack leaves it (CHECKSUM_PARTIAL); without partial
// the full checksum is there.
func Super(p Packet, gsoSize uint16, partial, ecn bool) ([]byte, offload.VnetHdr) {
	p = p.defaults()
	f := p.Frame()
	h := offload.VnetHdr{GSOSize: gsoSize}
	switch {
	case p.UDP:
		h.GSOType = offload.GSOUDPL4
	case p.v6():
		h.GSOType = offload.GSOTCPv6
	default:
		h.GSOType = offload.GSOTCPv4
	}
	if ecn {
		h.GSOType |= offload.GSOECN
	}
	l4 := p.L2Len() + p.L3Len()
	h.HdrLen = uint16(l4 + p.L4Len())
	if partial {
		off := 16
		proto := uint8(ProtoTCP)
		if p.UDP {
			off, proto = 6, ProtoUDP
		}
		h.Flags = offload.FlagNeedsCsum
		h.CsumStart, h.CsumOffset = uint16(l4), uint16(off)
		binary.BigEndian.PutUint16(f[l4+off:], pseudo(p.Src.AsSlice(), p.Dst.AsSlice(), proto, len(f)-l4))
	}
	return f, h
}

// sum is RFC 1071: big-endian words, 32-bit accumulator.
func sum(b []byte, initial uint16) uint16 {
	acc := uint32(initial)
	for ; len(b) > 1; b = b[2:] {
		acc += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// Sum is the RFC 1071 ones' complement sum (not complemented), for tests
// that check a checksum themselves.
func Sum(b []byte, initial uint16) uint16 { return sum(b, initial) }

func pseudo(src, dst []byte, proto uint8, n int) uint16 {
	var b []byte
	b = append(b, src...)
	b = append(b, dst...)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, 0, 0, 0, proto)
	return sum(b, 0)
}

// Pseudo returns the pseudo-header sum, built as RFC 8200 §8.1 draws it
// (which sums to the same as RFC 793's IPv4 form).
func Pseudo(src, dst netip.Addr, proto uint8, n int) uint16 {
	return pseudo(src.AsSlice(), dst.AsSlice(), proto, n)
}

// Info is what Parse found in an IP packet.
type Info struct {
	V6         bool
	HdrLen     int // IP header, with options / extension headers
	Proto      uint8
	Frag       bool // IPv4 MF or offset, or an IPv6 fragment header
	L4         []byte
	Src, Dst   netip.Addr
	TotalLen   int // from the header
	ID         uint16
	DF         bool
	Seq, Ack   uint32 // TCP
	Flags      uint8  // TCP
	PayloadLen int    // TCP/UDP payload
}

// ErrNotIP is returned by Parse for bytes that are not an IP packet.
var ErrNotIP = errors.New("offloadtest: not an IP packet")

// Parse checks an IP packet the way a receiver would and describes it:
// IPv4 header checksum, lengths against the bytes (exact: no trailing
// bytes), and for TCP/UDP the full checksum and lengths.
func Parse(pkt []byte) (Info, error) {
	var in Info
	if len(pkt) < 1 {
		return in, ErrNotIP
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return in, fmt.Errorf("IPv4 header truncated: %d bytes", len(pkt))
		}
		hl := int(pkt[0]&15) * 4
		if hl < 20 || hl > len(pkt) {
			return in, fmt.Errorf("IPv4 IHL %d bad for %d bytes", hl, len(pkt))
		}
		if s := sum(pkt[:hl], 0); s != 0xffff {
			return in, fmt.Errorf("IPv4 header checksum bad (sum %#04x)", s)
		}
		in.TotalLen = int(binary.BigEndian.Uint16(pkt[2:]))
		if in.TotalLen != len(pkt) {
			return in, fmt.Errorf("IPv4 total length %d, packet %d bytes", in.TotalLen, len(pkt))
		}
		in.HdrLen, in.Proto = hl, pkt[9]
		in.ID = binary.BigEndian.Uint16(pkt[4:])
		ff := binary.BigEndian.Uint16(pkt[6:])
		in.DF, in.Frag = ff&0x4000 != 0, ff&0x3fff != 0
		in.Src = netip.AddrFrom4([4]byte(pkt[12:16]))
		in.Dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	case 6:
		in.V6 = true
		if len(pkt) < 40 {
			return in, fmt.Errorf("IPv6 header truncated: %d bytes", len(pkt))
		}
		in.TotalLen = 40 + int(binary.BigEndian.Uint16(pkt[4:]))
		if in.TotalLen != len(pkt) {
			return in, fmt.Errorf("IPv6 payload length %d, packet %d bytes", in.TotalLen-40, len(pkt))
		}
		in.Src = netip.AddrFrom16([16]byte(pkt[8:24]))
		in.Dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		next, off := pkt[6], 40
		for next == ProtoHopByHop || next == ProtoRouting || next == ProtoDstOpts || next == ProtoFragment {
			if off+8 > len(pkt) {
				return in, fmt.Errorf("IPv6 extension header truncated at %d", off)
			}
			if next == ProtoFragment {
				in.Frag = true
				next, off = pkt[off], off+8
				continue
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
		}
		if off > len(pkt) {
			return in, fmt.Errorf("IPv6 extension headers overrun the packet")
		}
		in.HdrLen, in.Proto = off, next
	default:
		return in, ErrNotIP
	}
	in.L4 = pkt[in.HdrLen:]
	if in.Frag {
		return in, nil
	}
	l4 := in.L4
	ps := Pseudo(in.Src, in.Dst, in.Proto, len(l4))
	switch in.Proto {
	case ProtoTCP:
		if len(l4) < 20 || int(l4[12]>>4)*4 < 20 || int(l4[12]>>4)*4 > len(l4) {
			return in, fmt.Errorf("TCP header bad (%d bytes)", len(l4))
		}
		if s := sum(l4, ps); s != 0xffff {
			return in, fmt.Errorf("TCP checksum bad (sum %#04x)", s)
		}
		in.Seq, in.Ack = binary.BigEndian.Uint32(l4[4:]), binary.BigEndian.Uint32(l4[8:])
		in.Flags = l4[13]
		in.PayloadLen = len(l4) - int(l4[12]>>4)*4
	case ProtoUDP:
		if len(l4) < 8 || int(binary.BigEndian.Uint16(l4[4:])) != len(l4) {
			return in, fmt.Errorf("UDP length bad (%d bytes)", len(l4))
		}
		c := binary.BigEndian.Uint16(l4[6:])
		if c == 0 && in.V6 {
			return in, errors.New("UDP over IPv6 without checksum")
		}
		if c != 0 {
			if s := sum(l4, ps); s != 0xffff {
				return in, fmt.Errorf("UDP checksum bad (sum %#04x)", s)
			}
		}
		in.PayloadLen = len(l4) - 8
	}
	return in, nil
}

// L2Len returns the Ethernet header length of frame (with up to two
// 802.1Q/802.1ad tags), or -1.
func L2Len(frame []byte) int {
	n := 14
	for range 3 {
		if len(frame) < n {
			return -1
		}
		et := binary.BigEndian.Uint16(frame[n-2:])
		if et != 0x8100 && et != 0x88a8 {
			return n
		}
		n += 4
	}
	return -1
}

// ParseFrame is Parse after the Ethernet header.
func ParseFrame(frame []byte) (Info, error) {
	n := L2Len(frame)
	if n < 0 {
		return Info{}, errors.New("offloadtest: Ethernet header truncated")
	}
	return Parse(frame[n:])
}
