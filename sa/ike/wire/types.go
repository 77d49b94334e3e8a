package wire

import (
	"fmt"
	"net/netip"
)

// ExchangeType is the Exchange Type field of the IKE header (RFC 7296 §3.1).
// The zero value is invalid.
type ExchangeType uint8

const (
	ExchangeInvalid       ExchangeType = 0
	ExchangeIKESAInit     ExchangeType = 34
	ExchangeIKEAuth       ExchangeType = 35
	ExchangeCreateChildSA ExchangeType = 36
	ExchangeInformational ExchangeType = 37
	ExchangeIntermediate  ExchangeType = 43 // RFC 9242
	ExchangeFollowupKE    ExchangeType = 44 // IKE_FOLLOWUP_KE, RFC 9370
)

func (e ExchangeType) String() string {
	switch e {
	case ExchangeIKESAInit:
		return "IKE_SA_INIT"
	case ExchangeIKEAuth:
		return "IKE_AUTH"
	case ExchangeCreateChildSA:
		return "CREATE_CHILD_SA"
	case ExchangeInformational:
		return "INFORMATIONAL"
	case ExchangeIntermediate:
		return "IKE_INTERMEDIATE"
	case ExchangeFollowupKE:
		return "IKE_FOLLOWUP_KE"
	}
	return fmt.Sprintf("ExchangeType(%d)", uint8(e))
}

// PayloadType is a Next Payload value (RFC 7296 §3.2). PayloadNone (0) ends
// a chain.
type PayloadType uint8

const (
	PayloadNone     PayloadType = 0
	PayloadSA       PayloadType = 33
	PayloadKE       PayloadType = 34
	PayloadIDi      PayloadType = 35
	PayloadIDr      PayloadType = 36
	PayloadCert     PayloadType = 37
	PayloadCertReq  PayloadType = 38
	PayloadAuth     PayloadType = 39
	PayloadNonce    PayloadType = 40
	PayloadNotify   PayloadType = 41
	PayloadDelete   PayloadType = 42
	PayloadVendorID PayloadType = 43
	PayloadTSi      PayloadType = 44
	PayloadTSr      PayloadType = 45
	PayloadSK       PayloadType = 46
	PayloadCP       PayloadType = 47
	PayloadEAP      PayloadType = 48 // not decoded: carried as *Unknown
	PayloadSKF      PayloadType = 53 // RFC 7383
)

func (p PayloadType) String() string {
	switch p {
	case PayloadNone:
		return "NONE"
	case PayloadSA:
		return "SA"
	case PayloadKE:
		return "KE"
	case PayloadIDi:
		return "IDi"
	case PayloadIDr:
		return "IDr"
	case PayloadCert:
		return "CERT"
	case PayloadCertReq:
		return "CERTREQ"
	case PayloadAuth:
		return "AUTH"
	case PayloadNonce:
		return "Ni/Nr"
	case PayloadNotify:
		return "N"
	case PayloadDelete:
		return "D"
	case PayloadVendorID:
		return "V"
	case PayloadTSi:
		return "TSi"
	case PayloadTSr:
		return "TSr"
	case PayloadSK:
		return "SK"
	case PayloadCP:
		return "CP"
	case PayloadEAP:
		return "EAP"
	case PayloadSKF:
		return "SKF"
	}
	return fmt.Sprintf("PayloadType(%d)", uint8(p))
}

// Header flags (RFC 7296 §3.1).
const (
	FlagInitiator = 0x08 // I: sent by the original initiator of the IKE SA
	FlagVersion   = 0x10 // V: sender can speak a higher major version
	FlagResponse  = 0x20 // R: this message is a response
)

// HeaderLen is the length of the IKE header.
const HeaderLen = 28

// Version2 is the Version field of IKEv2 (major 2, minor 0).
const Version2 = 0x20

// Header is the IKE header (RFC 7296 §3.1).
type Header struct {
	SPIi, SPIr uint64
	Next       PayloadType // first payload
	Version    uint8       // 0x20
	Exchange   ExchangeType
	Flags      uint8
	MessageID  uint32
	Length     uint32 // filled by Encode
}

// Payload is one decoded payload. The concrete types are pointers: *SA, *KE,
// *ID, *Cert, *CertReq, *Auth, *Nonce, *Notify, *Delete, *VendorID, *TS,
// *CP, *Encrypted, *Fragment and *Unknown.
type Payload interface{ Type() PayloadType }

// ProtocolID is a Protocol ID (RFC 7296 §3.3.1). ProtoNone (0) is valid only
// in Notify payloads that concern no SA.
type ProtocolID uint8

const (
	ProtoNone ProtocolID = 0
	ProtoIKE  ProtocolID = 1
	ProtoAH   ProtocolID = 2
	ProtoESP  ProtocolID = 3
)

func (p ProtocolID) String() string {
	switch p {
	case ProtoNone:
		return "none"
	case ProtoIKE:
		return "IKE"
	case ProtoAH:
		return "AH"
	case ProtoESP:
		return "ESP"
	}
	return fmt.Sprintf("ProtocolID(%d)", uint8(p))
}

