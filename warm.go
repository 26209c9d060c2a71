package isol8

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/isol8/isol8/agent"
	"github.com/isol8/isol8/pool"
	"github.com/isol8/isol8/sandbox"
)

// The warm path: ephemeral runs take a sandbox from the engine's pool, made
// ahead of time with its agent started, and give it back when done (see
// package pool for the strategies). A miss makes the same kind of sandbox
// on the spot, so a hit and a miss differ only in who made it.

const (
	// poolIdleTimeout forgets the warm sandboxes of a shape unused this long.
	poolIdleTimeout = 10 * time.Minute
	// agentRetry is how long a shape whose image could not start an agent
	// runs without one before trying again.
	agentRetry = time.Minute
	// maxUses bounds the runs one sandbox serves in a fast pool: whatever
	// a reset might miss does not outlive that many runs.
	maxUses = 200
)

// warmItem is a pooled sandbox and its agent (nil for a runtime without
// one, which then runs through Exec and is never reused).
type warmItem struct {
	sb   sandbox.Sandbox
	conn *agent.Conn
	uses int // runs served; only the run holding the item touches it
}

func (w *warmItem) Reset(ctx context.Context) error {
	if w.conn == nil {
		return errors.New("a sandbox without an agent cannot be reset")
	}
	return w.conn.Reset(ctx)
}

func (w *warmItem) Destroy(ctx context.Context) error {
	err := w.sb.Destroy(ctx)
	if w.conn != nil {
		w.conn.Close() // quick once the sandbox is gone
	}
	return err
}

// poolKey names everything that shapes a sandbox: the whole Spec, the
// backend and the agent's language.
func poolKey(backend string, spec sandbox.Spec, lang agent.Lang) string {
	data, _ := json.Marshal(struct {
		Backend string
		Spec    sandbox.Spec
		Lang    agent.Lang
	}{backend, spec, lang})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// PoolStats describes an engine's warm pool.
type PoolStats struct {
	Strategy string `json:"strategy"`
	// WarmRuns took a pooled sandbox; ColdRuns made their own.
	WarmRuns int64 `json:"warmRuns"`
	ColdRuns int64 `json:"coldRuns"`
	pool.Stats
}

// PoolStats reports the engine's warm pool (zero when it has none yet).
func (e *LocalEngine) PoolStats() PoolStats {
	e.mu.Lock()
	p := e.pool
	e.mu.Unlock()
	s := PoolStats{Strategy: string(e.poolStrategy()), WarmRuns: e.warmRuns.Load(), ColdRuns: e.coldRuns.Load()}
	if p != nil {
		s.Stats = p.Stats()
	}
	return s
}

// poolStrategy and poolSize layer the engine options over the config's
// defaults over its top-level keys.
func (e *LocalEngine) poolStrategy() pool.Strategy {
	s := e.cfg.PoolStrategy
	for _, o := range []string{e.cfg.Defaults.PoolStrategy, e.ec.Options.PoolStrategy} {
		if o != "" {
			s = o
		}
	}
	if s == "" {
		s = "fast"
	}
	return pool.Strategy(s)
}

func (e *LocalEngine) poolSize() PoolSize {
	s := e.cfg.PoolSize
	for _, o := range []*PoolSize{e.cfg.Defaults.PoolSize, e.ec.Options.PoolSize} {
		if o != nil {
			s = *o
		}
	}
	return s
}

// getPool returns the engine's pool, made on first use; nil when the pool
// is switched off (poolSize 0 and 0).
func (e *LocalEngine) getPool() *pool.Pool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pool != nil || e.stopped {
		return e.pool
	}
	size := e.poolSize()
	if size.Clean <= 0 && size.Dirty <= 0 {
		return nil
	}
	e.pool = pool.New(pool.Config{
		Strategy: e.poolStrategy(), Clean: size.Clean, Dirty: size.Dirty,
		TryAcquire: e.lim.TryAcquire, Release: e.lim.Release,
		IdleTimeout: poolIdleTimeout, Logger: e.log,
	})
	registerPool(e.lim, e.pool)
	return e.pool
}

// Pools of every engine sharing a limiter: a run waiting for a slot makes
// the one with the longest-idle sandbox give it up (Limiter.SetEvict).
var pools = struct {
	sync.Mutex
	m map[*Limiter][]*pool.Pool
}{m: map[*Limiter][]*pool.Pool{}}

