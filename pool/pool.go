package pool

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Strategy is what happens to an item after a run.
type Strategy string

// The strategies.
const (
	Secure Strategy = "secure"
	Fast   Strategy = "fast"
)

// Item is a warm sandbox.
type Item interface {
	// Reset makes the item as good as new (Fast only).
	Reset(ctx context.Context) error
	// Destroy removes the item; it is called once.
	Destroy(ctx context.Context) error
}

// Factory makes a new item for a key.
type Factory func(ctx context.Context) (Item, error)

// Config configures a Pool.
type Config struct {
	Strategy Strategy
	// Clean is how many ready items the pool keeps for each key in use.
	Clean int
	// Dirty is how many more items a key may keep with Fast: Clean+Dirty
	// in all, ready, being made or reset, or out with a run (items
	// returned beyond that are destroyed, unless a run waits for one).
	Dirty int
	// TryAcquire takes a slot of the concurrency limit if one is free now,
	// without queueing; Release gives one back. Both are required.
	TryAcquire func() bool
	Release    func()
	// IdleTimeout ends the refilling of a key unused for that long and
	// destroys its idle items; 0 means never.
	IdleTimeout time.Duration
	// CreateTimeout and ResetTimeout bound background work (default 2
	// minutes and 30 seconds).
	CreateTimeout, ResetTimeout time.Duration
	// Logger receives background failures; nil discards them.
	Logger *slog.Logger
}

// Defaults for Config's zero durations, and the pause after a failed
// refill before a key is refilled again.
const (
	defaultCreateTimeout = 2 * time.Minute
	defaultResetTimeout  = 30 * time.Second
	destroyTimeout       = 30 * time.Second
	refillBackoff        = 10 * time.Second
)

// Pool is a set of warm items per key. It is safe for concurrent use.
type Pool struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // ends at Stop: background work gives up
	cancel context.CancelFunc
	work   sync.WaitGroup

	mu       sync.Mutex
	keys     map[string]*key
	stopped  bool
	evicting int
	stats    Stats
}

// key is the state of one key.
type key struct {
	factory   Factory
	idle      []idle
	creating  int // items being made
	resetting int // returned items being reset
	lent      int // items out with a run
	waiters   []*Waiter
	lastUsed  time.Time
	failedAt  time.Time
	out       map[Item]time.Time // lent items, and since when
	// How long runs, resets and makes take, for patience.
	run, reset, create avg
}

type idle struct {
	item  Item
	since time.Time
}

// Stats counts the pool's items and what happened to them.
type Stats struct {
	Idle      int   `json:"idle"`      // items ready now
	Creating  int   `json:"creating"`  // being made now
	Resetting int   `json:"resetting"` // being reset now
	Lent      int   `json:"lent"`      // out with a run now
	Hits      int64 `json:"hits"`      // Gets that found a ready item
	Misses    int64 `json:"misses"`    // Gets that did not (a waiter may still get one)
	Created   int64 `json:"created"`
	Reset     int64 `json:"reset"`
	Destroyed int64 `json:"destroyed"`
	Failures  int64 `json:"failures"` // failed makes and resets
}

// New returns a pool. Its background work stops with Stop.
func New(cfg Config) *Pool {
	if cfg.CreateTimeout <= 0 {
		cfg.CreateTimeout = defaultCreateTimeout
	}
	if cfg.ResetTimeout <= 0 {
		cfg.ResetTimeout = defaultResetTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{cfg: cfg, log: log, ctx: ctx, cancel: cancel, keys: map[string]*key{}}
	if cfg.IdleTimeout > 0 {
		p.work.Add(1)
		go p.janitor()
	}
	return p
}

// Strategy is the pool's strategy.
func (p *Pool) Strategy() Strategy { return p.cfg.Strategy }

func (p *Pool) keyOf(k string, f Factory) *key {
	ks := p.keys[k]
	if ks == nil {
		ks = &key{}
		p.keys[k] = ks
	}
	if f != nil {
		ks.factory = f
	}
	ks.lastUsed = time.Now()
	return ks
}

// Get takes a ready item of key k, if there is one, with its slot. Either
// way k counts as in use, and the pool refills it with f in the
// background (when a slot is free).
func (p *Pool) Get(k string, f Factory) (Item, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil, false
	}
	ks := p.keyOf(k, f)
	var it Item
	if n := len(ks.idle); n > 0 {
		it = ks.idle[n-1].item // the most recently used: its caches are warm
		ks.idle = ks.idle[:n-1]
		p.lend(ks, it)
		p.stats.Hits++
	} else {
		p.stats.Misses++
	}
	p.refill(k, ks)
	return it, it != nil
}

func (p *Pool) lend(ks *key, it Item) {
	ks.lent++
	p.stats.Lent++
	if ks.out == nil {
		ks.out = map[Item]time.Time{}
	}
	ks.out[it] = time.Now()
}

// Waiter waits for an item of a key to become ready (made, or reset).
type Waiter struct {
	p *Pool
	k string
	// C receives one item, with its slot; it is closed if the pool stops.
	C <-chan Item
	c chan Item
	// Patience is how long to wait for C before making an item instead:
	// the time one is expected to come (made, reset, or back from another
	// run) when that is sooner than making one; 0 means do not wait.
	Patience time.Duration
}

// Wait registers for the next ready item of key k. Cancel must be called
// when done waiting.
func (p *Pool) Wait(k string) *Waiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := make(chan Item, 1)
	w := &Waiter{p: p, k: k, C: c, c: c}
	if p.stopped {
		close(c)
		return w
	}
	ks := p.keyOf(k, nil)
	w.Patience = p.patience(ks, len(ks.waiters))
	ks.waiters = append(ks.waiters, w)
	return w
}

