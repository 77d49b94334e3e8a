// Package esp is the ESP transform (RFC 4303) on packets in caller
// buffers: Encap and Decap in place, transport and tunnel mode, IPv6 and
// IPv4, with the headroom and tailroom the caller leaves (Headroom,
// Tailroom, MaxPrefix), allocating nothing.
//
// It also owns UDP encapsulation of ESP for NAT traversal (RFC 3948): an
// SA with sa.Config.Encap sends and accepts only ESP in UDP, one without
// only plain ESP; and Classify, which tells plain ESP, ESP in UDP, IKE (on
// port 500, or 4500 behind the non-ESP marker) and NAT-keepalives apart in
// a packet from the wire, so the data path can find the SA by SPI or hand
// IKE to the control plane.
//
// What it must not do: look SAs up (the caller finds the SA by (vlan, mac,
// SPI) in sa.DB), apply policy (tenant), parse IKE messages (sa/ike), or
// walk IP headers with rules of its own: IPv4 and IPv6 headers and the
// IPv6 extension-header chain are read through package header, so that
// ESP finds the same upper layer as the SPD classifier.
package esp
