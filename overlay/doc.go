// Package overlay is the home of vifsec's underlay encapsulations: how a
// tenant's Ethernet frame (clear, or already ESP inside) crosses the
// hypervisors' network. The work is in small packages, one job each, all
// pure functions over caller-owned buffers (no I/O, no goroutines, no
// allocation per packet):
//
//   - overlay/vxlan: the VXLAN wire format (RFC 7348) as a checked view,
//     encapsulation in place into the frame's headroom (outer Ethernet,
//     IPv4 or IPv6, UDP, VXLAN) and validating decapsulation with drop
//     reasons.
//   - overlay/entropy: the outer UDP source port: a keyed hash of the inner
//     flow (the 5-tuple for clear IP; addresses, SPI and VNI for ESP and
//     AH) so that underlay ECMP and RSS spread encrypted tenant traffic as
//     well as clear traffic.
//
// # Where it sits
//
// Outbound, after sa/esp: the data path picks the tenant's VNI and the
// remote VTEP for the destination MAC (the forwarding database, not here),
// asks entropy.Hasher.SourcePort for the inner frame's port and calls
// vxlan.Encap, which writes the outer headers in front of the frame.
// Inbound, before the SA lookup: vxlan.Decap validates the outer headers
// and returns the VNI (which tenant), the inner frame and the remote VTEP.
//
// # What it must not do
//
// It does not own the forwarding database, VNI-to-tenant mapping, learning
// or configuration (the tenant and daemon packages do); it opens no
// sockets; it never allocates or builds an error per packet: a refused
// packet is a drop.Reason that indexes a counter.
package overlay
