package isol8

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/pool"
	"github.com/isol8/isol8/sandbox"
)

// EngineConfig configures a local engine. Every field is optional.
type EngineConfig struct {
	// Options are the engine options; they sit between the config's
	// defaults and each request.
	Options Options
	// Config is the loaded config; nil means the built-in defaults.
	Config *Config
	// Backend, when set, is used instead of opening the configured one;
	// the engine does not close it.
	Backend sandbox.Backend
	// Owner labels this engine's sandboxes (sandbox.LabelOwner).
	Owner string
	// Logger receives the engine's diagnostics; nil discards them.
	Logger *slog.Logger
	// EnsureImage is called when a sandbox's image is missing; it should
	// build the image (reporting progress to w) so the run can go on.
	EnsureImage func(ctx context.Context, image string, w io.Writer) error
	// Limiter bounds this engine's sandboxes; nil means the process-wide
	// limiter (ProcessLimiter), shared by every engine of the process.
	Limiter *Limiter
	// Progress receives human-readable progress of slow steps (image
	// builds); nil means standard error.
	Progress io.Writer
}

// LocalEngine runs requests in sandboxes of a local backend (Docker or
// native). It is safe for concurrent use.
type LocalEngine struct {
	ec   EngineConfig
	cfg  *Config
	log  *slog.Logger
	lim  *Limiter
	runs sync.WaitGroup

	warmCounters

	mu      sync.Mutex
	backend sandbox.Backend
	owned   bool
	stopped bool
	session *session
	pool    *pool.Pool // made on the first ephemeral run (warm.go)
}

var errStopped = fmt.Errorf("engine is stopped: %w", ErrConflict)

var _ Engine = (*LocalEngine)(nil)

// New returns a local engine; Start connects it (Execute starts it on
// first use too).
func New(ec EngineConfig) (*LocalEngine, error) {
	cfg := ec.Config
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if err := validateOptions(&ec.Options, "options."); err != nil {
		return nil, err
	}
	if ec.Owner == "" {
		ec.Owner = "isol8"
	}
	log := ec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim := ec.Limiter
	if lim == nil && ec.Options.MaxConcurrent > 0 {
		lim = NewLimiter(ec.Options.MaxConcurrent, cfg.Queue.Size, time.Duration(cfg.Queue.TimeoutMs)*time.Millisecond)
	}
	if lim == nil {
		lim = ProcessLimiter(cfg)
	}
	e := &LocalEngine{ec: ec, cfg: cfg, log: log, lim: lim}
	if e.ec.EnsureImage == nil {
		e.ec.EnsureImage = e.ensureRuntimeImage
	}
	return e, nil
}

// Config returns the engine's config.
func (e *LocalEngine) Config() *Config { return e.cfg }

// Limits returns the effective limits a request would run with.
func (e *LocalEngine) Limits(req *Request) Limits { return e.cfg.Resolve(e.ec.Options, req) }

// Start connects the engine to its backend.
func (e *LocalEngine) Start(ctx context.Context) error {
	_, err := e.getBackend(ctx)
	return err
}

func (e *LocalEngine) getBackend(ctx context.Context) (sandbox.Backend, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil, errStopped
	}
	if e.backend != nil {
		return e.backend, nil
	}
	if e.ec.Backend != nil {
		e.backend = e.ec.Backend
	} else {
		b, err := OpenBackend(ctx, e.Limits(nil).Backend, sandbox.Config{Owner: e.ec.Owner})
		if err != nil {
			return nil, err
		}
		e.backend, e.owned = b, true
	}
	// A backend that builds runtime images itself (native, without Docker)
	// builds them as `isol8 setup` would, from the config.
	if ib, ok := e.backend.(interface{ SetImageOptions(image.Options) }); ok {
		ib.SetImageOptions(e.cfg.ImageOptions(nil))
	}
	return e.backend, nil
}

// OpenBackend opens a sandbox backend by name ("docker", "native" or
// "auto": docker when its engine answers, else native).
func OpenBackend(ctx context.Context, name string, cfg sandbox.Config) (sandbox.Backend, error) {
	if name == "" {
		name = "docker"
	}
	if name != "auto" {
		b, err := sandbox.Open(ctx, name, cfg)
		if err != nil {
			return nil, classify(err)
		}
		return b, nil
	}
	var errs []error
	for _, n := range []string{"docker", "native"} {
		b, err := sandbox.Open(ctx, n, cfg)
		if err == nil {
			return b, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", n, err))
	}
	return nil, classify(fmt.Errorf("backend auto: no backend is usable: %w", errors.Join(errs...)))
}

// classify wraps backend errors in the engine's error classes.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sandbox.ErrUnavailable), errors.Is(err, sandbox.ErrImageNotFound):
		if errors.Is(err, ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// Stop removes the engine's persistent sandbox, waits for running runs,
// destroys its warm pool and closes the backend it opened.
func (e *LocalEngine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	s := e.session
	e.session = nil
	e.mu.Unlock()
	var err error
	if s != nil {
		err = s.destroy(ctx)
	}
	done := make(chan struct{})
	go func() { e.runs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	p := e.pool
	e.mu.Unlock()
	if p != nil {
		unregisterPool(e.lim, p)
		if perr := p.Stop(ctx); perr != nil {
			return errors.Join(err, perr)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.owned && e.backend != nil {
		err = errors.Join(err, e.backend.Close())
	}
	return err
}

// Execute runs req and returns its result.
func (e *LocalEngine) Execute(ctx context.Context, req *Request) (*Result, error) {
	return e.ExecuteStream(ctx, req, nil)
}

// ExecuteStream runs req, sending output events to sink as they arrive;
// the last event is "exit" (or "error" when the run could not happen).
func (e *LocalEngine) ExecuteStream(ctx context.Context, req *Request, sink EventSink) (*Result, error) {
	sink = serialize(sink)
	res, err := e.execute(ctx, req, sink)
	if sink != nil {
		if err != nil {
			sink(StreamEvent{Type: EventError, Data: err.Error()})
		} else {
			sink(StreamEvent{Type: EventExit, Data: fmt.Sprint(res.ExitCode)})
		}
	}
	return res, err
}

// serialize makes a sink safe to call from the stdout and stderr readers.
func serialize(sink EventSink) EventSink {
	if sink == nil {
		return nil
	}
	var mu sync.Mutex
	return func(ev StreamEvent) {
		mu.Lock()
		defer mu.Unlock()
		sink(ev)
	}
}

func (e *LocalEngine) execute(ctx context.Context, req *Request, sink EventSink) (*Result, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	// Remote code is fetched (under the remoteCode policy) before
	// anything else, so the rest of the run sees plain code.
	req, err := e.cfg.ResolveRemoteCode(ctx, req)
	if err != nil {
		return nil, err
	}
	lim := e.Limits(req)
	// Packages: names checked before any sandbox exists; an image with
	// them baked in is chosen, or the install is planned (lim.Install).
	if err := e.preparePackages(ctx, req, &lim); err != nil {
		return nil, err
	}
	b, err := e.getBackend(ctx)
	if err != nil {
		return nil, err
	}
	e.runs.Add(1)
	defer e.runs.Done()
	if lim.Mode == Persistent {
		if err := e.lim.Acquire(ctx); err != nil {
			return nil, err
		}
		defer e.lim.Release()
		return e.runPersistent(ctx, b, req, lim, sink)
	}
	// An ephemeral run holds a slot of the limiter too: one it takes with
	// a pooled sandbox, or one it waits for (agentrun.go).
	return e.runEphemeral(ctx, b, req, lim, sink)
}
