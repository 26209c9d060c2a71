package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHealthNeedsNoKey(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do("GET", "/health", "", nil)
	if r.status != 200 || string(r.body) != `{"status":"ok","version":"test"}`+"\n" {
		t.Fatalf("GET /health: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on the answer")
	}
}

// The Authorization rule: no header is 401; every other defect is 403.
func TestAuthorizationHeaderRule(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		name    string
		headers []string // values of Authorization, in order
		status  int
	}{
		{"missing", nil, 401},
		{"empty", []string{""}, 403},
		{"scheme only", []string{"Bearer"}, 403},
		{"scheme and space", []string{"Bearer "}, 403},
		{"lower-case scheme", []string{"bearer " + testMasterKey}, 200},
		{"upper-case scheme", []string{"BEARER " + testMasterKey}, 200},
		{"two spaces", []string{"Bearer  " + testMasterKey}, 403},
		{"tab", []string{"Bearer\t" + testMasterKey}, 403},
		{"trailing junk", []string{"Bearer " + testMasterKey + " x"}, 403},
		{"other scheme", []string{"Basic " + testMasterKey}, 403},
		{"no scheme", []string{testMasterKey}, 403},
		{"duplicated, both right", []string{"Bearer " + testMasterKey, "Bearer " + testMasterKey}, 403},
		{"wrong key", []string{"Bearer nope"}, 403},
		{"wrong key of the store's shape", []string{"Bearer isol8_" + strings.Repeat("ab", 32)}, 403},
		{"master key prefix", []string{"Bearer " + testMasterKey[:5]}, 403},
		{"too long", []string{"Bearer " + strings.Repeat("k", 10000)}, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", h.ts.URL+"/sessions", nil)
			for _, v := range c.headers {
				req.Header.Add("Authorization", v)
			}
			r := h.send(req)
			if r.status != c.status {
				t.Fatalf("status %d, want %d (%s)", r.status, c.status, r.body)
			}
			want := map[int]string{401: "Missing Authorization header", 403: "Invalid API key"}[c.status]
			if want != "" && r.errorMessage(t) != want {
				t.Fatalf("error %q, want %q", r.errorMessage(t), want)
			}
		})
	}
}

// bodySpy fails the test if the server reads it.
type bodySpy struct{ read bool }

func (b *bodySpy) Read(p []byte) (int, error) { b.read = true; return 0, io.EOF }
func (b *bodySpy) Close() error               { return nil }

func TestUnauthenticatedBodyIsNeverRead(t *testing.T) {
	h := newHarness(t, nil)
	tenant := "Bearer " + h.newKey("k", "")
	for _, auth := range []string{"", "Bearer wrong", tenant} {
		for _, path := range []string{"/execute", "/cleanup", "/auth/keys"} {
			if auth == tenant && path == "/execute" {
				continue // a tenant key may execute
			}
			spy := &bodySpy{}
			req := httptest.NewRequest("POST", path, nil)
			req.Body, req.ContentLength = spy, 1<<20
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			h.srv.Handler().ServeHTTP(rec, req)
			if rec.Code == 200 || spy.read {
				t.Errorf("POST %s with %q: status %d, body read %v", path, auth, rec.Code, spy.read)
			}
			if rec.Header().Get("Connection") != "close" {
				t.Errorf("POST %s with %q: the connection is kept, so the server would drain the body", path, auth)
			}
		}
	}
}

func TestMasterOnlyRoutes(t *testing.T) {
	h := newHarness(t, nil)
	key := h.newKey("tenant-key", "acme")
	for _, rt := range routeTable {
		if rt.access != master {
			continue
		}
		path := strings.ReplaceAll(rt.path, "{id}", "x")
		r := h.do(rt.method, path, key, "{}")
		if r.status != 403 || r.errorMessage(t) != "Master key required for this operation" {
			t.Errorf("%s %s with a tenant key: %d %s", rt.method, path, r.status, r.body)
		}
	}
}