func registerPool(l *Limiter, p *pool.Pool) {
	pools.Lock()
	defer pools.Unlock()
	if len(pools.m[l]) == 0 {
		l.SetEvict(func() bool { return evict(l) })
	}
	pools.m[l] = append(pools.m[l], p)
}

func unregisterPool(l *Limiter, p *pool.Pool) {
	pools.Lock()
	defer pools.Unlock()
	ps := pools.m[l]
	for i, x := range ps {
		if x == p {
			ps = append(ps[:i], ps[i+1:]...)
			break
		}
	}
	if len(ps) == 0 {
		delete(pools.m, l)
		l.SetEvict(nil)
		return
	}
	pools.m[l] = ps
}

func evict(l *Limiter) bool {
	_, waiting, _ := l.Stats()
	pools.Lock()
	ps := append([]*pool.Pool(nil), pools.m[l]...)
	pools.Unlock()
	var best *pool.Pool
	var oldest time.Time
	for _, p := range ps {
		if t, ok := p.OldestIdle(); ok && (best == nil || t.Before(oldest)) {
			best, oldest = p, t
		}
	}
	return best != nil && best.Evict(waiting)
}

// obtain gets a pooled sandbox for key (with its slot), or a limiter slot
// for the caller to make one (nil item). A run takes a ready one; else it
// waits as long as the pool expects one to come sooner than making one
// would take (Waiter.Patience); then it races a slot against one coming.
func (e *LocalEngine) obtain(ctx context.Context, p *pool.Pool, key string, f pool.Factory) (pool.Item, error) {
	if it, ok := p.Get(key, f); ok {
		return it, nil
	}
	w := p.Wait(key)
	defer w.Cancel()
	if w.Patience > 0 {
		t := time.NewTimer(w.Patience)
		select {
		case it, ok := <-w.C:
			t.Stop()
			if !ok {
				return nil, errStopped
			}
			return it, nil
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	acq := make(chan error, 1)
	go func() { acq <- e.lim.Acquire(actx) }()
	select {
	case it, ok := <-w.C:
		cancel()
		if err := <-acq; err == nil {
			e.lim.Release()
		}
		if !ok {
			return nil, errStopped
		}
		return it, nil
	case err := <-acq:
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
}

// obtainLive is obtain, passing over pooled sandboxes whose agent ended
// while they were idle (the engine restarted, the memory limit struck).
func (e *LocalEngine) obtainLive(ctx context.Context, p *pool.Pool, key string, f pool.Factory) (pool.Item, error) {
	for tries := 0; ; tries++ {
		it, err := e.obtain(ctx, p, key, f)
		if err != nil || it == nil {
			return it, err
		}
		w := it.(*warmItem)
		if w.conn == nil || w.conn.Err() == nil || tries == 3 {
			return it, nil
		}
		e.log.Warn("a pooled sandbox's agent is gone; taking another", "id", w.sb.ID(), "err", w.conn.Err())
		p.Put(key, it, false, true)
	}
}

// newWarmItem makes a sandbox for the pool (or for a miss) and starts its
// agent. An image that cannot start one (no interpreter where the agent
// expects it) gives a sandbox without, run through Exec.
func (e *LocalEngine) newWarmItem(ctx context.Context, b sandbox.Backend, spec sandbox.Spec, lang agent.Lang, key string) (*warmItem, error) {
	sb, err := e.createSandbox(ctx, b, spec)
	if err != nil {
		return nil, err
	}
	it := &warmItem{sb: sb}
	if lang != "" && !e.agentless(key) {
		it.conn, err = agent.Start(ctx, sb, lang)
		if err != nil {
			if ctx.Err() != nil {
				_ = destroy(sb)
				return nil, ctx.Err()
			}
			e.log.Warn("the sandbox's agent did not start; running without", "image", spec.Image, "err", err)
			e.noAgent.Store(key, time.Now())
		}
	}
	if oc, ok := sb.(sandbox.OOMCounter); ok {
		_, _ = oc.OOMKills(ctx) // finds the counter now, not on the hot path
	}
	return it, nil
}

func (e *LocalEngine) agentless(key string) bool {
	t, ok := e.noAgent.Load(key)
	return ok && time.Since(t.(time.Time)) < agentRetry
}

// warmCounters are the engine's counts of pool hits and misses.
type warmCounters struct {
	warmRuns, coldRuns atomic.Int64
	noAgent            sync.Map // pool key -> time its agent failed to start
}
