package isol8

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver maps test names to addresses; anything else fails.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

var (
	loopback   = netip.MustParseAddr("127.0.0.1")
	publicAddr = netip.MustParseAddr("93.184.216.34")
)

// codeServer serves code at /code.py, redirects from /to?u=URL, stalls at
// /slow, and counts requests.
func codeServer(t *testing.T, tls bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/code.py":
			fmt.Fprint(w, "print('remote')\n")
		case "/big.py":
			fmt.Fprint(w, strings.Repeat("#", 4096))
		case "/to":
			http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
		case "/slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		default:
			http.NotFound(w, r)
		}
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, &hits
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func enabledPolicy() RemoteCodeConfig {
	p := DefaultConfig().RemoteCode
	p.Enabled = true
	return p
}

func TestRemoteCodeDisabledByDefault(t *testing.T) {
	cfg := DefaultConfig()
	_, err := cfg.ResolveRemoteCode(t.Context(), &Request{Runtime: Python, CodeURL: "https://code.test/x.py"})
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "remoteCode.enabled") {
		t.Fatalf("err = %v, want a permission error about remoteCode.enabled", err)
	}
}

func TestRemoteCodeHTTPS(t *testing.T) {
	srv, hits := codeServer(t, true)
	url := srv.URL + "/code.py"
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig

	// Loopback is refused after resolution, whatever the host patterns say.
	f := &CodeFetcher{Policy: enabledPolicy(), TLSConfig: tlsCfg}
	if _, err := f.Fetch(t.Context(), url, "", false); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("loopback fetch: err = %v, want it refused as loopback", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the refused fetch reached the server")
	}

	f.AllowPrivate = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	code, err := f.Fetch(t.Context(), url, sha("print('remote')\n"), false)
	if err != nil || code != "print('remote')\n" {
		t.Fatalf("Fetch = %q, %v", code, err)
	}
	_, err = f.Fetch(t.Context(), url, strings.Repeat("0", 64), false)
	if !errors.Is(err, ErrInvalidArgument) || !strings.HasPrefix(err.Error(), "codeHash:") {
		t.Errorf("wrong hash: err = %v", err)
	}
	f.Policy.RequireHash = true
	if _, err := f.Fetch(t.Context(), url, "", false); err == nil || !strings.HasPrefix(err.Error(), "codeHash:") {
		t.Errorf("requireHash without a hash: err = %v", err)
	}
	f.Policy.RequireHash = false
	f.Policy.MaxCodeSize = 100
	if _, err := f.Fetch(t.Context(), srv.URL+"/big.py", "", false); err == nil || !strings.Contains(err.Error(), "maxCodeSize") {
		t.Errorf("oversized code: err = %v", err)
	}
	f.Policy.MaxCodeSize = 0
	f.Policy.FetchTimeoutMs = 200
	start := time.Now()
	if _, err := f.Fetch(t.Context(), srv.URL+"/slow", "", false); err == nil || !strings.Contains(err.Error(), "fetchTimeoutMs") {
		t.Errorf("slow server: err = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("slow fetch returned after %s", took)
	}
	if _, err := f.Fetch(t.Context(), srv.URL+"/missing.py", "", false); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing code: err = %v", err)
	}
}

