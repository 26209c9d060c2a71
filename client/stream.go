package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/isol8/isol8"
)

const (
	// maxStdin bounds a StdinReader read to its end for plain HTTP.
	maxStdin = 64 << 20
	// maxEvent bounds one stream event (a WebSocket message, an SSE frame).
	maxEvent = 16 << 20
	// maxCollected bounds the stdout and the stderr a streamed result keeps
	// (the server bounds them far lower, by maxOutputSize).
	maxCollected = 64 << 20
)

// errNoWebSocket means the server answered the upgrade without switching
// protocols (no WebSocket route, or a proxy in the way): use SSE.
var errNoWebSocket = errors.New("the server does not accept WebSocket streams")

// ExecuteStream runs req on the server, sending its events to sink as they
// arrive, and returns a result assembled from them: stdout, stderr,
// exitCode, truncated (when this client cut what it kept), runtime,
// timestamp and durationMs (as measured here, network included). Other
// fields (executionId, files, resourceUsage, ...) are only in the result
// of Execute.
//
// It streams over a WebSocket (GET /execute/ws), where Request.StdinReader
// is forwarded as "stdin" messages (then {"type":"stdin","eof":true}) and
// Request.Signals as "signal" messages. When the server refuses the
// upgrade, it falls back to SSE (POST /execute/stream) for this and every
// later call; there, as with Execute, StdinReader is read to its end
// before the run and a signal cancels the run. Stdin travels as JSON
// text: bytes that are not UTF-8 arrive as U+FFFD.
//
// The last event sink sees is "exit", or "error" when the run failed (the
// server's error event, or one made here when the stream broke); an
// "error" event that the server sends for a refused stdin or signal
// message may come earlier, without ending the run.
func (r *Remote) ExecuteStream(ctx context.Context, req *isol8.Request, sink isol8.EventSink) (*isol8.Result, error) {
	if req == nil {
		return nil, &isol8.FieldError{Field: "request", Reason: "required"}
	}
	c := &collector{sink: sink, start: time.Now(), runtime: req.Runtime}
	if !r.noWS.Load() {
		err := r.streamWS(ctx, req, c)
		if !errors.Is(err, errNoWebSocket) {
			return c.finish(err)
		}
		r.noWS.Store(true)
	}
	return c.finish(r.streamSSE(ctx, req, c))
}

// plain prepares req for a transport that carries neither stdin nor
// signals once the run has started (POST /execute, SSE): StdinReader is
// read to its end into Stdin, and a signal cancels the returned context
// with a *signalError cause. done must be called when the call is over.
func (r *Remote) plain(ctx context.Context, req *isol8.Request) (_ context.Context, wire *isol8.Request, done func(), err error) {
	if req == nil {
		return nil, nil, nil, &isol8.FieldError{Field: "request", Reason: "required"}
	}
	wire = req
	if req.StdinReader != nil {
		data, err := readAll(ctx, req.StdinReader, maxStdin)
		if err != nil {
			return nil, nil, nil, err
		}
		cp := *req
		cp.Stdin = string(data)
		wire = &cp
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	if req.Signals != nil {
		go func() {
			select {
			case sig, ok := <-req.Signals:
				if ok {
					cancel(&signalError{sig: sig})
				}
			case <-stop:
			}
		}()
	}
	return ctx, wire, func() { close(stop); cancel(nil) }, nil
}

// signalError is how a run over plain HTTP ends when it is signalled: the
// request is cancelled, and the server kills the run.
type signalError struct{ sig string }

func (e *signalError) Error() string {
	return "run stopped by " + e.sig + " (plain HTTP cannot deliver signals, so the request was cancelled)"
}

// Unwrap makes the stop a cancellation (errors.Is(err, context.Canceled)).
func (e *signalError) Unwrap() error { return context.Canceled }

// readAll reads rd to its end, or until ctx ends (the read itself may go
// on in the background: a reader such as os.Stdin cannot be interrupted).
func readAll(ctx context.Context, rd io.Reader, limit int64) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(rd, limit+1))
		ch <- result{data, err}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.err != nil {
			return nil, fmt.Errorf("reading stdin: %w", res.err)
		}
		if int64(len(res.data)) > limit {
			return nil, &isol8.FieldError{Field: "stdin", Reason: fmt.Sprintf("longer than %d bytes", limit)}
		}
		return res.data, nil
	}
}

// collector turns a stream's events into a result.
type collector struct {
	sink    isol8.EventSink
	start   time.Time
	runtime isol8.Runtime

	mu             sync.Mutex
	stdout, stderr strings.Builder
	truncated      bool
	exit           *int
	lastErr        string // the message of the last error event
	sawErr         bool   // an error event reached sink after the last other event
}

// event records ev and passes it on; a malformed exit event is an error.
func (c *collector) event(ev isol8.StreamEvent) error {
	c.mu.Lock()
	switch ev.Type {
	case isol8.EventStdout:
		c.keep(&c.stdout, ev.Data)
	case isol8.EventStderr:
		c.keep(&c.stderr, ev.Data)
	case isol8.EventExit:
		code, err := strconv.Atoi(strings.TrimSpace(ev.Data))
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("%w: bad exit event %q", isol8.ErrUnavailable, ev.Data)
		}
		c.exit = &code
	case isol8.EventError:
		c.lastErr = ev.Data
	}
	c.sawErr = ev.Type == isol8.EventError
	c.mu.Unlock()
	if c.sink != nil {
		c.sink(ev)
	}
	return nil
}

func (c *collector) exited() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exit != nil
}

func (c *collector) keep(b *strings.Builder, s string) {
	if room := maxCollected - b.Len(); len(s) > room {
		s = s[:max(room, 0)]
		c.truncated = true
	}
	b.WriteString(s)
}

// finish returns the result once an exit event came; otherwise the
// stream's error (or the server's error event), sent to sink as the last
// event unless the server's own error event already was.
func (c *collector) finish(err error) (*isol8.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exit != nil {
		return &isol8.Result{
			Stdout:     c.stdout.String(),
			Stderr:     c.stderr.String(),
			ExitCode:   *c.exit,
			Truncated:  c.truncated,
			Runtime:    c.runtime,
			DurationMs: time.Since(c.start).Milliseconds(),
			Timestamp:  time.Now().UTC().Format(time.RFC3339Nano),
		}, nil
	}
	if err == nil && c.lastErr != "" {
		err = &Error{Message: c.lastErr}
	}
	if err == nil {
		err = fmt.Errorf("%w: the stream ended before the run's exit event", isol8.ErrUnavailable)
	}
	if c.sink != nil && !(c.sawErr && err.Error() == c.lastErr) {
		c.sink(isol8.StreamEvent{Type: isol8.EventError, Data: err.Error()})
	}
	return nil, err
}
