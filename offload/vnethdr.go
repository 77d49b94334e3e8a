package offload

import (
	"encoding/binary"

	"github.com/vifsec/vifsec/drop"
)

// VnetHdrLen is the size of struct virtio_net_hdr, the form AF_PACKET's
// PACKET_VNET_HDR and a tap's IFF_VNET_HDR (with the default
// TUNSETVNETHDRSZ) put in front of every frame.
const VnetHdrLen = 10

// virtio_net_hdr flags (include/uapi/linux/virtio_net.h).
const (
	// FlagNeedsCsum is VIRTIO_NET_HDR_F_NEEDS_CSUM: the L4 checksum is
	// partial (CHECKSUM_PARTIAL). The field at CsumStart+CsumOffset holds
	// the folded pseudo-header sum; the sender owes the sum over
	// [CsumStart, end of frame).
	FlagNeedsCsum uint8 = 1
	// FlagDataValid is VIRTIO_NET_HDR_F_DATA_VALID: the checksum was
	// already verified (CHECKSUM_UNNECESSARY); set on receive only.
	FlagDataValid uint8 = 2
)

// virtio_net_hdr gso_type values (include/uapi/linux/virtio_net.h).
const (
	GSONone  uint8 = 0    // VIRTIO_NET_HDR_GSO_NONE: not a GSO frame
	GSOTCPv4 uint8 = 1    // VIRTIO_NET_HDR_GSO_TCPV4: TSO over IPv4
	GSOUDP   uint8 = 3    // VIRTIO_NET_HDR_GSO_UDP: UFO (IP fragmentation); parsed, not segmented
	GSOTCPv6 uint8 = 4    // VIRTIO_NET_HDR_GSO_TCPV6: TSO over IPv6
	GSOUDPL4 uint8 = 5    // VIRTIO_NET_HDR_GSO_UDP_L4: USO, one UDP datagram per segment, IPv4 or IPv6
	GSOECN   uint8 = 0x80 // VIRTIO_NET_HDR_GSO_ECN: TCP with CWR set on the super-frame; OR-ed into a TCP type
)

// VnetHdr is struct virtio_net_hdr, include/uapi/linux/virtio_net.h:
//
//	 0      1      2      3      4      5      6      7      8      9
//	+------+------+------+------+------+------+------+------+------+------+
//	|flags |gso_  |  hdr_len    |  gso_size   | csum_start  | csum_offset |
//	|      |type  |             |             |             |             |
//	+------+------+------+------+------+------+------+------+------+------+
//
// The 16-bit fields are __virtio16. For the legacy (pre-virtio-1.0) header
// that AF_PACKET's PACKET_VNET_HDR uses, that means the host's native byte
// order: net/packet/af_packet.c converts with vio_le() =
// virtio_legacy_is_little_endian(), which is true exactly when the kernel
// is built little-endian (x86-64, little-endian arm64), false on
// big-endian hosts (s390x). A tap follows the same rule unless
// TUNSETVNETLE/TUNSETVNETBE overrode it, and virtio 1.0 devices always use
// little-endian. Decode and Put therefore use binary.NativeEndian; a tap
// switched to the other order is not supported.
//
// It is a decoded copy rather than a view over the buffer: ten bytes that
// are read once per frame, and the buffer they came from is reused for
// segmentation output.
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8  // a GSO* type, possibly | GSOECN
	HdrLen     uint16 // Ethernet+IP+L4 header length; a hint (the kernel fills in skb_headlen)
	GSOSize    uint16 // L4 payload bytes per segment
	CsumStart  uint16 // with FlagNeedsCsum: where the checksummed range starts (the L4 header)
	CsumOffset uint16 // with FlagNeedsCsum: the checksum field's offset from CsumStart
}

// NeedsCsum reports whether the frame's L4 checksum is partial.
func (h VnetHdr) NeedsCsum() bool { return h.Flags&FlagNeedsCsum != 0 }

// DataValid reports whether the device verified the frame's checksums.
func (h VnetHdr) DataValid() bool { return h.Flags&FlagDataValid != 0 }

// GSO returns the GSO type without the ECN bit.
func (h VnetHdr) GSO() uint8 { return h.GSOType &^ GSOECN }

// ECN reports whether the ECN bit is set in the GSO type.
func (h VnetHdr) ECN() bool { return h.GSOType&GSOECN != 0 }

// DecodeVnetHdr reads the ten header bytes at the start of b without
// checking them; false if b is shorter than VnetHdrLen. Use Validate (or
// ParseVnetHdr) before trusting any field.
func DecodeVnetHdr(b []byte) (VnetHdr, bool) {
	if len(b) < VnetHdrLen {
		return VnetHdr{}, false
	}
	return VnetHdr{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.NativeEndian.Uint16(b[2:4]),
		GSOSize:    binary.NativeEndian.Uint16(b[4:6]),
		CsumStart:  binary.NativeEndian.Uint16(b[6:8]),
		CsumOffset: binary.NativeEndian.Uint16(b[8:10]),
	}, true
}

// Put writes h into b[:VnetHdrLen] in the byte order DecodeVnetHdr reads.
// It reports false, writing nothing, if b is too short.
func (h VnetHdr) Put(b []byte) bool {
	if len(b) < VnetHdrLen {
		return false
	}
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.NativeEndian.PutUint16(b[2:4], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:6], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:8], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:10], h.CsumOffset)
	return true
}

// ParseVnetHdr decodes the virtio_net_hdr at the start of b and validates
// it against the frame that follows it, b[VnetHdrLen:]. b is guest input:
// any inconsistency is a drop.BadVnetHdr, never a panic.
func ParseVnetHdr(b []byte) (VnetHdr, drop.Reason) { return parseVnetHdr(b, false) }

