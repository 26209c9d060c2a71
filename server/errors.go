package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/isol8/isol8"
)

// apiError is an error whose message is exactly what the client sees
// (such as "Session not found"), of an isol8 error class.
type apiError struct {
	class error
	msg   string
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.class }

func newError(class error, format string, args ...any) error {
	return &apiError{class: class, msg: fmt.Sprintf(format, args...)}
}

// The errors of the contract, with their exact messages.
var (
	errMissingAuth     = &apiError{msg: "Missing Authorization header"} // the one 401
	errInvalidKey      = newError(isol8.ErrPermission, "Invalid API key")
	errMasterRequired  = newError(isol8.ErrPermission, "Master key required for this operation")
	errAuthDisabled    = newError(isol8.ErrInvalidArgument, "DB-backed auth is not enabled")
	errSessionNotFound = newError(isol8.ErrNotFound, "Session not found")
	errKeyNotFound     = newError(isol8.ErrNotFound, "Key not found")
	errNotFound        = newError(isol8.ErrNotFound, "Not found")
	errTooManySessions = newError(isol8.ErrResourceExhausted, "Too many sessions; delete one or retry later")
	errShuttingDown    = newError(isol8.ErrUnavailable, "Server is shutting down")
)

// statusOf is the one place that maps an error to an HTTP status.
func statusOf(err error) int {
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, errMissingAuth):
		return http.StatusUnauthorized
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, isol8.ErrInvalidArgument):
		return http.StatusBadRequest
	case errors.Is(err, isol8.ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, isol8.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, isol8.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, isol8.ErrResourceExhausted):
		return http.StatusTooManyRequests
	case errors.Is(err, isol8.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client went away (nginx's "client closed request").
		return 499
	}
	return http.StatusInternalServerError
}

// publicMessage is what a client is told of err: the message for the
// caller's own mistakes, a generic line for the server's (the details are
// logged, never sent: they can name hosts, paths and daemons).
func publicMessage(err error) string {
	switch status := statusOf(err); {
	case status == http.StatusInternalServerError:
		return "Internal server error"
	case status == http.StatusServiceUnavailable:
		var ae *apiError
		if errors.As(err, &ae) {
			return ae.msg
		}
		return "Service unavailable"
	case status == 499:
		return "Request canceled"
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return fmt.Sprintf("Request body too large (limit %d bytes)", tooLarge.Limit)
	}
	return err.Error()
}

// writeError answers with err's status and {"error": message}; server-side
// errors are logged with the request id.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := statusOf(err)
	if status >= 500 && status != 499 {
		log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "status", status, "err", err)
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, map[string]string{"error": publicMessage(err)})
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"error":"Internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}
