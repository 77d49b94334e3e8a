package api

import "errors"

// Error codes: the stable, machine-readable Code of an *Error. Programs
// branch on these (or on the Err* values with errors.Is), never on
// Message, which is for operators and may change.
const (
	CodeInvalid     = "invalid"     // 400: a field is wrong; Message names the flag
	CodeBadRequest  = "bad_request" // 400: not the expected JSON, an unknown field or path
	CodeNotFound    = "not_found"   // 404: the named object does not exist
	CodeExists      = "exists"      // 409: the name, SPI, (vlan, mac)... is taken
	CodeInUse       = "in_use"      // 409: others depend on what is to be removed
	CodeConflict    = "conflict"    // 409: fleet store only: concurrent writers, nothing changed
	CodeInternal    = "internal"    // 500: the change could not be committed, nothing changed
	CodeUnavailable = "unavailable" // 503: fleet store only: the store could not be read
	// CodeUnreachable is never sent by the daemon: it is the code of an
	// *UnreachableError (the daemon could not be reached), so that a
	// program reports every failure with one vocabulary (ErrorCode).
	CodeUnreachable = "unreachable"
)

// Values to test a Client's error with errors.Is: errors.Is(err,
// ErrNotFound) holds for an *Error of code not_found, and so on;
// errors.Is(err, ErrUnreachable) for an *UnreachableError.
var (
	ErrInvalid     = &Error{Code: CodeInvalid}
	ErrBadRequest  = &Error{Code: CodeBadRequest}
	ErrNotFound    = &Error{Code: CodeNotFound}
	ErrExists      = &Error{Code: CodeExists}
	ErrInUse       = &Error{Code: CodeInUse}
	ErrConflict    = &Error{Code: CodeConflict}
	ErrInternal    = &Error{Code: CodeInternal}
	ErrUnavailable = &Error{Code: CodeUnavailable}
	ErrUnreachable = errors.New("vifsecd unreachable")
)

// Is reports whether target is an *Error of the same Code (Status and
// Message are not compared).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Is reports whether target is ErrUnreachable.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// ErrorCode returns the code of err: the Code of an *Error in its chain,
// CodeUnreachable for an *UnreachableError, "" for anything else (an
// error of the caller's own, not the API's).
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return CodeUnreachable
	}
	return ""
}
