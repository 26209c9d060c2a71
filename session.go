package isol8

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/isol8/isol8/agent"
	"github.com/isol8/isol8/runtime"
	"github.com/isol8/isol8/sandbox"
)

// session is the persistent sandbox of an engine in persistent mode. It is
// bound to the runtime of its first run. Files put before the first run
// wait in pending and are written when the sandbox is made. A stateful
// session also holds the agent whose kernel keeps the code's state.
type session struct {
	mu      sync.Mutex
	sb      sandbox.Sandbox
	conn    *agent.Conn
	runtime Runtime
	pending map[string][]byte
}

func (e *LocalEngine) getSession() *session {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.session == nil {
		e.session = &session{pending: map[string][]byte{}}
	}
	return e.session
}

func (s *session) destroy(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sb == nil {
		return nil
	}
	err := s.sb.Destroy(ctx)
	s.drop()
	return err
}

// drop forgets the sandbox (destroyed by the caller) and its agent.
func (s *session) drop() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	s.sb = nil
}

// stateful reports whether persistent runs keep a kernel (Options.Stateful
// of the engine, else of the config's defaults).
func (e *LocalEngine) stateful() bool {
	for _, o := range []*bool{e.ec.Options.Stateful, e.cfg.Defaults.Stateful} {
		if o != nil {
			return *o
		}
	}
	return false
}

func (e *LocalEngine) runPersistent(ctx context.Context, b sandbox.Backend, req *Request, lim Limits, sink EventSink) (*Result, error) {
	rt, err := runtime.Get(string(req.Runtime))
	if err != nil {
		return nil, invalid("runtime", "%v", err)
	}
	s := e.getSession()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runtime != "" && s.runtime != req.Runtime {
		return nil, &FieldError{Field: "runtime", Class: ErrConflict,
			Reason: fmt.Sprintf("this persistent session is bound to %s; it cannot run %s (use another session)", s.runtime, req.Runtime)}
	}
	var extra map[string][]byte
	if s.sb == nil {
		if s.sb, err = e.createSandbox(ctx, b, e.spec(rt, lim)); err != nil {
			return nil, err
		}
		s.runtime = req.Runtime
		extra, s.pending = s.pending, map[string][]byte{}
	}
	var res *Result
	if lang := agent.For(rt.Name); lang != "" && e.stateful() && req.Cmd == "" && req.StdinReader == nil && req.Signals == nil {
		res, err = e.runKernel(ctx, s, rt, lang, req, lim, sink, extra)
	} else {
		res, err = e.runIn(ctx, s.sb, rt, req, lim, sink, extra)
		if err == nil && res != nil && !res.TimedOut && s.sb != nil {
			// Files persist between runs; processes do not.
			if kerr := killStray(ctx, s.sb); kerr != nil {
				e.log.Warn("kill leftover processes", "id", s.sb.ID(), "err", kerr)
			}
		}
	}
	if (res != nil && res.TimedOut) || ctx.Err() != nil || (s.conn != nil && s.conn.Err() != nil && s.sb != nil) {
		// The sandbox was (or must be) killed; the next run starts afresh.
		_ = destroy(s.sb)
		s.drop()
	}
	return res, err
}

// runKernel runs code in the session's stateful kernel, starting the agent
// on first use (its kernel starts with the first code run).
func (e *LocalEngine) runKernel(ctx context.Context, s *session, rt *runtime.Adapter, lang agent.Lang, req *Request, lim Limits, sink EventSink, extra map[string][]byte) (*Result, error) {
	if s.conn == nil {
		conn, err := agent.Start(ctx, s.sb, lang)
		if err != nil {
			return nil, fmt.Errorf("starting the session's kernel: %w", err)
		}
		s.conn = conn
	}
	res, _, err := e.runAgent(ctx, s.sb, s.conn, rt, req, lim, sink, extra, true)
	return res, err
}

// RestartKernel ends the stateful kernel of the engine's persistent
// session: the next run starts a new one, with no state, in the same
// sandbox (files stay). Without a kernel it does nothing.
func (e *LocalEngine) RestartKernel(ctx context.Context) error {
	s := e.getSession()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	if err := s.conn.StopKernel(ctx); err != nil {
		// An agent that cannot even do that is replaced with the sandbox.
		_ = destroy(s.sb)
		s.drop()
		return fmt.Errorf("restarting the kernel: %w", err)
	}
	return nil
}

func (e *LocalEngine) persistentOnly() error {
	if e.Limits(nil).Mode != Persistent {
		return fmt.Errorf("files can only be put and got in persistent mode: %w", ErrConflict)
	}
	return nil
}

// PutFile writes a file into the persistent sandbox (before the first run,
// it is kept and written when the sandbox is made).
func (e *LocalEngine) PutFile(ctx context.Context, path string, content []byte) error {
	if err := SandboxPath("path", path); err != nil {
		return err
	}
	if err := e.persistentOnly(); err != nil {
		return err
	}
	s := e.getSession()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sb == nil {
		s.pending[path] = content
		return nil
	}
	return s.sb.WriteFiles(ctx, []sandbox.File{{Path: path, Data: content}})
}

// GetFile reads a regular file from the persistent sandbox.
func (e *LocalEngine) GetFile(ctx context.Context, path string) ([]byte, error) {
	if err := SandboxPath("path", path); err != nil {
		return nil, err
	}
	if err := e.persistentOnly(); err != nil {
		return nil, err
	}
	s := e.getSession()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sb == nil {
		if data, ok := s.pending[path]; ok {
			return bytes.Clone(data), nil
		}
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	data, err := s.sb.ReadFile(ctx, path, maxOutputFile)
	if errors.Is(err, sandbox.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if errors.Is(err, sandbox.ErrNotRegular) || errors.Is(err, sandbox.ErrTooLarge) {
		return nil, &FieldError{Field: "path", Reason: err.Error()}
	}
	return data, err
}
