package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// Timeouts of the HTTP server. Bodies are read within ReadTimeout; long
// runs and streams are not bounded by a write timeout (each streamed
// event is, see streamWriteTimeout).
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 30 * time.Second
)

// Serve removes the sandboxes a previous run of this server left behind
// (same owner label), then serves ln until ctx ends; then it shuts down
// gracefully: it stops accepting, cancels the runs, waits for the
// handlers, destroys this server's sandboxes and returns. Images, and
// containers without this server's owner label, are never touched.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if n, err := s.RemoveLeftovers(ctx); err != nil {
		s.log.Warn("removing sandboxes left by a previous run", "removed", n, "err", err)
	} else if n > 0 {
		s.log.Info("removed sandboxes left by a previous run", "removed", n)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "owner", s.cfg.Owner)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.log.Info("shutting down")
	}
	s.cancel() // runs end now; their handlers answer and return
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	if cerr := s.Close(sctx); cerr != nil {
		s.log.Warn("shutdown cleanup", "err", cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// RemoveLeftovers removes every sandbox labelled with this server's owner
// that was made before this server was: what a previous (killed) run of
// the server left behind. It does nothing without a backend and an owner.
func (s *Server) RemoveLeftovers(ctx context.Context) (int, error) {
	r := s.removeOwned(ctx, s.started)
	return r.Removed, errors.Join(r.errs...)
}

// Close ends the server's work: it cancels every run, ends every session,
// stops the engines and removes what is left of this server's sandboxes.
// The HTTP server itself is stopped by Serve (or by whoever serves Handler).
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.closed.Do(func() {
		s.cancel()
		s.bg.Wait()
		r := s.endSessions(s.sessions.take(func(*session) bool { return true }))
		s.engines.close(ctx)
		// Runs are over and engines stopped: whatever still carries the
		// owner label is left over (a destroy that failed, say).
		left := s.removeOwned(ctx, time.Now().Add(time.Hour))
		err = errors.Join(append(r.errs, left.errs...)...)
	})
	return err
}

// tally counts what a cleanup step removed.
type tally struct {
	Removed int      `json:"removed"`
	Failed  int      `json:"failed"`
	Errors  []string `json:"errors"`
	errs    []error
}

func (t *tally) add(err error) {
	if err == nil {
		t.Removed++
		return
	}
	t.Failed++
	t.Errors = append(t.Errors, err.Error())
	t.errs = append(t.errs, err)
}

func newTally() tally { return tally{Errors: []string{}} }

// endSessions ends sessions in parallel.
func (s *Server) endSessions(sessions []*session) tally {
	t := newTally()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sess := range sessions {
		wg.Go(func() {
			err := s.endSession(sess)
			if err != nil {
				err = fmt.Errorf("session %s: %w", sess.id, err)
			}
			mu.Lock()
			t.add(err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return t
}

// removeOwned removes the sandboxes with this server's owner label that
// were created before cutoff.
func (s *Server) removeOwned(ctx context.Context, cutoff time.Time) tally {
	t := newTally()
	if s.cfg.Backend == nil || s.cfg.Owner == "" {
		return t
	}
	infos, err := s.cfg.Backend.List(ctx, map[string]string{sandbox.LabelOwner: s.cfg.Owner})
	if err != nil {
		t.add(fmt.Errorf("listing sandboxes: %w", err))
		return t
	}
	for _, info := range infos {
		if info.Labels[sandbox.LabelOwner] != s.cfg.Owner || !info.Created.Before(cutoff) {
			continue
		}
		t.add(s.cfg.Backend.Remove(ctx, info.ID))
	}
	return t
}

// POST /cleanup (master key): ends every session of every tenant, removes
// the sandboxes of this server's owner made before it started (left by a
// previous run) and, with {"images":true}, isol8's images. Ephemeral runs
// in progress and warm pools are not touched.
func (s *Server) handleCleanup(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Images bool `json:"images"`
	}
	if err := s.decodeBody(w, r, &b, true); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	ctx := r.Context()
	res := map[string]any{
		"ok":         true,
		"sessions":   s.endSessions(s.sessions.take(func(*session) bool { return true })),
		"containers": s.removeOwned(ctx, s.started),
	}
	if b.Images {
		t := newTally()
		if s.cfg.RemoveImages == nil {
			t.add(errors.New("this server cannot remove images"))
		} else {
			n, err := s.cfg.RemoveImages(ctx)
			t.Removed = n
			if err != nil {
				t.Failed++
				t.Errors = append(t.Errors, err.Error())
			}
		}
		res["images"] = t
	}
	writeJSON(w, http.StatusOK, res)
}
