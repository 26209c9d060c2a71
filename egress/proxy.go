package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultPorts are the ports a sandbox may reach when Config.Ports is empty.
var DefaultPorts = []uint16{80, 443}

// Config configures a Proxy. Zero durations and sizes take the defaults
// given on each field.
type Config struct {
	// Matcher is the compiled policy (required).
	Matcher *Matcher
	// Ports the sandbox may reach, for CONNECT and plain HTTP alike;
	// empty means DefaultPorts.
	Ports []uint16
	// ReadHeaderTimeout bounds reading a request's header (10 s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection waiting for its next
	// request, and a tunnel with no traffic either way (60 s).
	IdleTimeout time.Duration
	// MaxConns is the number of sandbox connections served at once; more
	// wait to be accepted (64).
	MaxConns int
	// MaxHeaderBytes bounds a request's header (32 KiB; net/http allows a
	// little slack); a larger one gets 431.
	MaxHeaderBytes int
	// DialTimeout bounds the lookup and the connection to the upstream (10 s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// header to a plain-HTTP request (60 s).
	ResponseHeaderTimeout time.Duration
	// OnLog receives one Log per request or tunnel, when it ends. Calls
	// are serialised, none happens after Close returns, and OnLog must not
	// call Close itself. A LogBuffer's Add fits.
	OnLog func(Log)
	// Dial connects to an address that passed the policy; nil means a
	// net.Dialer. It is given the checked address itself and nothing to
	// resolve. Tests use it to record dials.
	Dial func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.DialTimeout, 10*time.Second)
	def(&c.ResponseHeaderTimeout, 60*time.Second)
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 32 << 10
	}
	if len(c.Ports) == 0 {
		c.Ports = DefaultPorts
	}
	if c.Dial == nil {
		d := &net.Dialer{Timeout: c.DialTimeout}
		c.Dial = func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr.String())
		}
	}
}

// Proxy is the egress proxy of one sandbox: an HTTP forward proxy for
// plain-HTTP requests (absolute-form URIs) and CONNECT tunnels, which lets
// through only what its policy allows. It never decrypts HTTPS and never
// follows redirects. Create it with New, serve it on any number of
// listeners, Close it when the sandbox ends.
type Proxy struct {
	cfg   Config
	ports map[uint16]bool
	srv   *http.Server
	rp    *httputil.ReverseProxy
	tr    *http.Transport
	sem   chan struct{}
	done  chan struct{}

	ctx       context.Context // cancelled by Close; parent of every request
	cancel    context.CancelFunc
	stopAfter func() bool

	mu      sync.Mutex
	closed  bool
	active  sync.WaitGroup // handlers in flight
	tunnels map[net.Conn]struct{}

	closeOnce sync.Once
	closeErr  error
	logMu     sync.Mutex

	byteCounters
}

// New creates a proxy for cfg. The proxy closes itself when ctx ends, which
// also ends every tunnel: tie ctx to the sandbox's lifetime.
func New(ctx context.Context, cfg Config) (*Proxy, error) {
	if cfg.Matcher == nil {
		return nil, errors.New("egress: Config.Matcher is required")
	}
	cfg.setDefaults()
	p := &Proxy{
		cfg:     cfg,
		ports:   make(map[uint16]bool, len(cfg.Ports)),
		sem:     make(chan struct{}, cfg.MaxConns),
		done:    make(chan struct{}),
		tunnels: make(map[net.Conn]struct{}),
	}
	for _, port := range cfg.Ports {
		p.ports[port] = true
	}
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.tr = &http.Transport{
		Proxy:                  nil, // never a proxy from the host's environment
		DialContext:            p.transportDial,
		DisableCompression:     true, // pass bodies through as they are
		ForceAttemptHTTP2:      false,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        cfg.IdleTimeout,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		MaxResponseHeaderBytes: 1 << 20,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       rewrite,
		Transport:     p.tr,
		FlushInterval: -1,
		ErrorHandler:  upstreamError,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler:                      http.HandlerFunc(p.handle),
		ReadHeaderTimeout:            cfg.ReadHeaderTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		MaxHeaderBytes:               cfg.MaxHeaderBytes,
		BaseContext:                  func(net.Listener) context.Context { return p.ctx },
		ErrorLog:                     log.New(io.Discard, "", 0),
		DisableGeneralOptionsHandler: true,
	}
	p.stopAfter = context.AfterFunc(ctx, func() { p.Close() })
	return p, nil
}