// Cancel stops waiting. An item delivered to the waiter but not received
// from C goes back to the pool.
func (w *Waiter) Cancel() {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if ks := p.keys[w.k]; ks != nil {
		for i, x := range ks.waiters {
			if x == w {
				ks.waiters = append(ks.waiters[:i], ks.waiters[i+1:]...)
				return
			}
		}
	}
	select {
	case it, ok := <-w.c:
		if ok {
			ks := p.keyOf(w.k, nil)
			p.unlend(ks, it, false)
			p.ready(w.k, ks, it)
		}
	default:
	}
}

// unlend ends a loan; ran says it served a run, whose duration counts.
func (p *Pool) unlend(ks *key, it Item, ran bool) {
	since, ok := ks.out[it]
	if !ok {
		return
	}
	delete(ks.out, it)
	ks.lent--
	p.stats.Lent--
	if ran {
		ks.run.add(time.Since(since))
	}
}

// Put gives back an item, with its slot: one a run took with Get or a
// Waiter (lent), or one it made itself after a miss. reuse is false when
// the item must not serve again (the run timed out, was cancelled or broke
// it); with Secure it is never reused.
func (p *Pool) Put(k string, it Item, reuse, lent bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ks := p.keyOf(k, nil)
	if lent {
		p.unlend(ks, it, true)
	}
	// A key keeps at most Clean+Dirty items unless runs wait for one.
	kept := len(ks.idle) + ks.creating + ks.resetting + ks.lent
	if p.stopped || !reuse || p.cfg.Strategy != Fast ||
		(len(ks.waiters) == 0 && kept >= p.cfg.Clean+p.cfg.Dirty) {
		p.destroy(k, ks, it)
		p.refill(k, ks) // now if a slot is free, else once this one's is
		return
	}
	ks.resetting++
	p.work.Add(1)
	go func() {
		defer p.work.Done()
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ResetTimeout)
		start := time.Now()
		err := it.Reset(ctx)
		took := time.Since(start)
		cancel()
		p.mu.Lock()
		defer p.mu.Unlock()
		ks.resetting--
		ks.reset.add(took)
		if err != nil {
			p.log.Warn("pool: reset failed; destroying the sandbox", "err", err)
			p.stats.Failures++
			p.destroy(k, ks, it)
			return
		}
		p.stats.Reset++
		p.ready(k, ks, it)
	}()
}

// ready places an item that can serve: to the first waiter, else idle if
// the key has room (Clean, plus Dirty with Fast: see refill), else it is
// destroyed.
func (p *Pool) ready(k string, ks *key, it Item) {
	switch {
	case p.stopped:
		p.destroy(k, ks, it)
	case len(ks.waiters) > 0:
		w := ks.waiters[0]
		ks.waiters = ks.waiters[1:]
		p.lend(ks, it)
		w.c <- it // buffered, and each waiter gets one item
	case len(ks.idle) < p.room() && time.Since(ks.lastUsed) < p.idleLimit():
		ks.idle = append(ks.idle, idle{item: it, since: time.Now()})
	default:
		p.destroy(k, ks, it)
	}
}

func (p *Pool) room() int {
	if p.cfg.Strategy == Fast {
		return p.cfg.Clean + p.cfg.Dirty
	}
	return p.cfg.Clean
}

func (p *Pool) idleLimit() time.Duration {
	if p.cfg.IdleTimeout > 0 {
		return p.cfg.IdleTimeout
	}
	return time.Duration(1<<63 - 1)
}

// refill starts making items for k until Clean of them are ready or being
// made. With Fast, items being reset or out with a run come back, so it
// also stops at Clean+Dirty items in all: a run then takes a ready item
// while the one it returned is reset, and back-to-back runs alternate
// between two sandboxes without waiting and without making new ones.
func (p *Pool) refill(k string, ks *key) {
	if p.stopped || ks.factory == nil || time.Since(ks.failedAt) < refillBackoff {
		return
	}
	have := len(ks.idle) + ks.creating
	total := have + ks.resetting + ks.lent
	for ; have < p.cfg.Clean && (p.cfg.Strategy != Fast || total < p.cfg.Clean+p.cfg.Dirty); have, total = have+1, total+1 {
		if !p.cfg.TryAcquire() {
			return
		}
		ks.creating++
		f := ks.factory
		p.work.Add(1)
		go func() {
			defer p.work.Done()
			// Not cut short by Stop (which waits for it): a create cancelled
			// half-way could leave a sandbox the pool never heard of.
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CreateTimeout)
			start := time.Now()
			it, err := f(ctx)
			took := time.Since(start)
			cancel()
			p.mu.Lock()
			defer p.mu.Unlock()
			ks.creating--
			if err != nil {
				p.log.Warn("pool: making a warm sandbox failed", "err", err)
				p.stats.Failures++
				ks.failedAt = time.Now()
				p.cfg.Release()
				return
			}
			p.stats.Created++
			ks.create.add(took)
			p.ready(k, ks, it)
		}()
	}
}

// destroy removes an item of key k in the background and then frees its
// slot, so that the limit counts it until it is really gone; the freed
// slot may then refill k.
func (p *Pool) destroy(k string, ks *key, it Item) {
	p.stats.Destroyed++
	p.work.Add(1)
	go func() {
		defer p.work.Done()
		ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
		defer cancel()
		if err := it.Destroy(ctx); err != nil {
			p.log.Warn("pool: destroying a sandbox failed", "err", err)
		}
		p.cfg.Release()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.refill(k, ks)
	}()
}
