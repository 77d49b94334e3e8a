// Package gro merges, in software, consecutive TCP segments of one flow
// into one super-frame for a receiver that takes virtio-net headers (a
// VM's VIF opened with PACKET_VNET_HDR): the inverse of offload/gso, so
// a guest's stack handles one large packet instead of dozens. The
// super-frame is described by a VnetHdr (GSO TCPv4 or TCPv6, gso_size the
// segments' payload, NEEDS_CSUM with the pseudo-header sum in the TCP
// checksum field, as a TSO sender leaves it).
//
// The merge rules are Linux GRO's (tcp_gro_receive, inet_gro_receive):
// untagged Ethernet carrying IPv4 without options or fragmentation, or
// IPv6 without extension headers; the same addresses, ports, ACK, window,
// TCP options and TOS / traffic class and flow label; the next sequence
// number; every segment but the last the same size, a shorter one or PSH
// closing the run; SYN, FIN, RST, URG and CWR never merged. A run stays
// below 64 KiB of IP packet.
//
// It owns the merge and the headers of the merged frame and nothing
// else: which frames may be merged for which receiver, and when a run
// must end (the end of a batch, a frame for another receiver, a frame
// that is not eligible) are the caller's. A Coalescer holds one pending
// run in a buffer of its own, is used by one goroutine, never panics on
// packet bytes and never allocates after New.
//
// It must not import the data path (internal/...): like every offload
// package it is a pure function of caller-owned bytes.
package gro
