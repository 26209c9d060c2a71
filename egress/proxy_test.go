package egress

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a plain-HTTP stand-in for a public host that reports what it
// received.
func upstream(t *testing.T) (*httptest.Server, *atomic.Value) {
	t.Helper()
	var seen atomic.Value // http.Header plus "Host"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("X-Seen-Host", r.Host)
		seen.Store(h)
		fmt.Fprintf(w, "hello from %s%s", r.Host, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestHTTPAllowed(t *testing.T) {
	for _, pat := range []string{`^allowed\.test$`, `allowed\.test`} {
		t.Run(pat, func(t *testing.T) {
			srv, seen := upstream(t)
			pt := port(t, srv)
			h := startProxy(t, Policy{Allow: []string{pat}, AllowPrivate: loopback1, Resolver: standIns("allowed.test")}, Config{}, pt)

			req, _ := http.NewRequest("GET", fmt.Sprintf("http://allowed.test:%d/hello?token=secret", pt), nil)
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "must not pass")
			req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
			req.Header.Set("X-Forwarded-For", "1.2.3.4")
			resp, err := h.client(nil).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != fmt.Sprintf("hello from allowed.test:%d/hello", pt) {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			got := seen.Load().(http.Header)
			for _, k := range []string{"X-Hop", "Proxy-Authorization", "Proxy-Connection", "X-Forwarded-For"} {
				if v := got.Get(k); v != "" {
					t.Errorf("upstream received %s: %q", k, v)
				}
			}
			if d := h.dialer.got(); len(d) != 1 || d[0] != netip.AddrPortFrom(lo1, pt) {
				t.Errorf("dials = %v, want exactly 127.0.0.1:%d", d, pt)
			}
		})
	}
}

func TestConnectAllowed(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure hello")
	}))
	defer srv.Close()
	pt := port(t, srv)
	for _, pat := range []string{`^allowed\.test$`, `allowed\.test`} {
		t.Run(pat, func(t *testing.T) {
			h := startProxy(t, Policy{Allow: []string{pat}, AllowPrivate: loopback1, Resolver: standIns("allowed.test")}, Config{}, pt)
			resp, err := h.client(srv).Get(fmt.Sprintf("https://allowed.test:%d/", pt))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "secure hello" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			h.p.Close() // flushes the tunnel's log
			l := h.lastLog(t)
			if l.Method != "CONNECT" || l.Host != "allowed.test" || l.Action != ActionAllow || l.Path != "" || l.Reason != "" {
				t.Errorf("log = %+v", l)
			}
		})
	}
}

func TestDeniedHost(t *testing.T) {
	srv, _ := upstream(t)
	pt := port(t, srv)
	res := standIns("allowed.test", "denied.test", "evil.test", "allowed.test.evil")
	cases := []struct {
		name   string
		policy Policy
		host   string
		want   int
	}{
		{"not in allow list", Policy{Allow: []string{`allowed\.test`}}, "denied.test", 403},
		{"deny wins over allow", Policy{Allow: []string{`.*\.test`}, Deny: []string{`evil\.test`}}, "evil.test", 403},
		{"deny wins, other host passes", Policy{Allow: []string{`.*\.test`}, Deny: []string{`evil\.test`}}, "allowed.test", 200},
		{"upper case and trailing dot", Policy{Allow: []string{`allowed\.test`}}, "ALLOWED.TEST.", 200},
		{"suffix is not a match", Policy{Allow: []string{`allowed\.test`}}, "allowed.test.evil", 403},
		{"anchored pattern, suffix", Policy{Allow: []string{`^allowed\.test$`}}, "allowed.test.evil", 403},
		{"prefix is not a match", Policy{Allow: []string{`allowed\.test`}}, "evil.allowed.test", 403},
		{"empty allow list", Policy{}, "allowed.test", 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.policy.AllowPrivate, c.policy.Resolver = loopback1, res
			h := startProxy(t, c.policy, Config{}, pt)
			authority := fmt.Sprintf("%s:%d", c.host, pt)
			if got := h.get(t, "http://"+authority+"/x"); got != c.want {
				t.Errorf("GET: %d, want %d", got, c.want)
			}
			if got := h.connect(t, authority); got != c.want {
				t.Errorf("CONNECT: %d, want %d", got, c.want)
			}
			if c.want == 403 && len(h.dialer.got()) != 0 {
				t.Errorf("blocked host was dialled: %v", h.dialer.got())
			}
		})
	}
}

