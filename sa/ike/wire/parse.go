package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

var be = binary.BigEndian

// ParseHeader decodes the IKE header (RFC 7296 §3.1) of the datagram b. It
// checks len(b) >= HeaderLen, major version 2 (ErrBadVersion) and Length ==
// len(b) (ErrBadLength). On ErrBadVersion and ErrBadLength the returned
// Header holds the fields as read, so the caller can answer (for example
// INVALID_MAJOR_VERSION to the SPIs it names).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IKE SA Initiator's SPI                  |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IKE SA Responder's SPI                  |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          Message ID                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                            Length                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fmt.Errorf("wire: IKE header: %d bytes, need %d: %w", len(b), HeaderLen, ErrTruncated)
	}
	h := Header{
		SPIi:      be.Uint64(b[0:]),
		SPIr:      be.Uint64(b[8:]),
		Next:      PayloadType(b[16]),
		Version:   b[17],
		Exchange:  ExchangeType(b[18]),
		Flags:     b[19],
		MessageID: be.Uint32(b[20:]),
		Length:    be.Uint32(b[24:]),
	}
	if h.Version>>4 != 2 {
		return h, fmt.Errorf("wire: IKE header: version %d.%d: %w", h.Version>>4, h.Version&0xf, ErrBadVersion)
	}
	if uint64(h.Length) != uint64(len(b)) {
		return h, fmt.Errorf("wire: IKE header: Length %d, datagram has %d bytes: %w", h.Length, len(b), ErrBadLength)
	}
	return h, nil
}

// Parse decodes a whole datagram (without the 4-byte non-ESP marker). It
// checks every length before use; an SK or SKF payload must be the last one.
// Unknown non-critical payloads become *Unknown; an unknown critical payload
// is ErrUnsupportedCritical (the caller answers UNSUPPORTED_CRITICAL_PAYLOAD).
// It never panics, and allocates one copy of b that the payloads' byte
// slices point into (they do not alias b) plus the payload structs.
func Parse(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	buf := append([]byte(nil), b[HeaderLen:]...)
	ps, err := parseChain(h.Next, buf, true)
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payloads: ps}, nil
}

// ParsePayloads decodes a chain starting at first (the decrypted body of SK,
// or a reassembled SKF message). SK and SKF are not allowed inside. The
// payloads do not alias b.
func ParsePayloads(first PayloadType, b []byte) ([]Payload, error) {
	buf := append([]byte(nil), b...)
	return parseChain(first, buf, false)
}

// parseChain decodes the payload chain in b, which it may alias. outer is
// false inside an SK payload, where SK and SKF are invalid.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Next Payload  |C|  RESERVED   |         Payload Length        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func parseChain(next PayloadType, b []byte, outer bool) ([]Payload, error) {
	var ps []Payload
	for i := 0; next != PayloadNone; i++ {
		if i >= MaxPayloads {
			return nil, fmt.Errorf("wire: payload %d (%v): %w (limit %d)", i, next, ErrTooManyPayloads, MaxPayloads)
		}
		if len(b) < 4 {
			return nil, fmt.Errorf("wire: payload %d (%v): generic header: %d bytes left: %w", i, next, len(b), ErrTruncated)
		}
		nn := PayloadType(b[0])
		critical := b[1]&0x80 != 0
		l := int(be.Uint16(b[2:]))
		if l < 4 {
			return nil, fmt.Errorf("wire: payload %d (%v): Payload Length %d < 4: %w", i, next, l, ErrBadLength)
		}
		if l > len(b) {
			return nil, fmt.Errorf("wire: payload %d (%v): Payload Length %d, %d bytes left: %w", i, next, l, len(b), ErrTruncated)
		}
		body := b[4:l]
		b = b[l:]
		if next == PayloadSK || next == PayloadSKF {
			if !outer {
				return nil, fmt.Errorf("wire: payload %d (%v): inside an encrypted payload: %w", i, next, ErrBadValue)
			}
			if len(b) != 0 {
				return nil, fmt.Errorf("wire: payload %d (%v): %d bytes follow it: %w", i, next, len(b), ErrNotLast)
			}
		}
		p, err := parseBody(next, nn, critical, body)
		if err != nil {
			return nil, fmt.Errorf("wire: payload %d (%v): %w", i, next, err)
		}
		ps = append(ps, p)
		if next == PayloadSK || next == PayloadSKF {
			return ps, nil // nn is the first inner payload, not a successor
		}
		next = nn
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("wire: %d bytes after the last payload: %w", len(b), ErrBadLength)
	}
	return ps, nil
}

