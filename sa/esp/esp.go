package esp

import (
	"encoding/binary"
	"github.com/vifsec/vifsec/drop"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/sa"
)

// Buffer geometry. A packet handed to Encap sits at buf[off:off+n] with at
// least Headroom bytes before it and Tailroom bytes after it, so the ESP
// header, IV and outer header are written in front and the trailer and ICV
// behind, and the cipher runs in place: no copy of the payload, no
// allocation.
const (
	// MaxPrefix is the most Encap writes in front of the packet it is
	// given: an outer IPv6 header (40), a UDP header (8, RFC 3948), the
	// ESP header (8) and a 16-byte IV.
	MaxPrefix = header.IPv6Len + udpLen + 8 + 16 // 72
	// Headroom covers MaxPrefix, rounded up with room for the link and
	// overlay headers the layers outside ESP add (Ethernet, an 802.1Q tag,
	// a virtio-net header). Callers that stack two ESP layers (ESP inside
	// VXLAN inside underlay ESP) need more: see internal/datapath.
	Headroom = 136
	// Tailroom covers the largest trailer: 15 bytes of padding, pad
	// length, next header and a 32-byte ICV, rounded up.
	Tailroom = 64
)

// Header is a view of an ESP header (RFC 4303 §2). Its accessors assume
// len(h) ≥ 8: get one from ParseHeader.
type Header []byte

// ParseHeader returns the ESP header at the start of b, or false if b is too
// short to hold one.
func ParseHeader(b []byte) (Header, bool) {
	if len(b) < 8 {
		return nil, false
	}
	return Header(b[:8]), true
}

func (h Header) SPI() uint32 { return binary.BigEndian.Uint32(h[0:4]) }
func (h Header) Seq() uint32 { return binary.BigEndian.Uint32(h[4:8]) }

// Locate finds the ESP header of an IP packet carrying plain ESP (IP
// protocol 50): it returns the ESP offset within pkt and the SPI, for the
// SA lookup that precedes Decap. Classify also finds ESP in UDP.
func Locate(pkt []byte) (off int, spi uint32, ok bool) {
	c := Classify(pkt)
	if c.Kind != KindESP {
		return 0, 0, false
	}
	return c.ESP, c.SPI, true
}

// Encap protects the clear IP packet buf[off:off+n] with s, in place, and
// returns where the ESP packet now lies in buf. Transport mode inserts ESP
// after the IP header (IPv4 options kept; IPv6 after hop-by-hop, routing
// and fragment headers); tunnel mode puts the whole packet inside a new
// outer header from s's endpoints. An SA with Encap puts a UDP header in
// front of ESP (RFC 3948 §3.1.1, §3.1.3) with its ports: checksum 0 over
// IPv4 (RFC 3948 §2.1), computed over IPv6, where UDP must carry one (RFC
// 8200 §8.1).
//
// Encap allocates nothing. A drop leaves buf's packet in an unspecified
// state. It is EncapSeq with the number NextSeq reserves once the packet
// is found valid.
//
// Stages:
//  1. Validate the inner IP header and find where ESP goes.
//  2. Reserve a sequence number (EncapSeq: take the caller's) and charge
//     the lifetime (drop: seq-overflow, expired).
//  3. Write the trailer: padding 1,2,3…, pad length, next header.
//  4. Move the IP header (transport) or write the outer header (tunnel),
//     the UDP header (Encap) and the ESP header in front.
//  5. Seal in place (AEAD or CBC+HMAC); over IPv6, the UDP checksum.
func Encap(s *sa.SA, sc *sa.Scratch, buf []byte, off, n int) (start, end int, d drop.Reason) {
	return encap(s, sc, buf, off, n, 0, true)
}

// EncapSeq is Encap with sequence number seq, which the caller reserved
// with s.ReserveSeq: a worker reserves a block for a run of packets,
// seals them on several goroutines at once (each with its own Scratch)
// and sends them in the order of their numbers. A packet dropped here
// leaves its number unused, a harmless gap. Safe for concurrent use on
// one SA with distinct numbers and buffers.
func EncapSeq(s *sa.SA, sc *sa.Scratch, buf []byte, off, n int, seq uint64) (start, end int, d drop.Reason) {
	return encap(s, sc, buf, off, n, seq, false)
}

