package server

import (
	"context"
	"encoding/base64"
	"net/http"

	"github.com/isol8/isol8"
)

type putFileBody struct {
	SessionID string `json:"sessionId"`
	Path      string `json:"path"`
	Content   string `json:"content"`
}

// withSession runs fn with the caller's session id, marked in use; a
// session of another tenant, or none, is errSessionNotFound unless create
// is set. The context given to fn also ends when the session is deleted.
func (s *Server) withSession(ctx context.Context, id string, create bool, fn func(context.Context, *session) error) error {
	if id == "" {
		return invalid("sessionId", "required")
	}
	var mk func() (isol8.Engine, error)
	if create {
		// The seed's remote pipeline puts its input before the first run:
		// POST /file creates the named session (bound to a runtime at its
		// first run), with the server's defaults, like /execute would.
		mk = func() (isol8.Engine, error) {
			opts, err := s.icfg.Tighten(isol8.Options{})
			if err != nil {
				return nil, err
			}
			opts.Mode = isol8.Persistent
			return s.newEngine(opts)
		}
	}
	sess, err := s.sessions.acquire(principalFrom(ctx).tenant, id, mk)
	if err != nil {
		return err
	}
	defer s.sessions.release(sess)
	ctx, cancel := s.runContext(ctx)
	defer cancel()
	stop := context.AfterFunc(sess.ctx, cancel)
	defer stop()
	return fn(ctx, sess)
}

// POST /file writes a file into a session's sandbox.
func (s *Server) handlePutFile(w http.ResponseWriter, r *http.Request) {
	var b putFileBody
	err := s.decodeBody(w, r, &b, false)
	if err == nil && b.Path == "" {
		err = invalid("path", "required")
	}
	var data []byte
	if err == nil {
		if data, err = base64.StdEncoding.DecodeString(b.Content); err != nil {
			err = invalid("content", "not valid base64")
		}
	}
	if err == nil {
		err = s.withSession(r.Context(), b.SessionID, true, func(ctx context.Context, sess *session) error {
			return sess.engine.PutFile(ctx, b.Path, data)
		})
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// GET /file?sessionId=&path= reads a file from a session's sandbox.
func (s *Server) handleGetFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var data []byte
	err := invalid("path", "required")
	if p := q.Get("path"); p != "" {
		err = s.withSession(r.Context(), q.Get("sessionId"), false, func(ctx context.Context, sess *session) error {
			var err error
			data, err = sess.engine.GetFile(ctx, p)
			return err
		})
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"content": base64.StdEncoding.EncodeToString(data)})
}