// bytesOf returns b, or nil when it is empty, so that decoded messages
// compare equal however they were built.
func bytesOf(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func parseBody(t, next PayloadType, critical bool, b []byte) (Payload, error) {
	switch t {
	case PayloadSA:
		return parseSA(b)
	case PayloadKE:
		if len(b) < 4 {
			return nil, ErrTruncated
		}
		return &KE{Group: be.Uint16(b), Data: bytesOf(b[4:])}, nil
	case PayloadIDi, PayloadIDr:
		if len(b) < 4 {
			return nil, ErrTruncated
		}
		return &ID{Responder: t == PayloadIDr, IDType: IDType(b[0]), Data: bytesOf(b[4:])}, nil
	case PayloadCert:
		if len(b) < 1 {
			return nil, ErrTruncated
		}
		return &Cert{Encoding: b[0], Data: bytesOf(b[1:])}, nil
	case PayloadCertReq:
		if len(b) < 1 {
			return nil, ErrTruncated
		}
		return &CertReq{Encoding: b[0], Data: bytesOf(b[1:])}, nil
	case PayloadAuth:
		if len(b) < 4 {
			return nil, ErrTruncated
		}
		return &Auth{Method: b[0], Data: bytesOf(b[4:])}, nil
	case PayloadNonce:
		return &Nonce{Data: bytesOf(b)}, nil
	case PayloadNotify:
		return parseNotify(b)
	case PayloadDelete:
		return parseDelete(b)
	case PayloadVendorID:
		return &VendorID{Data: bytesOf(b)}, nil
	case PayloadTSi, PayloadTSr:
		return parseTS(t == PayloadTSr, b)
	case PayloadCP:
		if len(b) < 4 {
			return nil, ErrTruncated
		}
		return &CP{CfgType: b[0], Attrs: bytesOf(b[4:])}, nil
	case PayloadSK:
		return &Encrypted{Inner: next, Body: bytesOf(b)}, nil
	case PayloadSKF:
		return parseFragment(next, b)
	}
	if critical {
		return nil, &UnsupportedCriticalError{Type: t}
	}
	return &Unknown{T: t, Data: bytesOf(b)}, nil
}

// parseSA decodes the proposals of an SA payload (RFC 7296 §3.3.1).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Last Substruc |   RESERVED    |         Proposal Length       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                        SPI (variable)                         ~
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                        <Transforms>                           ~
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func parseSA(b []byte) (*SA, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("no proposal: %w", ErrBadLength)
	}
	sa := &SA{}
	for n := 1; len(b) > 0; n++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("proposal %d: %d bytes left: %w", n, len(b), ErrTruncated)
		}
		last := b[0]
		l := int(be.Uint16(b[2:]))
		if l < 8 {
			return nil, fmt.Errorf("proposal %d: Proposal Length %d < 8: %w", n, l, ErrBadLength)
		}
		if l > len(b) {
			return nil, fmt.Errorf("proposal %d: Proposal Length %d, %d bytes left: %w", n, l, len(b), ErrTruncated)
		}
		switch {
		case last == 0 && l != len(b):
			return nil, fmt.Errorf("proposal %d: marked last but %d bytes follow: %w", n, len(b)-l, ErrBadLength)
		case last == 2 && l == len(b):
			return nil, fmt.Errorf("proposal %d: marked not last but ends the payload: %w", n, ErrBadLength)
		case last != 0 && last != 2:
			return nil, fmt.Errorf("proposal %d: Last Substruc %d (want 0 or 2): %w", n, last, ErrBadValue)
		}
		p := Proposal{Num: b[4], Protocol: ProtocolID(b[5])}
		spiSize, count := int(b[6]), int(b[7])
		if 8+spiSize > l {
			return nil, fmt.Errorf("proposal %d: SPI Size %d does not fit Proposal Length %d: %w", n, spiSize, l, ErrBadLength)
		}
		p.SPI = bytesOf(b[8 : 8+spiSize])
		ts, err := parseTransforms(b[8+spiSize:l], count)
		if err != nil {
			return nil, fmt.Errorf("proposal %d: %w", n, err)
		}
		p.Transforms = ts
		sa.Proposals = append(sa.Proposals, p)
		b = b[l:]
	}
	return sa, nil
}

// attrKeyLength is the Key Length attribute type (RFC 7296 §3.3.5).
const attrKeyLength = 14