func encap(s *sa.SA, sc *sa.Scratch, buf []byte, off, n int, seq uint64, reserve bool) (start, end int, d drop.Reason) {
	if off < 0 || n < 0 || off+n > len(buf) {
		return 0, 0, drop.NoRoom
	}
	// 1.
	pkt := buf[off : off+n]
	ln, v6, ok := ipLen(pkt)
	if !ok {
		return 0, 0, drop.Malformed
	}
	pkt = pkt[:ln]
	tunnel := s.Mode() == sa.ModeTunnel
	var hdrLen, nextField int // IP header bytes that stay in front of ESP
	var next byte
	switch {
	case tunnel && v6:
		next = header.ProtoIPv6
	case tunnel:
		next = header.ProtoIPv4
	case v6:
		var frag bool
		hdrLen, nextField, frag, ok = ipv6Insert(pkt)
		if !ok {
			return 0, 0, drop.Malformed
		}
		if frag {
			return 0, 0, drop.Fragment
		}
		next = pkt[nextField]
	default:
		if header.IPv4IsFragment(pkt) {
			return 0, 0, drop.Fragment
		}
		hdrLen, nextField = int(pkt[0]&0x0f)*4, 9
		next = pkt[9]
	}
	if !tunnel && v6 != !s.Dst().Unmap().Is4() {
		return 0, 0, drop.Malformed // transport SA of the other family
	}
	outerLen := hdrLen
	outerV6 := v6
	if tunnel {
		outerV6 = !s.Dst().Unmap().Is4()
		outerLen = header.IPv4MinLen
		if outerV6 {
			outerLen = header.IPv6Len
		}
	}
	espHdr := 8 + s.IVLen()
	encap, udp := s.Encap()
	ul := 0
	if udp {
		ul = udpLen
	}
	payload := ln - hdrLen
	padLen := (s.Align() - (payload+2)%s.Align()) % s.Align()
	icv := s.ICVLen()
	start = off + hdrLen - espHdr - ul - outerLen
	end = off + ln + padLen + 2 + icv
	if start < 0 || end > len(buf) {
		return 0, 0, drop.NoRoom
	}
	if end-start > 0xffff+header.IPv6Len || (!outerV6 && end-start > 0xffff) {
		return 0, 0, drop.TooBig
	}
	// 2.
	if reserve {
		if seq, d = s.NextSeq(); d != drop.None {
			return 0, 0, d
		}
	}
	if d = s.Account(ln); d != drop.None {
		return 0, 0, d
	}
	// 3.
	tr := buf[off+ln : end-icv]
	for i := 0; i < padLen; i++ {
		tr[i] = byte(i + 1)
	}
	tr[padLen] = byte(padLen)
	tr[padLen+1] = next
	// 4.
	espAt := off + hdrLen - espHdr
	proto := byte(header.ProtoESP)
	if udp {
		proto = header.ProtoUDP
	}
	if tunnel {
		writeOuter(s, buf[start:espAt-ul], pkt, v6, outerV6, end-start, uint16(seq), proto)
	} else {
		copy(buf[start:espAt-ul], buf[off:off+hdrLen]) // memmove: regions overlap
		h := buf[start : espAt-ul]
		h[nextField] = proto
		if v6 {
			binary.BigEndian.PutUint16(h[4:6], uint16(end-start-header.IPv6Len))
		} else {
			binary.BigEndian.PutUint16(h[2:4], uint16(end-start))
			ipv4Checksum(h)
		}
	}
	if udp {
		u := buf[espAt-udpLen : espAt]
		binary.BigEndian.PutUint16(u[0:2], encap.SrcPort)
		binary.BigEndian.PutUint16(u[2:4], encap.DstPort)
		binary.BigEndian.PutUint16(u[4:6], uint16(end-espAt+udpLen))
		u[6], u[7] = 0, 0
	}
	binary.BigEndian.PutUint32(buf[espAt:], s.SPI())
	binary.BigEndian.PutUint32(buf[espAt+4:], uint32(seq))
	// 5.
	s.Seal(buf[espAt:end], seq, sc)
	if udp && outerV6 {
		h := buf[start:]
		u := buf[espAt-udpLen : end]
		c := csum.Checksum(u, csum.Pseudo(h[8:24], h[24:40], header.ProtoUDP, len(u)))
		if c == 0 {
			c = 0xffff // RFC 768: a computed 0 is sent as all ones
		}
		binary.BigEndian.PutUint16(u[6:8], c)
	}
	return start, end, drop.None
}

