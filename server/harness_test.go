package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/store"
	"github.com/isol8/isol8/store/sqlite"
)

const testMasterKey = "test-master-key"

// fakeEngine stands in for the engine in the tests of the HTTP layer
// itself (auth, decoding, policy, errors); the tests against Docker use
// the real one. Its "programs" are chosen by the request's code:
//
//	panic         the engine panics
//	fail          an internal error that names a daemon socket
//	sleep         waits for a signal (exit 130) or the context
//	stdin-line    echoes one line of stdin
//	opts          prints the engine's options as JSON
//	put:P / get:P writes "x" to file P / prints file P (persistent state)
//	anything else is echoed to stdout
type fakeEngine struct {
	opts isol8.Options
	lim  *isol8.Limiter

	mu      sync.Mutex
	files   map[string][]byte
	stopped bool
}

func newFakeEngine(ec isol8.EngineConfig) (isol8.Engine, error) {
	return &fakeEngine{opts: ec.Options, lim: ec.Limiter, files: map[string][]byte{}}, nil
}

func (f *fakeEngine) Start(ctx context.Context) error { return nil }

func (f *fakeEngine) Stop(ctx context.Context) error {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	return nil
}

func (f *fakeEngine) Execute(ctx context.Context, req *isol8.Request) (*isol8.Result, error) {
	return f.ExecuteStream(ctx, req, nil)
}

func (f *fakeEngine) ExecuteStream(ctx context.Context, req *isol8.Request, sink isol8.EventSink) (*isol8.Result, error) {
	emit := func(ev isol8.StreamEvent) {
		if sink != nil {
			sink(ev)
		}
	}
	res, err := f.run(ctx, req, emit)
	if err != nil {
		emit(isol8.StreamEvent{Type: isol8.EventError, Data: err.Error()})
		return nil, err
	}
	emit(isol8.StreamEvent{Type: isol8.EventExit, Data: fmt.Sprint(res.ExitCode)})
	return res, nil
}

func (f *fakeEngine) run(ctx context.Context, req *isol8.Request, emit func(isol8.StreamEvent)) (*isol8.Result, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := f.lim.Acquire(ctx); err != nil {
		return nil, err
	}
	defer f.lim.Release()
	res := &isol8.Result{ExecutionID: "fake", Runtime: req.Runtime}
	out := func(s string) {
		res.Stdout += s
		emit(isol8.StreamEvent{Type: isol8.EventStdout, Data: s, Phase: isol8.PhaseCode})
	}
	switch code := req.Code; {
	case code == "panic":
		panic("fake engine panic")
	case code == "fail":
		return nil, errors.New("cannot reach unix:///var/run/docker.sock")
	case code == "sleep":
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case sig := <-req.Signals:
			res.ExitCode = 130
			out("got " + sig + "\n")
		}
	case code == "stdin-line":
		in := req.StdinReader
		if in == nil {
			in = strings.NewReader(req.Stdin)
		}
		line, _ := bufio.NewReader(in).ReadString('\n')
		out(line)
	case code == "opts":
		data, _ := json.Marshal(f.opts)
		out(string(data))
	case strings.HasPrefix(code, "put:"):
		f.PutFile(ctx, code[4:], []byte("x"))
	case strings.HasPrefix(code, "get:"):
		data, err := f.GetFile(ctx, code[4:])
		if err != nil {
			return nil, err
		}
		out(string(data))
	default:
		out(code)
	}
	return res, nil
}

func (f *fakeEngine) PutFile(ctx context.Context, path string, content []byte) error {
	if err := isol8.SandboxPath("path", path); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = content
	return nil
}

func (f *fakeEngine) GetFile(ctx context.Context, path string) ([]byte, error) {
	if err := isol8.SandboxPath("path", path); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.files[path]
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, isol8.ErrNotFound)
	}
	return data, nil
}

// harness is a server over real HTTP on loopback.
type harness struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	store store.Store
	logs  *syncBuffer
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// syncBuffer collects the server's logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newHarness starts a server; without a Backend in the config it runs on
// the fake engine.
func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	keys, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	h := &harness{t: t, store: keys, logs: &syncBuffer{}}
	cfg := Config{MasterKey: testMasterKey, Store: h.store, Version: "test",
		Logger: slogTo(h.logs)}
	if mutate != nil {
		mutate(&cfg)
	}
	if cfg.Backend == nil && cfg.NewEngine == nil {
		cfg.NewEngine = newFakeEngine
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		// The server first, so runs still going end and the HTTP server
		// can close.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("closing the server: %v", err)
		}
		h.ts.Close()
	})
	return h
}

// response is an answer of the server.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	msg, _ := r.json(t)["error"].(string)
	return msg
}

// do sends a request with the key (none when "") and a JSON body (a
// string or []byte is sent as is).
func (h *harness) do(method, path, key string, body any) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) response {
	h.t.Helper()
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading the answer: %v", req.Method, req.URL.Path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// newKey makes a store key through the API and returns its secret.
func (h *harness) newKey(name, tenant string) string {
	h.t.Helper()
	r := h.do("POST", "/auth/keys", testMasterKey, map[string]any{"name": name, "tenantId": tenant})
	if r.status != http.StatusCreated {
		h.t.Fatalf("POST /auth/keys: %d %s", r.status, r.body)
	}
	return r.json(h.t)["key"].(string)
}

// execBody is a /execute body.
func execBody(runtime, code string, extra map[string]any) map[string]any {
	req := map[string]any{"runtime": runtime, "code": code}
	body := map[string]any{"request": req}
	for k, v := range extra {
		switch k {
		case "options", "sessionId":
			body[k] = v
		default:
			req[k] = v
		}
	}
	return body
}

// sseEvents reads an SSE answer into its events.
func sseEvents(t *testing.T, body []byte) []isol8.StreamEvent {
	t.Helper()
	var evs []isol8.StreamEvent
	for _, frame := range strings.Split(string(body), "\n\n") {
		if frame == "" {
			continue
		}
		data, ok := strings.CutPrefix(frame, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("malformed SSE frame %q in %q", frame, body)
		}
		var ev isol8.StreamEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("SSE frame %q: %v", frame, err)
		}
		evs = append(evs, ev)
	}
	return evs
}
