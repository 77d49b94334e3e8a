package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// raw is one payload for the chain builder: its type, the flags octet of
// the generic header and its body.
type raw struct {
	t     PayloadType
	flags byte
	body  []byte
	next  *PayloadType // override the Next Payload field
}

// chain builds a payload chain with correct Next Payload and Length fields.
func chain(ps ...raw) (PayloadType, []byte) {
	var b []byte
	for i, p := range ps {
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].t
		}
		if p.next != nil {
			next = *p.next
		}
		b = append(b, byte(next), p.flags)
		b = binary.BigEndian.AppendUint16(b, uint16(4+len(p.body)))
		b = append(b, p.body...)
	}
	if len(ps) == 0 {
		return PayloadNone, b
	}
	return ps[0].t, b
}

// message wraps a chain in an IKE header with a correct Length.
func message(first PayloadType, body []byte) []byte {
	h := Header{SPIi: 1, SPIr: 2, Next: first, Version: Version2, Exchange: ExchangeInformational,
		Flags: FlagInitiator, MessageID: 7, Length: uint32(HeaderLen + len(body))}
	return append(AppendHeader(nil, h), body...)
}

func msgOf(ps ...raw) []byte { return message(chain(ps...)) }

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// proposal builds a proposal substructure with correct length.
func proposal(last, num byte, proto ProtocolID, spi []byte, count byte, transforms ...[]byte) []byte {
	body := cat(append([]byte{num, byte(proto), byte(len(spi)), count}, spi...), cat(transforms...))
	return cat([]byte{last, 0}, u16(uint16(4+len(body))), body)
}

// transform builds a transform substructure with correct length.
func transform(last byte, t TransformType, id uint16, attrs ...byte) []byte {
	return cat([]byte{last, 0}, u16(uint16(8+len(attrs))), []byte{byte(t), 0}, u16(id), attrs)
}

func ptype(t PayloadType) *PayloadType { return &t }

