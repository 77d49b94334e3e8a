package csum

import (
	"encoding/binary"
	"math/bits"
)

// Sum returns the ones' complement sum of b, added to initial (a sum of
// data before b). b's first byte is the high byte of a 16-bit word, so b
// must start at an even offset of the covered range; an odd final byte is
// padded with zero (RFC 1071).
//
// The loop adds 64-bit little-endian words with carry and byte-swaps the
// folded result: the ones' complement sum is byte-order independent
// (RFC 1071 §2(B)), and this reads 32 bytes per iteration.
func Sum(b []byte, initial uint16) uint16 {
	var acc, carries, c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), 0)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		carries += c
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), 0)
		carries += c
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b[0:4])), 0)
		carries += c
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b[0:2])), 0)
		carries += c
		b = b[2:]
	}
	if len(b) == 1 {
		// The lone byte is the high byte of a big-endian word: the low
		// byte of a little-endian one.
		acc, c = bits.Add64(acc, uint64(b[0]), 0)
		carries += c
	}
	acc, c = bits.Add64(acc, carries, 0)
	acc += c // cannot overflow: acc < carries here when c is 1
	s := (acc >> 32) + (acc & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return Add(bits.ReverseBytes16(uint16(s)), initial)
}

// Add returns the ones' complement sum of a and b.
func Add(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// Checksum returns the checksum of b with initial as the sum of what
// precedes it (e.g. a pseudo-header): ^Sum(b, initial). The checksum
// field must be zero in b.
func Checksum(b []byte, initial uint16) uint16 { return ^Sum(b, initial) }

// Pseudo returns the sum of the TCP/UDP pseudo-header: source and
// destination address (both 4 bytes for IPv4, RFC 793/768, or both 16 for
// IPv6, RFC 8200 §8.1), the protocol number and the upper-layer length.
// One formula covers both: the IPv6 form's 32-bit length and zero-padded
// next header sum to the same words as IPv4's.
func Pseudo(src, dst []byte, proto uint8, l4len int) uint16 {
	s := Sum(src, 0)
	s = Sum(dst, s)
	s = Add(s, uint16(proto))
	s = Add(s, uint16(uint32(l4len)>>16))
	return Add(s, uint16(l4len))
}

// Complete finishes a partial checksum the way a NIC (or the kernel's
// skb_checksum_help) does for CHECKSUM_PARTIAL / virtio NEEDS_CSUM: the
// field at start+offset already holds the folded pseudo-header sum, so
// the checksum is the complement of the sum over b[start:], stored in the
// field. A result of 0 is stored as 0xffff (CSUM_MANGLED_0), which is the
// same value in ones' complement and keeps a UDP checksum from reading as
// "none". b must end where the L4 data ends (no link-layer padding).
// Complete reports false, changing nothing, if the field is not inside b.
func Complete(b []byte, start, offset int) bool {
	if start < 0 || offset < 0 || start > len(b) || offset > len(b)-start-2 {
		return false
	}
	c := ^Sum(b[start:], 0)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[start+offset:], c)
	return true
}

// Update returns the checksum field value after one 16-bit word of the
// covered data changed from old to new, without touching the rest of the
// data: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'). old and new are the word
// as it sits at an even offset of the covered range; for a 16-bit value at
// an odd offset, pass both byte-swapped (bits.ReverseBytes16).
func Update(check, old, new uint16) uint16 {
	return ^Add(Add(^check, ^old), new)
}

// Update32 is Update for a 32-bit value at an even offset (e.g. an IPv4
// address or a TCP sequence number): two words at once.
func Update32(check uint16, old, new uint32) uint16 {
	s := Add(^check, ^uint16(old>>16))
	s = Add(s, ^uint16(old))
	s = Add(s, uint16(new>>16))
	return ^Add(s, uint16(new))
}