func TestRemoteCodeSchemesAndHosts(t *testing.T) {
	srv, hits := codeServer(t, false)
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1")
	res := fakeResolver{
		"code.test":     {loopback},
		"evil.test":     {loopback},
		"rebind.test":   {loopback},
		"mixed.test":    {publicAddr, netip.MustParseAddr("10.1.2.3")},
		"internal.test": {netip.MustParseAddr("127.0.0.2")},
	}
	f := &CodeFetcher{Policy: enabledPolicy(), Resolver: res, AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	url := "http://code.test" + port + "/code.py"

	// http: needs the policy and the request to allow it.
	if _, err := f.Fetch(t.Context(), url, "", true); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "allowedSchemes") {
		t.Errorf("http not in allowedSchemes: err = %v", err)
	}
	f.Policy.AllowedSchemes = []string{"https", "http"}
	if _, err := f.Fetch(t.Context(), url, "", false); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "allowInsecureCodeUrl") {
		t.Errorf("http without allowInsecureCodeUrl: err = %v", err)
	}
	if code, err := f.Fetch(t.Context(), url, "", true); err != nil || code != "print('remote')\n" {
		t.Fatalf("allowed http fetch = %q, %v", code, err)
	}
	for _, bad := range []string{"ftp://code.test/x", "file:///etc/passwd", "http://user:pw@code.test" + port + "/code.py", "/relative.py"} {
		if _, err := f.Fetch(t.Context(), bad, "", true); err == nil {
			t.Errorf("Fetch(%q) accepted", bad)
		}
	}

	// Host lists: whole-name matches; deny wins.
	f.Policy.AllowedHosts = []string{`code\.test`, `evil\.test`, `.*\.test`}
	f.Policy.BlockedHosts = []string{`evil\.test`}
	before := hits.Load()
	for _, tc := range []struct{ url, want string }{
		{"http://evil.test" + port + "/code.py", "deny pattern"},
		{"http://code.test.evil.net" + port + "/code.py", "no allow pattern"},
		{"http://internal.test" + port + "/code.py", "loopback"},                                   // 127.0.0.2: not allowed
		{"http://mixed.test" + port + "/code.py", "private"},                                       // any bad address refuses the host
		{"http://code.test" + port + "/to?u=http://evil.test" + port + "/code.py", "deny pattern"}, // redirect re-checked
		{"http://code.test" + port + "/to?u=http://internal.test" + port + "/code.py", "loopback"}, // redirect's address checked at connect
		{"http://code.test" + port + "/to?u=ftp://code.test/code.py", "not supported"},             // redirect's scheme checked
	} {
		_, err := f.Fetch(t.Context(), tc.url, "", true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Fetch(%s): err = %v, want %q", tc.url, err, tc.want)
		}
	}
	// Only the three redirecting requests reached the server.
	if n := hits.Load() - before; n != 3 {
		t.Errorf("%d requests reached the server, want 3 (the redirects only)", n)
	}
	// With any host allowed, a redirect to the metadata address is refused
	// by the address check.
	f.Policy.AllowedHosts = nil
	meta := "http://code.test" + port + "/to?u=http://169.254.169.254/latest/meta-data/"
	if _, err := f.Fetch(t.Context(), meta, "", true); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("redirect to the metadata address: err = %v", err)
	}
	if code, err := f.Fetch(t.Context(), "http://code.test"+port+"/to?u=/code.py", "", true); err != nil || code == "" {
		t.Errorf("allowed redirect: %q, %v", code, err)
	}
}

func TestResolveRemoteCode(t *testing.T) {
	srv, _ := codeServer(t, false)
	testCodeFetcher = func(f *CodeFetcher) { f.AllowPrivate = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }
	t.Cleanup(func() { testCodeFetcher = nil })
	cfg := DefaultConfig()
	cfg.RemoteCode.Enabled = true
	cfg.RemoteCode.AllowedSchemes = []string{"https", "http"}
	req := &Request{Runtime: Python, CodeURL: srv.URL + "/code.py", AllowInsecureCodeURL: true, Stdin: "x"}
	got, err := cfg.ResolveRemoteCode(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != "print('remote')\n" || got.CodeURL != "" || got.Stdin != "x" || req.CodeURL == "" {
		t.Errorf("ResolveRemoteCode = %+v (original %+v)", got, req)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the resolved request does not validate: %v", err)
	}
	plain := &Request{Runtime: Python, Code: "1"}
	if got, err := cfg.ResolveRemoteCode(t.Context(), plain); got != plain || err != nil {
		t.Errorf("a request without codeUrl changed: %v, %v", got, err)
	}
}
