package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/audit"
)

// runCall is one execution asked for over any transport.
type runCall struct {
	req       *isol8.Request
	opts      isol8.Options // the client's options, before Tighten
	sessionID string
	transport string // "http", "sse", "ws"
	// started, when set, is called once the run passed policy and
	// validation and is about to start (SSE sends its headers then).
	started func()
}

// run is the one path of every execution: policy, validation, the
// session or the shared engine (which apply the server's limiter), metrics
// and the audit record. Events go to sink (nil for a plain run), except
// the engine's own "error" event: callers report errors with
// publicMessage, which keeps internals out.
func (s *Server) run(ctx context.Context, c *runCall, sink isol8.EventSink) (res *isol8.Result, err error) {
	p := principalFrom(ctx)
	start := time.Now()
	var secrets map[string]string
	defer func() {
		outcome := audit.OutcomeOf(res, err)
		s.metrics.runs.WithLabelValues(string(outcome)).Inc()
		s.metrics.runDuration.Observe(time.Since(start).Seconds())
		aerr := s.cfg.Audit.Log(audit.Execution{
			Request: c.req, Result: res, Err: err, Start: start,
			TenantID: p.tenantID, KeyID: p.keyID, SessionID: c.sessionID,
			RequestID: requestID(ctx), Transport: c.transport, Secrets: secrets,
		})
		if aerr != nil {
			s.log.Error("audit record lost", "request_id", requestID(ctx), "err", aerr)
		}
	}()

	opts, err := s.icfg.Tighten(c.opts)
	if err != nil {
		return nil, err
	}
	secrets = opts.Secrets
	if err := c.req.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := s.runContext(ctx)
	defer cancel()

	var eng isol8.Engine
	if c.sessionID != "" {
		opts.Mode = isol8.Persistent
		sess, err := s.sessions.acquire(p.tenant, c.sessionID, func() (isol8.Engine, error) { return s.newEngine(opts) })
		if err != nil {
			return nil, err
		}
		defer s.sessions.release(sess)
		stop := context.AfterFunc(sess.ctx, cancel) // DELETE /session ends the run
		defer stop()
		// A session's sandbox keeps the limits it was made with; a later
		// request may still set its own timeout.
		if c.req.TimeoutMs == 0 {
			c.req.TimeoutMs = opts.TimeoutMs
		}
		eng = sess.engine
	} else {
		opts.Mode = isol8.Ephemeral
		var done func()
		if eng, done, err = s.engines.get(opts); err != nil {
			return nil, err
		}
		defer done()
	}
	if c.started != nil {
		c.started()
	}
	var filtered isol8.EventSink
	if sink != nil {
		filtered = func(ev isol8.StreamEvent) {
			if ev.Type != isol8.EventError {
				sink(ev)
			}
		}
	}
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	res, err = eng.ExecuteStream(ctx, c.req, filtered)
	if err != nil && ctx.Err() != nil && s.base.Err() != nil {
		err = errShuttingDown
	}
	return res, err
}

// POST /execute
func (s *Server) handleExecute(w http.ResponseWriter, r *http.Request) {
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
	c.transport = "http"
	res, err := s.run(r.Context(), c, nil)
	if err != nil {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return // the client is gone; nobody reads an answer
		}
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