// writeOuter writes a tunnel-mode outer header into h (RFC 4301 §5.1.2):
// DSCP and ECN copied from the inner header (RFC 6040 normal mode), flow
// label copied from an inner IPv6 header or derived from the inner
// addresses (RFC 6438), hop limit 64, IPv4 with DF set (path MTU is
// signalled to the guest, not left to fragmentation) and the ID taken from
// the sequence number (RFC 6864: any value is fine for atomic datagrams).
// proto is ESP, or UDP for ESP in UDP.
func writeOuter(s *sa.SA, h, inner []byte, innerV6, outerV6 bool, total int, id uint16, proto byte) {
	t := tos(inner, innerV6)
	src, dst := s.Src().Unmap(), s.OuterDst().Unmap()
	if outerV6 {
		var fl uint32
		if innerV6 {
			fl = binary.BigEndian.Uint32(inner[0:4]) & 0xfffff
		} else {
			fl = flowHash(inner[12:20], inner[9])
		}
		binary.BigEndian.PutUint32(h[0:4], 6<<28|uint32(t)<<20|fl)
		binary.BigEndian.PutUint16(h[4:6], uint16(total-header.IPv6Len))
		h[6], h[7] = proto, 64
		a, b := src.As16(), dst.As16()
		copy(h[8:24], a[:])
		copy(h[24:40], b[:])
		return
	}
	h[0], h[1] = 0x45, t
	binary.BigEndian.PutUint16(h[2:4], uint16(total))
	binary.BigEndian.PutUint16(h[4:6], id)
	h[6], h[7] = 0x40, 0 // DF
	h[8], h[9] = 64, proto
	a, b := src.As4(), dst.As4()
	copy(h[12:16], a[:])
	copy(h[16:20], b[:])
	ipv4Checksum(h[:header.IPv4MinLen])
}

// flowHash derives a non-zero 20-bit flow label from inner IPv4 addresses
// and protocol (RFC 6438 §3).
func flowHash(addrs []byte, proto byte) uint32 {
	h := uint32(2166136261)
	for _, c := range addrs {
		h = (h ^ uint32(c)) * 16777619
	}
	h = (h ^ uint32(proto)) * 16777619
	h ^= h >> 20
	if fl := h & 0xfffff; fl != 0 {
		return fl
	}
	return 1
}

