package server

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/isol8/isol8"
)

// session is a persistent sandbox kept between runs, owned by the tenant
// that made it. To every other tenant it does not exist: sessions are
// keyed by tenant and id, so the same id names different sessions for
// different tenants.
type session struct {
	id, tenant string
	engine     isol8.Engine
	// ctx is cancelled when the session is removed; its runs end with it.
	ctx    context.Context
	cancel context.CancelFunc

	// guarded by sessionTable.mu
	lastAccess time.Time
	inUse      int
}

type sessionKey struct{ tenant, id string }

// sessionTable holds the live sessions of all tenants.
type sessionTable struct {
	max int

	mu sync.Mutex
	m  map[sessionKey]*session
}

func newSessionTable(max int) *sessionTable {
	return &sessionTable{max: max, m: map[sessionKey]*session{}}
}

// acquire returns the tenant's session id, marked in use until release.
// When it does not exist, mk (if not nil) makes its engine; else it is
// errSessionNotFound.
func (t *sessionTable) acquire(tenant, id string, mk func() (isol8.Engine, error)) (*session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := sessionKey{tenant, id}
	s, ok := t.m[k]
	if !ok {
		if mk == nil {
			return nil, errSessionNotFound
		}
		if len(t.m) >= t.max {
			return nil, errTooManySessions
		}
		eng, err := mk()
		if err != nil {
			return nil, err
		}
		s = &session{id: id, tenant: tenant, engine: eng}
		s.ctx, s.cancel = context.WithCancel(context.Background())
		t.m[k] = s
	}
	s.inUse++
	s.lastAccess = time.Now()
	return s, nil
}

func (t *sessionTable) release(s *session) {
	t.mu.Lock()
	s.inUse--
	s.lastAccess = time.Now()
	t.mu.Unlock()
}

// remove takes the tenant's session id out of the table (nil when there
// is none); the caller ends it.
func (t *sessionTable) remove(tenant, id string) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := sessionKey{tenant, id}
	s := t.m[k]
	delete(t.m, k)
	return s
}

// take removes and returns the sessions that match.
func (t *sessionTable) take(match func(*session) bool) []*session {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*session
	for k, s := range t.m {
		if match(s) {
			out = append(out, s)
			delete(t.m, k)
		}
	}
	return out
}

func (t *sessionTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

type sessionInfo struct {
	ID       string `json:"id"`
	IsActive bool   `json:"isActive"`
	// LastAccessedAt is in milliseconds since the Unix epoch.
	LastAccessedAt int64 `json:"lastAccessedAt"`
}

// list returns a tenant's sessions, by id.
func (t *sessionTable) list(tenant string) []sessionInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []sessionInfo{}
	for k, s := range t.m {
		if k.tenant == tenant {
			out = append(out, sessionInfo{ID: s.id, IsActive: s.inUse > 0, LastAccessedAt: s.lastAccess.UnixMilli()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// end cancels a removed session's runs and destroys its sandbox.
func (s *Server) endSession(sess *session) error {
	sess.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := sess.engine.Stop(ctx)
	if err != nil {
		s.log.Warn("ending session", "session", sess.id, "err", err)
	}
	return err
}

// startPruner ends sessions idle for longer than cleanup.maxContainerAgeMs
// (never one in use), while cleanup.autoPrune is on.
func (s *Server) startPruner() {
	c := s.icfg.Cleanup
	if !c.AutoPrune || c.MaxContainerAgeMs <= 0 {
		return
	}
	maxAge := time.Duration(c.MaxContainerAgeMs) * time.Millisecond
	every := min(max(maxAge/4, 100*time.Millisecond), time.Minute)
	s.bg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.base.Done():
				return
			case now := <-tick.C:
				idle := s.sessions.take(func(sess *session) bool {
					return sess.inUse == 0 && now.Sub(sess.lastAccess) > maxAge
				})
				for _, sess := range idle {
					s.log.Info("pruning idle session", "session", sess.id)
					s.endSession(sess)
				}
			}
		}
	})
}

// GET /sessions
func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sessions": s.sessions.list(principalFrom(r.Context()).tenant)})
}

// DELETE /session/{id} is idempotent: a session that does not exist (for
// this tenant) is already gone.
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) {
	if sess := s.sessions.remove(principalFrom(r.Context()).tenant, r.PathValue("id")); sess != nil {
		s.endSession(sess)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
