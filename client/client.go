package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/isol8/isol8"
)

// Options say how to reach an isol8 server.
type Options struct {
	// Host is the server's base URL, such as "http://localhost:3000"
	// (a path prefix is kept; without a scheme, http:// is assumed).
	Host string
	// APIKey is sent as "Authorization: Bearer <APIKey>": the master key,
	// a key made with POST /auth/keys, or a login token.
	APIKey string
	// SessionID names a persistent session on the server: every run and
	// file operation of this client then happens in it (the server makes
	// it on first use). When empty and the engine options ask for
	// persistent mode, New makes up an id.
	SessionID string
	// KeepSession leaves the session on the server when Stop is called.
	// Without it Stop deletes the session, as upstream's stop() does.
	KeepSession bool
	// HTTPClient makes the requests; nil means http.DefaultClient. Its
	// Timeout, when set, bounds whole streams too: prefer contexts.
	HTTPClient *http.Client
}

// Remote is an isol8.Engine that runs requests on an isol8 server over its
// HTTP API. It is safe for concurrent use.
type Remote struct {
	base    string // scheme://host[/prefix], no trailing slash
	key     string
	session string
	keep    bool
	hc      *http.Client
	opts    *isol8.Options // nil when no option is set
	noWS    atomic.Bool    // the server refused a WebSocket upgrade once
}

var _ isol8.Engine = (*Remote)(nil)

// New returns a client of the server o.Host. opts are sent with every run;
// the server only lets them tighten its own policy.
func New(o Options, opts isol8.Options) (*Remote, error) {
	base, err := baseURL(o.Host)
	if err != nil {
		return nil, err
	}
	r := &Remote{base: base, key: o.APIKey, session: o.SessionID, keep: o.KeepSession, hc: o.HTTPClient}
	if r.hc == nil {
		r.hc = http.DefaultClient
	}
	if !reflect.ValueOf(opts).IsZero() {
		r.opts = &opts
	}
	if r.session == "" && opts.Mode == isol8.Persistent {
		b := make([]byte, 16)
		rand.Read(b)
		r.session = "remote-" + hex.EncodeToString(b)
	}
	return r, nil
}

func baseURL(host string) (string, error) {
	h := strings.TrimSpace(host)
	if h == "" {
		return "", &isol8.FieldError{Field: "host", Reason: "required (the server's URL, such as http://localhost:3000)"}
	}
	if !strings.Contains(h, "://") {
		h = "http://" + h
	}
	u, err := url.Parse(h)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", &isol8.FieldError{Field: "host", Reason: fmt.Sprintf("%q is not an http:// or https:// URL of a server", host)}
	}
	u.User = nil
	return strings.TrimRight(u.String(), "/"), nil
}

// Host returns the server's base URL.
func (r *Remote) Host() string { return r.base }

// SessionID returns the session this client runs in ("" for none).
func (r *Remote) SessionID() string { return r.session }

