package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::7")
	tests := []struct {
		name string
		m    *Message
	}{
		{"empty INFORMATIONAL (liveness)", &Message{Header: Header{SPIi: 9, SPIr: 10, Exchange: ExchangeInformational, Flags: FlagResponse, MessageID: 4}}},
		{"COOKIE response", &Message{Header: Header{SPIi: 9, Exchange: ExchangeIKESAInit, Flags: FlagResponse},
			Payloads: []Payload{&Notify{NotifyType: NotifyCookie, Data: rep(0x11, 32)}}}},
		{"INVALID_KE_PAYLOAD", &Message{Header: Header{SPIi: 9, Exchange: ExchangeIKESAInit, Flags: FlagResponse},
			Payloads: []Payload{&Notify{NotifyType: NotifyInvalidKEPayload, Data: []byte{0, 19}}}}},
		{"everything", &Message{Header: Header{SPIi: ^uint64(0), SPIr: 1, Version: 0x20, Exchange: ExchangeCreateChildSA, Flags: FlagInitiator | FlagVersion, MessageID: ^uint32(0)},
			Payloads: []Payload{
				&SA{Proposals: []Proposal{
					{Num: 1, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}},
					{Num: 2, Protocol: ProtoAH, SPI: []byte{5, 6, 7, 8}, Transforms: []Transform{{Type: TransformINTEG, ID: 12}, {Type: TransformESN, ID: 1}}},
					{Num: 3, Protocol: ProtoIKE, SPI: rep(7, 8), Transforms: []Transform{{Type: TransformENCR, ID: 28}, {Type: TransformPRF, ID: 7}, {Type: TransformDH, ID: 20}}},
				}},
				&Nonce{Data: rep(1, 256)},
				&KE{Group: 20, Data: rep(2, 96)},
				&ID{Responder: true, IDType: IDIPv6, Data: v6.AsSlice()},
				&ID{IDType: IDIPv4, Data: v4.AsSlice()},
				&Auth{Method: AuthDigitalSignature, Data: rep(3, 100)},
				&Cert{Encoding: CertX509Sig, Data: rep(4, 1000)},
				&CertReq{Encoding: CertX509Sig},
				&Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, NotifyType: NotifyChildSANotFound},
				&Notify{NotifyType: NotifyType(60000)},
				&Delete{Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{1, 2, 3, 4}}},
				&Delete{Protocol: ProtoIKE},
				&VendorID{},
				&TS{},
				&TS{Responder: true, Selectors: []Selector{
					{Proto: 1, StartPort: 0x0800, EndPort: 0x08ff, Start: v4, End: v4},
					{StartPort: 65535, EndPort: 0, Start: v6, End: v6}, // OPAQUE ports
				}},
				&CP{CfgType: CfgReply},
				&Unknown{T: PayloadEAP, Data: []byte{1, 2, 3}},
				&Unknown{T: 255},
				&Fragment{Inner: PayloadNone, Number: 65535, Total: 65535, Body: []byte{1}},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckPayloads(tt.m.Payloads); err != nil {
				t.Fatal(err)
			}
			b := tt.m.Encode()
			if tt.m.Header.Length != uint32(len(b)) || tt.m.Header.Version != Version2 {
				t.Fatalf("Encode left header %+v for %d bytes", tt.m.Header, len(b))
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(Encode(m)): %v", err)
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Fatalf("Parse(Encode(m)):\n got %s\nwant %s", dump(got), dump(tt.m))
			}
			if again := got.Encode(); !bytes.Equal(again, b) {
				t.Fatal("second Encode differs")
			}
		})
	}
}

func TestCheckPayloads(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	type alien struct{ Payload }
	tests := []struct {
		name string
		ps   []Payload
		want string
	}{
		{"nil", []Payload{nil}, "nil payload"},
		{"typed nil", []Payload{(*Nonce)(nil)}, "nil payload"},
		{"foreign type", []Payload{alien{}}, "not a payload type"},
		{"too long", []Payload{&Cert{Data: make([]byte, 65531)}}, "payload length 65536"},
		{"SA without proposals", []Payload{&SA{}}, "without proposals"},
		{"proposal SPI 256", []Payload{&SA{Proposals: []Proposal{{SPI: make([]byte, 256)}}}}, "SPI of 256 bytes"},
		{"256 transforms", []Payload{&SA{Proposals: []Proposal{{Transforms: make([]Transform, 256)}}}}, "256 transforms"},
		{"notify SPI 256", []Payload{&Notify{SPI: make([]byte, 256)}}, "SPI of 256"},
		{"Delete size mismatch", []Payload{&Delete{SPISize: 4, SPIs: [][]byte{{1, 2, 3}}}}, "SPI 0 has 3 bytes"},
		{"Delete SPIs with size 0", []Payload{&Delete{SPIs: [][]byte{{}}}}, "SPISize 0"},
		{"256 selectors", []Payload{&TS{Selectors: make([]Selector, 256)}}, "256 selectors"},
		{"mixed family selector", []Payload{&TS{Selectors: []Selector{{Start: v4, End: v6}}}}, "not an IPv4 or IPv6"},
		{"IPv4 to 4in6 selector", []Payload{&TS{Selectors: []Selector{{Start: v4, End: netip.AddrFrom16(v4.As16())}}}}, "not an IPv4 or IPv6"},
		{"zero selector", []Payload{&TS{Selectors: []Selector{{}}}}, "not an IPv4 or IPv6"},
		{"fragment 0", []Payload{&Fragment{Total: 1}}, "fragment 0 of 1"},
		{"Unknown with known type", []Payload{&Unknown{T: PayloadNonce}}, "which this package decodes"},
		{"Unknown with type 0", []Payload{&Unknown{}}, "Unknown with type"},
		{"SK not last", []Payload{&Encrypted{Inner: PayloadIDi}, &Nonce{}}, "not the last"},
		{"SKF not last", []Payload{&Fragment{Number: 1, Total: 1}, &Nonce{}}, "not the last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPayloads(tt.ps)
			if !errors.Is(err, ErrUnencodable) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckPayloads: %v, want ErrUnencodable saying %q", err, tt.want)
			}
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), tt.want) {
					t.Fatalf("AppendPayloads: recovered %v, want a panic saying %q", r, tt.want)
				}
			}()
			AppendPayloads(nil, tt.ps)
		})
	}
}

