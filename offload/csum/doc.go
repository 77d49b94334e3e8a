// Package csum computes Internet checksums (RFC 1071): the ones' complement
// sum over bytes, the TCP/UDP pseudo-header for IPv4 and IPv6, completion
// of a partial (CHECKSUM_PARTIAL, virtio NEEDS_CSUM) checksum, and
// incremental update after a field rewrite (RFC 1624).
//
// It owns arithmetic only: it does not parse packets (callers say where
// the covered range and the field are) and never allocates.
//
// # Conventions
//
// A "sum" is the folded 16-bit ones' complement sum, not complemented,
// with 16-bit words read big-endian (network order) from an even offset
// of the range. A "checksum" is what goes into a header field: the
// complement of the sum of everything the field covers, with the field
// itself taken as zero.
package csum
