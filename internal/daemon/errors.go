package daemon

import (
	"errors"
	"fmt"
)

// Code classifies why a request was refused, so a transport can map it
// (HTTP status, exit code) without reading messages.
type Code uint8

const (
	CodeInvalid  Code = iota + 1 // the request is malformed or breaks a rule
	CodeNotFound                 // it names an object that does not exist
	CodeExists                   // it creates an object whose name or identity is taken
	CodeInUse                    // it removes an object others depend on
	CodeInternal                 // the daemon failed (store error): nothing changed
)

func (c Code) String() string {
	switch c {
	case CodeInvalid:
		return "invalid"
	case CodeNotFound:
		return "not_found"
	case CodeExists:
		return "exists"
	case CodeInUse:
		return "in_use"
	case CodeInternal:
		return "internal"
	}
	return fmt.Sprintf("Code(%d)", uint8(c))
}

// Error is a refused request. Its message is for the operator: it names
// the CLI flag at fault and what it accepts.
type Error struct {
	Code Code
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the Code of err, CodeInternal if it carries none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

func errf(c Code, format string, a ...any) error {
	return &Error{Code: c, Err: fmt.Errorf(format, a...)}
}

func wrap(c Code, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: c, Err: err}
}