// parseTransforms decodes count transform substructures filling b exactly
// (RFC 7296 §3.3.2).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Last Substruc |   RESERVED    |        Transform Length       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Transform Type |   RESERVED    |          Transform ID         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                      Transform Attributes                     ~
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func parseTransforms(b []byte, count int) ([]Transform, error) {
	if count == 0 {
		if len(b) != 0 {
			return nil, fmt.Errorf("field Num Transforms 0 but %d bytes of transforms: %w", len(b), ErrBadLength)
		}
		return nil, nil
	}
	if len(b) < 8*count {
		return nil, fmt.Errorf("field Num Transforms %d needs at least %d bytes, have %d: %w", count, 8*count, len(b), ErrBadLength)
	}
	ts := make([]Transform, 0, count)
	for n := 1; n <= count; n++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("transform %d of %d: %d bytes left: %w", n, count, len(b), ErrBadLength)
		}
		last := b[0]
		l := int(be.Uint16(b[2:]))
		if l < 8 {
			return nil, fmt.Errorf("transform %d: Transform Length %d < 8: %w", n, l, ErrBadLength)
		}
		if l > len(b) {
			return nil, fmt.Errorf("transform %d: Transform Length %d, %d bytes left: %w", n, l, len(b), ErrTruncated)
		}
		want := uint8(3)
		if n == count {
			want = 0
		}
		if last != want {
			return nil, fmt.Errorf("transform %d of %d: Last Substruc %d (want %d): %w", n, count, last, want, ErrBadLength)
		}
		t := Transform{Type: TransformType(b[4]), ID: be.Uint16(b[6:])}
		kl, err := parseAttributes(b[8:l])
		if err != nil {
			return nil, fmt.Errorf("transform %d (%v %d): %w", n, t.Type, t.ID, err)
		}
		t.KeyLength = kl
		ts = append(ts, t)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after transform %d (Num Transforms): %w", len(b), count, ErrBadLength)
	}
	return ts, nil
}

// parseAttributes walks the data attributes of a transform (RFC 7296
// §3.3.5) and returns the Key Length, 0 if absent. Other attributes are
// length-checked and skipped.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|A|       Attribute Type        |    AF=0  Attribute Length     |
//	|F|                             |    AF=1  Attribute Value      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   AF=0  Attribute Value                       |
//	|                   AF=1  Not Transmitted                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func parseAttributes(b []byte) (keyLength uint16, err error) {
	seen := false
	for len(b) > 0 {
		if len(b) < 4 {
			return 0, fmt.Errorf("attribute: %d bytes left: %w", len(b), ErrTruncated)
		}
		tv := b[0]&0x80 != 0
		typ := be.Uint16(b) & 0x7fff
		v := be.Uint16(b[2:])
		if !tv {
			if typ == attrKeyLength {
				return 0, fmt.Errorf("attribute Key Length in TLV format: %w", ErrBadValue)
			}
			if 4+int(v) > len(b) {
				return 0, fmt.Errorf("attribute %d: Attribute Length %d, %d bytes left: %w", typ, v, len(b)-4, ErrTruncated)
			}
			b = b[4+int(v):]
			continue
		}
		if typ == attrKeyLength {
			if seen {
				return 0, fmt.Errorf("two Key Length attributes: %w", ErrBadValue)
			}
			if v == 0 {
				return 0, fmt.Errorf("attribute Key Length 0: %w", ErrBadValue)
			}
			seen, keyLength = true, v
		}
		b = b[4:]
	}
	return keyLength, nil
}

// parseNotify decodes a Notify payload body (RFC 7296 §3.10).
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Protocol ID  |   SPI Size    |      Notify Message Type      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                Security Parameter Index (SPI)                 ~
//	~                       Notification Data                       ~
func parseNotify(b []byte) (*Notify, error) {
	if len(b) < 4 {
		return nil, ErrTruncated
	}
	spiSize := int(b[1])
	if 4+spiSize > len(b) {
		return nil, fmt.Errorf("SPI Size %d, %d bytes left: %w", spiSize, len(b)-4, ErrBadLength)
	}
	return &Notify{
		Protocol:   ProtocolID(b[0]),
		NotifyType: NotifyType(be.Uint16(b[2:])),
		SPI:        bytesOf(b[4 : 4+spiSize]),
		Data:       bytesOf(b[4+spiSize:]),
	}, nil
}

