// Package entropy picks the outer UDP source port of an overlay packet
// (VXLAN, RFC 7348 §5) from the inner frame, so that the underlay's ECMP
// and the receivers' RSS see one flow per inner flow instead of one per
// host pair.
//
// # The flow
//
// For a clear inner IP packet the flow is the 5-tuple (addresses, protocol,
// TCP/UDP/SCTP/DCCP/UDP-Lite ports); for other protocols and for IP
// fragments it is the addresses and protocol, so all fragments of a
// datagram stay together. For an inner ESP packet (IP protocol 50, or
// ESP-in-UDP on port 4500, RFC 3948) or AH (51), whose ports are encrypted
// or absent, it is (addresses, SPI): one SA is one flow. Non-IP frames
// (ARP and the like) hash their MAC addresses and EtherType. The VNI is
// part of every flow, so tenants with overlapping addresses are
// independent. One inner flow always maps to the same port: no reordering
// within a TCP connection or an SA.
//
// # The hash
//
// SipHash-2-4 (Aumasson and Bernstein, 2012) with a per-host random
// 128-bit key, the choice of the Linux kernel for its own flow hash
// (net/core/flow_dissector.c, __flow_hash_from_keys). It is a keyed PRF:
// every input bit (all 32 SPI bits, sequential or random) affects every
// output bit, and without the key an outsider (a tenant choosing its SPIs
// or ports) cannot predict or steer which ECMP bucket a flow takes. An
// unkeyed multiply-xorshift finalizer would mix as well and cost a little
// less, but is invertible by anyone who reads the code.
//
// # What it must not do
//
// It only reads the frame; it keeps no state besides the key, allocates
// nothing, and is safe for concurrent use. It does not walk headers with
// rules of its own: the IPv4 header and the IPv6 extension-header chain
// are read through package header, so the flow it hashes has the
// protocol and ports the SPD classifier found.
package entropy
