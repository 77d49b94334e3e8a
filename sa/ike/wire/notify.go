package wire

import "fmt"

// NotifyType is a Notify Message Type (RFC 7296 §3.10.1 and the IANA
// "IKEv2 Notify Message Types" registry). Types below 16384 are errors, the
// others status. The zero value is reserved and invalid.
type NotifyType uint16

const (
	NotifyInvalid NotifyType = 0

	// Error types.
	NotifyUnsupportedCriticalPayload NotifyType = 1  // UNSUPPORTED_CRITICAL_PAYLOAD
	NotifyInvalidIKESPI              NotifyType = 4  // INVALID_IKE_SPI
	NotifyInvalidMajorVersion        NotifyType = 5  // INVALID_MAJOR_VERSION
	NotifyInvalidSyntax              NotifyType = 7  // INVALID_SYNTAX
	NotifyInvalidMessageID           NotifyType = 9  // INVALID_MESSAGE_ID
	NotifyInvalidSPI                 NotifyType = 11 // INVALID_SPI
	NotifyNoProposalChosen           NotifyType = 14 // NO_PROPOSAL_CHOSEN
	NotifyInvalidKEPayload           NotifyType = 17 // INVALID_KE_PAYLOAD
	NotifyAuthenticationFailed       NotifyType = 24 // AUTHENTICATION_FAILED
	NotifySinglePairRequired         NotifyType = 34 // SINGLE_PAIR_REQUIRED
	NotifyNoAdditionalSAs            NotifyType = 35 // NO_ADDITIONAL_SAS
	NotifyInternalAddressFailure     NotifyType = 36 // INTERNAL_ADDRESS_FAILURE
	NotifyFailedCPRequired           NotifyType = 37 // FAILED_CP_REQUIRED
	NotifyTSUnacceptable             NotifyType = 38 // TS_UNACCEPTABLE
	NotifyInvalidSelectors           NotifyType = 39 // INVALID_SELECTORS
	NotifyUnacceptableAddresses      NotifyType = 40 // UNACCEPTABLE_ADDRESSES
	NotifyUnexpectedNATDetected      NotifyType = 41 // UNEXPECTED_NAT_DETECTED
	NotifyTemporaryFailure           NotifyType = 43 // TEMPORARY_FAILURE
	NotifyChildSANotFound            NotifyType = 44 // CHILD_SA_NOT_FOUND
	NotifyStateNotFound              NotifyType = 47 // STATE_NOT_FOUND, RFC 9370

	// Status types.
	NotifyInitialContact                NotifyType = 16384 // INITIAL_CONTACT
	NotifySetWindowSize                 NotifyType = 16385 // SET_WINDOW_SIZE
	NotifyAdditionalTSPossible          NotifyType = 16386 // ADDITIONAL_TS_POSSIBLE
	NotifyIPCompSupported               NotifyType = 16387 // IPCOMP_SUPPORTED
	NotifyNATDetectionSourceIP          NotifyType = 16388 // NAT_DETECTION_SOURCE_IP
	NotifyNATDetectionDestinationIP     NotifyType = 16389 // NAT_DETECTION_DESTINATION_IP
	NotifyCookie                        NotifyType = 16390 // COOKIE
	NotifyUseTransportMode              NotifyType = 16391 // USE_TRANSPORT_MODE
	NotifyHTTPCertLookupSupported       NotifyType = 16392 // HTTP_CERT_LOOKUP_SUPPORTED
	NotifyRekeySA                       NotifyType = 16393 // REKEY_SA
	NotifyESPTFCPaddingNotSupported     NotifyType = 16394 // ESP_TFC_PADDING_NOT_SUPPORTED
	NotifyNonFirstFragmentsAlso         NotifyType = 16395 // NON_FIRST_FRAGMENTS_ALSO
	NotifyMOBIKESupported               NotifyType = 16396 // MOBIKE_SUPPORTED
	NotifyAdditionalIP4Address          NotifyType = 16397 // ADDITIONAL_IP4_ADDRESS
	NotifyAdditionalIP6Address          NotifyType = 16398 // ADDITIONAL_IP6_ADDRESS
	NotifyNoAdditionalAddresses         NotifyType = 16399 // NO_ADDITIONAL_ADDRESSES
	NotifyUpdateSAAddresses             NotifyType = 16400 // UPDATE_SA_ADDRESSES
	NotifyCookie2                       NotifyType = 16401 // COOKIE2
	NotifyNoNATsAllowed                 NotifyType = 16402 // NO_NATS_ALLOWED
	NotifyAuthLifetime                  NotifyType = 16403 // AUTH_LIFETIME
	NotifyMultipleAuthSupported         NotifyType = 16404 // MULTIPLE_AUTH_SUPPORTED
	NotifyAnotherAuthFollows            NotifyType = 16405 // ANOTHER_AUTH_FOLLOWS
	NotifyRedirectSupported             NotifyType = 16406 // REDIRECT_SUPPORTED
	NotifyRedirect                      NotifyType = 16407 // REDIRECT
	NotifyRedirectedFrom                NotifyType = 16408 // REDIRECTED_FROM
	NotifyEAPOnlyAuthentication         NotifyType = 16417 // EAP_ONLY_AUTHENTICATION
	NotifyChildlessIKEv2Supported       NotifyType = 16418 // CHILDLESS_IKEV2_SUPPORTED
	NotifyIKEv2FragmentationSupported   NotifyType = 16430 // IKEV2_FRAGMENTATION_SUPPORTED
	NotifySignatureHashAlgorithms       NotifyType = 16431 // SIGNATURE_HASH_ALGORITHMS
	NotifyUsePPK                        NotifyType = 16435 // USE_PPK
	NotifyPPKIdentity                   NotifyType = 16436 // PPK_IDENTITY
	NotifyNoPPKAuth                     NotifyType = 16437 // NO_PPK_AUTH
	NotifyIntermediateExchangeSupported NotifyType = 16438 // INTERMEDIATE_EXCHANGE_SUPPORTED
	NotifyAdditionalKeyExchange         NotifyType = 16441 // ADDITIONAL_KEY_EXCHANGE
)

