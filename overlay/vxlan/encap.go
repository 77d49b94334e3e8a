package vxlan

import (
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"

	"encoding/binary"
	"net/netip"

	"github.com/vifsec/vifsec/offload/csum"
)

// Outer describes the encapsulation toward one remote VTEP in one VNI:
// what Encap writes in front of every frame. Encap only reads it, so one
// Outer may be shared by any number of goroutines.
type Outer struct {
	SrcMAC, DstMAC [6]byte // underlay Ethernet: local uplink, next hop
	// VLAN is the underlay's 802.1Q VLAN ID (1–4094), 0 for untagged.
	VLAN uint16
	// Src and Dst are the local and remote VTEP addresses, both IPv4 (or
	// IPv4-mapped) or both IPv6.
	Src, Dst netip.Addr
	// DstPort is the remote VTEP's UDP port; 0 means DefaultPort.
	DstPort uint16
	// VNI is the tenant's VXLAN Network Identifier, at most MaxVNI.
	VNI uint32
}

// Len returns how many bytes Encap puts in front of a frame with o, or 0
// if o is unusable (Encap would return drop.BadOuter).
func (o *Outer) Len() int {
	src, dst := o.Src.Unmap(), o.Dst.Unmap()
	if o.VNI > MaxVNI || !src.IsValid() || src.Is4() != dst.Is4() || src.Is6() != dst.Is6() {
		return 0
	}
	n := header.EthernetLen + header.IPv4MinLen + header.UDPLen + HeaderLen
	if src.Is6() {
		n += header.IPv6Len - header.IPv4MinLen
	}
	if o.VLAN != 0 {
		n += header.VLANTagLen
	}
	return n
}

// Encap encapsulates the Ethernet frame buf[off:off+n] in VXLAN toward o,
// in place: the outer headers are written into buf[off-o.Len():off], and
// the VXLAN packet is buf[start:off+n]. srcPort is the outer UDP source
// port, normally entropy.Hasher.SourcePort of the frame.
//
// Stages:
//  1. Check the buffer, the frame and o (drop: no-room, malformed, bad-outer, too-big).
//  2. VXLAN header: I flag, VNI.
//  3. UDP: srcPort, o.DstPort, length; checksum zero on IPv4 (RFC 7348 §5).
//  4. IPv4 (DF, TTL 64, ID 0: an atomic datagram, RFC 6864) or IPv6 (hop
//     limit 64, flow label from srcPort, RFC 6438), DSCP and ECN copied
//     from the inner IP header (RFC 6040 normal mode).
//  5. IPv6 only: the UDP checksum over the whole datagram (RFC 6935/6936,
//     see the package doc).
//  6. Outer Ethernet, with the 802.1Q tag if o.VLAN is set.
//
// Encap allocates nothing and changes nothing in buf on a drop.
func Encap(o *Outer, srcPort uint16, buf []byte, off, n int) (start int, d drop.Reason) {
	// 1.
	if off < 0 || n < 0 || off > len(buf) || n > len(buf)-off {
		return 0, drop.NoRoom
	}
	if n < header.EthernetLen {
		return 0, drop.Malformed
	}
	hl := o.Len()
	if hl == 0 {
		return 0, drop.BadOuter
	}
	if hl > off {
		return 0, drop.NoRoom
	}
	v6 := hl-header.EthernetLen-header.UDPLen-HeaderLen >= header.IPv6Len
	ul := header.UDPLen + HeaderLen + n
	if ul > 0xffff || (!v6 && header.IPv4MinLen+ul > 0xffff) {
		return 0, drop.TooBig
	}
	start = off - hl
	dstPort := o.DstPort
	if dstPort == 0 {
		dstPort = DefaultPort
	}
	// 2.
	Header(buf[off-HeaderLen : off]).Put(o.VNI)
	// 3.
	u := buf[off-HeaderLen-header.UDPLen : off-HeaderLen]
	binary.BigEndian.PutUint16(u[0:2], srcPort)
	binary.BigEndian.PutUint16(u[2:4], dstPort)
	binary.BigEndian.PutUint16(u[4:6], uint16(ul))
	u[6], u[7] = 0, 0
	// 4.
	tos, _, _, _ := innerTOS(buf[off : off+n])
	ipAt := start + header.EthernetLen
	if o.VLAN != 0 {
		ipAt += header.VLANTagLen
	}
	src, dst := o.Src.Unmap(), o.Dst.Unmap()
	if v6 {
		h := buf[ipAt : ipAt+header.IPv6Len]
		binary.BigEndian.PutUint32(h[0:4], 6<<28|uint32(tos)<<20|flowLabel(srcPort))
		binary.BigEndian.PutUint16(h[4:6], uint16(ul))
		h[6], h[7] = header.ProtoUDP, 64
		a, b := src.As16(), dst.As16()
		copy(h[8:24], a[:])
		copy(h[24:40], b[:])
		// 5.
		c := csum.Checksum(buf[off-HeaderLen-header.UDPLen:off+n], csum.Pseudo(h[8:24], h[24:40], header.ProtoUDP, ul))
		if c == 0 {
			c = 0xffff // zero means "no checksum" (RFC 768)
		}
		binary.BigEndian.PutUint16(u[6:8], c)
	} else {
		h := buf[ipAt : ipAt+header.IPv4MinLen]
		h[0], h[1] = 0x45, tos
		binary.BigEndian.PutUint16(h[2:4], uint16(header.IPv4MinLen+ul))
		h[4], h[5] = 0, 0
		h[6], h[7] = 0x40, 0 // DF
		h[8], h[9] = 64, header.ProtoUDP
		h[10], h[11] = 0, 0
		a, b := src.As4(), dst.As4()
		copy(h[12:16], a[:])
		copy(h[16:20], b[:])
		binary.BigEndian.PutUint16(h[10:12], csum.Checksum(h, 0))
	}
	// 6.
	e := buf[start:ipAt]
	copy(e[0:6], o.DstMAC[:])
	copy(e[6:12], o.SrcMAC[:])
	et := uint16(header.EtherTypeIPv4)
	if v6 {
		et = header.EtherTypeIPv6
	}
	if o.VLAN != 0 {
		binary.BigEndian.PutUint16(e[12:14], header.EtherTypeVLAN)
		binary.BigEndian.PutUint16(e[14:16], o.VLAN&0x0fff)
		binary.BigEndian.PutUint16(e[16:18], et)
	} else {
		binary.BigEndian.PutUint16(e[12:14], et)
	}
	return start, drop.None
}

// flowLabel spreads the 14 significant bits of the source port over a
// non-zero 20-bit IPv6 flow label (RFC 6438 §3: the label of a tunnel
// flow is derived from the inner flow, here through the port that already
// is): a multiply by an odd constant, top bits.
func flowLabel(port uint16) uint32 {
	fl := (uint32(port) * 0x9e3779b1) >> 12
	if fl == 0 {
		return 1
	}
	return fl
}
