package securitytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

// H is what an attack works with.
type H struct {
	// Ctx ends at the case's budget; every run of the case uses it.
	Ctx context.Context
	// Backend is the backend's name; Owner is the case's own owner label.
	Backend string
	Owner   string

	s       *suite
	t       *testing.T
	mu      sync.Mutex
	backend *countingBackend
	engines []*isol8.LocalEngine
	logBuf  lockedBuffer
}

// logs is everything the case's engines logged.
func (h *H) logs() string { return h.logBuf.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Engine returns a new engine on the case's backend, with the suite's
// image and timeout defaults for rt filled into opts. It is stopped when
// the case ends.
func (h *H) Engine(rt isol8.Runtime, opts isol8.Options) *isol8.LocalEngine {
	h.t.Helper()
	if opts.Image == "" {
		opts.Image = h.s.images[rt]
	}
	if opts.TimeoutMs == 0 {
		opts.TimeoutMs = defaultTimeoutMs
	}
	if opts.Backend == "" {
		opts.Backend = h.Backend
	}
	if opts.PoolSize == nil {
		// The suite proves that a run's sandbox is gone when its result
		// returns, which a warm pool (reset and reuse, or destroy in the
		// background) does on purpose not do. The pool's own guarantees —
		// a reused sandbox identical to a fresh one, across tenants — are
		// attacked in warm_test.go.
		opts.PoolSize = &isol8.PoolSize{}
	}
	b := h.countingBackend()
	log := slog.New(slog.NewTextHandler(&h.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := isol8.New(isol8.EngineConfig{Options: opts, Backend: b, Owner: h.Owner, Logger: log})
	if err != nil {
		h.t.Fatalf("isol8.New: %v", err)
	}
	h.mu.Lock()
	h.engines = append(h.engines, e)
	h.mu.Unlock()
	return e
}

func (h *H) countingBackend() *countingBackend {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.backend == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := isol8.OpenBackend(ctx, h.Backend, sandbox.Config{Owner: h.Owner})
		if err != nil {
			h.t.Fatalf("opening backend %s: %v", h.Backend, err)
		}
		h.backend = &countingBackend{Backend: b}
	}
	return h.backend
}

// Creates is how many sandboxes the case's engines asked the backend for.
func (h *H) Creates() int64 {
	return h.countingBackend().creates.Load()
}

// closeAll stops the case's engines and closes its backend.
func (h *H) closeAll(t *testing.T) {
	h.mu.Lock()
	engines, b := h.engines, h.backend
	h.engines, h.backend = nil, nil
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, e := range engines {
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stopping an engine: %v", err)
		}
	}
	if b != nil {
		b.Close()
	}
}

// Request returns a request that runs code in rt.
func (h *H) Request(rt isol8.Runtime, code string) *isol8.Request {
	return &isol8.Request{Runtime: rt, Code: code}
}

// AssertGone fails unless the sandbox with this id no longer exists.
func (h *H) AssertGone(t *testing.T, id string) {
	t.Helper()
	if id == "" {
		t.Errorf("the result carries no containerId, so its cleanup cannot be checked")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alive, err := h.s.probe.exists(ctx, id)
	if err != nil {
		t.Errorf("checking sandbox %s: %v", id, err)
	} else if alive {
		t.Errorf("sandbox %s still exists after its result returned", id)
	}
}

// single runs a one-run case.
func (h *H) single(t *testing.T, c Case) {
	e := h.Engine(c.Runtime, c.Options)
	req := h.Request(c.Runtime, c.Code)
	if c.Cmd != "" {
		req.Code, req.Cmd = "", c.Cmd
	}
	if c.Tweak != nil {
		c.Tweak(req)
	}
	res, err := e.Execute(h.Ctx, req)
	logResult(t, "run", res, err)
	c.Check(t, res, err)
	if res != nil && e.Limits(req).Mode != isol8.Persistent {
		h.AssertGone(t, res.ContainerID)
	}
}

// countingBackend counts Create calls, so a case can prove that a refused
// request never reached the backend.
type countingBackend struct {
	sandbox.Backend
	creates atomic.Int64
}

func (c *countingBackend) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	c.creates.Add(1)
	return c.Backend.Create(ctx, spec)
}

func logResult(t *testing.T, what string, res *isol8.Result, err error) {
	t.Helper()
	if err != nil {
		t.Logf("%s: error: %v", what, err)
		return
	}
	if res == nil {
		t.Logf("%s: nil result and nil error", what)
		return
	}
	t.Logf("%s: exit=%d timedOut=%v oomKilled=%v truncated=%v duration=%dms stdout(%d)=%q stderr(%d)=%q",
		what, res.ExitCode, res.TimedOut, res.OOMKilled, res.Truncated, res.DurationMs,
		len(res.Stdout), clip(res.Stdout, 600), len(res.Stderr), clip(res.Stderr, 600))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
