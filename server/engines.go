package server

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/isol8/isol8"
)

// maxEngines bounds the engines kept for distinct effective options.
const maxEngines = 32

// engineCache keeps one engine per distinct set of effective options, so
// that ephemeral runs share engines (and their warm pools) instead of
// making one per request. Engines evicted while in use are stopped when
// their last run ends.
type engineCache struct {
	make func(isol8.Options) (isol8.Engine, error)

	mu      sync.Mutex
	entries map[string]*cachedEngine
	closed  bool
}

type cachedEngine struct {
	key      string
	engine   isol8.Engine
	refs     int
	lastUsed time.Time
	evicted  bool
}

func newEngineCache(mk func(isol8.Options) (isol8.Engine, error)) *engineCache {
	return &engineCache{make: mk, entries: map[string]*cachedEngine{}}
}

// get returns the engine for opts; done must be called when the run ends.
func (c *engineCache) get(opts isol8.Options) (isol8.Engine, func(), error) {
	keyBytes, err := json.Marshal(opts)
	if err != nil {
		return nil, nil, err
	}
	key := string(keyBytes)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, errShuttingDown
	}
	e, ok := c.entries[key]
	if !ok {
		eng, err := c.make(opts)
		if err != nil {
			return nil, nil, err
		}
		e = &cachedEngine{key: key, engine: eng}
		c.evictLocked()
		c.entries[key] = e
	}
	e.refs++
	e.lastUsed = time.Now()
	return e.engine, sync.OnceFunc(func() { c.put(e) }), nil
}

func (c *engineCache) put(e *cachedEngine) {
	c.mu.Lock()
	e.refs--
	stop := e.evicted && e.refs == 0
	c.mu.Unlock()
	if stop {
		go stopEngine(e.engine)
	}
}

// evictLocked makes room for one more engine, dropping the least
// recently used.
func (c *engineCache) evictLocked() {
	if len(c.entries) < maxEngines {
		return
	}
	var oldest *cachedEngine
	for _, e := range c.entries {
		if oldest == nil || e.lastUsed.Before(oldest.lastUsed) {
			oldest = e
		}
	}
	delete(c.entries, oldest.key)
	oldest.evicted = true
	if oldest.refs == 0 {
		go stopEngine(oldest.engine)
	}
}

// close stops every engine (runs still going end with their context).
func (c *engineCache) close(ctx context.Context) {
	c.mu.Lock()
	c.closed = true
	entries := c.entries
	c.entries = map[string]*cachedEngine{}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Go(func() { e.engine.Stop(ctx) })
	}
	wg.Wait()
}

func stopEngine(e isol8.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.Stop(ctx)
}
