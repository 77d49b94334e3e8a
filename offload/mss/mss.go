package mss

import (
	"encoding/binary"
	"math/bits"

	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload/csum"
)

const (
	optEOL    = 0
	optNOP    = 1
	optMSS    = 2
	optMSSLen = 4
)

// Clamp lowers every MSS option of the TCP SYN or SYN-ACK in the IP
// packet pkt (IPv4 or IPv6, starting at the IP header) to max where it is
// larger, fixing the TCP checksum incrementally (RFC 1624), and reports
// whether it changed pkt.
//
// Anything else is left alone: non-TCP packets, TCP without SYN, IP
// fragments, and packets whose headers or options do not parse (every
// read is length-checked; the option walk stops at EOL or at the first
// malformed option). A SYN without an MSS option is also left alone: its
// peer then assumes 536 (IPv4) or 1220 (IPv6), RFC 9293 §3.7.1, which is
// below any MTU vifsec clamps for.
//
// The TCP checksum must be complete: for a frame the guest sent with
// NEEDS_CSUM, call csum.Complete first (the partial field holds only the
// pseudo-header sum, which an incremental update would corrupt).
func Clamp(pkt []byte, max uint16) (changed bool) {
	tcp := findTCP(pkt)
	if tcp == nil || tcp[13]&header.TCPFlagSYN == 0 {
		return false
	}
	doff := int(tcp[12]>>4) * 4
	check := binary.BigEndian.Uint16(tcp[16:])
	for i := header.TCPMinLen; i < doff; {
		switch tcp[i] {
		case optEOL:
			i = doff
			continue
		case optNOP:
			i++
			continue
		}
		if i+1 >= doff {
			break
		}
		n := int(tcp[i+1])
		if n < 2 || i+n > doff {
			break
		}
		if tcp[i] == optMSS && n == optMSSLen {
			if old := binary.BigEndian.Uint16(tcp[i+2:]); old > max {
				binary.BigEndian.PutUint16(tcp[i+2:], max)
				o, w := old, max
				if (i+2)%2 == 1 { // the value straddles two checksum words
					o, w = bits.ReverseBytes16(o), bits.ReverseBytes16(w)
				}
				check = csum.Update(check, o, w)
				changed = true
			}
		}
		i += n
	}
	if changed {
		binary.BigEndian.PutUint16(tcp[16:], check)
	}
	return changed
}

// findTCP returns the TCP header with its options (tcp[:doff] is safe to
// read) of a non-fragmented IPv4 or IPv6 packet, or nil. The headers are
// read through package header (IPv6 extension headers by its walker): a
// fragment header of any kind, first, non-first or atomic, means no clamp.
func findTCP(pkt []byte) []byte {
	if len(pkt) < 1 {
		return nil
	}
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		ip, ok := header.ParseIPv4(pkt)
		if !ok || ip.IsFragment() || ip.Protocol() != header.ProtoTCP {
			return nil
		}
		l4 = ip.Payload()
	case 6:
		ip, ok := header.ParseIPv6(pkt)
		if !ok {
			return nil
		}
		c := header.WalkIPv6(ip)
		if c.Err != header.ChainOK || c.Frag.Present() || c.Proto != header.ProtoTCP {
			return nil
		}
		l4 = ip[c.L4:]
	default:
		return nil
	}
	tcp, ok := header.ParseTCP(l4)
	if !ok {
		return nil
	}
	return tcp
}