// Serve serves sandbox connections from l until Close; it closes l. It
// returns nil after Close, else the listener's error. Serve may run on
// several listeners at once; MaxConns bounds them together.
func (p *Proxy) Serve(l net.Listener) error {
	err := p.srv.Serve(&limitListener{Listener: l, sem: p.sem, done: p.done, p: p})
	if errors.Is(err, http.ErrServerClosed) || p.isClosed() {
		return nil
	}
	return err
}

// Close stops the listeners, ends every connection and tunnel, and waits
// for the handlers, so that no Log is delivered after it returns. It is
// safe to call more than once and from several goroutines.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.stopAfter()
		p.mu.Lock()
		p.closed = true
		tunnels := p.tunnels
		p.tunnels = nil
		p.mu.Unlock()

		close(p.done)
		p.closeErr = p.srv.Close()
		p.cancel()
		for c := range tunnels {
			c.Close()
		}
		p.active.Wait()
		p.tr.CloseIdleConnections()
	})
	return p.closeErr
}

// Stats returns the bytes moved so far for the sandbox.
func (p *Proxy) Stats() Stats {
	return Stats{BytesIn: p.bytesIn.Load(), BytesOut: p.bytesOut.Load()}
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// enter registers a handler, unless the proxy is closing.
func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.active.Add(1)
	return true
}

func (p *Proxy) log(l Log) {
	if p.cfg.OnLog == nil {
		return
	}
	p.logMu.Lock()
	defer p.logMu.Unlock()
	p.cfg.OnLog(l)
}

func (p *Proxy) handle(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		w.Header().Set("Connection", "close")
		http.Error(w, "egress proxy closed", http.StatusServiceUnavailable)
		return
	}
	defer p.active.Done()
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	p.serveHTTP(w, r)
}

// check decides host:port for a request: the patterns, the port, then the
// addresses. The lookup shares the dial's time budget.
func (p *Proxy) check(ctx context.Context, host string, port uint16) (Target, error) {
	c, err := p.cfg.Matcher.MatchHost(host)
	if err != nil {
		return Target{}, err
	}
	if !p.ports[port] {
		return Target{}, &BlockedError{Host: c, Class: "port", Reason: fmt.Sprintf("port %d is not allowed", port)}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	return p.cfg.Matcher.Check(ctx, c)
}

// dial connects to one of the checked addresses of t, in order. It never
// resolves: the addresses are the ones Check looked at.
func (p *Proxy) dial(ctx context.Context, t Target, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	var errs []error
	for i, a := range t.Addrs {
		attempt := ctx
		if left := len(t.Addrs) - i; left > 1 {
			// Leave time for the other addresses when one blackholes.
			if dl, ok := ctx.Deadline(); ok {
				var c context.CancelFunc
				attempt, c = context.WithTimeout(ctx, max(time.Until(dl)/time.Duration(left), time.Second))
				defer c()
			}
		}
		conn, err := p.cfg.Dial(attempt, netip.AddrPortFrom(a, port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("connect %s: %w", t.Host, errors.Join(errs...))
}

// blockBody is what the sandbox reads for a refusal: the class only, since
// the reason may name internal addresses.
func blockBody(err error) string {
	var be *BlockedError
	if errors.As(err, &be) {
		return "blocked by egress policy: " + be.Class + " not allowed"
	}
	return "blocked by egress policy"
}

// status is the answer to a request that check or dial refused.
func status(err error) int {
	if errors.Is(err, ErrBlocked) {
		return http.StatusForbidden
	}
	return http.StatusBadGateway
}

// reason is err as a log's Reason.
func reason(err error) string {
	var be *BlockedError
	if errors.As(err, &be) {
		return be.Class + " " + be.Host + ": " + be.Reason
	}
	return err.Error()
}

func sinceMs(t time.Time) int64 { return time.Since(t).Milliseconds() }

// logPath bounds what a log keeps of a URL path.
func logPath(s string) string {
	const max = 2048
	if len(s) > max {
		return s[:max]
	}
	return s
}

// hostPort is host:port, with brackets for an IPv6 literal.
func hostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
