package client

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

func TestNewHost(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"http://localhost:3000", "http://localhost:3000"},
		{"http://localhost:3000/", "http://localhost:3000"},
		{"localhost:3000", "http://localhost:3000"},
		{"https://example.com/isol8/", "https://example.com/isol8"},
		{"https://user:pw@example.com", "https://example.com"},
	} {
		r, err := New(Options{Host: tc.host}, isol8.Options{})
		if err != nil || r.Host() != tc.want {
			t.Errorf("New(%q).Host() = %v, %v; want %q", tc.host, r, err, tc.want)
			continue
		}
	}
	for _, bad := range []string{"", "ftp://x", "http://", "http://x/?a=b", "::"} {
		if _, err := New(Options{Host: bad}, isol8.Options{}); !errors.Is(err, isol8.ErrInvalidArgument) {
			t.Errorf("New(%q): err = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestExecuteWireFormat(t *testing.T) {
	f := newFake(t)
	r := f.client(Options{SessionID: "s1"}, isol8.Options{Network: isol8.NetworkNone, TimeoutMs: 5000})
	res, err := r.Execute(context.Background(), &isol8.Request{
		Runtime: isol8.Python, Code: "print(1)",
		Files: map[string][]byte{"/sandbox/in.bin": {0, 'h', 'i', 0xff}},
		Env:   map[string]string{"A": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"request": map[string]any{
			"runtime": "python", "code": "print(1)",
			"files": map[string]any{"/sandbox/in.bin": "AGhp/w=="},
			"env":   map[string]any{"A": "1"},
		},
		"options":   map[string]any{"network": "none", "timeoutMs": float64(5000)},
		"sessionId": "s1",
	}
	if got := f.body("POST /execute"); !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v\nwant   %v", got, want)
	}
	h := f.headers["POST /execute"]
	if h.Get("Authorization") != "Bearer "+fakeKey || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", h)
	}
	if res.Stdout != "out:print(1)" || res.ExitCode != 3 || res.ExecutionID != "e-1" ||
		!bytes.Equal(res.Files["/sandbox/out.bin"], []byte{0, 1, 2, 0xff}) {
		t.Errorf("result = %+v", res)
	}
}

func TestExecuteOmitsUnset(t *testing.T) {
	f := newFake(t)
	r := f.client(Options{}, isol8.Options{})
	if _, err := r.Execute(context.Background(), &isol8.Request{Runtime: isol8.Bash, Cmd: "ls"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"request": map[string]any{"runtime": "bash", "cmd": "ls"}}
	if got := f.body("POST /execute"); !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v, want %v", got, want)
	}
}

func TestExecuteStdinReader(t *testing.T) {
	f := newFake(t)
	r := f.client(Options{}, isol8.Options{})
	req := &isol8.Request{Runtime: isol8.Python, Code: "echo", Stdin: "ignored", StdinReader: strings.NewReader("from reader")}
	res, err := r.Execute(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "from reader" {
		t.Errorf("stdout = %q, want the reader's data", res.Stdout)
	}
	if req.Stdin != "ignored" {
		t.Error("Execute changed the caller's request")
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		class  error
		msg    string
	}{
		{400, `{"error":"files[\"/x\"]: path escapes /sandbox"}`, isol8.ErrInvalidArgument, `files["/x"]: path escapes /sandbox`},
		{401, `{"error":"Missing Authorization header"}`, isol8.ErrPermission, "Missing Authorization header"},
		{403, `{"error":"Invalid API key"}`, isol8.ErrPermission, "Invalid API key"},
		{404, `{"error":"Session not found"}`, isol8.ErrNotFound, "Session not found"},
		{409, `{"error":"runtime: the session runs python"}`, isol8.ErrConflict, "runtime: the session runs python"},
		{413, `{"error":"Request body too large (limit 10 bytes)"}`, isol8.ErrInvalidArgument, "Request body too large (limit 10 bytes)"},
		{429, `{"error":"Too many executions waiting; retry later"}`, isol8.ErrResourceExhausted, "Too many executions waiting; retry later"},
		{500, `{"error":"Internal server error"}`, isol8.ErrUnavailable, "Internal server error"},
		{502, `<html>bad gateway</html>`, isol8.ErrUnavailable, "502 Bad Gateway"},
		{503, `{"error":"Server is shutting down"}`, isol8.ErrUnavailable, "Server is shutting down"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(tc.status)
			w.Write([]byte(tc.body))
		}))
		r, _ := New(Options{Host: srv.URL, APIKey: "k"}, isol8.Options{})
		_, err := r.Execute(context.Background(), &isol8.Request{Runtime: isol8.Python, Code: "1"})
		srv.Close()
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, tc.class) || err.Error() != tc.msg {
			t.Errorf("status %d: err = %v (%T), want %v with message %q", tc.status, err, err, tc.class, tc.msg)
			continue
		}
		if e.Status != tc.status || e.RetryAfter != 2*time.Second {
			t.Errorf("status %d: Error = %+v", tc.status, e)
		}
	}
}

