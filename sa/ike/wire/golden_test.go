package wire

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// unhex decodes annotated hex: whitespace is ignored and "#" starts a
// comment running to the end of the line.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var sb strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("bad golden hex: %v", err)
	}
	return b
}

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// goldenInit is an IKE_SA_INIT request built by hand from RFC 7296 §3.
const goldenInit = `
# IKE header (§3.1)
0102030405060708  # IKE SA Initiator's SPI
0000000000000000  # IKE SA Responder's SPI
21                # Next Payload: SA (33)
20                # Version 2.0
22                # Exchange Type: IKE_SA_INIT (34)
08                # Flags: I
00000000          # Message ID 0
000000e0          # Length 224
# SA payload (§3.3): generic header
22 00 0054        # Next KE (34), C=0, Payload Length 84
# proposal 1 (§3.3.1)
02 00 0024        # Last Substruc 2 (more), RESERVED, Proposal Length 36
01 01 00 03       # Proposal Num 1, Protocol IKE, SPI Size 0, Num Transforms 3
03 00 000c 01 00 0014   # transform (§3.3.2): more, length 12, ENCR, ID 20 (AES-GCM-16)
800e 0080               # attribute (§3.3.5): AF=1 Key Length = 128
03 00 0008 02 00 0005   # more, length 8, PRF, ID 5 (HMAC-SHA2-256)
00 00 0008 04 00 001f   # last, length 8, DH, ID 31 (Curve25519)
# proposal 2
00 00 002c        # Last Substruc 0 (last), RESERVED, Proposal Length 44
02 01 00 04       # Proposal Num 2, Protocol IKE, SPI Size 0, Num Transforms 4
03 00 000c 01 00 000c 800e 0100   # ENCR AES-CBC (12), Key Length 256
03 00 0008 03 00 000c             # INTEG HMAC-SHA2-256-128 (12)
03 00 0008 02 00 0005             # PRF HMAC-SHA2-256 (5)
00 00 0008 04 00 0013             # DH ECP-256 (19)
# KE payload (§3.4)
28 00 0028        # Next Nonce (40), Payload Length 40
001f 0000         # DH Group Num 31, RESERVED
` + "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b" + ` # 32 bytes of key exchange data
# Nonce payload (§3.9)
29 00 0014        # Next Notify (41), Payload Length 20
6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e  # 16 bytes of nonce
# Notify payload (§3.10)
29 00 001c        # Next Notify, Payload Length 28
00 00 4004        # Protocol ID 0, SPI Size 0, NAT_DETECTION_SOURCE_IP (16388)
` + "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0" + ` # 20 bytes of SHA-1 hash
# Notify payload
2b 00 0008        # Next Vendor ID (43), Payload Length 8
00 00 402e        # IKEV2_FRAGMENTATION_SUPPORTED (16430), no data
# Vendor ID payload (§3.12)
c8 00 000a        # Next 200 (unassigned), Payload Length 10
766966736563      # "vifsec"
# unknown payload type 200
00 00 0006        # Next None, C=0, Payload Length 6
abcd
`

var goldenInitMsg = &Message{
	Header: Header{SPIi: 0x0102030405060708, Next: PayloadSA, Version: 0x20, Exchange: ExchangeIKESAInit, Flags: FlagInitiator, Length: 224},
	Payloads: []Payload{
		&SA{Proposals: []Proposal{
			{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: 20, KeyLength: 128},
				{Type: TransformPRF, ID: 5},
				{Type: TransformDH, ID: 31},
			}},
			{Num: 2, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: 12, KeyLength: 256},
				{Type: TransformINTEG, ID: 12},
				{Type: TransformPRF, ID: 5},
				{Type: TransformDH, ID: 19},
			}},
		}},
		&KE{Group: 31, Data: rep(0x4b, 32)},
		&Nonce{Data: rep(0x6e, 16)},
		&Notify{NotifyType: NotifyNATDetectionSourceIP, Data: rep(0xd0, 20)},
		&Notify{NotifyType: NotifyIKEv2FragmentationSupported},
		&VendorID{Data: []byte("vifsec")},
		&Unknown{T: 200, Data: []byte{0xab, 0xcd}},
	},
}

