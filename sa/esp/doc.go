// Package esp is the ESP transform (RFC 4303) on packets in caller
// buffers: Encap and Decap in place, transport and tunnel mode, IPv6 and
// IPv4, with the headroom and tailroom the caller leaves (Headroom,
// Tailroom, MaxPrefix), allocating nothing. Encap takes the SA's next
// sequence number; EncapSeq seals with a number the caller reserved
// (sa.SA.ReserveSeq), so that a run of packets of one SA can be sealed on
// several goroutines at once and still leave in number order. Decap is
// safe for concurrent callers on one SA: the replay check and the
// window's move are under the SA's lock, the move only after
// authentication, so each of a run of one SA's packets decrypted at once
// is accepted once.
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