// TransformType is a Transform Type (RFC 7296 §3.3.2). The zero value is
// invalid.
type TransformType uint8

const (
	TransformInvalid TransformType = 0
	TransformENCR    TransformType = 1
	TransformPRF     TransformType = 2
	TransformINTEG   TransformType = 3
	TransformDH      TransformType = 4
	TransformESN     TransformType = 5
	// Additional Key Exchange 1..7 (RFC 9370 §2.2.1): ADDKE n is
	// TransformADDKE1 + n - 1.
	TransformADDKE1 TransformType = 6
	TransformADDKE7 TransformType = 12
)

func (t TransformType) String() string {
	switch t {
	case TransformENCR:
		return "ENCR"
	case TransformPRF:
		return "PRF"
	case TransformINTEG:
		return "INTEG"
	case TransformDH:
		return "DH"
	case TransformESN:
		return "ESN"
	}
	if t >= TransformADDKE1 && t <= TransformADDKE7 {
		return fmt.Sprintf("ADDKE%d", uint8(t-TransformADDKE1)+1)
	}
	return fmt.Sprintf("TransformType(%d)", uint8(t))
}

// Transform is one transform substructure (RFC 7296 §3.3.2). Of its
// attributes only Key Length (§3.3.5) is kept; other attributes are
// length-checked and skipped.
type Transform struct {
	Type      TransformType
	ID        uint16
	KeyLength uint16 // bits; 0: no Key Length attribute
}

// Proposal is one proposal substructure (RFC 7296 §3.3.1). The SPI Size on
// the wire is len(SPI).
type Proposal struct {
	Num        uint8
	Protocol   ProtocolID
	SPI        []byte
	Transforms []Transform
}

// SA is the Security Association payload (RFC 7296 §3.3).
type SA struct{ Proposals []Proposal }

// KE is the Key Exchange payload (RFC 7296 §3.4).
type KE struct {
	Group uint16
	Data  []byte
}

// IDType is an ID Type (RFC 7296 §3.5). The zero value is invalid.
type IDType uint8

const (
	IDInvalid IDType = 0
	IDIPv4    IDType = 1  // ID_IPV4_ADDR
	IDFQDN    IDType = 2  // ID_FQDN
	IDRFC822  IDType = 3  // ID_RFC822_ADDR
	IDIPv6    IDType = 5  // ID_IPV6_ADDR
	IDDN      IDType = 9  // ID_DER_ASN1_DN
	IDGN      IDType = 10 // ID_DER_ASN1_GN
	IDKeyID   IDType = 11 // ID_KEY_ID
)

func (t IDType) String() string {
	switch t {
	case IDIPv4:
		return "ID_IPV4_ADDR"
	case IDFQDN:
		return "ID_FQDN"
	case IDRFC822:
		return "ID_RFC822_ADDR"
	case IDIPv6:
		return "ID_IPV6_ADDR"
	case IDDN:
		return "ID_DER_ASN1_DN"
	case IDGN:
		return "ID_DER_ASN1_GN"
	case IDKeyID:
		return "ID_KEY_ID"
	}
	return fmt.Sprintf("IDType(%d)", uint8(t))
}

// ID is the Identification payload, IDi or IDr (RFC 7296 §3.5).
type ID struct {
	Responder bool // IDr when true
	IDType    IDType
	Data      []byte
}

// Certificate encodings (RFC 7296 §3.6), for Cert.Encoding and
// CertReq.Encoding.
const (
	CertPKCS7         = 1
	CertX509Sig       = 4  // X.509 Certificate - Signature
	CertCRL           = 7  // Certificate Revocation List
	CertRawRSAKey     = 11 // Raw RSA Key (deprecated)
	CertHashURLX509   = 12 // Hash and URL of X.509 certificate
	CertHashURLBundle = 13 // Hash and URL of X.509 bundle
)

// Cert is the Certificate payload (RFC 7296 §3.6).
type Cert struct {
	Encoding uint8 // CertX509Sig = 4
	Data     []byte
}

// CertReq is the Certificate Request payload (RFC 7296 §3.7).
type CertReq struct {
	Encoding uint8
	Data     []byte // concatenated 20-byte SHA-1 of CA SubjectPublicKeyInfo
}

// Authentication methods (RFC 7296 §3.8, RFC 4754, RFC 7427), for
// Auth.Method.
const (
	AuthRSA              = 1  // RSA Digital Signature (PKCS#1 v1.5, SHA-1)
	AuthPSK              = 2  // Shared Key Message Integrity Code
	AuthDSS              = 3  // DSS Digital Signature
	AuthECDSA256         = 9  // ECDSA with SHA-256 on P-256
	AuthECDSA384         = 10 // ECDSA with SHA-384 on P-384
	AuthECDSA521         = 11 // ECDSA with SHA-512 on P-521
	AuthDigitalSignature = 14 // RFC 7427
)

// Auth is the Authentication payload (RFC 7296 §3.8).
type Auth struct {
	Method uint8 // AuthRSA=1 AuthPSK=2 AuthECDSA256=9 AuthECDSA384=10 AuthDigitalSignature=14
	Data   []byte
}