func TestSealHelpers(t *testing.T) {
	// AppendHeader + AppendEncryptedHeader + body is the golden SK message.
	want := unhex(t, goldenAuth)
	h := goldenAuthMsg.Header
	body := goldenAuthMsg.Payloads[0].(*Encrypted).Body
	got := AppendEncryptedHeader(AppendHeader(nil, h), PayloadIDi, len(body))
	if !bytes.Equal(got, want[:HeaderLen+4]) {
		t.Fatalf("SK associated data:\n got %x\nwant %x", got, want[:HeaderLen+4])
	}
	want = unhex(t, goldenFrag)
	f := goldenFragMsg.Payloads[0].(*Fragment)
	got = AppendFragmentHeader(AppendHeader(nil, goldenFragMsg.Header), PayloadIDr, 1, 3, len(f.Body))
	if !bytes.Equal(got, want[:HeaderLen+8]) {
		t.Fatalf("SKF associated data:\n got %x\nwant %x", got, want[:HeaderLen+8])
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{ExchangeIKESAInit.String(), "IKE_SA_INIT"},
		{ExchangeIKEAuth.String(), "IKE_AUTH"},
		{ExchangeCreateChildSA.String(), "CREATE_CHILD_SA"},
		{ExchangeInformational.String(), "INFORMATIONAL"},
		{ExchangeInvalid.String(), "ExchangeType(0)"},
		{PayloadSA.String(), "SA"},
		{PayloadSKF.String(), "SKF"},
		{PayloadType(99).String(), "PayloadType(99)"},
		{ProtoESP.String(), "ESP"},
		{ProtocolID(9).String(), "ProtocolID(9)"},
		{TransformDH.String(), "DH"},
		{TransformInvalid.String(), "TransformType(0)"},
		{IDFQDN.String(), "ID_FQDN"},
		{IDInvalid.String(), "IDType(0)"},
		{TSIPv6Range.String(), "TS_IPV6_ADDR_RANGE"},
		{TSInvalid.String(), "TSType(0)"},
		{NotifyUnsupportedCriticalPayload.String(), "UNSUPPORTED_CRITICAL_PAYLOAD"},
		{NotifyChildSANotFound.String(), "CHILD_SA_NOT_FOUND"},
		{NotifyNATDetectionDestinationIP.String(), "NAT_DETECTION_DESTINATION_IP"},
		{NotifySignatureHashAlgorithms.String(), "SIGNATURE_HASH_ALGORITHMS"},
		{NotifyInvalid.String(), "NotifyType(0)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
	// The RFC 7296 §3.10.1 numbers.
	nums := map[NotifyType]uint16{
		NotifyUnsupportedCriticalPayload: 1, NotifyInvalidIKESPI: 4, NotifyInvalidMajorVersion: 5, NotifyInvalidSyntax: 7,
		NotifyInvalidMessageID: 9, NotifyInvalidSPI: 11, NotifyNoProposalChosen: 14, NotifyInvalidKEPayload: 17,
		NotifyAuthenticationFailed: 24, NotifySinglePairRequired: 34, NotifyNoAdditionalSAs: 35,
		NotifyInternalAddressFailure: 36, NotifyFailedCPRequired: 37, NotifyTSUnacceptable: 38,
		NotifyInvalidSelectors: 39, NotifyTemporaryFailure: 43, NotifyChildSANotFound: 44,
		NotifyInitialContact: 16384, NotifySetWindowSize: 16385, NotifyAdditionalTSPossible: 16386,
		NotifyIPCompSupported: 16387, NotifyNATDetectionSourceIP: 16388, NotifyNATDetectionDestinationIP: 16389,
		NotifyCookie: 16390, NotifyUseTransportMode: 16391, NotifyHTTPCertLookupSupported: 16392, NotifyRekeySA: 16393,
		NotifyESPTFCPaddingNotSupported: 16394, NotifyNonFirstFragmentsAlso: 16395, NotifyMOBIKESupported: 16396,
		NotifyIKEv2FragmentationSupported: 16430, NotifySignatureHashAlgorithms: 16431,
	}
	for n, v := range nums {
		if uint16(n) != v {
			t.Errorf("%v = %d, want %d", n, uint16(n), v)
		}
		if n.IsError() != (v < 16384) {
			t.Errorf("%v.IsError() = %v", n, n.IsError())
		}
		if strings.HasPrefix(n.String(), "NotifyType(") {
			t.Errorf("%d has no name", v)
		}
	}
}