func TestForbiddenAnswers(t *testing.T) {
	h := startProxy(t, Policy{Allow: []string{`allowed\.test`}, Resolver: standIns()}, Config{}, 80)
	resp, body, c, _ := h.raw(t, "CONNECT denied.test:443 HTTP/1.1\r\nHost: denied.test:443\r\n\r\n")
	c.Close()
	if resp.Proto != "HTTP/1.1" || resp.Status != "403 Forbidden" {
		t.Errorf("CONNECT answer %s %s", resp.Proto, resp.Status)
	}
	if !strings.Contains(body, "blocked by egress policy") {
		t.Errorf("CONNECT body %q", body)
	}
	resp, body, c, _ = h.raw(t, "GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n")
	c.Close()
	if resp.StatusCode != 403 || body != "blocked by egress policy: host not allowed\n" {
		t.Errorf("GET answer %d %q", resp.StatusCode, body)
	}
}

func TestAddressRefused(t *testing.T) {
	meta := netip.MustParseAddr("169.254.169.254")
	res := &fakeResolver{names: map[string][]netip.Addr{
		"local.test":  {lo1},
		"meta.test":   {meta},
		"mixed.test":  {lo1, meta},
		"mapped.test": {netip.AddrFrom16(meta.As16())},
		"v6lo.test":   {netip.IPv6Loopback()},
		"ula.test":    {netip.MustParseAddr("fd00::1")},
	}}
	cases := []struct {
		host  string
		allow []netip.Prefix
	}{
		{"local.test", nil}, // loopback without the explicit allowance
		{"meta.test", nil},
		{"meta.test", loopback1},
		{"mixed.test", loopback1}, // one good address does not excuse a bad one
		{"mapped.test", loopback1},
		{"v6lo.test", loopback1},
		{"ula.test", nil},
	}
	for _, c := range cases {
		t.Run(c.host, func(t *testing.T) {
			h := startProxy(t, Policy{Allow: []string{`.*\.test`}, AllowPrivate: c.allow, Resolver: res}, Config{}, 80, 443)
			if got := h.get(t, "http://"+c.host+"/"); got != 403 {
				t.Errorf("GET: %d, want 403", got)
			}
			if l := h.lastLog(t); l.Action != ActionBlock || !strings.HasPrefix(l.Reason, "address ") {
				t.Errorf("log = %+v", l)
			}
			if got := h.connect(t, c.host+":443"); got != 403 {
				t.Errorf("CONNECT: %d, want 403", got)
			}
			if d := h.dialer.got(); len(d) != 0 {
				t.Errorf("refused before any dial, yet dialled %v", d)
			}
		})
	}
}

