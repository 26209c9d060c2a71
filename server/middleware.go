package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/google/uuid"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
)

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// statusRecorder remembers the status and size of a response. Unwrap lets
// http.ResponseController and the WebSocket upgrade reach the real writer.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observe wraps the whole handler: it gives each request an id (echoed in
// X-Request-Id), turns a panic into a logged 500 (the server lives on),
// and logs one line per request. It never logs headers, bodies or keys.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// A client's X-Request-Id is kept when it looks like an id; anything
		// else is replaced, so logs never carry client-chosen junk.
		id := r.Header.Get("X-Request-Id")
		if !idRE.MatchString(id) {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(ctx, "handler panicked", "request_id", id, "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeError(rec, r, s.log, errors.New("panic"))
				}
			}
			status := rec.status
			if status == 0 {
				status = 499 // the handler wrote nothing: the client went away
			}
			attrs := []slog.Attr{slog.String("request_id", id), slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", status), slog.Int64("bytes", rec.bytes),
				slog.Int64("duration_ms", time.Since(start).Milliseconds()), slog.String("remote", r.RemoteAddr)}
			if p := principalFrom(r.Context()); p.keyID != "" {
				attrs = append(attrs, slog.String("key_id", p.keyID))
			}
			s.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			s.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		}()
		// The principal is filled in by the auth step of the route; a
		// pointer in the context lets this outer layer log it.
		r = r.WithContext(context.WithValue(ctx, principalKey, new(principal)))
		next.ServeHTTP(rec, r)
	})
}