// parseDelete decodes a Delete payload body (RFC 7296 §3.11).
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Protocol ID   |   SPI Size    |          Num of SPIs          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~               Security Parameter Index(es) (SPI)              ~
func parseDelete(b []byte) (*Delete, error) {
	if len(b) < 4 {
		return nil, ErrTruncated
	}
	d := &Delete{Protocol: ProtocolID(b[0]), SPISize: b[1]}
	num := int(be.Uint16(b[2:]))
	rest := b[4:]
	if d.SPISize == 0 {
		if num != 0 || len(rest) != 0 {
			return nil, fmt.Errorf("SPI Size 0 with Num of SPIs %d and %d bytes: %w", num, len(rest), ErrBadLength)
		}
		return d, nil
	}
	if num*int(d.SPISize) != len(rest) {
		return nil, fmt.Errorf("field Num of SPIs %d × SPI Size %d != %d bytes: %w", num, d.SPISize, len(rest), ErrBadLength)
	}
	if num > 0 {
		d.SPIs = make([][]byte, num) // num ≤ len(b): bounded by the input
		for i := range d.SPIs {
			d.SPIs[i] = rest[:d.SPISize:d.SPISize]
			rest = rest[d.SPISize:]
		}
	}
	return d, nil
}

// parseTS decodes a Traffic Selector payload body (RFC 7296 §3.13, 3.13.1).
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Number of TSs |                 RESERVED                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                       <Traffic Selectors>                     ~
//
// each selector:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   TS Type     |IP Protocol ID*|       Selector Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Start Port*         |           End Port*           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                         Starting Address*                     ~
//	~                         Ending Address*                       ~
func parseTS(responder bool, b []byte) (*TS, error) {
	if len(b) < 4 {
		return nil, ErrTruncated
	}
	count := int(b[0])
	b = b[4:]
	if len(b) < 16*count {
		return nil, fmt.Errorf("field Number of TSs %d needs at least %d bytes, have %d: %w", count, 16*count, len(b), ErrBadLength)
	}
	ts := &TS{Responder: responder}
	if count > 0 {
		ts.Selectors = make([]Selector, 0, count)
	}
	for n := 1; n <= count; n++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("selector %d of %d: %d bytes left: %w", n, count, len(b), ErrBadLength)
		}
		typ := TSType(b[0])
		l := int(be.Uint16(b[2:]))
		var alen int
		switch typ {
		case TSIPv4Range:
			alen = 4
		case TSIPv6Range:
			alen = 16
		default:
			return nil, fmt.Errorf("selector %d: TS Type %d (want %d or %d): %w", n, uint8(typ), TSIPv4Range, TSIPv6Range, ErrBadValue)
		}
		if l != 8+2*alen {
			return nil, fmt.Errorf("selector %d (%v): Selector Length %d (want %d): %w", n, typ, l, 8+2*alen, ErrBadLength)
		}
		if l > len(b) {
			return nil, fmt.Errorf("selector %d (%v): Selector Length %d, %d bytes left: %w", n, typ, l, len(b), ErrTruncated)
		}
		s := Selector{Proto: b[1], StartPort: be.Uint16(b[4:]), EndPort: be.Uint16(b[6:])}
		if alen == 4 {
			s.Start = netip.AddrFrom4([4]byte(b[8:12]))
			s.End = netip.AddrFrom4([4]byte(b[12:16]))
		} else {
			s.Start = netip.AddrFrom16([16]byte(b[8:24]))
			s.End = netip.AddrFrom16([16]byte(b[24:40]))
		}
		ts.Selectors = append(ts.Selectors, s)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after selector %d (Number of TSs): %w", len(b), count, ErrBadLength)
	}
	return ts, nil
}

// parseFragment decodes an SKF payload body (RFC 7383 §2.5).
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        Fragment Number        |        Total Fragments        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Initialization Vector                     |
//	~                      Encrypted content                        ~
//	~                    Integrity Checksum Data                    ~
func parseFragment(next PayloadType, b []byte) (*Fragment, error) {
	if len(b) < 4 {
		return nil, ErrTruncated
	}
	f := &Fragment{Inner: next, Number: be.Uint16(b), Total: be.Uint16(b[2:]), Body: bytesOf(b[4:])}
	if f.Number == 0 || f.Total == 0 || f.Number > f.Total {
		return nil, fmt.Errorf("Fragment Number %d of Total Fragments %d: %w", f.Number, f.Total, ErrBadValue)
	}
	return f, nil
}
