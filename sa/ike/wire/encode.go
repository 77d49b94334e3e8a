package wire

import (
	"errors"
	"fmt"
)

// Encode encodes m, setting m.Header.Next and m.Header.Length (and
// m.Header.Version to Version2 if it is 0), so that afterwards Parse of the
// result equals m. Known payloads are sent with the critical bit clear
// (RFC 7296 §3.2), *Unknown with its Critical field.
//
// Encode panics if a payload cannot be represented (see CheckPayloads):
// callers build payloads from their own values, so that is a programming
// error; call CheckPayloads first where sizes come from configuration.
func (m *Message) Encode() []byte {
	if m.Header.Version == 0 {
		m.Header.Version = Version2
	}
	out := make([]byte, HeaderLen, HeaderLen+encodedLen(m.Payloads))
	first, out := AppendPayloads(out, m.Payloads)
	m.Header.Next = first
	m.Header.Length = uint32(len(out))
	AppendHeader(out[:0], m.Header)
	return out
}

// AppendHeader appends the 28-byte IKE header h as given (Length
// included) to dst.
func AppendHeader(dst []byte, h Header) []byte {
	dst = be.AppendUint64(dst, h.SPIi)
	dst = be.AppendUint64(dst, h.SPIr)
	dst = append(dst, byte(h.Next), h.Version, byte(h.Exchange), h.Flags)
	dst = be.AppendUint32(dst, h.MessageID)
	return be.AppendUint32(dst, h.Length)
}

// AppendEncryptedHeader appends the generic payload header of an SK payload
// whose body (IV || ciphertext || ICV) is bodyLen bytes and whose first
// inner payload is inner (RFC 7296 §3.14). Together with AppendHeader it
// gives the associated data the SK payload's integrity covers.
func AppendEncryptedHeader(dst []byte, inner PayloadType, bodyLen int) []byte {
	dst = append(dst, byte(inner), 0)
	return be.AppendUint16(dst, uint16(4+bodyLen))
}

// AppendFragmentHeader appends the generic payload header and the Fragment
// Number and Total Fragments of an SKF payload whose body (IV || ciphertext
// || ICV) is bodyLen bytes (RFC 7383 §2.5). inner is the first inner
// payload's type for fragment 1 and must be PayloadNone for the others.
func AppendFragmentHeader(dst []byte, inner PayloadType, number, total uint16, bodyLen int) []byte {
	dst = append(dst, byte(inner), 0)
	dst = be.AppendUint16(dst, uint16(8+bodyLen))
	dst = be.AppendUint16(dst, number)
	return be.AppendUint16(dst, total)
}

// AppendPayloads encodes ps as a chain; returns the type of the first
// (PayloadNone for an empty chain). It panics like Encode if a payload
// cannot be represented.
func AppendPayloads(dst []byte, ps []Payload) (first PayloadType, out []byte) {
	if err := CheckPayloads(ps); err != nil {
		panic("wire: AppendPayloads: " + err.Error())
	}
	if len(ps) == 0 {
		return PayloadNone, dst
	}
	for i, p := range ps {
		next := PayloadNone
		switch p := p.(type) {
		case *Encrypted:
			next = p.Inner
		case *Fragment:
			next = p.Inner
		default:
			if i+1 < len(ps) {
				next = ps[i+1].Type()
			}
		}
		start := len(dst)
		var flags byte
		if u, ok := p.(*Unknown); ok && u.Critical {
			flags = 0x80
		}
		dst = append(dst, byte(next), flags, 0, 0)
		dst = appendBody(dst, p)
		be.PutUint16(dst[start+2:], uint16(len(dst)-start))
	}
	return ps[0].Type(), dst
}

// encodedLen is an upper-bound-free estimate used only to size buffers.
func encodedLen(ps []Payload) int {
	n := 0
	for _, p := range ps {
		n += 4 + bodyLen(p)
	}
	return n
}

