// Package pmtu handles a packet that is larger than the effective MTU of
// its path after ESP (and VXLAN) overhead, in the two ways IP allows:
//
//   - tell the sender (RFC 1191 path MTU discovery, RFC 8201 for IPv6):
//     ICMPTooBig builds an ICMP "fragmentation needed" (type 3 code 4) or
//     ICMPv6 "packet too big" (type 2) back to the guest, and RateLimiter
//     bounds how many the gateway sends per VM (RFC 1812 §4.3.2.8,
//     RFC 4443 §2.4(f));
//   - or, for IPv4 without DF, fragment it before ESP (Fragment, RFC 791).
//
// It owns building those packets into caller buffers. It does not decide
// which packets are too big, compute the MTU, or send anything; it never
// allocates per packet and never panics on packet bytes.
package pmtu