func TestAuthWithoutStore(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Store = nil })
	for _, c := range []struct{ method, path string }{
		{"POST", "/auth/keys"}, {"GET", "/auth/keys"}, {"DELETE", "/auth/keys/x"}, {"POST", "/auth/login"},
	} {
		r := h.do(c.method, c.path, testMasterKey, `{"name":"k"}`)
		if r.status != 400 || r.errorMessage(t) != "DB-backed auth is not enabled" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
}

func TestKeyLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do("POST", "/auth/keys", testMasterKey, map[string]any{"name": "ci", "tenantId": "acme", "ttlMs": 60000})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := r.json(t)
	secret, _ := created["key"].(string)
	if !regexp.MustCompile(`^isol8_[0-9a-f]{64}$`).MatchString(secret) || created["name"] != "ci" ||
		created["tenantId"] != "acme" || created["expiresAt"] == nil || !strings.HasPrefix(secret, created["keyPrefix"].(string)) {
		t.Fatalf("created key %v", created)
	}
	id := created["id"].(string)

	if r := h.do("GET", "/sessions", secret, nil); r.status != 200 {
		t.Fatalf("the new key does not work: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/auth/keys?tenantId=acme", testMasterKey, nil)
	if r.status != 200 || strings.Contains(string(r.body), secret) || strings.Contains(string(r.body), `"key"`) {
		t.Fatalf("list: %d %s (must hold no secret)", r.status, r.body)
	}
	if keys := r.json(t)["keys"].([]any); len(keys) != 1 || keys[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %s", r.body)
	}
	if r := h.do("GET", "/auth/keys?tenantId=other", testMasterKey, nil); string(r.body) != `{"keys":[]}`+"\n" {
		t.Fatalf("list of another tenant: %s", r.body)
	}
	if r := h.do("DELETE", "/auth/keys/"+id, testMasterKey, nil); r.status != 200 || r.json(t)["id"] != id || r.json(t)["ok"] != true {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/sessions", secret, nil); r.status != 403 {
		t.Fatalf("a revoked key still works: %d", r.status)
	}
	if r := h.do("DELETE", "/auth/keys/no-such-key", testMasterKey, nil); r.status != 404 || r.errorMessage(t) != "Key not found" {
		t.Fatalf("delete of an unknown key: %d %s", r.status, r.body)
	}

	r = h.do("POST", "/auth/login", testMasterKey, map[string]any{"tenantId": "acme"})
	login := r.json(t)
	if r.status != 200 || login["keyId"] == nil || login["expiresAt"] == nil {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/sessions", login["token"].(string), nil); r.status != 200 {
		t.Fatalf("the login token does not work: %d", r.status)
	}

	for _, bad := range []map[string]any{{}, {"name": "x", "ttlMs": -1}, {"name": "x", "tenantId": "a b"}, {"name": strings.Repeat("n", 200)}} {
		if r := h.do("POST", "/auth/keys", testMasterKey, bad); r.status != 400 {
			t.Errorf("create %v: %d %s, want 400", bad, r.status, r.body)
		}
	}
	if r := h.do("POST", "/auth/login", testMasterKey, map[string]any{"ttlMs": 7 * 24 * 3600 * 1000}); r.status != 400 {
		t.Errorf("a login for a week: %d, want 400", r.status)
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	h := newHarness(t, nil)
	if r := h.do("GET", "/nope", "", nil); r.status != 401 {
		t.Errorf("unknown route without a key: %d, want 401", r.status)
	}
	if r := h.do("GET", "/nope", testMasterKey, nil); r.status != 404 || r.errorMessage(t) != "Not found" {
		t.Errorf("unknown route: %d %s", r.status, r.body)
	}
	r := h.do("PUT", "/file", testMasterKey, nil)
	if r.status != 405 || r.header.Get("Allow") == "" {
		t.Errorf("PUT /file: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
}