func TestAuthFailures(t *testing.T) {
	f := newFake(t)
	_, err := f.client(Options{APIKey: "wrong"}, isol8.Options{}).Execute(context.Background(), &isol8.Request{Runtime: "python", Code: "1"})
	if !errors.Is(err, isol8.ErrPermission) || err.Error() != "Invalid API key" {
		t.Errorf("wrong key: err = %v", err)
	}
	r, _ := New(Options{Host: f.srv.URL}, isol8.Options{})
	if _, err := r.ListSessions(context.Background()); !errors.Is(err, isol8.ErrPermission) || err.Error() != "Missing Authorization header" {
		t.Errorf("no key: err = %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r, _ := New(Options{Host: url, APIKey: "k"}, isol8.Options{})
	for name, call := range map[string]func() error{
		"Start": func() error { return r.Start(context.Background()) },
		"Execute": func() error {
			_, err := r.Execute(context.Background(), &isol8.Request{Runtime: "python", Code: "1"})
			return err
		},
		"ExecuteStream": func() error {
			_, err := r.ExecuteStream(context.Background(), &isol8.Request{Runtime: "python", Code: "1"}, nil)
			return err
		},
	} {
		if err := call(); !errors.Is(err, isol8.ErrUnavailable) || !strings.Contains(err.Error(), url) {
			t.Errorf("%s: err = %v, want ErrUnavailable naming the server", name, err)
		}
	}
}

func TestCancel(t *testing.T) {
	f := newFake(t)
	r := f.client(Options{}, isol8.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := r.Execute(ctx, &isol8.Request{Runtime: "python", Code: "slow"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, isol8.ErrUnavailable) {
		t.Errorf("err = %v, want the context's error and not ErrUnavailable", err)
	}
}

func TestStart(t *testing.T) {
	f := newFake(t)
	if err := f.client(Options{}, isol8.Options{}).Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if h := f.headers["GET /sessions"]; h.Get("Authorization") != "Bearer "+fakeKey {
		t.Errorf("Start did not check the key with an authenticated call")
	}
	err := f.client(Options{APIKey: "wrong"}, isol8.Options{}).Start(context.Background())
	if !errors.Is(err, isol8.ErrPermission) {
		t.Errorf("Start with a wrong key: err = %v, want ErrPermission", err)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "draining"})
	}))
	defer down.Close()
	r, _ := New(Options{Host: down.URL, APIKey: "k"}, isol8.Options{})
	if err := r.Start(context.Background()); !errors.Is(err, isol8.ErrUnavailable) {
		t.Errorf("Start of a server that is not ok: err = %v, want ErrUnavailable", err)
	}
}

