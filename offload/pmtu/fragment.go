package pmtu

import (
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"

	"encoding/binary"

	"github.com/vifsec/vifsec/offload/csum"
)

const (
	flagDF     = 0x4000
	flagMF     = 0x2000
	offsetMask = 0x1fff

	optEOL      = 0
	optNOP      = 1
	optCopied   = 0x80 // RFC 791: the option is copied into all fragments
	maxOptBytes = 40
)

// Fragment splits the IPv4 packet pkt (starting at its IP header) into
// fragments whose total length is at most mtu, as RFC 791 §3.2 and RFC
// 1812 §5.2.6 describe, for a packet without DF that is too big for the
// path after ESP. Fragment i is written to out[i][offset:offset+sizes[i]];
// it returns the number of fragments. On a drop nothing is written.
//
// Per fragment: the IP header is copied with the same ID; the first
// fragment keeps all options, later ones only options with the copied
// flag (padded with EOL to a 4-byte boundary, IHL adjusted); every
// fragment but the last carries 8-byte multiples of data; the fragment
// offset (in 8-byte units) and MF are set, offsets adding to pkt's own
// and MF kept on the last one when pkt was itself a non-final fragment;
// total length and header checksum are recomputed. The transport header
// and its checksum are data, untouched.
//
// A packet that already fits is copied as one fragment. DF set (and too
// big) is DropTooBig: the caller sends ICMPTooBig instead. An mtu that
// leaves no room for 8 bytes of data is DropTooBig; malformed headers or
// options DropMalformed; IPv6 (fragmented only by its source, RFC 8200
// §4.5) DropUnsupported; not enough buffers DropTooManySegments, a short
// buffer DropNoRoom. out must not overlap pkt.
func Fragment(pkt []byte, mtu int, out [][]byte, offset int, sizes []int) (n int, d drop.Reason) {
	if len(pkt) < header.IPv4MinLen {
		return 0, drop.Malformed
	}
	switch pkt[0] >> 4 {
	case 4:
	case 6:
		return 0, drop.Unsupported
	default:
		return 0, drop.Malformed
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < header.IPv4MinLen || ihl > len(pkt) || total < ihl || total > len(pkt) {
		return 0, drop.Malformed
	}
	pkt = pkt[:total]
	ff := binary.BigEndian.Uint16(pkt[6:])
	if total > mtu && ff&flagDF != 0 {
		return 0, drop.TooBig
	}
	if offset < 0 {
		return 0, drop.NoRoom
	}
	if total <= mtu {
		if len(out) < 1 || len(sizes) < 1 {
			return 0, drop.TooManySegments
		}
		if len(out[0])-offset < total {
			return 0, drop.NoRoom
		}
		sizes[0] = copy(out[0][offset:], pkt)
		return 1, drop.None
	}

	// The header of later fragments: options with the copied flag only.
	var later [header.IPv4MinLen + maxOptBytes]byte
	copy(later[:], pkt[:header.IPv4MinLen])
	ihl2 := header.IPv4MinLen
	opts := pkt[header.IPv4MinLen:ihl]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case optEOL:
			i = len(opts)
			continue
		case optNOP:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return 0, drop.Malformed
		}
		l := int(opts[i+1])
		if opts[i]&optCopied != 0 {
			ihl2 += copy(later[ihl2:], opts[i:i+l])
		}
		i += l
	}
	for ihl2%4 != 0 {
		later[ihl2] = optEOL
		ihl2++
	}
	later[0] = 0x40 | byte(ihl2/4)

	first := (mtu - ihl) &^ 7
	rest := (mtu - ihl2) &^ 7
	if first < 8 || rest < 8 {
		return 0, drop.TooBig
	}
	data := total - ihl
	baseOff := int(ff & offsetMask)
	if baseOff*8+data > 0xffff {
		return 0, drop.Malformed // the offsets would not fit their field
	}
	// Count and check room before writing anything.
	n = 1
	for pos := first; pos < data; pos += rest {
		n++
	}
	if n > len(out) || n > len(sizes) {
		return 0, drop.TooManySegments
	}
	for i, pos := 0, 0; i < n; i++ {
		hl, chunk := ihl2, rest
		if i == 0 {
			hl, chunk = ihl, first
		}
		if len(out[i])-offset < hl+min(chunk, data-pos) {
			return 0, drop.NoRoom
		}
		pos += chunk
	}

	for i, pos := 0, 0; i < n; i++ {
		hdr, chunk := later[:ihl2], rest
		if i == 0 {
			hdr, chunk = pkt[:ihl], first
		}
		chunk = min(chunk, data-pos)
		size := len(hdr) + chunk
		f := out[i][offset : offset+size]
		copy(f, hdr)
		copy(f[len(hdr):], pkt[ihl+pos:ihl+pos+chunk])
		binary.BigEndian.PutUint16(f[2:], uint16(size))
		flags := ff &^ (flagDF | flagMF | offsetMask) // keep the reserved bit as it was
		if i < n-1 || ff&flagMF != 0 {
			flags |= flagMF
		}
		binary.BigEndian.PutUint16(f[6:], flags|uint16(baseOff+pos/8))
		f[10], f[11] = 0, 0
		binary.BigEndian.PutUint16(f[10:], csum.Checksum(f[:len(hdr)], 0))
		sizes[i] = size
		pos += chunk
	}
	return n, drop.None
}