// goldenAuth is an IKE_AUTH request whose only payload is SK (§3.14).
const goldenAuth = `
0102030405060708 1112131415161718  # SPIi, SPIr
2e 20 23 08       # Next SK (46), Version 2.0, IKE_AUTH (35), Flags I
00000001          # Message ID 1
0000003c          # Length 60
23 00 0020        # SK: Next Payload = first inner, IDi (35); Payload Length 32
` + "a0a1a2a3a4a5a6a7" + ` # IV (8 bytes, AES-GCM)
` + "c0c1c2c3" + ` # ciphertext
` + "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff" + ` # ICV (16 bytes)
`

var goldenAuthMsg = &Message{
	Header: Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Next: PayloadSK, Version: 0x20,
		Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1, Length: 60},
	Payloads: []Payload{&Encrypted{Inner: PayloadIDi, Body: []byte{
		0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, // IV
		0xc0, 0xc1, 0xc2, 0xc3, // ciphertext
		0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff, // ICV
	}}},
}

// goldenFrag is fragment 1 of 3 of an IKE_AUTH response (RFC 7383 §2.5).
const goldenFrag = `
0102030405060708 1112131415161718  # SPIi, SPIr
35 20 23 20       # Next SKF (53), Version 2.0, IKE_AUTH, Flags R
00000001          # Message ID 1
00000030          # Length 48
24 00 0014        # SKF: Next = first inner, IDr (36); Payload Length 20
0001 0003         # Fragment Number 1, Total Fragments 3
0a0b0c0d0e0f101112131415  # IV || ciphertext || ICV, opaque (12 bytes)
`

var goldenFragMsg = &Message{
	Header: Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Next: PayloadSKF, Version: 0x20,
		Exchange: ExchangeIKEAuth, Flags: FlagResponse, MessageID: 1, Length: 48},
	Payloads: []Payload{&Fragment{Inner: PayloadIDr, Number: 1, Total: 3,
		Body: []byte{0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15}}},
}

// goldenInner is the decrypted content of an SK payload: a chain starting
// with IDi, for ParsePayloads.
const goldenInner = `
# IDi (§3.5)
25 00 0012        # Next CERT (37), Payload Length 18
02 000000         # ID Type ID_FQDN, RESERVED
67772e6578616d706c65  # "gw.example"
# CERT (§3.6)
26 00 0007        # Next CERTREQ (38), Payload Length 7
04 3000           # Encoding X.509 Signature, 2 bytes of "certificate"
# CERTREQ (§3.7)
27 00 0019        # Next AUTH (39), Payload Length 25
04                # Encoding X.509 Signature
` + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + ` # one 20-byte SHA-1 of a CA key
# AUTH (§3.8)
29 00 0010        # Next Notify (41), Payload Length 16
02 000000         # Auth Method: Shared Key MIC, RESERVED
0102030405060708  # authentication data
# Notify with an SPI
2f 00 000c        # Next CP (47), Payload Length 12
03 04 4009        # Protocol ESP, SPI Size 4, REKEY_SA (16393)
0000c001          # SPI
# CP (§3.15)
21 00 000c        # Next SA (33), Payload Length 12
01 000000         # CFG_REQUEST, RESERVED
0001 0000         # attribute INTERNAL_IP4_ADDRESS, length 0 (opaque here)
# SA with one ESP proposal
2c 00 0024        # Next TSi (44), Payload Length 36
00 00 0020        # last proposal, Proposal Length 32
01 03 04 02       # Proposal Num 1, ESP, SPI Size 4, Num Transforms 2
c0010203          # SPI
03 00 000c 01 00 0014 800e 0100   # ENCR AES-GCM-16, Key Length 256
00 00 0008 05 00 0000             # ESN: no
# TSi (§3.13)
2d 00 0018        # Next TSr (45), Payload Length 24
01 000000         # Number of TSs 1, RESERVED
07 06 0010        # TS_IPV4_ADDR_RANGE, TCP, Selector Length 16
0000 ffff         # ports 0-65535
c6336400 c63364ff # 198.51.100.0 - 198.51.100.255
# TSr
2a 00 0040        # Next Delete (42), Payload Length 64
02 000000         # Number of TSs 2
07 00 0010 0000 ffff cb007107 cb007107   # IPv4, any protocol, any port, 203.0.113.7
08 11 0028 01f4 01f4                     # TS_IPV6_ADDR_RANGE, UDP, length 40, port 500
20010db8000000000000000000000001         # 2001:db8::1
20010db800000000000000000000ffff         # 2001:db8::ffff
# Delete (§3.11) of two ESP SAs
2a 00 0010        # Next Delete, Payload Length 16
03 04 0002        # ESP, SPI Size 4, Num of SPIs 2
11111111 22222222
# Delete of the IKE SA
00 00 0008        # Next None, Payload Length 8
01 00 0000        # IKE, SPI Size 0, Num of SPIs 0
`

