// Package gso segments a guest's GSO/TSO super-frame in software, before
// ESP: one Ethernet frame of up to 64 KiB carrying TCP over IPv4 or IPv6
// (virtio GSO_TCPV4/GSO_TCPV6, with or without the ECN bit) or UDP with
// USO (GSO_UDP_L4) becomes MTU-sized frames with their own lengths, IPv4
// IDs, TCP sequence numbers and flags, and full checksums, written into a
// caller-provided batch of buffers at a caller-given offset (the ESP
// headroom).
//
// The same floor serves UDP GSO on the uplink, after ESP: Train joins a
// run of equal-sized UDP datagrams with the same headers (ESP in UDP cut
// from one TSO super-frame) into one GSO_UDP_L4 super-frame that the
// kernel or NIC cuts again, and SplitUDP cuts such a super-frame received
// whole (from a veth with NEEDS_CSUM, or merged by a NIC's or the
// kernel's UDP GRO with DATA_VALID) into datagrams for vifsec's own ESP or
// VXLAN decapsulation, with UDP checksums a receiver accepts (none over
// IPv4, computed over IPv6). PartialUDP gives a DATA_VALID one the
// partial checksum a writer must give UDP GSO, to pass it on whole.
//
// It owns the per-segment header rewrite and nothing else: it does not
// choose the MTU (the caller passes the effective MTU after ESP and
// overlay overhead), encrypt, clamp MSS (offload/mss) or tell the guest
// about the MTU (offload/pmtu). It never panics on guest bytes and never
// allocates; the output buffers must not overlap the input frame.
//
// The result matches what Linux's own software GSO (tcp_gso_segment,
// __udp_gso_segment, inet_gso_segment, ipv6_gso_segment) puts on a veth
// for the same input, byte for byte; an integration test checks that.
package gso