func TestLiteralIP(t *testing.T) {
	srv, _ := upstream(t)
	pt := port(t, srv)
	cases := []struct {
		name   string
		policy Policy
		host   string
		want   int
	}{
		{"not in allow list", Policy{Allow: []string{`allowed\.test`}, AllowPrivate: loopback1}, "127.0.0.1", 403},
		{"allowed pattern, no allowance", Policy{Allow: []string{`.*`}}, "127.0.0.1", 403},
		{"v6 loopback", Policy{Allow: []string{`.*`}, AllowPrivate: loopback1}, "[::1]", 403},
		{"mapped loopback", Policy{Allow: []string{`.*`}}, "[::ffff:127.0.0.1]", 403},
		{"metadata", Policy{Allow: []string{`.*`}}, "169.254.169.254", 403},
		{"decimal form", Policy{Allow: []string{`.*`}}, "2130706433", 403},
		{"short form", Policy{Allow: []string{`.*`}}, "127.1", 403},
		{"explicitly allowed", Policy{Allow: []string{`127\.0\.0\.1`}, AllowPrivate: loopback1}, "127.0.0.1", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.policy.Resolver = standIns()
			h := startProxy(t, c.policy, Config{}, pt)
			authority := fmt.Sprintf("%s:%d", c.host, pt)
			if got := h.get(t, "http://"+authority+"/"); got != c.want {
				t.Errorf("GET: %d, want %d", got, c.want)
			}
			if got := h.connect(t, authority); got != c.want {
				t.Errorf("CONNECT: %d, want %d", got, c.want)
			}
			if c.want == 403 && len(h.dialer.got()) != 0 {
				t.Errorf("dialled %v", h.dialer.got())
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
	}))
	defer target.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://target.test:%d/landed", port(t, target)), http.StatusFound)
	}))
	defer redir.Close()
	h := startProxy(t, Policy{
		Allow:        []string{`allowed\.test`, `target\.test`},
		AllowPrivate: loopback1,
		Resolver:     standIns("allowed.test", "target.test"),
	}, Config{}, port(t, redir), port(t, target))

	resp, err := h.client(nil).Get(fmt.Sprintf("http://allowed.test:%d/go", port(t, redir)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "target.test") {
		t.Errorf("got %d, Location %q; want the 302 itself", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests", n)
	}
}

func TestNoRebinding(t *testing.T) {
	srv, _ := upstream(t)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	// The first answer is the checked one; any later lookup would point
	// at the metadata address.
	rebind := func() *fakeResolver {
		return &fakeResolver{answer: func(_ string, n int) []netip.Addr {
			if n == 0 {
				return []netip.Addr{lo1}
			}
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}
		}}
	}
	for _, mode := range []string{"http", "connect"} {
		t.Run(mode, func(t *testing.T) {
			res := rebind()
			var pt uint16
			h := startProxy(t, Policy{Allow: []string{`allowed\.test`}, AllowPrivate: loopback1, Resolver: res}, Config{}, port(t, srv), port(t, tlsSrv))
			if mode == "http" {
				pt = port(t, srv)
				if got := h.get(t, fmt.Sprintf("http://allowed.test:%d/", pt)); got != 200 {
					t.Fatalf("first request: %d", got)
				}
			} else {
				pt = port(t, tlsSrv)
				resp, err := h.client(tlsSrv).Get(fmt.Sprintf("https://allowed.test:%d/", pt))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if d := h.dialer.got(); len(d) != 1 || d[0] != netip.AddrPortFrom(lo1, pt) {
				t.Errorf("dials = %v, want exactly the checked 127.0.0.1:%d", d, pt)
			}
			if n := res.lookups(); n != 1 {
				t.Errorf("%d lookups, want 1 (no second resolution)", n)
			}
			// The next request sees the new answer, and is refused.
			if got := h.connect(t, fmt.Sprintf("allowed.test:%d", pt)); got != 403 {
				t.Errorf("after rebinding: %d, want 403", got)
			}
			if d := h.dialer.got(); len(d) != 1 {
				t.Errorf("dials = %v", d)
			}
		})
	}
}

func TestLogs(t *testing.T) {
	srv, _ := upstream(t)
	pt := port(t, srv)
	h := startProxy(t, Policy{Allow: []string{`allowed\.test`}, AllowPrivate: loopback1, Resolver: standIns("allowed.test")}, Config{}, pt)
	before := time.Now()
	h.get(t, fmt.Sprintf("http://Allowed.Test:%d/a/b?key=secret", pt))
	h.get(t, fmt.Sprintf("http://denied.test:%d/c", pt))
	h.connect(t, "allowed.test:22")
	h.p.Close()

	logs, dropped := h.logs.Logs()
	if len(logs) != 3 || dropped != 0 {
		t.Fatalf("logs = %+v, dropped %d", logs, dropped)
	}
	want := []Log{
		{Method: "GET", Host: "allowed.test", Path: "/a/b", Action: ActionAllow},
		{Method: "GET", Host: "denied.test", Path: "/c", Action: ActionBlock, Reason: "host denied.test: matches no allow pattern"},
		{Method: "CONNECT", Host: "allowed.test", Action: ActionBlock, Reason: "port allowed.test: port 22 is not allowed"},
	}
	for i, l := range logs {
		if l.Timestamp.Before(before.Add(-time.Second)) || l.Timestamp.After(time.Now()) || l.DurationMs < 0 {
			t.Errorf("log %d: timestamp %v, duration %d", i, l.Timestamp, l.DurationMs)
		}
		l.Timestamp, l.DurationMs = time.Time{}, 0
		if l != want[i] {
			t.Errorf("log %d = %+v\nwant     %+v", i, l, want[i])
		}
	}
	if s := h.p.Stats(); s.BytesIn == 0 || s.BytesOut == 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestNotAProxyRequest(t *testing.T) {
	h := startProxy(t, Policy{Allow: []string{`.*`}, Resolver: standIns()}, Config{}, 80)
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
	} {
		resp, _, c, _ := h.raw(t, req)
		c.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%q: %d, want 400", req, resp.StatusCode)
		}
	}
	if len(h.dialer.got()) != 0 {
		t.Errorf("dialled %v", h.dialer.got())
	}
}

func TestNewNeedsMatcher(t *testing.T) {
	if _, err := New(t.Context(), Config{}); err == nil {
		t.Error("New without a Matcher succeeded")
	}
}
