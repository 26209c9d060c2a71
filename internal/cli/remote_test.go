package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiFake is a stand-in isol8 server for the remote commands: login,
// sessions, and runs whose stdout is "ran <code>" and exit code 7. It has
// no WebSocket route, so streams fall back to SSE.
type apiFake struct {
	*httptest.Server
	master, token string

	mu       sync.Mutex
	calls    []string // "METHOD /path"
	bodies   map[string]map[string]any
	sessions map[string]bool
}

func newAPIFake(t *testing.T) *apiFake {
	f := &apiFake{master: "master-key", token: "isol8_" + strings.Repeat("0a", 32),
		bodies: map[string]map[string]any{}, sessions: map[string]bool{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *apiFake) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *apiFake) serve(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + r.URL.Path
	var body map[string]any
	data, _ := io.ReadAll(r.Body)
	json.Unmarshal(data, &body)
	f.mu.Lock()
	f.calls = append(f.calls, route)
	f.bodies[route] = body
	f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	if auth != "Bearer "+f.master && auth != "Bearer "+f.token {
		f.reply(w, 403, map[string]string{"error": "Invalid API key"})
		return
	}
	switch {
	case route == "POST /auth/login":
		if auth != "Bearer "+f.master {
			f.reply(w, 403, map[string]string{"error": "Master key required for this operation"})
			return
		}
		f.reply(w, 200, map[string]any{"token": f.token, "expiresAt": time.Now().Add(time.Hour), "keyId": "key-1"})
	case route == "GET /sessions":
		f.mu.Lock()
		list := []map[string]any{}
		for id := range f.sessions {
			list = append(list, map[string]any{"id": id, "isActive": false, "lastAccessedAt": 1700000000000})
		}
		f.mu.Unlock()
		f.reply(w, 200, map[string]any{"sessions": list})
	case strings.HasPrefix(route, "DELETE /session/"):
		f.mu.Lock()
		delete(f.sessions, strings.TrimPrefix(r.URL.Path, "/session/"))
		f.mu.Unlock()
		f.reply(w, 200, map[string]bool{"ok": true})
	case route == "POST /execute" || route == "POST /execute/stream":
		req, _ := body["request"].(map[string]any)
		if id, _ := body["sessionId"].(string); id != "" {
			f.mu.Lock()
			f.sessions[id] = true
			f.mu.Unlock()
		}
		out := fmt.Sprintf("ran %v\n", req["code"])
		if route == "POST /execute" {
			f.reply(w, 200, map[string]any{"stdout": out, "exitCode": 7, "files": map[string][]byte{"/sandbox/out.txt": []byte("file!")}})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"type\":\"stdout\",\"data\":%q}\n\ndata: {\"type\":\"exit\",\"data\":\"7\"}\n\n", out)
	default:
		f.reply(w, 404, map[string]string{"error": "Not found"})
	}
}

func (f *apiFake) called(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == route {
			n++
		}
	}
	return n
}

func TestLoginLogout(t *testing.T) {
	isolate(t)
	f := newAPIFake(t)
	o := cli(t, "login", "--host", f.URL+"/", "--key", "master-key", "--tenant", "acme", "--ttl", "60000")
	expectCode(t, o, 0)
	if got := f.bodies["POST /auth/login"]; got["tenantId"] != "acme" || got["ttlMs"] != float64(60000) {
		t.Errorf("login body = %v", got)
	}
	path := filepath.Join(os.Getenv("HOME"), ".isol8", "credentials.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials mode = %v, want 0600", fi.Mode().Perm())
	}
	c, err := loadCredentials()
	if err != nil || c.Host != f.URL || c.Token != f.token || c.KeyID != "key-1" || c.ExpiresAt == nil {
		t.Fatalf("saved = %+v, %v", c, err)
	}

	// The saved login serves session and run.
	o = cli(t, "run", "--host", f.URL, "-e", "print(1)")
	expectCode(t, o, 7)
	if o.stdout != "ran print(1)\n" {
		t.Errorf("stdout = %q", o.stdout)
	}
	expectCode(t, cli(t, "session", "list"), 0)

	// ... but never for another server.
	other := newAPIFake(t)
	o = cli(t, "run", "--host", other.URL, "-e", "print(1)")
	expectCode(t, o, exitUsage)
	if len(other.calls) != 0 || !strings.Contains(o.stderr, "no API key") {
		t.Errorf("the saved token went to another server, or the error is unclear: %s", o)
	}

	expectCode(t, cli(t, "logout"), 0)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("credentials still there after logout: %v", err)
	}
	o = cli(t, "logout")
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "Not logged in") {
		t.Errorf("second logout: %s", o)
	}
}