func TestStopAndSessions(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)

	// No session: Stop does nothing.
	if err := f.client(Options{}, isol8.Options{}).Stop(ctx); err != nil || len(f.deleted) != 0 {
		t.Fatalf("Stop without a session: %v, deleted %v", err, f.deleted)
	}
	// A named session is deleted by Stop (upstream's stop()), unless kept.
	named := f.client(Options{SessionID: "mine"}, isol8.Options{})
	if _, err := named.Execute(ctx, &isol8.Request{Runtime: "python", Code: "x = 1"}); err != nil {
		t.Fatal(err)
	}
	kept := f.client(Options{SessionID: "kept", KeepSession: true}, isol8.Options{})
	if _, err := kept.Execute(ctx, &isol8.Request{Runtime: "python", Code: "x = 1"}); err != nil {
		t.Fatal(err)
	}
	list, err := named.ListSessions(ctx)
	if err != nil || len(list) != 2 || list[0].LastAccessed().Year() != 2023 {
		t.Fatalf("ListSessions = %+v, %v", list, err)
	}
	if err := named.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := kept.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.deleted, []string{"mine"}) {
		t.Fatalf("deleted sessions = %v, want [mine]", f.deleted)
	}
	// Persistent mode without an id makes one up.
	p := f.client(Options{}, isol8.Options{Mode: isol8.Persistent})
	if !strings.HasPrefix(p.SessionID(), "remote-") || len(p.SessionID()) != len("remote-")+32 {
		t.Fatalf("generated session id = %q", p.SessionID())
	}
	if _, err := p.Execute(ctx, &isol8.Request{Runtime: "python", Code: "1"}); err != nil {
		t.Fatal(err)
	}
	if got := f.body("POST /execute")["sessionId"]; got != p.SessionID() {
		t.Errorf("sessionId sent = %v, want %q", got, p.SessionID())
	}
	// DeleteSession escapes the id.
	if err := p.DeleteSession(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if last := f.deleted[len(f.deleted)-1]; last != "a/b" {
		t.Errorf("deleted %q, want a/b", last)
	}
}

func TestFiles(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	r := f.client(Options{SessionID: "s"}, isol8.Options{})
	if err := r.PutFile(ctx, "/sandbox/x", []byte("hi")); !errors.Is(err, isol8.ErrNotFound) || err.Error() != "Session not found" {
		t.Fatalf("PutFile before the session exists: err = %v", err)
	}
	if _, err := r.Execute(ctx, &isol8.Request{Runtime: "python", Code: "1"}); err != nil {
		t.Fatal(err)
	}
	content := []byte{0, 1, 2, 'x', 0xfe, 0xff}
	if err := r.PutFile(ctx, "/sandbox/data.bin", content); err != nil {
		t.Fatal(err)
	}
	if got := f.body("POST /file"); got["content"] != "AAECeP7/" || got["sessionId"] != "s" || got["path"] != "/sandbox/data.bin" {
		t.Errorf("POST /file body = %v", got)
	}
	got, err := r.GetFile(ctx, "/sandbox/data.bin")
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("GetFile = %v, %v; want %v", got, err, content)
	}
	if _, err := r.GetFile(ctx, "/sandbox/none"); !errors.Is(err, isol8.ErrNotFound) {
		t.Errorf("GetFile of a missing file: err = %v, want ErrNotFound", err)
	}
	// Without a session there is nowhere to put a file.
	none := f.client(Options{}, isol8.Options{})
	if err := none.PutFile(ctx, "/sandbox/x", nil); !errors.Is(err, isol8.ErrConflict) {
		t.Errorf("PutFile without a session: err = %v, want ErrConflict", err)
	}
	if _, err := none.GetFile(ctx, "/sandbox/x"); !errors.Is(err, isol8.ErrConflict) {
		t.Errorf("GetFile without a session: err = %v, want ErrConflict", err)
	}
}

func TestAuthRoutes(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	r := f.client(Options{}, isol8.Options{})
	tok, err := r.Login(ctx, KeyRequest{TenantID: "acme", TTLMs: 60000})
	if err != nil || tok.KeyID != "k1" || len(tok.Token) != 70 || tok.ExpiresAt == nil || tok.ExpiresAt.Year() != 2030 {
		t.Fatalf("Login = %+v, %v", tok, err)
	}
	if got := f.body("POST /auth/login"); !reflect.DeepEqual(got, map[string]any{"tenantId": "acme", "ttlMs": float64(60000)}) {
		t.Errorf("login body = %v", got)
	}
	k, err := r.CreateKey(ctx, KeyRequest{Name: "ci", TenantID: "acme"})
	if err != nil || k.ID != "k2" || !strings.HasPrefix(k.Key, "isol8_") || k.ExpiresAt != nil {
		t.Fatalf("CreateKey = %+v, %v", k, err)
	}
	keys, err := r.ListKeys(ctx, "acme")
	if err != nil || len(keys) != 1 || keys[0].TenantID != "acme" || keys[0].CreatedAt.IsZero() {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}
	if err := r.RevokeKey(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeKey(ctx, "nope"); !errors.Is(err, isol8.ErrNotFound) || err.Error() != "Key not found" {
		t.Errorf("RevokeKey of an unknown key: err = %v", err)
	}
}
