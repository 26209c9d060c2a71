package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every test connects to loopback only. Stand-in names resolve through
// fakeResolver, and recordDialer refuses (and reports) any dial that is not
// to a loopback address, so that no test can ever reach a real network.

var lo1 = netip.MustParseAddr("127.0.0.1")

// loopback1 is the explicit allowance that lets stand-in hosts reach the
// test servers, which listen on 127.0.0.1.
var loopback1 = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// fakeResolver maps names to addresses. When answer is set it decides
// instead, given the name and how many lookups came before.
type fakeResolver struct {
	mu     sync.Mutex
	names  map[string][]netip.Addr
	answer func(host string, n int) []netip.Addr
	calls  int
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.calls
	r.calls++
	if r.answer != nil {
		return r.answer(host, n), nil
	}
	if a, ok := r.names[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *fakeResolver) lookups() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// standIns resolves the usual stand-in names to 127.0.0.1.
func standIns(names ...string) *fakeResolver {
	r := &fakeResolver{names: map[string][]netip.Addr{}}
	for _, n := range names {
		r.names[n] = []netip.Addr{lo1}
	}
	return r
}

// recordDialer records every dial and performs only those to loopback.
type recordDialer struct {
	t     *testing.T
	mu    sync.Mutex
	dials []netip.AddrPort
}

func (d *recordDialer) dial(ctx context.Context, ap netip.AddrPort) (net.Conn, error) {
	d.mu.Lock()
	d.dials = append(d.dials, ap)
	d.mu.Unlock()
	if !ap.Addr().Unmap().IsLoopback() {
		d.t.Errorf("proxy tried to dial %v, which is not loopback", ap)
		return nil, fmt.Errorf("test dialer: refusing %v", ap)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", ap.String())
}

func (d *recordDialer) got() []netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.AddrPort(nil), d.dials...)
}

// harness is a proxy on a loopback TCP port with its logs and dials.
type harness struct {
	p      *Proxy
	addr   string // host:port of the proxy
	url    *url.URL
	logs   *LogBuffer
	dialer *recordDialer
}

// startProxy serves a proxy for policy. cfg's Matcher, OnLog and Dial are
// filled in; its Ports default to the given ports.
func startProxy(t *testing.T, policy Policy, cfg Config, ports ...uint16) *harness {
	t.Helper()
	m, err := Compile(policy)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	h := &harness{logs: &LogBuffer{}, dialer: &recordDialer{t: t}}
	cfg.Matcher = m
	cfg.OnLog = h.logs.Add
	if cfg.Dial == nil {
		cfg.Dial = h.dialer.dial
	}
	if cfg.Ports == nil {
		cfg.Ports = ports
	}
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(l)
	t.Cleanup(func() { p.Close() })
	h.p = p
	h.addr = l.Addr().String()
	h.url = &url.URL{Scheme: "http", Host: h.addr}
	return h
}

// client goes through the proxy, trusts srv's certificate (issued for
// example.com) and never follows redirects.
func (h *harness) client(srv *httptest.Server) *http.Client {
	tr := &http.Transport{Proxy: http.ProxyURL(h.url), DisableKeepAlives: true}
	if srv != nil && srv.TLS != nil {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: "example.com"}
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// raw sends one raw request to the proxy and returns the response (its
// body read) and the connection, which the test closes.
func (h *harness) raw(t *testing.T, req string) (*http.Response, string, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	var body []byte
	if method != http.MethodConnect || resp.StatusCode != http.StatusOK {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	}
	return resp, string(body), c, br
}

// connect sends "CONNECT authority" and returns the status code.
func (h *harness) connect(t *testing.T, authority string) int {
	t.Helper()
	resp, _, c, _ := h.raw(t, "CONNECT "+authority+" HTTP/1.1\r\nHost: "+authority+"\r\n\r\n")
	c.Close()
	return resp.StatusCode
}

// get sends a plain-HTTP proxy request for rawURL and returns the status.
func (h *harness) get(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, c, _ := h.raw(t, "GET "+rawURL+" HTTP/1.1\r\nHost: "+u.Host+"\r\nConnection: close\r\n\r\n")
	c.Close()
	return resp.StatusCode
}

// lastLog returns the last log, failing when there is none.
func (h *harness) lastLog(t *testing.T) Log {
	t.Helper()
	logs, _ := h.logs.Logs()
	if len(logs) == 0 {
		t.Fatal("no log")
	}
	return logs[len(logs)-1]
}

// port returns the port of a test server.
func port(t *testing.T, srv *httptest.Server) uint16 {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return uint16(p)
}

// echoServer accepts TCP connections on 127.0.0.1 and echoes them.
func echoServer(t *testing.T) (uint16, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port), func() { l.Close() }
}
