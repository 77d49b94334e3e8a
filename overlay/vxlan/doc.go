// Package vxlan encapsulates tenant Ethernet frames in VXLAN (RFC 7348)
// over an IPv4 or IPv6 underlay, and decapsulates them, in place in the
// caller's buffers.
//
// It owns the wire format (Header, a checked view), Encap (outer
// Ethernet, optional 802.1Q tag, IPv4/IPv6, UDP and VXLAN headers written
// into the frame's headroom) and Decap (validation of all of them, with a
// drop.Reason for each refusal). The outer source port comes from the
// caller (overlay/entropy); the remote VTEP and VNI from the caller's
// forwarding database.
//
// # Checksums
//
// Over IPv4 the UDP checksum is sent as zero (RFC 7348 §5) and verified
// on receipt when non-zero. Over IPv6 it is always computed and a zero
// checksum is refused on receipt: RFC 6935/6936 allow zero-checksum UDP
// tunnels over IPv6 only where both ends are configured for it per port
// and the tunnel protects its own payload, and here nothing else protects
// the VXLAN header: IPv6 has no header checksum, so a flipped bit in the
// VNI or a VTEP address would deliver a frame to another tenant. It is
// also what the Linux vxlan device does by default (udp6zerocsumtx and
// udp6zerocsumrx off): a kernel VTEP drops zero-checksum IPv6 VXLAN.
//
// Decap needs complete checksums. A frame a local stack sent through a
// veth with transmit checksum offload reaches an AF_PACKET socket on the
// peer as CHECKSUM_PARTIAL (PACKET_AUXDATA TP_STATUS_CSUMNOTREADY): its
// UDP checksum field holds only the pseudo-header sum and Decap refuses
// it as bad-checksum. Frames from a wire are complete; a lab with veth
// uplinks turns offload off on the peer (ethtool -K PEER tx off).
//
// # ECN and DSCP
//
// Encap copies DSCP and ECN from the inner IPv4/IPv6 header to the outer
// (RFC 6040 normal mode, uniform DSCP); Decap applies RFC 6040 §4.2 to
// the inner header (outer CE marks an ECT inner packet CE, and drops a
// Not-ECT one).
//
// # What it must not do
//
// No I/O, no state, no allocation and no error values per packet: Encap
// and Decap are pure functions of their arguments and the buffer, safe to
// call from any number of goroutines on different buffers, and every
// refusal is a drop.Reason that indexes a counter. Multicast underlays, learning
// and the VNI-to-tenant map are the caller's.
package vxlan
