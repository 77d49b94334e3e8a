// Package header is the one floor for header parsing in vifsec: views over
// the bytes of Ethernet (with 802.1Q tags), IPv4, IPv6, TCP, UDP and ICMP
// headers, the constants of those formats (EtherTypes, IP protocol
// numbers, header lengths), the Ethernet address type MAC, and the single
// walker of IPv6 extension headers (WalkIPv6, or Chain.Walk in place) with its
// single limit (MaxExtHeaders).
//
// Every package that reads a packet — the SPD classifier (tenant), ESP
// (sa/esp), the offloads (offload/gso, offload/gro, offload/mss, offload/pmtu), the
// overlay (overlay/vxlan, overlay/entropy) and the data path — finds the
// upper-layer protocol and its offset here, so that no two of them can
// disagree about what one packet carries: the classifier decides what
// leaves in clear, and a second parser with other rules would be a way
// around it.
//
// A view is a byte slice type (IPv6, TCP, ...) whose accessors assume the
// length its Parse function checked; every Parse checks length (and, for
// IP, version and length fields) before anything is read, so a malformed
// packet yields false, never a panic.
//
// It must not:
//
//   - import anything but the standard library: it is the ground floor
//     every other layer stands on;
//   - decide policy: what to do with a fragment, a routing header or a
//     chain that is too long is the caller's; the walker reports facts;
//   - allocate, lock or keep state: every function is a pure function of
//     its arguments, proven allocation-free by tests.
package header
