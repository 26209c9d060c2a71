package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/isol8/isol8"
)

// streamWriteTimeout bounds each write to a streaming client: one that
// stops reading cancels its run instead of stalling it.
const streamWriteTimeout = 30 * time.Second

// POST /execute/stream answers with server-sent events, one frame
// "data: <event JSON>\n\n" per event, flushed at once; "exit" is last. An
// error found before the run starts (bad body, policy, a full queue) is a
// plain JSON error with its status; one found later is an "error" event.
func (s *Server) handleExecuteSSE(w http.ResponseWriter, r *http.Request) {
	var body executeBody
	err := s.decodeBody(w, r, &body, false)
	var c *runCall
	if err == nil {
		c, err = body.call()
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	rc := http.NewResponseController(w)
	var (
		mu      sync.Mutex
		started bool
		broken  bool
	)
	c.transport = "sse"
	c.started = func() {
		mu.Lock()
		defer mu.Unlock()
		started = true
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			broken = true
			cancel()
		}
	}
	send := func(ev isol8.StreamEvent) {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return
		}
		data, _ := json.Marshal(ev)
		frame := make([]byte, 0, len(data)+8)
		frame = append(append(append(frame, "data: "...), data...), "\n\n"...)
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := w.Write(frame)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			broken = true
			cancel()
		}
	}
	_, err = s.run(ctx, c, send)
	if err == nil {
		return
	}
	mu.Lock()
	wasStarted := started
	mu.Unlock()
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client is gone or stopped reading.
	case wasStarted:
		send(isol8.StreamEvent{Type: isol8.EventError, Data: publicMessage(err)})
		if statusOf(err) >= 500 {
			s.log.Error("stream failed", "request_id", requestID(ctx), "err", err)
		}
	default:
		writeError(w, r, s.log, err)
	}
}