func appendBody(dst []byte, p Payload) []byte {
	switch p := p.(type) {
	case *SA:
		for i, pr := range p.Proposals {
			last := byte(2)
			if i == len(p.Proposals)-1 {
				last = 0
			}
			start := len(dst)
			dst = append(dst, last, 0, 0, 0, pr.Num, byte(pr.Protocol), byte(len(pr.SPI)), byte(len(pr.Transforms)))
			dst = append(dst, pr.SPI...)
			for j, t := range pr.Transforms {
				last := byte(3)
				if j == len(pr.Transforms)-1 {
					last = 0
				}
				l := uint16(8)
				if t.KeyLength != 0 {
					l = 12
				}
				dst = append(dst, last, 0)
				dst = be.AppendUint16(dst, l)
				dst = append(dst, byte(t.Type), 0)
				dst = be.AppendUint16(dst, t.ID)
				if t.KeyLength != 0 {
					dst = be.AppendUint16(dst, 0x8000|attrKeyLength)
					dst = be.AppendUint16(dst, t.KeyLength)
				}
			}
			be.PutUint16(dst[start+2:], uint16(len(dst)-start))
		}
	case *KE:
		dst = be.AppendUint16(dst, p.Group)
		dst = append(dst, 0, 0)
		dst = append(dst, p.Data...)
	case *ID:
		dst = append(dst, byte(p.IDType), 0, 0, 0)
		dst = append(dst, p.Data...)
	case *Cert:
		dst = append(dst, p.Encoding)
		dst = append(dst, p.Data...)
	case *CertReq:
		dst = append(dst, p.Encoding)
		dst = append(dst, p.Data...)
	case *Auth:
		dst = append(dst, p.Method, 0, 0, 0)
		dst = append(dst, p.Data...)
	case *Nonce:
		dst = append(dst, p.Data...)
	case *Notify:
		dst = append(dst, byte(p.Protocol), byte(len(p.SPI)))
		dst = be.AppendUint16(dst, uint16(p.NotifyType))
		dst = append(dst, p.SPI...)
		dst = append(dst, p.Data...)
	case *Delete:
		dst = append(dst, byte(p.Protocol), p.SPISize)
		dst = be.AppendUint16(dst, uint16(len(p.SPIs)))
		for _, s := range p.SPIs {
			dst = append(dst, s...)
		}
	case *VendorID:
		dst = append(dst, p.Data...)
	case *TS:
		dst = append(dst, byte(len(p.Selectors)), 0, 0, 0)
		for _, s := range p.Selectors {
			typ := s.TSType()
			l := 16
			if typ == TSIPv6Range {
				l = 40
			}
			dst = append(dst, byte(typ), s.Proto)
			dst = be.AppendUint16(dst, uint16(l))
			dst = be.AppendUint16(dst, s.StartPort)
			dst = be.AppendUint16(dst, s.EndPort)
			dst = append(dst, s.Start.AsSlice()...)
			dst = append(dst, s.End.AsSlice()...)
		}
	case *CP:
		dst = append(dst, p.CfgType, 0, 0, 0)
		dst = append(dst, p.Attrs...)
	case *Encrypted:
		dst = append(dst, p.Body...)
	case *Fragment:
		dst = be.AppendUint16(dst, p.Number)
		dst = be.AppendUint16(dst, p.Total)
		dst = append(dst, p.Body...)
	case *Unknown:
		dst = append(dst, p.Data...)
	}
	return dst
}

// bodyLen is the encoded length of p without its generic header, or -1 if
// p is of a type this package does not encode.
func bodyLen(p Payload) int {
	switch p := p.(type) {
	case *SA:
		n := 0
		for _, pr := range p.Proposals {
			n += proposalLen(pr)
		}
		return n
	case *KE:
		return 4 + len(p.Data)
	case *ID:
		return 4 + len(p.Data)
	case *Cert:
		return 1 + len(p.Data)
	case *CertReq:
		return 1 + len(p.Data)
	case *Auth:
		return 4 + len(p.Data)
	case *Nonce:
		return len(p.Data)
	case *Notify:
		return 4 + len(p.SPI) + len(p.Data)
	case *Delete:
		n := 4
		for _, s := range p.SPIs {
			n += len(s)
		}
		return n
	case *VendorID:
		return len(p.Data)
	case *TS:
		n := 4
		for _, s := range p.Selectors {
			if s.TSType() == TSIPv6Range {
				n += 40
			} else {
				n += 16
			}
		}
		return n
	case *CP:
		return 4 + len(p.Attrs)
	case *Encrypted:
		return len(p.Body)
	case *Fragment:
		return 4 + len(p.Body)
	case *Unknown:
		return len(p.Data)
	}
	return -1
}

func proposalLen(pr Proposal) int {
	n := 8 + len(pr.SPI)
	for _, t := range pr.Transforms {
		n += 8
		if t.KeyLength != 0 {
			n += 4
		}
	}
	return n
}

// ErrUnencodable is returned by CheckPayloads for a payload whose values do
// not fit the wire format.
var ErrUnencodable = errors.New("payload cannot be encoded")