// Decap verifies and removes ESP from the IP packet buf[off:off+n] with s,
// in place, and returns where the clear packet now lies in buf. s is the SA
// the caller found for the packet's (vlan, mac, SPI). An SA with Encap
// takes only ESP in UDP to port 4500, one without only plain ESP
// (drop: encap-mismatch). After transport-mode decap of ESP in UDP the
// inner checksum is repaired, as RFC 3948 §3.1.2 allows: the sender
// computed it over addresses a NAT may since have rewritten, so a TCP,
// ICMPv6 or IPv6 UDP checksum is recomputed over the packet's addresses as
// it now stands (ESP's ICV already vouched for the bytes it covers), and
// an IPv4 UDP checksum is zeroed.
//
// Stages:
//  1. Find the ESP header (after the UDP header with Encap); check the
//     SPI is s's.
//  2. Anti-replay check on the inferred sequence number (before decryption).
//  3. Verify the ICV and decrypt in place (drop: auth-failed).
//  4. Move the replay window (only now, after authentication).
//  5. Check the trailer: padding, pad length, next header.
//  6. Rebuild the clear packet: restore the IP header (transport; with
//     Encap, repair the inner checksum) or take the inner packet and apply
//     RFC 6040 ECN decapsulation (tunnel).
//
// Decap allocates nothing.
func Decap(s *sa.SA, sc *sa.Scratch, buf []byte, off, n int) (start, end int, d drop.Reason) {
	if off < 0 || n < 0 || off+n > len(buf) {
		return 0, 0, drop.Malformed
	}
	// 1.
	pkt := buf[off : off+n]
	ln, v6, ok := ipLen(pkt)
	if !ok {
		return 0, 0, drop.Malformed
	}
	pkt = pkt[:ln]
	var hdrLen, nextField int
	var proto byte
	var frag bool
	if v6 {
		hdrLen, nextField, proto, frag, ok = ipv6Upper(pkt)
	} else {
		hdrLen, nextField, proto = int(pkt[0]&0x0f)*4, 9, pkt[9]
		frag = header.IPv4IsFragment(pkt)
	}
	if frag {
		return 0, 0, drop.Fragment
	}
	if !ok {
		return 0, 0, drop.Malformed
	}
	_, udp := s.Encap()
	espAt := hdrLen
	switch {
	case proto == header.ProtoESP && !udp:
	case proto == header.ProtoUDP && espInUDP(pkt[hdrLen:]):
		if !udp {
			return 0, 0, drop.EncapMismatch
		}
		espAt += udpLen
	case proto == header.ProtoESP:
		return 0, 0, drop.EncapMismatch
	default:
		return 0, 0, drop.Malformed
	}
	h, ok := ParseHeader(pkt[espAt:])
	if !ok {
		return 0, 0, drop.Malformed
	}
	if h.SPI() != s.SPI() || s.Dir() == sa.DirOut {
		return 0, 0, drop.NoSA
	}
	if s.Expired() {
		return 0, 0, drop.Expired
	}
	// 2.
	seq, d := s.ReplayCheck(h.Seq())
	if d != drop.None {
		return 0, 0, d
	}
	// 3.
	pt, d := s.Open(pkt[espAt:], seq, sc)
	if d != drop.None {
		return 0, 0, d
	}
	// 4.
	if d = s.ReplayAccept(seq); d != drop.None {
		return 0, 0, d
	}
	// 5.
	if len(pt) < 2 {
		return 0, 0, drop.BadPadding
	}
	next := pt[len(pt)-1]
	padLen := int(pt[len(pt)-2])
	if padLen+2 > len(pt) {
		return 0, 0, drop.BadPadding
	}
	pad := pt[len(pt)-2-padLen : len(pt)-2]
	for i, b := range pad {
		if b != byte(i+1) {
			return 0, 0, drop.BadPadding
		}
	}
	payload := pt[:len(pt)-2-padLen]
	if next == header.ProtoNoNext {
		return 0, 0, drop.Dummy
	}
	// Lifetimes count the clear IP packet, as Encap does: the inner
	// packet in tunnel mode, header plus payload in transport mode.
	clearLen := hdrLen + len(payload)
	if s.Mode() == sa.ModeTunnel {
		clearLen = len(payload)
	}
	if d = s.Account(clearLen); d != drop.None {
		return 0, 0, d
	}
	// 6.
	payloadAt := off + espAt + 8 + s.IVLen()
	if s.Mode() == sa.ModeTunnel {
		return decapTunnel(buf, payloadAt, payload, next, tos(pkt, v6))
	}
	if next == header.ProtoESP || next == header.ProtoIPv4 && v6 {
		return 0, 0, drop.Malformed
	}
	hdr := buf[off : off+hdrLen]
	hdr[nextField] = next
	start = payloadAt - hdrLen
	end = payloadAt + len(payload)
	copy(buf[start:payloadAt], hdr) // memmove: regions overlap
	h2 := buf[start:payloadAt]
	if v6 {
		binary.BigEndian.PutUint16(h2[4:6], uint16(end-start-header.IPv6Len))
	} else {
		binary.BigEndian.PutUint16(h2[2:4], uint16(end-start))
		ipv4Checksum(h2)
	}
	if udp {
		natChecksum(buf[start:end], hdrLen, nextField, v6)
	}
	return start, end, drop.None
}

// decapTunnel checks the inner packet and applies the RFC 6040 §4.2
// decapsulation table to its ECN field.
func decapTunnel(buf []byte, at int, inner []byte, next, outerTOS byte) (start, end int, d drop.Reason) {
	ln, v6, ok := ipLen(inner)
	if !ok || (next == header.ProtoIPv6) != v6 || (next != header.ProtoIPv6 && next != header.ProtoIPv4) {
		return 0, 0, drop.Malformed
	}
	inner = inner[:ln]
	const ect1, ect0, ce = 1, 2, 3
	it := tos(inner, v6)
	in, out := it&3, outerTOS&3
	switch {
	case out == ce && in == 0:
		return 0, 0, drop.ECN
	case out == ce && in != ce:
		setTOS(inner, v6, it|ce)
	case out == ect1 && in == ect0:
		setTOS(inner, v6, it&^3|ect1)
	}
	return at, at + ln, drop.None
}
