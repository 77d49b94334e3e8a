// Package mss clamps the TCP maximum segment size option (RFC 9293
// §3.7.1) in SYN and SYN-ACK segments, so that guests under an ipsec
// policy negotiate segments that still fit the path after ESP (and VXLAN)
// overhead, instead of relying on path-MTU discovery for every flow.
//
// It owns the option rewrite and its checksum fix-up only: the caller
// decides which flows to clamp and computes the maximum (effective MTU
// minus IP and TCP headers). It never allocates and never panics on
// packet bytes.
package mss