// CheckPayloads reports whether ps can be encoded as a chain: every field
// fits its wire width (payload and proposal length 65535, SPI 255 bytes,
// 255 transforms and selectors), Delete SPIs are all SPISize long, selectors
// are IPv4 or IPv6 pairs, *Unknown does not reuse a known type, and SK or
// SKF comes last. Encoding a chain that passes gives bytes that Parse
// (for SK/SKF: the body as opaque bytes) decodes back to ps.
func CheckPayloads(ps []Payload) error {
	for i, p := range ps {
		if err := checkPayload(p); err != nil {
			return fmt.Errorf("payload %d (%T): %w: %v", i, p, ErrUnencodable, err)
		}
		switch p.(type) {
		case *Encrypted, *Fragment:
			if i != len(ps)-1 {
				return fmt.Errorf("payload %d (%v): %w: %v", i, p.Type(), ErrUnencodable, ErrNotLast)
			}
		}
	}
	return nil
}

func checkPayload(p Payload) error {
	if isNil(p) {
		return errors.New("nil payload")
	}
	n := bodyLen(p)
	if n < 0 {
		return errors.New("not a payload type of package wire")
	}
	if 4+n > 0xffff {
		return fmt.Errorf("payload length %d > 65535", 4+n)
	}
	switch p := p.(type) {
	case *SA:
		if len(p.Proposals) == 0 {
			return errors.New("SA without proposals")
		}
		for i, pr := range p.Proposals {
			if len(pr.SPI) > 255 {
				return fmt.Errorf("proposal %d: SPI of %d bytes > 255", i+1, len(pr.SPI))
			}
			if len(pr.Transforms) > 255 {
				return fmt.Errorf("proposal %d: %d transforms > 255", i+1, len(pr.Transforms))
			}
		}
	case *Notify:
		if len(p.SPI) > 255 {
			return fmt.Errorf("SPI of %d bytes > 255", len(p.SPI))
		}
	case *Delete:
		if p.SPISize == 0 && len(p.SPIs) > 0 {
			return fmt.Errorf("%d SPIs with SPISize 0", len(p.SPIs))
		}
		for i, s := range p.SPIs {
			if len(s) != int(p.SPISize) {
				return fmt.Errorf("SPI %d has %d bytes, SPISize is %d", i, len(s), p.SPISize)
			}
		}
	case *TS:
		if len(p.Selectors) > 255 {
			return fmt.Errorf("%d selectors > 255", len(p.Selectors))
		}
		for i, s := range p.Selectors {
			if s.TSType() == TSInvalid {
				return fmt.Errorf("selector %d: %v-%v is not an IPv4 or IPv6 address pair", i, s.Start, s.End)
			}
		}
	case *Fragment:
		if p.Number == 0 || p.Total == 0 || p.Number > p.Total {
			return fmt.Errorf("fragment %d of %d", p.Number, p.Total)
		}
	case *Unknown:
		if _, known := knownTypes[p.T]; known || p.T == PayloadNone {
			return fmt.Errorf("Unknown with type %v, which this package decodes", p.T)
		}
	}
	return nil
}

// knownTypes are the payload types Parse decodes into their own structs.
var knownTypes = map[PayloadType]struct{}{
	PayloadSA: {}, PayloadKE: {}, PayloadIDi: {}, PayloadIDr: {}, PayloadCert: {},
	PayloadCertReq: {}, PayloadAuth: {}, PayloadNonce: {}, PayloadNotify: {},
	PayloadDelete: {}, PayloadVendorID: {}, PayloadTSi: {}, PayloadTSr: {},
	PayloadSK: {}, PayloadCP: {}, PayloadSKF: {},
}

// isNil reports whether p is nil or a nil pointer of one of the payload
// types.
func isNil(p Payload) bool {
	switch p := p.(type) {
	case nil:
		return true
	case *SA:
		return p == nil
	case *KE:
		return p == nil
	case *ID:
		return p == nil
	case *Cert:
		return p == nil
	case *CertReq:
		return p == nil
	case *Auth:
		return p == nil
	case *Nonce:
		return p == nil
	case *Notify:
		return p == nil
	case *Delete:
		return p == nil
	case *VendorID:
		return p == nil
	case *TS:
		return p == nil
	case *CP:
		return p == nil
	case *Encrypted:
		return p == nil
	case *Fragment:
		return p == nil
	case *Unknown:
		return p == nil
	}
	return false
}