// Nonce is the Nonce payload (RFC 7296 §3.9). The 16..256 byte rule is the
// engine's to enforce.
type Nonce struct{ Data []byte }

// Notify is the Notify payload (RFC 7296 §3.10). The SPI Size on the wire is
// len(SPI).
type Notify struct {
	Protocol   ProtocolID
	SPI        []byte
	NotifyType NotifyType
	Data       []byte
}

// Delete is the Delete payload (RFC 7296 §3.11). Every SPI is SPISize bytes
// long; for the IKE SA SPISize is 0 and SPIs is empty.
type Delete struct {
	Protocol ProtocolID
	SPISize  uint8
	SPIs     [][]byte
}

// VendorID is the Vendor ID payload (RFC 7296 §3.12).
type VendorID struct{ Data []byte }

// TSType is a Traffic Selector Type (RFC 7296 §3.13.1). The zero value is
// invalid.
type TSType uint8

const (
	TSInvalid   TSType = 0
	TSIPv4Range TSType = 7 // TS_IPV4_ADDR_RANGE
	TSIPv6Range TSType = 8 // TS_IPV6_ADDR_RANGE
)

func (t TSType) String() string {
	switch t {
	case TSIPv4Range:
		return "TS_IPV4_ADDR_RANGE"
	case TSIPv6Range:
		return "TS_IPV6_ADDR_RANGE"
	}
	return fmt.Sprintf("TSType(%d)", uint8(t))
}

// Selector is one traffic selector (RFC 7296 §3.13.1). Start and End are both
// IPv4 (TS_IPV4_ADDR_RANGE) or both IPv6 (TS_IPV6_ADDR_RANGE). An IPv6
// range may hold IPv4-mapped addresses (::ffff:a.b.c.d): they are 16-byte
// addresses like any other there, kept as IPv6 (never unmapped), so they
// encode back to the bytes they came from. StartPort > EndPort is the
// OPAQUE port convention (65535, 0) and is carried as is.
type Selector struct {
	Proto              uint8 // 0: any
	StartPort, EndPort uint16
	Start, End         netip.Addr
}

// TSType returns the selector's type on the wire: TSIPv4Range or
// TSIPv6Range, TSInvalid if Start and End are not of one family (an IPv4
// address and an IPv4-mapped IPv6 one are not).
func (s Selector) TSType() TSType {
	switch {
	case s.Start.Is4() && s.End.Is4():
		return TSIPv4Range
	case s.Start.Is6() && s.End.Is6():
		return TSIPv6Range
	}
	return TSInvalid
}

// TS is the Traffic Selector payload, TSi or TSr (RFC 7296 §3.13).
type TS struct {
	Responder bool // TSr when true
	Selectors []Selector
}

// Configuration types (RFC 7296 §3.15), for CP.CfgType.
const (
	CfgRequest = 1
	CfgReply   = 2
	CfgSet     = 3
	CfgAck     = 4
)

// CP is the Configuration payload (RFC 7296 §3.15); its attributes are
// carried opaque.
type CP struct {
	CfgType uint8
	Attrs   []byte
}

// Encrypted is the Encrypted and Authenticated payload SK (RFC 7296 §3.14).
// Inner is the type of the first payload inside; Body is IV || ciphertext ||
// ICV, opaque here. SK is always the last payload of a message, so the
// associated data of its AEAD/ICV is the datagram minus len(Body) at the end.
type Encrypted struct {
	Inner PayloadType
	Body  []byte
}

// Fragment is the Encrypted and Authenticated Fragment payload SKF (RFC 7383
// §2.5). Inner is the type of the first inner payload in fragment 1 and
// PayloadNone in the others. Number counts from 1 to Total.
type Fragment struct {
	Inner         PayloadType
	Number, Total uint16
	Body          []byte
}

// Unknown is a payload this package does not decode (including EAP). An
// unknown payload with the critical bit set makes Parse fail with
// ErrUnsupportedCritical instead.
type Unknown struct {
	T        PayloadType
	Critical bool
	Data     []byte
}

func (*SA) Type() PayloadType       { return PayloadSA }
func (*KE) Type() PayloadType       { return PayloadKE }
func (*Cert) Type() PayloadType     { return PayloadCert }
func (*CertReq) Type() PayloadType  { return PayloadCertReq }
func (*Auth) Type() PayloadType     { return PayloadAuth }
func (*Nonce) Type() PayloadType    { return PayloadNonce }
func (*Notify) Type() PayloadType   { return PayloadNotify }
func (*Delete) Type() PayloadType   { return PayloadDelete }
func (*VendorID) Type() PayloadType { return PayloadVendorID }
func (*CP) Type() PayloadType       { return PayloadCP }
func (*Encrypted) Type() PayloadType {
	return PayloadSK
}
func (*Fragment) Type() PayloadType  { return PayloadSKF }
func (u *Unknown) Type() PayloadType { return u.T }

func (id *ID) Type() PayloadType {
	if id.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

func (ts *TS) Type() PayloadType {
	if ts.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

// Message is a whole IKE message.
type Message struct {
	Header   Header
	Payloads []Payload
}