var goldenInnerPayloads = []Payload{
	&ID{IDType: IDFQDN, Data: []byte("gw.example")},
	&Cert{Encoding: CertX509Sig, Data: []byte{0x30, 0x00}},
	&CertReq{Encoding: CertX509Sig, Data: rep(0xaa, 20)},
	&Auth{Method: AuthPSK, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	&Notify{Protocol: ProtoESP, SPI: []byte{0, 0, 0xc0, 0x01}, NotifyType: NotifyRekeySA},
	&CP{CfgType: CfgRequest, Attrs: []byte{0, 1, 0, 0}},
	&SA{Proposals: []Proposal{{Num: 1, Protocol: ProtoESP, SPI: []byte{0xc0, 1, 2, 3}, Transforms: []Transform{
		{Type: TransformENCR, ID: 20, KeyLength: 256}, {Type: TransformESN, ID: 0}}}}},
	&TS{Selectors: []Selector{{Proto: 6, StartPort: 0, EndPort: 65535,
		Start: netip.MustParseAddr("198.51.100.0"), End: netip.MustParseAddr("198.51.100.255")}}},
	&TS{Responder: true, Selectors: []Selector{
		{EndPort: 65535, Start: netip.MustParseAddr("203.0.113.7"), End: netip.MustParseAddr("203.0.113.7")},
		{Proto: 17, StartPort: 500, EndPort: 500, Start: netip.MustParseAddr("2001:db8::1"), End: netip.MustParseAddr("2001:db8::ffff")},
	}},
	&Delete{Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{0x11, 0x11, 0x11, 0x11}, {0x22, 0x22, 0x22, 0x22}}},
	&Delete{Protocol: ProtoIKE},
}

func TestGoldenMessages(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want *Message
	}{
		{"IKE_SA_INIT request", goldenInit, goldenInitMsg},
		{"IKE_AUTH with SK", goldenAuth, goldenAuthMsg},
		{"IKE_AUTH SKF fragment", goldenFrag, goldenFragMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.hex)
			m, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(m, tt.want) {
				t.Fatalf("Parse:\n got %s\nwant %s", dump(m), dump(tt.want))
			}
			// Encode from a copy with Next and Length cleared: Encode must
			// fill them in.
			enc := *tt.want
			enc.Header.Next, enc.Header.Length = 0, 0
			if got := enc.Encode(); !bytes.Equal(got, b) {
				t.Fatalf("Encode:\n got %x\nwant %x", got, b)
			}
			if !reflect.DeepEqual(&enc, tt.want) {
				t.Fatalf("Encode did not set Next/Length: %+v", enc.Header)
			}
		})
	}
}

func TestGoldenInnerPayloads(t *testing.T) {
	b := unhex(t, goldenInner)
	ps, err := ParsePayloads(PayloadIDi, b)
	if err != nil {
		t.Fatalf("ParsePayloads: %v", err)
	}
	if !reflect.DeepEqual(ps, goldenInnerPayloads) {
		t.Fatalf("ParsePayloads:\n got %s\nwant %s", dump(ps...), dump(goldenInnerPayloads...))
	}
	first, out := AppendPayloads([]byte{0xee}, goldenInnerPayloads)
	if first != PayloadIDi || !bytes.Equal(out[1:], b) || out[0] != 0xee {
		t.Fatalf("AppendPayloads: first %v\n got %x\nwant %x", first, out[1:], b)
	}
	// The parsed payloads must not alias the input.
	for i := range b {
		b[i] = 0
	}
	if !reflect.DeepEqual(ps, goldenInnerPayloads) {
		t.Fatal("parsed payloads alias the input buffer")
	}
}

