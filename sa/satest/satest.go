// Package satest builds SAs and packets for tests of sa and its users.
// It uses documentation addresses only (RFC 3849, RFC 5737).
package satest

import (
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/header"
	"net/netip"

	"github.com/vifsec/vifsec/sa"
)

// Documentation addresses used by tests.
var (
	V6A = netip.MustParseAddr("2001:db8:1::121")
	V6B = netip.MustParseAddr("2001:db8:1::122")
	V4A = netip.MustParseAddr("192.0.2.1")
	V4B = netip.MustParseAddr("192.0.2.2")
	// Tunnel endpoints (hypervisor side).
	V6GwA = netip.MustParseAddr("2001:db8:ff::1")
	V6GwB = netip.MustParseAddr("2001:db8:ff::2")
	V4GwA = netip.MustParseAddr("198.51.100.1")
	V4GwB = netip.MustParseAddr("198.51.100.2")
)

// Key returns n deterministic key bytes, distinct per seed.
func Key(n int, seed byte) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = seed + byte(i)*7
	}
	return k
}

// Suite is one encryption+integrity pair.
type Suite struct {
	Enc   sa.EncAlg
	Integ sa.IntegAlg
}

func (s Suite) String() string { return s.Enc.String() + "/" + s.Integ.String() }

// Suites lists every valid combination of the ESP core's algorithms.
func Suites() []Suite {
	var out []Suite
	for _, e := range sa.EncAlgs() {
		if e.IsAEAD() {
			out = append(out, Suite{e, sa.IntegNone})
			continue
		}
		for _, i := range sa.IntegAlgs() {
			if i != sa.IntegNone {
				out = append(out, Suite{e, i})
			}
		}
	}
	return out
}

// Config returns a valid SA configuration for suite in mode, between a and b
// (the outer endpoints in tunnel mode), with deterministic keys.
func Config(name string, suite Suite, mode sa.Mode, src, dst netip.Addr, spi uint32) sa.Config {
	return sa.Config{
		Name:     name,
		Scope:    sa.Scope{VLAN: 0, MAC: header.MAC{0x52, 0x54, 0, 0, 0, 1}},
		SPI:      spi,
		Src:      src,
		Dst:      dst,
		Mode:     mode,
		Enc:      suite.Enc,
		EncKey:   Key(suite.Enc.KeyLen(), byte(spi)),
		Integ:    suite.Integ,
		IntegKey: Key(suite.Integ.KeyLen(), byte(spi)+1),
	}
}

// MustNew is sa.New that panics, for tests.
func MustNew(c sa.Config) *sa.SA {
	s, err := sa.New(c)
	if err != nil {
		panic(fmt.Sprintf("satest: %v", err))
	}
	return s
}

// UDP builds an IPv6 or IPv4 UDP packet from src to dst with payload of
// size bytes (filled with a pattern), into buf at off. It returns its length.
func UDP(buf []byte, off int, src, dst netip.Addr, sport, dport uint16, size int) int {
	pkt := buf[off:]
	var l4 int
	if src.Is4() {
		l4 = 20
		pkt[0], pkt[1] = 0x45, 0
		binary.BigEndian.PutUint16(pkt[2:], uint16(20+8+size))
		binary.BigEndian.PutUint16(pkt[4:], 0x1234)
		pkt[6], pkt[7], pkt[8], pkt[9] = 0x40, 0, 64, 17
		a, b := src.As4(), dst.As4()
		copy(pkt[12:], a[:])
		copy(pkt[16:], b[:])
		checksum4(pkt[:20])
	} else {
		l4 = 40
		binary.BigEndian.PutUint32(pkt[0:], 6<<28|0x12345)
		binary.BigEndian.PutUint16(pkt[4:], uint16(8+size))
		pkt[6], pkt[7] = 17, 64
		a, b := src.As16(), dst.As16()
		copy(pkt[8:], a[:])
		copy(pkt[24:], b[:])
	}
	u := pkt[l4:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+size))
	u[6], u[7] = 0, 0
	for i := 0; i < size; i++ {
		u[8+i] = byte(i*31 + 7)
	}
	// UDP checksum over the pseudo-header (RFC 768, RFC 8200 §8.1): IPv6
	// forbids 0, and real receivers drop it.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	if src.Is4() {
		add(pkt[12:20])
	} else {
		add(pkt[8:40])
	}
	sum += 17 + uint32(8+size)
	add(u[:8+size])
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return l4 + 8 + size
}

func checksum4(h []byte) {
	h[10], h[11] = 0, 0
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
}
