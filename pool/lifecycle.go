package pool

import (
	"context"
	"time"
)

// Evict destroys the idle item unused the longest, of any key, so that a
// run waiting for a slot of the concurrency limit gets one (the slot is
// released once the item is gone). It reports whether it evicted one; it
// refuses when max evictions are already on their way, so that each
// waiting run costs at most one warm item.
func (p *Pool) Evict(max int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.evicting >= max {
		return false
	}
	var oldest *key
	for _, ks := range p.keys {
		if len(ks.idle) > 0 && (oldest == nil || ks.idle[0].since.Before(oldest.idle[0].since)) {
			oldest = ks
		}
	}
	if oldest == nil {
		return false
	}
	it := oldest.idle[0].item
	oldest.idle = oldest.idle[1:]
	p.evicting++
	p.stats.Destroyed++
	p.work.Add(1)
	go func() {
		defer p.work.Done()
		ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
		defer cancel()
		if err := it.Destroy(ctx); err != nil {
			p.log.Warn("pool: destroying an evicted sandbox failed", "err", err)
		}
		p.mu.Lock()
		p.evicting--
		p.mu.Unlock()
		p.cfg.Release()
	}()
	return true
}

// OldestIdle is when the longest-idle item became idle (ok false when the
// pool has none), for choosing among pools which one evicts.
func (p *Pool) OldestIdle() (t time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ks := range p.keys {
		if len(ks.idle) > 0 && (!ok || ks.idle[0].since.Before(t)) {
			t, ok = ks.idle[0].since, true
		}
	}
	return t, ok
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	for _, ks := range p.keys {
		s.Idle += len(ks.idle)
		s.Creating += ks.creating
		s.Resetting += ks.resetting
	}
	return s
}

// janitor forgets keys unused for IdleTimeout, destroying their idle items.
func (p *Pool) janitor() {
	defer p.work.Done()
	t := time.NewTicker(max(p.cfg.IdleTimeout/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		for k, ks := range p.keys {
			if time.Since(ks.lastUsed) < p.cfg.IdleTimeout {
				continue
			}
			for _, x := range ks.idle {
				p.destroy(k, ks, x.item)
			}
			ks.idle = nil
			ks.factory = nil // no refill for a key no longer used
			if ks.creating+ks.resetting+ks.lent+len(ks.waiters) == 0 {
				delete(p.keys, k)
			}
		}
		p.mu.Unlock()
	}
}

// Stop destroys every idle item and, as they come back or finish being
// made or reset, every other one; waiters get a closed channel. It waits
// for all of it, or for ctx. Items still lent are destroyed when Put.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		for k, ks := range p.keys {
			for _, x := range ks.idle {
				p.destroy(k, ks, x.item)
			}
			ks.idle = nil
			for _, w := range ks.waiters {
				close(w.c)
			}
			ks.waiters = nil
		}
		p.cancel()
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.work.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
