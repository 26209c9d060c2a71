// Package server is isol8's HTTP API, the engine behind `isol8 serve`:
// execution (plain, SSE and WebSocket), persistent sessions scoped to the
// key that made them, file transfer, API keys, cleanup, metrics and an
// OpenAPI description (contract section 5).
//
// A request's options pass through isol8.Config.Tighten, so a client can
// only tighten the server's policy. Every execution goes through one
// function (Server.run) that applies the concurrency cap, the session
// rules, metrics and the audit log.
package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/audit"
	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/store"
)

// Defaults of Config's optional limits.
const (
	DefaultMaxBodyBytes = 16 << 20
	DefaultMaxSessions  = 256
)

// Config configures a Server. Only Backend (or NewEngine) is required.
type Config struct {
	// Config is the loaded isol8 config: policy (defaults, maxima,
	// images), concurrency, cleanup and auth settings. nil means the
	// built-in defaults.
	Config *isol8.Config
	// MasterKey is the master API key ("" for none: only store keys work).
	MasterKey string
	// Store holds the API keys; nil answers /auth/* with 400.
	Store store.Store
	// Backend runs the sandboxes; it should be opened with Owner, so the
	// server's sandboxes carry its owner label. The server does not close it.
	Backend sandbox.Backend
	// Owner is the owner label of this server's sandboxes (for cleanup).
	Owner string
	// Logger receives request logs and errors; nil discards them.
	Logger *slog.Logger
	// Audit receives one record per execution; nil records nothing.
	Audit *audit.Logger
	// Version is reported by GET /health.
	Version string
	// MaxBodyBytes bounds request bodies (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
	// MaxSessions bounds the live sessions of all tenants (DefaultMaxSessions when 0).
	MaxSessions int
	// NewEngine makes the engines the server runs requests with; nil
	// means isol8.New. Tests use it to substitute an engine.
	NewEngine func(isol8.EngineConfig) (isol8.Engine, error)
	// EnsureImage and Progress are passed to the engines: they build a
	// missing runtime image, reporting progress to Progress.
	EnsureImage func(ctx context.Context, image string, w io.Writer) error
	Progress    io.Writer
	// RemoveImages, when set, is what POST /cleanup {"images":true} calls;
	// it returns how many images it removed.
	RemoveImages func(ctx context.Context) (int, error)
}

// Server is the HTTP API. Make one with New, serve Handler (or call
// Serve), and Close it.
type Server struct {
	cfg        Config
	icfg       *isol8.Config
	log        *slog.Logger
	maxBody    int64
	masterHash []byte
	started    time.Time
	metrics    *metrics
	limiter    *isol8.Limiter
	engines    *engineCache
	sessions   *sessionTable
	handler    http.Handler

	// base is cancelled by Close: every run derives from it.
	base   context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
	closed sync.Once
}

// New makes a server; its session pruner starts at once.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil && cfg.NewEngine == nil {
		return nil, errors.New("server: a sandbox backend is required")
	}
	icfg := cfg.Config
	if icfg == nil {
		icfg = isol8.DefaultConfig()
	}
	if err := icfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, icfg: icfg, log: log, maxBody: cfg.MaxBodyBytes}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if cfg.MasterKey != "" {
		sum := sha256.Sum256([]byte(cfg.MasterKey))
		s.masterHash = sum[:]
	}
	s.started = time.Now()
	s.base, s.cancel = context.WithCancel(context.Background())
	// One limiter for all the server's engines: maxConcurrent sandboxes
	// at once, queue.size waiting at most queue.timeoutMs, else 429.
	s.limiter = isol8.NewLimiter(icfg.MaxConcurrent, icfg.Queue.Size, time.Duration(icfg.Queue.TimeoutMs)*time.Millisecond)
	s.metrics = newMetrics(s)
	s.engines = newEngineCache(s.newEngine)
	maxSessions := cfg.MaxSessions
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessions
	}
	s.sessions = newSessionTable(maxSessions)
	s.handler = s.observe(s.routes())
	s.startPruner()
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// newEngine makes an engine bound to the server's backend.
func (s *Server) newEngine(opts isol8.Options) (isol8.Engine, error) {
	ec := isol8.EngineConfig{Options: opts, Config: s.icfg, Backend: s.cfg.Backend, Owner: s.cfg.Owner,
		Logger: s.log, Limiter: s.limiter, EnsureImage: s.cfg.EnsureImage, Progress: s.cfg.Progress}
	if s.cfg.NewEngine != nil {
		return s.cfg.NewEngine(ec)
	}
	e, err := isol8.New(ec)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// runContext derives a run's context from the request's: it also ends
// when the server closes.
func (s *Server) runContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.base, cancel)
	return ctx, func() { stop(); cancel() }
}

// GET /health
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	v := s.cfg.Version
	if v == "" {
		v = "dev"
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": v})
}