// IsError reports whether t is an error type (below 16384).
func (t NotifyType) IsError() bool { return t < 16384 }

func (t NotifyType) String() string {
	switch t {
	case NotifyUnsupportedCriticalPayload:
		return "UNSUPPORTED_CRITICAL_PAYLOAD"
	case NotifyInvalidIKESPI:
		return "INVALID_IKE_SPI"
	case NotifyInvalidMajorVersion:
		return "INVALID_MAJOR_VERSION"
	case NotifyInvalidSyntax:
		return "INVALID_SYNTAX"
	case NotifyInvalidMessageID:
		return "INVALID_MESSAGE_ID"
	case NotifyInvalidSPI:
		return "INVALID_SPI"
	case NotifyNoProposalChosen:
		return "NO_PROPOSAL_CHOSEN"
	case NotifyInvalidKEPayload:
		return "INVALID_KE_PAYLOAD"
	case NotifyAuthenticationFailed:
		return "AUTHENTICATION_FAILED"
	case NotifySinglePairRequired:
		return "SINGLE_PAIR_REQUIRED"
	case NotifyNoAdditionalSAs:
		return "NO_ADDITIONAL_SAS"
	case NotifyInternalAddressFailure:
		return "INTERNAL_ADDRESS_FAILURE"
	case NotifyFailedCPRequired:
		return "FAILED_CP_REQUIRED"
	case NotifyTSUnacceptable:
		return "TS_UNACCEPTABLE"
	case NotifyInvalidSelectors:
		return "INVALID_SELECTORS"
	case NotifyUnacceptableAddresses:
		return "UNACCEPTABLE_ADDRESSES"
	case NotifyUnexpectedNATDetected:
		return "UNEXPECTED_NAT_DETECTED"
	case NotifyTemporaryFailure:
		return "TEMPORARY_FAILURE"
	case NotifyChildSANotFound:
		return "CHILD_SA_NOT_FOUND"
	case NotifyStateNotFound:
		return "STATE_NOT_FOUND"
	case NotifyInitialContact:
		return "INITIAL_CONTACT"
	case NotifySetWindowSize:
		return "SET_WINDOW_SIZE"
	case NotifyAdditionalTSPossible:
		return "ADDITIONAL_TS_POSSIBLE"
	case NotifyIPCompSupported:
		return "IPCOMP_SUPPORTED"
	case NotifyNATDetectionSourceIP:
		return "NAT_DETECTION_SOURCE_IP"
	case NotifyNATDetectionDestinationIP:
		return "NAT_DETECTION_DESTINATION_IP"
	case NotifyCookie:
		return "COOKIE"
	case NotifyUseTransportMode:
		return "USE_TRANSPORT_MODE"
	case NotifyHTTPCertLookupSupported:
		return "HTTP_CERT_LOOKUP_SUPPORTED"
	case NotifyRekeySA:
		return "REKEY_SA"
	case NotifyESPTFCPaddingNotSupported:
		return "ESP_TFC_PADDING_NOT_SUPPORTED"
	case NotifyNonFirstFragmentsAlso:
		return "NON_FIRST_FRAGMENTS_ALSO"
	case NotifyMOBIKESupported:
		return "MOBIKE_SUPPORTED"
	case NotifyAdditionalIP4Address:
		return "ADDITIONAL_IP4_ADDRESS"
	case NotifyAdditionalIP6Address:
		return "ADDITIONAL_IP6_ADDRESS"
	case NotifyNoAdditionalAddresses:
		return "NO_ADDITIONAL_ADDRESSES"
	case NotifyUpdateSAAddresses:
		return "UPDATE_SA_ADDRESSES"
	case NotifyCookie2:
		return "COOKIE2"
	case NotifyNoNATsAllowed:
		return "NO_NATS_ALLOWED"
	case NotifyAuthLifetime:
		return "AUTH_LIFETIME"
	case NotifyMultipleAuthSupported:
		return "MULTIPLE_AUTH_SUPPORTED"
	case NotifyAnotherAuthFollows:
		return "ANOTHER_AUTH_FOLLOWS"
	case NotifyRedirectSupported:
		return "REDIRECT_SUPPORTED"
	case NotifyRedirect:
		return "REDIRECT"
	case NotifyRedirectedFrom:
		return "REDIRECTED_FROM"
	case NotifyEAPOnlyAuthentication:
		return "EAP_ONLY_AUTHENTICATION"
	case NotifyChildlessIKEv2Supported:
		return "CHILDLESS_IKEV2_SUPPORTED"
	case NotifyIKEv2FragmentationSupported:
		return "IKEV2_FRAGMENTATION_SUPPORTED"
	case NotifySignatureHashAlgorithms:
		return "SIGNATURE_HASH_ALGORITHMS"
	case NotifyUsePPK:
		return "USE_PPK"
	case NotifyPPKIdentity:
		return "PPK_IDENTITY"
	case NotifyNoPPKAuth:
		return "NO_PPK_AUTH"
	case NotifyIntermediateExchangeSupported:
		return "INTERMEDIATE_EXCHANGE_SUPPORTED"
	case NotifyAdditionalKeyExchange:
		return "ADDITIONAL_KEY_EXCHANGE"
	}
	return fmt.Sprintf("NotifyType(%d)", uint16(t))
}