func TestLoginErrors(t *testing.T) {
	isolate(t)
	f := newAPIFake(t)
	expectCode(t, cli(t, "login", "--key", "k"), exitUsage)
	expectCode(t, cli(t, "login", "--host", f.URL), exitUsage) // no key
	o := cli(t, "login", "--host", f.URL, "--key", "wrong")
	expectCode(t, o, exitUsage)
	if !strings.Contains(o.stderr, "Invalid API key") {
		t.Errorf("stderr = %q, want the server's message", o.stderr)
	}
	t.Setenv("ISOL8_API_KEY", f.token) // a key, but not the master key
	o = cli(t, "login", "--host", f.URL)
	expectCode(t, o, exitUsage)
	if !strings.Contains(o.stderr, "Master key required") {
		t.Errorf("stderr = %q", o.stderr)
	}
}

func TestSessionCommands(t *testing.T) {
	isolate(t)
	f := newAPIFake(t)
	f.sessions["s-1"] = true
	o := cli(t, "session", "list", "--host", f.URL, "--key", f.token)
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "ID") || !strings.Contains(o.stdout, "s-1") {
		t.Errorf("list: %s", o)
	}
	o = cli(t, "session", "list", "--json", "--host", f.URL, "--key", f.token)
	expectCode(t, o, 0)
	var list []map[string]any
	if err := json.Unmarshal([]byte(o.stdout), &list); err != nil || len(list) != 1 || list[0]["id"] != "s-1" {
		t.Errorf("list --json = %q, %v", o.stdout, err)
	}
	t.Setenv("ISOL8_API_KEY", f.token)
	expectCode(t, cli(t, "session", "stop", "s-1", "--host", f.URL), 0)
	if f.called("DELETE /session/s-1") != 1 {
		t.Errorf("calls = %v", f.calls)
	}
	expectCode(t, cli(t, "session", "stop", "--host", f.URL), exitUsage)
	t.Setenv("ISOL8_API_KEY", "")
	o = cli(t, "session", "list")
	expectCode(t, o, exitUsage)
	if !strings.Contains(o.stderr, "isol8 login") {
		t.Errorf("no server, no login: %s", o)
	}
}

func TestRunRemote(t *testing.T) {
	isolate(t)
	f := newAPIFake(t)
	t.Setenv("ISOL8_API_KEY", f.token)

	// A named session is used and kept.
	expectCode(t, cli(t, "run", "--host", f.URL, "--session-id", "mine", "-e", "x = 1"), 7)
	if got := f.bodies["POST /execute/stream"]["sessionId"]; got != "mine" {
		t.Errorf("sessionId = %v", got)
	}
	if f.called("DELETE /session/mine") != 0 {
		t.Error("a --session-id session was deleted after the run")
	}
	// --persistent alone: a session for this run, removed at its end.
	expectCode(t, cli(t, "run", "--host", f.URL, "--persistent", "--memory", "256m", "-e", "x = 1"), 7)
	body := f.bodies["POST /execute/stream"]
	id, _ := body["sessionId"].(string)
	if !strings.HasPrefix(id, "remote-") || f.called("DELETE /session/"+id) != 1 {
		t.Errorf("persistent run: session %q, calls %v", id, f.calls)
	}
	if opts, _ := body["options"].(map[string]any); opts["memoryLimit"] != "256m" || opts["backend"] != nil {
		t.Errorf("options sent = %v, want memoryLimit only", body["options"])
	}
	// --out needs the result's files: a plain POST /execute.
	dir := t.TempDir()
	o := cli(t, "run", "--host", f.URL, "--out", "/sandbox/out.txt:"+dir+"/", "-e", "print(2)")
	expectCode(t, o, 7)
	if data, err := os.ReadFile(filepath.Join(dir, "out.txt")); err != nil || string(data) != "file!" || o.stdout != "ran print(2)\n" {
		t.Errorf("--out: file %q, %v; %s", data, err, o)
	}

	// So does --log-network: the network log is in the full result only.
	before := f.called("POST /execute")
	expectCode(t, cli(t, "run", "--host", f.URL, "--net", "filtered", "--log-network", "-e", "print(3)"), 7)
	if f.called("POST /execute") != before+1 {
		t.Errorf("--log-network did not use POST /execute: %v", f.calls)
	}
	if opts, _ := f.bodies["POST /execute"]["options"].(map[string]any); opts["logNetwork"] != true || opts["network"] != "filtered" {
		t.Errorf("options sent = %v", opts)
	}

	// Remote flags without --host, and --backend with it, are mistakes.
	expectCode(t, cli(t, "run", "--key", "k", "-e", "1"), exitUsage)
	expectCode(t, cli(t, "run", "--session-id", "s", "-e", "1"), exitUsage)
	expectCode(t, cli(t, "run", "--host", f.URL, "--backend", "native", "-e", "1"), exitUsage)
	o = cli(t, "run", "--host", f.URL, "--key", "wrong", "-e", "1")
	expectCode(t, o, exitUsage)
	if !strings.Contains(o.stderr, "Invalid API key") {
		t.Errorf("wrong key: %s", o)
	}
}
