package client

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/isol8/isol8"
)

// Error is an error the server reported: an answer with a status other
// than 2xx, or an "error" event of a stream (Status 0). It wraps the
// library's error class for the status, so errors.Is(err,
// isol8.ErrNotFound) and the like work as with the local engine.
type Error struct {
	// Status is the HTTP status; 0 for an error event of a stream.
	Status int
	// Message is the server's own text ({"error": ...}), or the status
	// text when the answer had none.
	Message string
	// RetryAfter is the server's Retry-After, when it sent one (429, 503).
	RetryAfter time.Duration
}

// Error returns the server's message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the error class of the status:
// 400 and 413 ErrInvalidArgument, 401 and 403 ErrPermission, 404
// ErrNotFound, 409 ErrConflict, 429 ErrResourceExhausted, 5xx
// ErrUnavailable; nil for any other.
func (e *Error) Unwrap() error { return classOf(e.Status) }

func classOf(status int) error {
	switch {
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge:
		return isol8.ErrInvalidArgument
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return isol8.ErrPermission
	case status == http.StatusNotFound:
		return isol8.ErrNotFound
	case status == http.StatusConflict:
		return isol8.ErrConflict
	case status == http.StatusTooManyRequests:
		return isol8.ErrResourceExhausted
	case status >= 500 && status <= 599:
		return isol8.ErrUnavailable
	}
	return nil
}

// responseError reads an error answer (a little of its body at most).
func responseError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = strings.TrimSpace(strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