// ParseReceivedVnetHdr is ParseVnetHdr for what the kernel hands a reader
// (an uplink's packet socket): the header is checked with
// ValidateReceived's rules. b is still untrusted (what the wire sent,
// as the kernel or a NIC merged it).
func ParseReceivedVnetHdr(b []byte) (VnetHdr, drop.Reason) { return parseVnetHdr(b, true) }

func parseVnetHdr(b []byte, received bool) (VnetHdr, drop.Reason) {
	h, ok := DecodeVnetHdr(b)
	if !ok {
		return VnetHdr{}, drop.BadVnetHdr
	}
	if d := h.validate(b[VnetHdrLen:], received); d != drop.None {
		return VnetHdr{}, d
	}
	return h, drop.None
}

// Offsets of the checksum field within the L4 header.
const (
	tcpCsumOff = 16
	udpCsumOff = 6
	tcpMinLen  = 20
	udpLen     = 8
)

// Validate checks every field of h against frame, the bytes h describes,
// with the rules of the kernel's virtio_net_hdr_to_skb
// (include/linux/virtio_net.h) and a few more:
//
//   - flags: only NEEDS_CSUM or DATA_VALID, not both;
//   - gso_type: NONE, TCPV4, TCPV6, UDP or UDP_L4; the ECN bit only on a
//     TCP type (other bits, e.g. the proposed AccECN and UDP-tunnel bits,
//     are refused);
//   - gso_size: non-zero for a GSO type, and not 0xffff (GSO_BY_FRAGS);
//   - NEEDS_CSUM: csum_start+csum_offset+2 ≤ len(frame); for GSO, the
//     checksum field is TCP's (offset 16) or UDP's (offset 6) and the
//     whole TCP or UDP header is in the frame;
//   - UDP_L4 requires NEEDS_CSUM, as the kernel does (ValidateReceived
//     also takes DATA_VALID);
//   - hdr_len ≤ len(frame). hdr_len is otherwise a hint (the kernel sets it
//     to the skb's linear length, which may exceed the headers), so the
//     segmenter finds the headers itself.
//
// csum_start and csum_offset are not checked without NEEDS_CSUM: they mean
// nothing then, as in the kernel. Validate does not parse the frame's
// headers; gso.Segment checks that they agree with h.
func (h VnetHdr) Validate(frame []byte) drop.Reason { return h.validate(frame, false) }

// ValidateReceived is Validate for a header the kernel wrote in front of a
// frame it hands over (a packet socket's or a tap's read,
// virtio_net_hdr_from_skb), where a UDP_L4 super-frame may come with
// DATA_VALID instead of NEEDS_CSUM: datagrams a NIC or the kernel
// coalesced (UDP GRO, for forwarding) whose checksums the device already
// verified. Its UDP checksum field then means nothing for any datagram;
// whoever cuts it makes each datagram's (gso.SplitUDP), and whoever passes
// it on whole gives it a partial checksum (gso.PartialUDP). A sender
// must not write such a header: the kernel refuses UDP_L4 without
// NEEDS_CSUM, which is why Validate, for frames a guest sends, does too.
func (h VnetHdr) ValidateReceived(frame []byte) drop.Reason { return h.validate(frame, true) }

func (h VnetHdr) validate(frame []byte, received bool) drop.Reason {
	const known = FlagNeedsCsum | FlagDataValid
	if h.Flags&^known != 0 || h.Flags == known {
		return drop.BadVnetHdr
	}
	tcp := false
	switch h.GSO() {
	case GSONone, GSOUDP, GSOUDPL4:
	case GSOTCPv4, GSOTCPv6:
		tcp = true
	default:
		return drop.BadVnetHdr
	}
	if h.ECN() && !tcp {
		return drop.BadVnetHdr
	}
	gso := h.GSO() != GSONone
	if gso && (h.GSOSize == 0 || h.GSOSize == 0xffff) {
		return drop.BadVnetHdr
	}
	if int(h.HdrLen) > len(frame) {
		return drop.BadVnetHdr
	}
	if !h.NeedsCsum() {
		if h.GSO() == GSOUDPL4 && !(received && h.DataValid()) {
			return drop.BadVnetHdr
		}
		return drop.None
	}
	start, off := int(h.CsumStart), int(h.CsumOffset)
	if start+off+2 > len(frame) {
		return drop.BadVnetHdr
	}
	switch {
	case tcp:
		if off != tcpCsumOff || start+tcpMinLen > len(frame) {
			return drop.BadVnetHdr
		}
	case gso: // UDP, UDP_L4
		if off != udpCsumOff || start+udpLen > len(frame) {
			return drop.BadVnetHdr
		}
	}
	return drop.None
}

// Shift returns h for its frame after delta bytes were inserted (delta > 0)
// or removed (delta < 0) in front of the L3 header, e.g. -4 after the
// caller strips an inline 802.1Q tag: CsumStart (with NEEDS_CSUM) and a
// non-zero HdrLen move by delta. It reports false if they would leave the
// 16-bit range.
func (h VnetHdr) Shift(delta int) (VnetHdr, bool) {
	if h.NeedsCsum() {
		v := int(h.CsumStart) + delta
		if v < 0 || v > 0xffff {
			return h, false
		}
		h.CsumStart = uint16(v)
	}
	if h.HdrLen != 0 {
		v := int(h.HdrLen) + delta
		if v < 0 || v > 0xffff {
			return h, false
		}
		h.HdrLen = uint16(v)
	}
	return h, true
}
