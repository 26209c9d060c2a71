package isol8

import (
	"errors"
	"fmt"
)

// Error classes. Every error isol8 returns wraps one of these (with %w), and
// the HTTP server maps the class to a status in one place.
var (
	// ErrInvalidArgument: the caller's input is wrong (HTTP 400).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrPermission: the input is well-formed but policy refuses it (HTTP 403).
	ErrPermission = errors.New("permission denied")
	// ErrNotFound: a named thing does not exist (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request does not fit the current state (HTTP 409).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: a dependency (the Docker engine, say) cannot be reached (HTTP 503).
	ErrUnavailable = errors.New("unavailable")
	// ErrResourceExhausted: a queue or quota is full (HTTP 429).
	ErrResourceExhausted = errors.New("resource exhausted")
)

// FieldError is an invalid-argument or permission error that names the
// offending field, such as `files["/sandbox/../x"]`.
type FieldError struct {
	Field  string
	Reason string
	Class  error // ErrInvalidArgument unless set
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns the error class.
func (e *FieldError) Unwrap() error {
	if e.Class == nil {
		return ErrInvalidArgument
	}
	return e.Class
}

// invalid builds an invalid-argument FieldError.
func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// forbidden builds a permission FieldError.
func forbidden(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Class: ErrPermission}
}