// TestStrongSwanCapture parses an exchange captured between two strongSwan
// 5.9.8 charons (PSK, two IKE proposals; the child was refused with
// TS_UNACCEPTABLE): IKE_SA_INIT request and response, IKE_AUTH, and an
// INFORMATIONAL pair, the last four over UDP 4500 with the non-ESP marker
// stripped. strongSwan encodes canonically, so Encode must give the same
// bytes back.
func TestStrongSwanCapture(t *testing.T) {
	ds, err := readPcapUDP("testdata/strongswan-5.9.8-psk.pcap")
	if err != nil {
		t.Fatal(err)
	}
	wantEx := []ExchangeType{ExchangeIKESAInit, ExchangeIKESAInit, ExchangeIKEAuth, ExchangeIKEAuth, ExchangeInformational, ExchangeInformational}
	if len(ds) != len(wantEx) {
		t.Fatalf("%d datagrams in the capture, want %d", len(ds), len(wantEx))
	}
	var spii uint64
	for i, d := range ds {
		m, err := Parse(d)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		h := m.Header
		if h.Exchange != wantEx[i] || h.MessageID != uint32(i/2) || (h.Flags&FlagResponse != 0) != (i%2 == 1) {
			t.Errorf("datagram %d: header %+v", i, h)
		}
		if i == 0 {
			spii = h.SPIi
		} else if h.SPIi != spii || h.SPIr == 0 {
			t.Errorf("datagram %d: SPIs %x %x, want %x and nonzero", i, h.SPIi, h.SPIr, spii)
		}
		if i >= 2 {
			if len(m.Payloads) != 1 || m.Payloads[0].Type() != PayloadSK {
				t.Errorf("datagram %d: payloads %s, want one SK", i, dump(m.Payloads...))
			}
		}
		if got := m.Encode(); !bytes.Equal(got, d) {
			t.Errorf("datagram %d: Encode differs from the capture:\n got %x\nwant %x", i, got, d)
		}
	}

	// The request in detail.
	m, _ := Parse(ds[0])
	sa, ok := m.Payloads[0].(*SA)
	if !ok {
		t.Fatalf("first payload %T, want *SA", m.Payloads[0])
	}
	wantSA := &SA{Proposals: []Proposal{
		{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{{TransformENCR, 20, 128}, {TransformPRF, 5, 0}, {TransformDH, 14, 0}}},
		{Num: 2, Protocol: ProtoIKE, Transforms: []Transform{{TransformENCR, 12, 256}, {TransformINTEG, 12, 0}, {TransformPRF, 5, 0}, {TransformDH, 19, 0}}},
	}}
	if !reflect.DeepEqual(sa, wantSA) {
		t.Errorf("SA: got %s, want %s (aes128gcm16-prfsha256-modp2048,aes256-sha256-ecp256)", dump(sa), dump(wantSA))
	}
	ke, ok := m.Payloads[1].(*KE)
	if !ok || ke.Group != 14 || len(ke.Data) != 256 {
		t.Errorf("KE: %s, want group 14 with 256 bytes", dump(m.Payloads[1]))
	}
	if n, ok := m.Payloads[2].(*Nonce); !ok || len(n.Data) != 32 {
		t.Errorf("Nonce: %s, want 32 bytes", dump(m.Payloads[2]))
	}
	var notes []NotifyType
	for _, p := range m.Payloads[3:] {
		if n, ok := p.(*Notify); ok {
			notes = append(notes, n.NotifyType)
		}
	}
	wantNotes := []NotifyType{NotifyNATDetectionSourceIP, NotifyNATDetectionDestinationIP, NotifyIKEv2FragmentationSupported,
		NotifySignatureHashAlgorithms, NotifyRedirectSupported}
	if !reflect.DeepEqual(notes, wantNotes) {
		t.Errorf("notifies %v, want %v", notes, wantNotes)
	}
	// The SK payload of IKE_AUTH starts with IDi, its associated data is
	// everything before the body.
	m, _ = Parse(ds[2])
	sk := m.Payloads[0].(*Encrypted)
	if sk.Inner != PayloadIDi || len(ds[2])-len(sk.Body) != HeaderLen+4 {
		t.Errorf("IKE_AUTH SK: inner %v, body %d of %d bytes", sk.Inner, len(sk.Body), len(ds[2]))
	}
}
