package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/audit"
)

// The body limit: a declared length over it is refused before a byte is
// read, a chunked body when it crosses the limit.
func TestBodyTooLarge(t *testing.T) {
	h := newHarness(t, nil)
	big := bytes.Repeat([]byte("a"), 64<<20)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(big)
		if chunked {
			body = io.MultiReader(body) // hides the length
		}
		req, _ := http.NewRequest("POST", h.ts.URL+"/execute", body)
		req.Header.Set("Authorization", "Bearer "+testMasterKey)
		resp, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatalf("chunked=%v: %v", chunked, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(data), "too large") {
			t.Fatalf("64 MB body (chunked=%v): %d %s", chunked, resp.StatusCode, data)
		}
	}
	if r := h.do("GET", "/health", "", nil); r.status != 200 {
		t.Fatalf("the server is unwell after a large body: %d", r.status)
	}
}

func TestBadBodies(t *testing.T) {
	h := newHarness(t, nil)
	manyFiles := &strings.Builder{}
	manyFiles.WriteString(`{"request":{"runtime":"python","code":"1","files":{`)
	for i := range 1_000_000 {
		if i > 0 {
			manyFiles.WriteByte(',')
		}
		fmt.Fprintf(manyFiles, `"%d":""`, i)
	}
	manyFiles.WriteString(`}}}`)
	cases := []struct {
		name, body, field string
	}{
		{"empty", ``, "body"},
		{"not JSON", `{"request":`, "body"},
		{"array", `[]`, "body"},
		{"deep", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), "body"},
		{"no request", `{"options":{}}`, "request"},
		{"no runtime", `{"request":{"code":"1"}}`, "runtime"},
		{"unknown runtime", `{"request":{"runtime":"cobol","code":"1"}}`, "runtime"},
		{"string timeout", `{"request":{"runtime":"python","code":"1","timeoutMs":"5"}}`, "request.timeoutMs"},
		{"1e15 timeout", `{"request":{"runtime":"python","code":"1","timeoutMs":1e15}}`, "request.timeoutMs"},
		{"NaN-like cpu", `{"request":{"runtime":"python","code":"1"},"options":{"cpuLimit":"NaN"}}`, "options.cpuLimit"},
		{"negative pids", `{"request":{"runtime":"python","code":"1"},"options":{"pidsLimit":-1}}`, "options.pidsLimit"},
		{"huge memory string", `{"request":{"runtime":"python","code":"1"},"options":{"memoryLimit":"lots"}}`, "options.memoryLimit"},
		{"file outside", `{"request":{"runtime":"python","code":"1","files":{"/sandbox/../etc/x":"eA=="}}}`, `files["/sandbox/../etc/x"]`},
		{"bad base64", `{"request":{"runtime":"python","code":"1","files":{"/sandbox/a":"!!"}}}`, `request.files["/sandbox/a"]`},
		{"file not a string", `{"request":{"runtime":"python","code":"1","files":{"/sandbox/a":1}}}`, `request.files["/sandbox/a"]`},
		{"env not a string", `{"request":{"runtime":"python","code":"1","env":{"A":1}}}`, `request.env["A"]`},
		{"bad env name", `{"request":{"runtime":"python","code":"1","env":{"A=B":"1"}}}`, `env["A=B"]`},
		{"a million files", manyFiles.String(), "request.files"},
		{"bad session id", `{"request":{"runtime":"python","code":"1"},"sessionId":"../x"}`, "sessionId"},
		{"bad workdir", `{"request":{"runtime":"python","code":"1","workdir":"/proc/self/fd/3"}}`, "workdir"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r := h.do("POST", "/execute", testMasterKey, c.body)
			if r.status != 400 {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if msg := r.errorMessage(t); !strings.HasPrefix(msg, c.field+": ") {
				t.Fatalf("error %q does not name %s", msg, c.field)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestPolicyOverHTTP(t *testing.T) {
	h := newHarness(t, nil)
	for _, c := range []struct {
		options map[string]any
		field   string
	}{
		{map[string]any{"network": "host"}, "options.network"},
		{map[string]any{"network": "filtered"}, "options.network"},
		{map[string]any{"readonlyRootFs": false}, "options.readonlyRootFs"},
		{map[string]any{"image": "alpine"}, "options.image"},
		{map[string]any{"security": map[string]any{"seccomp": "custom", "customProfilePath": "/x"}}, "options.security"},
		{map[string]any{"backend": "native"}, "options.backend"},
	} {
		r := h.do("POST", "/execute", testMasterKey, execBody("python", "1", map[string]any{"options": c.options}))
		if r.status != 403 || !strings.HasPrefix(r.errorMessage(t), c.field+": ") {
			t.Errorf("options %v: %d %s, want 403 naming %s", c.options, r.status, r.body, c.field)
		}
	}
	// Limits over the maxima are clamped.
	r := h.do("POST", "/execute", testMasterKey, `{"request":{"runtime":"python","code":"opts"},"options":{"timeoutMs":1000000000000000,"memoryLimit":"1000g"}}`)
	if r.status != 200 {
		t.Fatalf("clamped limits: %d %s", r.status, r.body)
	}
	var opts isol8.Options
	json.Unmarshal([]byte(r.json(t)["stdout"].(string)), &opts)
	if opts.TimeoutMs != 3_600_000 || opts.MemoryLimit != "16g" || opts.Mode != isol8.Ephemeral {
		t.Fatalf("engine options %+v, want the maxima", opts)
	}
	// The server's own loosest network is allowed.
	host := newHarness(t, func(c *Config) {
		c.Config = isol8.DefaultConfig()
		c.Config.Defaults.Network = isol8.NetworkHost
	})
	if r := host.do("POST", "/execute", testMasterKey, execBody("python", "1", map[string]any{"options": map[string]any{"network": "host"}})); r.status != 200 {
		t.Fatalf("host on a host server: %d %s", r.status, r.body)
	}
}

func TestPanicAndInternalErrors(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do("POST", "/execute", testMasterKey, execBody("python", "panic", nil))
	if r.status != 500 || r.errorMessage(t) != "Internal server error" {
		t.Fatalf("panic: %d %s", r.status, r.body)
	}
	if !strings.Contains(h.logs.String(), "handler panicked") {
		t.Errorf("the panic was not logged:\n%s", h.logs)
	}
	r = h.do("POST", "/execute", testMasterKey, execBody("python", "fail", nil))
	if r.status != 500 || strings.Contains(string(r.body), "docker.sock") {
		t.Fatalf("internal error: %d %s (no internals may leak)", r.status, r.body)
	}
	if r := h.do("POST", "/execute", testMasterKey, execBody("python", "ok", nil)); r.status != 200 || r.json(t)["stdout"] != "ok" {
		t.Fatalf("the server is unwell after a panic: %d %s", r.status, r.body)
	}
	if strings.Contains(h.logs.String(), testMasterKey) {
		t.Errorf("the master key reached the log")
	}
}

// Sessions belong to the tenant that made them (the HTTP layer; the same
// against Docker is in docker_test.go).
func TestSessionTenancy(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.newKey("a", "tenant-a"), h.newKey("b", "")
	if r := h.do("POST", "/execute", a, execBody("python", "put:/sandbox/secret", map[string]any{"sessionId": "s1"})); r.status != 200 {
		t.Fatalf("A's run: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/file", a, map[string]any{"sessionId": "s1", "path": "/sandbox/f", "content": "aGk="}); r.status != 200 {
		t.Fatalf("A's put: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/file?sessionId=s1&path=/sandbox/f", a, nil); r.status != 200 || r.json(t)["content"] != "aGk=" {
		t.Fatalf("A's get: %d %s", r.status, r.body)
	}
	checkB := func() {
		t.Helper()
		if r := h.do("GET", "/sessions", b, nil); string(r.body) != `{"sessions":[]}`+"\n" {
			t.Fatalf("B lists %s", r.body)
		}
		if r := h.do("GET", "/file?sessionId=s1&path=/sandbox/f", b, nil); r.status != 404 || r.errorMessage(t) != "Session not found" {
			t.Fatalf("B reads A's file: %d %s", r.status, r.body)
		}
		// B's put under A's id makes a session of B's own (POST /file
		// creates named sessions); A's file is untouched.
		if r := h.do("POST", "/file", b, map[string]any{"sessionId": "s1", "path": "/sandbox/f", "content": "eA=="}); r.status != 200 {
			t.Fatalf("B's put under A's session id: %d %s", r.status, r.body)
		}
		if r := h.do("GET", "/file?sessionId=s1&path=/sandbox/f", a, nil); r.status != 200 || r.json(t)["content"] != "aGk=" {
			t.Fatalf("B's put reached A's session: %d %s", r.status, r.body)
		}
		if r := h.do("DELETE", "/session/s1", b, nil); r.status != 200 {
			t.Fatalf("B's delete of its own session: %d %s", r.status, r.body)
		}
	}
	checkB()
	if r := h.do("DELETE", "/session/s1", b, nil); r.status != 200 {
		t.Fatalf("B's delete: %d %s", r.status, r.body)
	}
	// B running with A's id gets a session of its own, without A's files.
	if r := h.do("POST", "/execute", b, execBody("python", "get:/sandbox/secret", map[string]any{"sessionId": "s1"})); r.status != 404 {
		t.Fatalf("B's run in A's session id: %d %s", r.status, r.body)
	}
	r := h.do("GET", "/sessions", a, nil)
	sessions := r.json(t)["sessions"].([]any)
	if len(sessions) != 1 || sessions[0].(map[string]any)["id"] != "s1" || sessions[0].(map[string]any)["isActive"] != false {
		t.Fatalf("A's sessions after B's attempts: %s", r.body)
	}
	if r := h.do("GET", "/file?sessionId=s1&path=/sandbox/f", a, nil); r.status != 200 {
		t.Fatalf("A lost its session: %d %s", r.status, r.body)
	}
	if r := h.do("DELETE", "/session/s1", a, nil); r.status != 200 {
		t.Fatalf("A's delete: %d", r.status)
	}
	if r := h.do("GET", "/file?sessionId=s1&path=/sandbox/f", a, nil); r.status != 404 {
		t.Fatalf("the session outlived its delete: %d", r.status)
	}
	if r := h.do("DELETE", "/session/s1", a, nil); r.status != 200 {
		t.Fatalf("delete is not idempotent: %d", r.status)
	}
	// The master key is a tenant of its own.
	if r := h.do("GET", "/sessions", testMasterKey, nil); string(r.body) != `{"sessions":[]}`+"\n" {
		t.Fatalf("the master key lists %s", r.body)
	}
	if r := h.do("GET", "/file?path=/sandbox/f", a, nil); r.status != 400 || r.errorMessage(t) != "sessionId: required" {
		t.Fatalf("no sessionId: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/file?sessionId=s1", a, nil); r.status != 400 || r.errorMessage(t) != "path: required" {
		t.Fatalf("no path: %d %s", r.status, r.body)
	}
}

func TestSessionsArePrunedWhenIdle(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Config = isol8.DefaultConfig()
		c.Config.Cleanup.MaxContainerAgeMs = 300
	})
	if r := h.do("POST", "/execute", testMasterKey, execBody("python", "1", map[string]any{"sessionId": "idle"})); r.status != 200 {
		t.Fatal(r.status)
	}
	// A session in use is never pruned, however long the run.
	done := make(chan response)
	go func() {
		done <- h.do("POST", "/execute", testMasterKey, execBody("python", "sleep", map[string]any{"sessionId": "busy"}))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for h.srv.sessions.count() != 1 || len(h.srv.sessions.list("master")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions %v: want only the busy one", h.srv.sessions.list("master"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if l := h.srv.sessions.list("master"); len(l) != 1 || l[0].ID != "busy" || !l[0].IsActive {
		t.Fatalf("sessions %v: the busy one must stay", l)
	}
	h.do("DELETE", "/session/busy", testMasterKey, nil)
	<-done
}

func TestQueueFull(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Config = isol8.DefaultConfig()
		c.Config.MaxConcurrent = 1
		c.Config.Queue.Size = 1
	})
	var wg sync.WaitGroup
	for _, id := range []string{"q1", "q2"} {
		wg.Go(func() {
			h.do("POST", "/execute", testMasterKey, execBody("python", "sleep", map[string]any{"sessionId": id}))
		})
		time.Sleep(200 * time.Millisecond)
	}
	r := h.do("POST", "/execute", testMasterKey, execBody("python", "1", nil))
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("third run with one slot and a queue of one: %d %s", r.status, r.body)
	}
	// Closing the server ends the sleeping and the waiting run.
	h.srv.Close(context.Background())
	wg.Wait()
}

func TestSSEWithFakeEngine(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do("POST", "/execute/stream", testMasterKey, execBody("python", "hello", nil))
	if r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	evs := sseEvents(t, r.body)
	if len(evs) != 2 || evs[0].Data != "hello" || evs[1].Type != isol8.EventExit || evs[1].Data != "0" {
		t.Fatalf("events %+v", evs)
	}
	// Errors before the run are plain JSON errors.
	if r := h.do("POST", "/execute/stream", testMasterKey, execBody("python", "1", map[string]any{"options": map[string]any{"network": "host"}})); r.status != 403 {
		t.Fatalf("policy error on the stream: %d %s", r.status, r.body)
	}
	// An error during the run is an error event, without internals.
	r = h.do("POST", "/execute/stream", testMasterKey, execBody("python", "fail", nil))
	evs = sseEvents(t, r.body)
	if len(evs) != 1 || evs[0].Type != isol8.EventError || evs[0].Data != "Internal server error" {
		t.Fatalf("failed run's events: %+v", evs)
	}
}

func TestAuditRecordsEveryExecution(t *testing.T) {
	var buf syncBuffer
	h := newHarness(t, func(c *Config) {
		c.Audit = audit.NewWriter(&buf, isol8.AuditConfig{Enabled: true})
	})
	key := h.newKey("auditee", "acme")
	h.do("POST", "/execute", key, execBody("python", "print(1)", map[string]any{"metadata": map[string]string{"job": "7"}}))
	h.do("POST", "/execute/stream", key, execBody("python", "x", nil))
	h.do("POST", "/execute", key, execBody("python", "1", map[string]any{"options": map[string]any{"network": "host"}}))
	var recs []audit.Record
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec audit.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3:\n%s", len(recs), buf.String())
	}
	if recs[0].TenantID != "acme" || recs[0].KeyID == "" || recs[0].Transport != "http" || recs[0].Metadata["job"] != "7" ||
		recs[0].CodeHash == "" || recs[0].Code != "" || recs[0].Outcome != audit.OutcomeOK {
		t.Errorf("record %+v", recs[0])
	}
	if recs[1].Transport != "sse" || recs[2].Outcome != audit.OutcomeDenied || len(recs[2].SecurityEvents) != 1 {
		t.Errorf("records %+v", recs[1:])
	}
	if strings.Contains(buf.String(), key) {
		t.Error("the API key reached the audit log")
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, nil)
	h.do("POST", "/execute", testMasterKey, execBody("python", "1", nil))
	if r := h.do("GET", "/metrics", "", nil); r.status != 401 {
		t.Fatalf("metrics without a key: %d", r.status)
	}
	r := h.do("GET", "/metrics", testMasterKey, nil)
	for _, want := range []string{`isol8_runs_total{outcome="ok"} 1`, "isol8_run_duration_seconds_count 1", "isol8_queue_depth 0",
		"isol8_active_sandboxes 0", "isol8_sessions 0", `isol8_http_requests_total{route="POST /execute",status="200"} 1`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestRequestIDIsKeptOrMade(t *testing.T) {
	h := newHarness(t, nil)
	req, _ := http.NewRequest("GET", h.ts.URL+"/health", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	if r := h.send(req); r.header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("X-Request-Id %q, want the client's", r.header.Get("X-Request-Id"))
	}
	req.Header.Set("X-Request-Id", "bad id/!")
	if r := h.send(req); r.header.Get("X-Request-Id") == "" || strings.Contains(r.header.Get("X-Request-Id"), " ") {
		t.Errorf("X-Request-Id %q, want a fresh one", r.header.Get("X-Request-Id"))
	}
	if !strings.Contains(h.logs.String(), "request_id=abc-123") {
		t.Errorf("the request id is not logged:\n%s", h.logs)
	}
}
