package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/isol8/isol8"
)

// fakeKey is the one key the fake server accepts.
const fakeKey = "test-key"

// fake is a minimal isol8 server: the routes and JSON shapes of the
// contract, with a "runtime" that understands a few codes:
//
//	echo         prints the code's stdin (stdin messages over WS) to stdout
//	signal       waits for a signal message, prints it to stderr, exits 130
//	fail         a run that fails after it started (an error event)
//	cut          a stream that ends without exit
//	anything     prints "out:" + code to stdout, "err" to stderr, exits 3
type fake struct {
	t     *testing.T
	srv   *httptest.Server
	noWS  bool // answer the upgrade with 404, as a server without WebSocket
	wsHit atomic.Int32
	sse   atomic.Int32

	mu       sync.Mutex
	bodies   map[string][]byte // the last raw body per "METHOD /path"
	headers  map[string]http.Header
	sessions map[string]map[string][]byte // id -> path -> content
	deleted  []string
}

func newFake(t *testing.T) *fake {
	f := &fake{t: t, bodies: map[string][]byte{}, headers: map[string]http.Header{}, sessions: map[string]map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "ok", "version": "test"})
	})
	mux.HandleFunc("POST /execute", f.auth(f.execute))
	mux.HandleFunc("POST /execute/stream", f.auth(f.stream))
	mux.HandleFunc("GET /execute/ws", f.auth(f.ws))
	mux.HandleFunc("POST /file", f.auth(f.putFile))
	mux.HandleFunc("GET /file", f.auth(f.getFile))
	mux.HandleFunc("GET /sessions", f.auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		list := []map[string]any{}
		for id := range f.sessions {
			list = append(list, map[string]any{"id": id, "isActive": false, "lastAccessedAt": 1700000000000})
		}
		writeJSON(w, 200, map[string]any{"sessions": list})
	}))
	mux.HandleFunc("DELETE /session/{id}", f.auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		delete(f.sessions, r.PathValue("id"))
		f.deleted = append(f.deleted, r.PathValue("id"))
		f.mu.Unlock()
		writeJSON(w, 200, map[string]bool{"ok": true})
	}))
	mux.HandleFunc("POST /auth/login", f.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"token": "isol8_" + strings.Repeat("ab", 32), "expiresAt": "2030-01-02T03:04:05Z", "keyId": "k1"})
	}))
	mux.HandleFunc("POST /auth/keys", f.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, map[string]any{"id": "k2", "key": "isol8_" + strings.Repeat("cd", 32), "name": "ci",
			"keyPrefix": "isol8_cdcdcdcd", "tenantId": "acme", "expiresAt": nil})
	}))
	mux.HandleFunc("GET /auth/keys", f.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"keys": []map[string]any{{"id": "k2", "name": "ci", "keyPrefix": "isol8_cdcdcdcd",
			"tenantId": r.URL.Query().Get("tenantId"), "createdAt": "2030-01-01T00:00:00Z", "expiresAt": nil}}})
	}))
	mux.HandleFunc("DELETE /auth/keys/{id}", f.auth(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "k2" {
			writeJSON(w, 404, map[string]string{"error": "Key not found"})
			return
		}
		writeJSON(w, 200, map[string]any{"ok": true, "id": "k2"})
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a Remote of the fake with the right key.
func (f *fake) client(o Options, opts isol8.Options) *Remote {
	f.t.Helper()
	o.Host = f.srv.URL
	if o.APIKey == "" {
		o.APIKey = fakeKey
	}
	r, err := New(o, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fake) body(route string) map[string]any {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(f.bodies[route], &m); err != nil {
		f.t.Fatalf("body of %s: %v (%q)", route, err, f.bodies[route])
	}
	return m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// auth is the contract's rule, and records what the handler got.
func (f *fake) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		route := r.Method + " " + r.URL.Path
		if i := strings.Index(route, "/session/"); i >= 0 {
			route = route[:i] + "/session/{id}"
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		f.mu.Lock()
		f.bodies[route], f.headers[route] = body, r.Header.Clone()
		f.mu.Unlock()
		switch a := r.Header.Get("Authorization"); {
		case a == "":
			writeJSON(w, 401, map[string]string{"error": "Missing Authorization header"})
		case a != "Bearer "+fakeKey:
			writeJSON(w, 403, map[string]string{"error": "Invalid API key"})
		default:
			h(w, r)
		}
	}
}

type wireBody struct {
	Request   isol8.Request  `json:"request"`
	Options   *isol8.Options `json:"options"`
	SessionID string         `json:"sessionId"`
}

func (f *fake) decode(w http.ResponseWriter, r *http.Request) (*wireBody, bool) {
	var b wireBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		writeJSON(w, 400, map[string]string{"error": "body: " + err.Error()})
		return nil, false
	}
	if b.Request.Code == "bad" {
		writeJSON(w, 400, map[string]string{"error": `files["/sandbox/../x"]: path escapes /sandbox`})
		return nil, false
	}
	if b.SessionID != "" {
		f.mu.Lock()
		if f.sessions[b.SessionID] == nil {
			f.sessions[b.SessionID] = map[string][]byte{}
		}
		f.mu.Unlock()
	}
	return &b, true
}

// events is what the fake runtime prints for a code (echo and signal are
// interactive and handled by the transports).
func events(req *isol8.Request) []isol8.StreamEvent {
	switch req.Code {
	case "echo":
		return []isol8.StreamEvent{{Type: "stdout", Data: req.Stdin}, {Type: "exit", Data: "0"}}
	case "fail":
		return []isol8.StreamEvent{{Type: "stdout", Data: "partial"}, {Type: "error", Data: "Internal server error"}}
	case "cut":
		return []isol8.StreamEvent{{Type: "stdout", Data: "partial"}}
	}
	return []isol8.StreamEvent{
		{Type: "stdout", Data: "out:" + req.Code, Phase: "code"},
		{Type: "stderr", Data: "err", Phase: "code"},
		{Type: "exit", Data: "3"},
	}
}

func (f *fake) execute(w http.ResponseWriter, r *http.Request) {
	b, ok := f.decode(w, r)
	if !ok {
		return
	}
	if b.Request.Code == "slow" {
		<-r.Context().Done()
		return
	}
	res := isol8.Result{ExitCode: 3, Stdout: "out:" + b.Request.Code, Stderr: "err", ExecutionID: "e-1",
		Runtime: b.Request.Runtime, Files: map[string][]byte{"/sandbox/out.bin": {0, 1, 2, 0xff}}}
	if b.Request.Code == "echo" {
		res.Stdout, res.ExitCode = b.Request.Stdin, 0
	}
	writeJSON(w, 200, res)
}

func (f *fake) stream(w http.ResponseWriter, r *http.Request) {
	f.sse.Add(1)
	b, ok := f.decode(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	if b.Request.Code == "signal" {
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the client cancels: that is how SSE stops a run
		return
	}
	fmt.Fprint(w, ": keep-alive\n\n")
	for _, ev := range events(&b.Request) {
		data, _ := json.Marshal(ev)
		fmt.Fprintf(w, "data: %s\n\n", data)
		w.(http.Flusher).Flush()
	}
}

func (f *fake) ws(w http.ResponseWriter, r *http.Request) {
	f.wsHit.Add(1)
	if f.noWS {
		writeJSON(w, 404, map[string]string{"error": "Not found"})
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := r.Context()
	send := func(ev isol8.StreamEvent) {
		data, _ := json.Marshal(ev)
		conn.Write(ctx, websocket.MessageText, data)
	}
	var msg struct {
		Type string `json:"type"`
		wireBody
		Data   string `json:"data"`
		EOF    bool   `json:"eof"`
		Signal string `json:"signal"`
	}
	read := func() bool {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return false
		}
		msg.Data, msg.EOF, msg.Signal = "", false, ""
		if err := json.Unmarshal(data, &msg); err != nil {
			f.t.Errorf("fake: bad message %q", data)
			return false
		}
		f.mu.Lock()
		f.bodies["WS "+msg.Type] = append(f.bodies["WS "+msg.Type], data...)
		f.mu.Unlock()
		return true
	}
	if !read() || msg.Type != "execute" {
		return
	}
	req := msg.Request
	switch req.Code {
	case "echo":
		if req.Stdin != "" {
			send(isol8.StreamEvent{Type: "stdout", Data: req.Stdin})
			break
		}
		for read() && msg.Type == "stdin" {
			if msg.Data != "" {
				send(isol8.StreamEvent{Type: "stdout", Data: msg.Data})
			}
			if msg.EOF {
				break
			}
		}
	case "signal":
		for read() {
			if msg.Type == "signal" {
				send(isol8.StreamEvent{Type: "stderr", Data: "got " + msg.Signal})
				send(isol8.StreamEvent{Type: "exit", Data: "130"})
				conn.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
		return
	default:
		// Without request.stdin the client closes stdin at once.
		if req.Stdin == "" && (!read() || msg.Type != "stdin" || !msg.EOF) {
			f.t.Errorf("fake: expected the end of stdin, got %+v", msg)
			return
		}
		for _, ev := range events(&req) {
			send(ev)
		}
		conn.Close(websocket.StatusNormalClosure, "")
		return
	}
	send(isol8.StreamEvent{Type: "exit", Data: "0"})
	conn.Close(websocket.StatusNormalClosure, "")
}

func (f *fake) putFile(w http.ResponseWriter, r *http.Request) {
	var b struct {
		SessionID string `json:"sessionId"`
		Path      string `json:"path"`
		Content   []byte `json:"content"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		writeJSON(w, 400, map[string]string{"error": "content: not valid base64"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	files := f.sessions[b.SessionID]
	if files == nil {
		writeJSON(w, 404, map[string]string{"error": "Session not found"})
		return
	}
	files[b.Path] = b.Content
	writeJSON(w, 200, map[string]bool{"ok": true})
}

func (f *fake) getFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	files := f.sessions[q.Get("sessionId")]
	if files == nil {
		writeJSON(w, 404, map[string]string{"error": "Session not found"})
		return
	}
	data, ok := files[q.Get("path")]
	if !ok {
		writeJSON(w, 404, map[string]string{"error": q.Get("path") + ": not found"})
		return
	}
	writeJSON(w, 200, map[string][]byte{"content": data})
}