func TestParseErrors(t *testing.T) {
	okTransform := transform(0, TransformENCR, 20, 0x80, 0x0e, 0x00, 0x80)
	sa := func(props ...[]byte) raw { return raw{t: PayloadSA, body: cat(props...)} }
	tests := []struct {
		name    string
		b       []byte
		want    error
		wantMsg string // a substring the error must contain: which payload
	}{
		{"short header", make([]byte, 27), ErrTruncated, "IKE header"},
		{"major version 1", func() []byte { b := msgOf(); b[17] = 0x10; return b }(), ErrBadVersion, "version 1.0"},
		{"major version 3", func() []byte { b := msgOf(); b[17] = 0x30; return b }(), ErrBadVersion, "version 3.0"},
		{"Length too big", func() []byte { b := msgOf(); b[27]++; return b }(), ErrBadLength, "Length 29"},
		{"Length too small", func() []byte { b := msgOf(raw{t: PayloadNonce}); b[27]--; return b }(), ErrBadLength, "Length 31"},
		{"generic header truncated", message(PayloadNonce, []byte{0, 0, 0}), ErrTruncated, "payload 0 (Ni/Nr)"},
		{"Payload Length 3", message(PayloadNonce, []byte{0, 0, 0, 3}), ErrBadLength, "Payload Length 3"},
		{"Payload Length past end", message(PayloadNonce, []byte{0, 0, 0, 9, 1, 2}), ErrTruncated, "Payload Length 9"},
		{"bytes after last payload", message(PayloadNonce, []byte{0, 0, 0, 4, 0xff}), ErrBadLength, "1 bytes after the last payload"},
		{"next payload missing", msgOf(raw{t: PayloadNonce, next: ptype(PayloadNotify)}), ErrTruncated, "payload 1 (N)"},
		{"unknown critical", msgOf(raw{t: PayloadNonce}, raw{t: 200, flags: 0x80}), ErrUnsupportedCritical, "payload 1 (PayloadType(200))"},
		{"EAP critical", msgOf(raw{t: PayloadEAP, flags: 0x80}), ErrUnsupportedCritical, "type 48"},
		{"SK not last", cat(msgOf(raw{t: PayloadSK, next: ptype(PayloadIDi), body: []byte{1, 2}}, raw{t: PayloadNonce})), ErrNotLast, "payload 0 (SK)"},
		{"SKF not last", msgOf(raw{t: PayloadSKF, body: []byte{0, 1, 0, 1}}, raw{t: PayloadNonce}), ErrNotLast, "payload 0 (SKF)"},
		{"SKF number 0", msgOf(raw{t: PayloadSKF, body: []byte{0, 0, 0, 1}}), ErrBadValue, "Fragment Number 0"},
		{"SKF number > total", msgOf(raw{t: PayloadSKF, body: []byte{0, 3, 0, 2}}), ErrBadValue, "Fragment Number 3 of Total Fragments 2"},
		{"SKF total 0", msgOf(raw{t: PayloadSKF, body: []byte{0, 0, 0, 0}}), ErrBadValue, "SKF"},
		{"SKF short", msgOf(raw{t: PayloadSKF, body: []byte{0, 1, 0}}), ErrTruncated, "SKF"},
		{"KE short", msgOf(raw{t: PayloadKE, body: []byte{0, 14, 0}}), ErrTruncated, "(KE)"},
		{"ID short", msgOf(raw{t: PayloadIDr, body: []byte{1}}), ErrTruncated, "(IDr)"},
		{"AUTH short", msgOf(raw{t: PayloadAuth, body: []byte{2, 0, 0}}), ErrTruncated, "(AUTH)"},
		{"CERT empty", msgOf(raw{t: PayloadCert}), ErrTruncated, "(CERT)"},
		{"CERTREQ empty", msgOf(raw{t: PayloadCertReq}), ErrTruncated, "(CERTREQ)"},
		{"CP short", msgOf(raw{t: PayloadCP, body: []byte{1}}), ErrTruncated, "(CP)"},
		{"Notify short", msgOf(raw{t: PayloadNotify, body: []byte{0, 0, 0x40}}), ErrTruncated, "(N)"},
		{"Notify SPI past end", msgOf(raw{t: PayloadNotify, body: []byte{3, 4, 0x40, 0x09, 1, 2, 3}}), ErrBadLength, "SPI Size 4"},
		{"Delete short", msgOf(raw{t: PayloadDelete, body: []byte{3, 4, 0}}), ErrTruncated, "(D)"},
		{"Delete count mismatch", msgOf(raw{t: PayloadDelete, body: []byte{3, 4, 0, 2, 1, 1, 1, 1}}), ErrBadLength, "Num of SPIs 2"},
		{"Delete SPI size 0 with SPIs", msgOf(raw{t: PayloadDelete, body: []byte{3, 0, 0xff, 0xff}}), ErrBadLength, "SPI Size 0"},
		{"Delete extra bytes", msgOf(raw{t: PayloadDelete, body: []byte{1, 0, 0, 0, 9}}), ErrBadLength, "(D)"},
		{"SA empty", msgOf(sa()), ErrBadLength, "no proposal"},
		{"proposal truncated", msgOf(sa([]byte{0, 0, 0, 8, 1, 1, 0})), ErrTruncated, "proposal 1"},
		{"Proposal Length 7", msgOf(sa([]byte{0, 0, 0, 7, 1, 1, 0, 0})), ErrBadLength, "Proposal Length 7"},
		{"Proposal Length past end", msgOf(sa([]byte{0, 0, 0, 9, 1, 1, 0, 0})), ErrTruncated, "Proposal Length 9"},
		{"proposal marked last, more follow", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, okTransform), proposal(0, 2, ProtoIKE, nil, 1, okTransform))), ErrBadLength, "proposal 1: marked last"},
		{"proposal marked more, none follow", msgOf(sa(proposal(2, 1, ProtoIKE, nil, 1, okTransform))), ErrBadLength, "marked not last"},
		{"proposal marker 3", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, okTransform), proposal(3, 2, ProtoIKE, nil, 1, okTransform))), ErrBadLength, "proposal 1"},
		{"proposal marker 1 in the middle", msgOf(sa(proposal(1, 1, ProtoIKE, nil, 1, okTransform), proposal(0, 2, ProtoIKE, nil, 1, okTransform))), ErrBadValue, "Last Substruc 1"},
		{"SPI Size past proposal", msgOf(sa(cat([]byte{0, 0, 0, 10, 1, 3, 4, 0}, []byte{1, 2}))), ErrBadLength, "SPI Size 4"},
		{"more transforms than Num", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, transform(3, TransformENCR, 20), okTransform))), ErrBadLength, "Last Substruc 3 (want 0)"},
		{"fewer transforms than Num", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 2, transform(3, TransformENCR, 20), transform(3, TransformPRF, 5)))), ErrBadLength, "transform 2"},
		{"Num 3, bytes for 2", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 3, transform(3, TransformENCR, 20), transform(0, TransformPRF, 5)))), ErrBadLength, "Num Transforms 3"},
		{"Num 0 with transform bytes", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 0, okTransform))), ErrBadLength, "Num Transforms 0"},
		{"bytes after transforms", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, okTransform, make([]byte, 8)))), ErrBadLength, "after transform 1"},
		{"transform marker wrong", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, transform(3, TransformENCR, 20)))), ErrBadLength, "transform 1 of 1"},
		{"Transform Length 4", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, []byte{0, 0, 0, 4, 1, 0, 0, 20}))), ErrBadLength, "Transform Length 4"},
		{"Transform Length past end", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, []byte{0, 0, 0, 12, 1, 0, 0, 20}))), ErrTruncated, "Transform Length 12"},
		{"attribute truncated", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, transform(0, TransformENCR, 20, 0x80, 0x0e)))), ErrTruncated, "attribute"},
		{"TLV attribute past end", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, transform(0, TransformENCR, 20, 0x00, 0x07, 0x00, 0x05, 1)))), ErrTruncated, "Attribute Length 5"},
		{"Key Length as TLV", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, transform(0, TransformENCR, 20, 0x00, 0x0e, 0x00, 0x02, 0, 128)))), ErrBadValue, "TLV"},
		{"Key Length twice", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, transform(0, TransformENCR, 20, 0x80, 0x0e, 0, 128, 0x80, 0x0e, 1, 0)))), ErrBadValue, "two Key Length"},
		{"Key Length 0", msgOf(sa(proposal(0, 1, ProtoIKE, nil, 1, transform(0, TransformENCR, 20, 0x80, 0x0e, 0, 0)))), ErrBadValue, "Key Length 0"},
		{"TS short", msgOf(raw{t: PayloadTSi, body: []byte{1, 0, 0}}), ErrTruncated, "(TSi)"},
		{"TS count > selectors", msgOf(raw{t: PayloadTSr, body: cat([]byte{2, 0, 0, 0}, []byte{7, 0, 0, 16, 0, 0, 0xff, 0xff}, make([]byte, 8))}), ErrBadLength, "Number of TSs 2"},
		{"TS count < selectors", msgOf(raw{t: PayloadTSi, body: cat([]byte{1, 0, 0, 0}, []byte{7, 0, 0, 16, 0, 0, 0xff, 0xff}, make([]byte, 8), []byte{7, 0, 0, 16, 0, 0, 0xff, 0xff}, make([]byte, 8))}), ErrBadLength, "after selector 1"},
		{"TS unknown type", msgOf(raw{t: PayloadTSi, body: cat([]byte{1, 0, 0, 0}, []byte{9, 0, 0, 16, 0, 0, 0xff, 0xff}, make([]byte, 8))}), ErrBadValue, "TS Type 9"},
		{"TS IPv4 length 40", msgOf(raw{t: PayloadTSi, body: cat([]byte{1, 0, 0, 0}, []byte{7, 0, 0, 40, 0, 0, 0xff, 0xff}, make([]byte, 32))}), ErrBadLength, "Selector Length 40 (want 16)"},
		{"TS IPv6 truncated", msgOf(raw{t: PayloadTSi, body: cat([]byte{1, 0, 0, 0}, []byte{8, 0, 0, 40, 0, 0, 0xff, 0xff}, make([]byte, 24))}), ErrTruncated, "Selector Length 40, 32 bytes left"},
		{"TS IPv6 truncated after v4", msgOf(raw{t: PayloadTSi, body: cat([]byte{2, 0, 0, 0}, []byte{7, 0, 0, 16, 0, 0, 0xff, 0xff}, make([]byte, 8), []byte{8, 0, 0, 40, 0, 0, 0xff, 0xff}, make([]byte, 24))}), ErrTruncated, "selector 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse: err %v, want %v (message %s)", err, tt.want, dump(m))
			}
			if m != nil {
				t.Fatalf("Parse returned a message with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParseHeaderReturnsFieldsOnError(t *testing.T) {
	b := msgOf()
	b[17] = 0x30
	h, err := ParseHeader(b)
	if !errors.Is(err, ErrBadVersion) || h.SPIi != 1 || h.SPIr != 2 || h.MessageID != 7 {
		t.Fatalf("ParseHeader = %+v, %v; want the header as read and ErrBadVersion", h, err)
	}
	// A minor version other than 0 is ignored (RFC 7296 §3.1) and kept.
	b[17] = 0x21
	m, err := Parse(b)
	if err != nil || m.Header.Version != 0x21 {
		t.Fatalf("minor version 1: %v, %+v", err, m)
	}
}

func TestUnsupportedCriticalNamesType(t *testing.T) {
	_, err := Parse(msgOf(raw{t: PayloadNonce}, raw{t: 222, flags: 0x80, body: []byte{1}}))
	var uc *UnsupportedCriticalError
	if !errors.As(err, &uc) || uc.Type != 222 {
		t.Fatalf("err %v: want *UnsupportedCriticalError for type 222", err)
	}
	// Not critical: kept as Unknown. The critical bit of known payloads is
	// ignored on receipt (RFC 7296 §2.5) and cleared when encoding.
	m, err := Parse(msgOf(raw{t: PayloadNonce, flags: 0x80, body: []byte{9}}, raw{t: 222, flags: 0x7f, body: []byte{1}}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Payload{&Nonce{Data: []byte{9}}, &Unknown{T: 222, Data: []byte{1}}}
	if dump(m.Payloads...) != dump(want...) {
		t.Fatalf("payloads %s, want %s", dump(m.Payloads...), dump(want...))
	}
	// An Unknown with Critical set round-trips as critical.
	m.Payloads[1].(*Unknown).Critical = true
	if _, err := Parse(m.Encode()); !errors.Is(err, ErrUnsupportedCritical) {
		t.Fatalf("re-parse of critical Unknown: %v", err)
	}
}

func TestParsePayloadsRejectsNestedEncryption(t *testing.T) {
	for _, typ := range []PayloadType{PayloadSK, PayloadSKF} {
		first, b := chain(raw{t: typ, body: []byte{0, 1, 0, 1}})
		if _, err := ParsePayloads(first, b); !errors.Is(err, ErrBadValue) {
			t.Errorf("%v inside SK: err %v, want ErrBadValue", typ, err)
		}
	}
	if ps, err := ParsePayloads(PayloadNone, nil); err != nil || ps != nil {
		t.Errorf("empty chain: %v, %v", ps, err)
	}
	if _, err := ParsePayloads(PayloadNone, []byte{1}); !errors.Is(err, ErrBadLength) {
		t.Errorf("bytes with first NONE: %v", err)
	}
}

func TestTooManyPayloads(t *testing.T) {
	ps := make([]raw, MaxPayloads)
	for i := range ps {
		ps[i] = raw{t: PayloadVendorID}
	}
	if m, err := Parse(msgOf(ps...)); err != nil || len(m.Payloads) != MaxPayloads {
		t.Fatalf("%d payloads: %v", MaxPayloads, err)
	}
	ps = append(ps, raw{t: PayloadVendorID})
	if _, err := Parse(msgOf(ps...)); !errors.Is(err, ErrTooManyPayloads) {
		t.Fatalf("%d payloads: err %v, want ErrTooManyPayloads", len(ps), err)
	}
}

func TestSkippedAttributes(t *testing.T) {
	// ENCR AES-CBC with an unknown TV attribute, the Key Length, and an
	// unknown TLV attribute: Key Length is kept, the others skipped.
	tr := transform(0, TransformENCR, 12,
		0x80, 0x01, 0x12, 0x34, // AF=1 type 1, value 0x1234
		0x80, 0x0e, 0x00, 0xc0, // Key Length 192
		0x00, 0x21, 0x00, 0x03, 0xa, 0xb, 0xc, // AF=0 type 33, 3 bytes
	)
	m, err := Parse(msgOf(raw{t: PayloadSA, body: proposal(0, 1, ProtoIKE, nil, 1, tr)}))
	if err != nil {
		t.Fatal(err)
	}
	got := m.Payloads[0].(*SA).Proposals[0].Transforms
	if len(got) != 1 || got[0] != (Transform{TransformENCR, 12, 192}) {
		t.Fatalf("transforms %+v, want ENCR 12 with Key Length 192", got)
	}
}

func TestParseDoesNotAliasInput(t *testing.T) {
	b := unhex(t, goldenInit)
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	before := dump(m)
	for i := range b {
		b[i] = 0xff
	}
	if dump(m) != before {
		t.Fatal("message changed when the input buffer was overwritten")
	}
}

// TestParseAllocationBound: however the input lies about lengths and
// counts, Parse allocates in proportion to the input.
func TestParseAllocationBound(t *testing.T) {
	// Delete claiming 65535 SPIs of 255 bytes, TS claiming 255 selectors,
	// a proposal claiming 255 transforms: each in a tiny message.
	inputs := [][]byte{
		msgOf(raw{t: PayloadDelete, body: []byte{3, 255, 0xff, 0xff}}),
		msgOf(raw{t: PayloadTSi, body: []byte{255, 0, 0, 0}}),
		msgOf(raw{t: PayloadSA, body: proposal(0, 1, ProtoESP, nil, 255)}),
		msgOf(raw{t: PayloadSA, body: []byte{0, 0, 0xff, 0xff}}),
	}
	for i, b := range inputs {
		var ms runtimeMem
		ms.start()
		for range 100 {
			if _, err := Parse(b); err == nil {
				t.Fatalf("input %d parsed", i)
			}
		}
		if per := ms.bytesSince() / 100; per > 4096 {
			t.Errorf("input %d (%d bytes): %d bytes allocated per Parse", i, len(b), per)
		}
	}
}

// TestTSIPv4MappedRoundTrip: a TS_IPV6_ADDR_RANGE carries 16-byte
// addresses, IPv4-mapped ones included (RFC 7296 §3.13.1). Parse keeps them
// IPv6 (never unmapped to IPv4), and Encode writes them back as they came.
func TestTSIPv4MappedRoundTrip(t *testing.T) {
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	sel := cat([]byte{byte(TSIPv6Range), 17}, u16(40), u16(0), u16(0xffff), mapped.AsSlice(), netip.MustParseAddr("2001:db8::1").AsSlice())
	b := msgOf(raw{t: PayloadTSi, body: cat([]byte{1, 0, 0, 0}, sel)})
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Payloads[0].(*TS).Selectors[0]
	if s.Start != mapped || !s.Start.Is4In6() || s.TSType() != TSIPv6Range {
		t.Fatalf("selector start %v (%v), want IPv6 %v", s.Start, s.TSType(), mapped)
	}
	if err := CheckPayloads(m.Payloads); err != nil {
		t.Fatalf("CheckPayloads: %v", err)
	}
	if enc := m.Encode(); !bytes.Equal(enc, b) {
		t.Fatalf("Encode:\n got %x\nwant %x", enc, b)
	}
}