// Health is the answer of GET /health.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// Health asks the server whether it is up; it needs no key.
func (r *Remote) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := r.do(ctx, http.MethodGet, "/health", nil, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Start checks that the server is up (GET /health) and that it accepts
// the key (with a cheap authenticated call, GET /sessions).
func (r *Remote) Start(ctx context.Context) error {
	h, err := r.Health(ctx)
	if err != nil {
		return err
	}
	if h.Status != "ok" {
		return fmt.Errorf("%w: isol8 server at %s: health status %q", isol8.ErrUnavailable, r.base, h.Status)
	}
	_, err = r.ListSessions(ctx)
	return err
}

// Stop deletes the client's session on the server (its sandbox is
// removed), unless Options.KeepSession is set. Without a session it does
// nothing. The client can still be used afterwards: a later run with the
// same session id starts a fresh session.
func (r *Remote) Stop(ctx context.Context) error {
	if r.session == "" || r.keep {
		return nil
	}
	return r.DeleteSession(ctx, r.session)
}

// executeBody is the body of POST /execute and /execute/stream.
type executeBody struct {
	Request   *isol8.Request `json:"request"`
	Options   *isol8.Options `json:"options,omitempty"`
	SessionID string         `json:"sessionId,omitempty"`
}

// Execute runs req on the server (POST /execute) and returns its result.
// A Request.StdinReader is read to its end first and sent as stdin; a
// signal on Request.Signals cancels the request, which makes the server
// kill the run (plain HTTP cannot deliver signals).
func (r *Remote) Execute(ctx context.Context, req *isol8.Request) (*isol8.Result, error) {
	ctx, wire, done, err := r.plain(ctx, req)
	if err != nil {
		return nil, err
	}
	defer done()
	var res isol8.Result
	if err := r.do(ctx, http.MethodPost, "/execute", nil, r.body(wire), &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (r *Remote) body(req *isol8.Request) executeBody {
	return executeBody{Request: req, Options: r.opts, SessionID: r.session}
}

// fileBody is the body of POST /file.
type fileBody struct {
	SessionID string `json:"sessionId"`
	Path      string `json:"path"`
	Content   []byte `json:"content"` // base64 in JSON
}

// PutFile writes a file into the session's sandbox (POST /file).
func (r *Remote) PutFile(ctx context.Context, path string, content []byte) error {
	if err := r.needSession(); err != nil {
		return err
	}
	if content == nil {
		content = []byte{} // "" rather than null
	}
	return r.do(ctx, http.MethodPost, "/file", nil, fileBody{SessionID: r.session, Path: path, Content: content}, nil)
}

// GetFile reads a file from the session's sandbox (GET /file).
func (r *Remote) GetFile(ctx context.Context, path string) ([]byte, error) {
	if err := r.needSession(); err != nil {
		return nil, err
	}
	var out struct {
		Content []byte `json:"content"`
	}
	q := url.Values{"sessionId": {r.session}, "path": {path}}
	if err := r.do(ctx, http.MethodGet, "/file", q, nil, &out); err != nil {
		return nil, err
	}
	if out.Content == nil {
		out.Content = []byte{}
	}
	return out.Content, nil
}

func (r *Remote) needSession() error {
	if r.session == "" {
		return fmt.Errorf("files can only be put and got in a session (set client.Options.SessionID, or persistent mode): %w", isol8.ErrConflict)
	}
	return nil
}

// Session is one of the caller's sessions on the server.
type Session struct {
	ID       string `json:"id"`
	IsActive bool   `json:"isActive"` // a run or file operation is under way
	// LastAccessedAt is in milliseconds since the Unix epoch.
	LastAccessedAt int64 `json:"lastAccessedAt"`
}

// LastAccessed returns LastAccessedAt as a time.
func (s Session) LastAccessed() time.Time { return time.UnixMilli(s.LastAccessedAt) }

// ListSessions lists the sessions of the client's key (GET /sessions).
func (r *Remote) ListSessions(ctx context.Context) ([]Session, error) {
	var out struct {
		Sessions []Session `json:"sessions"`
	}
	if err := r.do(ctx, http.MethodGet, "/sessions", nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Sessions == nil {
		out.Sessions = []Session{}
	}
	return out.Sessions, nil
}

// DeleteSession ends a session and removes its sandbox (DELETE
// /session/{id}); deleting a session that does not exist succeeds.
func (r *Remote) DeleteSession(ctx context.Context, id string) error {
	if id == "" {
		return &isol8.FieldError{Field: "sessionId", Reason: "required"}
	}
	return r.do(ctx, http.MethodDelete, "/session/"+url.PathEscape(id), nil, nil, nil)
}

// newRequest builds a request of the API, with the key.
func (r *Remote) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	u := r.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%w: encoding the request: %w", isol8.ErrInvalidArgument, err)
		}
		rd = bytes.NewReader(data)
	}
	hr, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", isol8.ErrInvalidArgument, err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("Accept", "application/json")
	if r.key != "" && path != "/health" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	return hr, nil
}

// send makes a request and returns a 2xx response; any other status is an
// *Error.
func (r *Remote) send(hr *http.Request) (*http.Response, error) {
	resp, err := r.hc.Do(hr)
	if err != nil {
		return nil, r.transportError(hr.Context(), err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	return resp, nil
}

// do makes a JSON call: body (if not nil) is sent as JSON, and a 2xx
// answer is decoded into out (if not nil).
func (r *Remote) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	hr, err := r.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	resp, err := r.send(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // lets the connection be reused
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return r.transportError(ctx, err)
		}
		return fmt.Errorf("%w: isol8 server at %s: %s %s: bad answer: %w", isol8.ErrUnavailable, r.base, method, path, err)
	}
	return nil
}

// transportError classifies a failure to talk to the server: the
// context's own error when it ended, else ErrUnavailable.
func (r *Remote) transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			return fmt.Errorf("isol8 server at %s: %w", r.base, cause)
		}
		return fmt.Errorf("isol8 server at %s: %w", r.base, err)
	}
	return fmt.Errorf("%w: isol8 server at %s: %w", isol8.ErrUnavailable, r.base, err)
}
