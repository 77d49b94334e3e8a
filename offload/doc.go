// Package offload is the vocabulary shared by vifsec's offload packages:
// the virtio_net_hdr that carries a guest's GSO and checksum-offload
// metadata next to each frame (VnetHdr). The reasons its packages give for
// refusing a packet are package drop's, the one vocabulary of the data
// path (drop.BadVnetHdr, drop.Unsupported, drop.TooManySegments and the
// shared counters such as drop.Malformed).
//
// The work is done in small packages, one job each, all pure functions
// over caller-owned buffers (no I/O, no goroutines, no allocation per
// packet):
//
//   - offload/csum: Internet checksums (RFC 1071), completing a
//     CHECKSUM_PARTIAL frame, pseudo-headers, incremental update (RFC 1624).
//   - offload/gso: software segmentation of TCPv4/TCPv6/UDP_L4 super-frames
//     into MTU-sized frames, before ESP; after ESP, joining a train of
//     ESP-in-UDP datagrams into one UDP GSO super-frame (Train) and
//     cutting one received whole (SplitUDP).
//   - offload/gro: its inverse toward a VM, merging consecutive TCP
//     segments of a flow into one super-frame after ESP is removed.
//   - offload/mss: clamping the TCP MSS option of SYN and SYN-ACK.
//   - offload/pmtu: ICMP fragmentation-needed / ICMPv6 packet-too-big
//     towards the guest, its rate limiter, and IPv4 fragmentation.
//
// # Where it sits
//
// For a frame a VM sent: ParseVnetHdr on the bytes AF_PACKET (PACKET_VNET_HDR)
// or a tap (IFF_VNET_HDR) delivered; then, under an ipsec policy, a GSO frame
// goes through gso.Segment and a non-GSO frame with NeedsCsum through
// csum.Complete; SYNs (after that completion) through mss.Clamp; frames
// still above the effective MTU through pmtu (ICMP back to the guest, or
// IPv4 fragmentation); then ESP. Frames under no policy or a bypass policy
// need only the checksum completion before they leave on a device without
// checksum offload. Headers the kernel wrote in front of a frame it hands
// over (the uplink's reads) are parsed with ParseReceivedVnetHdr, which
// also takes a UDP GSO super-frame with DATA_VALID (UDP GRO), as no
// sender may write one.
//
// # What it must not do
//
// It does not read or write devices, choose MTUs, look up policies or keep
// per-flow state (gro's Coalescer holds the one run being built, in a
// buffer its caller owns, and no table of flows): callers pass the effective MTU (or MSS) they computed
// from the SA and overlay overhead. It never panics on packet bytes: every
// header it reads comes from a guest and is checked for length and
// consistency first, and read through package header (the IPv6
// extension-header chain by its one walker), so that segmentation, the MSS
// clamp and the ICMP errors see the protocol the SPD classifier saw.
package offload
