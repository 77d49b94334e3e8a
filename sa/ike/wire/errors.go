package wire

import (
	"errors"
	"fmt"
)

// Errors returned by the decoders, wrapped with the payload at fault
// ("wire: payload 3 (SA): proposal 2: ..."); test with errors.Is.
var (
	// ErrTruncated: a length field points past the end of the data.
	ErrTruncated = errors.New("truncated")
	// ErrBadVersion: the major version is not 2; the caller answers
	// INVALID_MAJOR_VERSION (RFC 7296 §2.5).
	ErrBadVersion = errors.New("unsupported IKE major version")
	// ErrUnsupportedCritical: an unknown payload has the critical bit set;
	// the caller answers UNSUPPORTED_CRITICAL_PAYLOAD with the type from
	// the *UnsupportedCriticalError (errors.As).
	ErrUnsupportedCritical = errors.New("unsupported critical payload")
	// ErrBadLength: lengths, counts or last-substructure markers disagree.
	ErrBadLength = errors.New("inconsistent length")
	// ErrBadValue: a field holds a value the format forbids (proposal
	// marker, fragment number, selector type, encrypted payload nesting).
	ErrBadValue = errors.New("invalid field value")
	// ErrNotLast: an SK or SKF payload does not end the message.
	ErrNotLast = errors.New("SK or SKF payload is not the last payload")
	// ErrTooManyPayloads: more than MaxPayloads payloads in one chain.
	ErrTooManyPayloads = errors.New("too many payloads")
)

// MaxPayloads bounds the payloads of one chain. Real messages carry a few
// dozen (IKE_AUTH with a certificate chain and notifies); the bound keeps a
// 64 KiB datagram of empty payloads from costing megabytes of structs.
const MaxPayloads = 512

// UnsupportedCriticalError names the unknown payload type that had the
// critical bit set: the Notification Data of UNSUPPORTED_CRITICAL_PAYLOAD is
// that one octet (RFC 7296 §3.10.1). It matches ErrUnsupportedCritical.
type UnsupportedCriticalError struct{ Type PayloadType }

func (e *UnsupportedCriticalError) Error() string {
	return fmt.Sprintf("%v: type %d", ErrUnsupportedCritical, uint8(e.Type))
}

func (e *UnsupportedCriticalError) Is(target error) bool { return target == ErrUnsupportedCritical }
