package isol8

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Limiter bounds the sandboxes of a process: at most Size hold a slot at
// once (running, or kept warm by a pool), at most Queue callers wait for
// one, and none waits longer than MaxWait. A caller refused for either
// reason gets an ErrResourceExhausted error (HTTP 429 with Retry-After).
// Every engine of a process shares one Limiter unless told otherwise, so
// sessions, pools and one-off runs all count against the same maximum.
type Limiter struct {
	size    int
	queue   int
	maxWait time.Duration

	mu      sync.Mutex
	held    int
	waiting int
	wake    chan struct{} // closed and replaced whenever a slot is freed
	// evict, when set, is asked to give up one idle slot (a warm pooled
	// sandbox) so a waiting run can proceed; it reports whether it did.
	evict func() bool
}

// NewLimiter returns a limiter of size slots with a bounded queue.
// queue <= 0 means no bound on waiters; maxWait <= 0 means no deadline.
func NewLimiter(size, queue int, maxWait time.Duration) *Limiter {
	return &Limiter{size: max(size, 1), queue: queue, maxWait: maxWait, wake: make(chan struct{})}
}

var (
	processLimiterOnce sync.Once
	processLimiter     *Limiter
)

// ProcessLimiter returns the process-wide limiter, sized by the config of
// the first engine that asks for it.
func ProcessLimiter(cfg *Config) *Limiter {
	processLimiterOnce.Do(func() {
		processLimiter = NewLimiter(cfg.MaxConcurrent, cfg.Queue.Size, time.Duration(cfg.Queue.TimeoutMs)*time.Millisecond)
	})
	return processLimiter
}

// SetEvict installs the hook that frees an idle slot on demand.
func (l *Limiter) SetEvict(f func() bool) {
	l.mu.Lock()
	l.evict = f
	l.mu.Unlock()
}

// TryAcquire takes a slot if one is free now, without queueing.
func (l *Limiter) TryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held < l.size && l.waiting == 0 {
		l.held++
		return true
	}
	return false
}

// Acquire waits for a slot. It fails with ErrResourceExhausted when the
// queue is full or the wait exceeds the limiter's deadline.
func (l *Limiter) Acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.held < l.size && l.waiting == 0 {
		l.held++
		l.mu.Unlock()
		return nil
	}
	if l.queue > 0 && l.waiting >= l.queue {
		held, waiting := l.held, l.waiting
		l.mu.Unlock()
		return fmt.Errorf("%w: %d runs are running and %d waiting (maxConcurrent %d); try again later", ErrResourceExhausted, held, waiting, l.size)
	}
	l.waiting++
	defer func() {
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
	}()
	var deadline <-chan time.Time
	if l.maxWait > 0 {
		t := time.NewTimer(l.maxWait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		if l.held >= l.size && l.evict != nil {
			evict := l.evict
			l.mu.Unlock()
			evict() // releases a slot through Release when it frees one
			l.mu.Lock()
		}
		if l.held < l.size {
			l.held++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("%w: waited %s for one of %d sandbox slots; try again later", ErrResourceExhausted, l.maxWait, l.size)
		}
		l.mu.Lock()
	}
}

// Release frees a slot.
func (l *Limiter) Release() {
	l.mu.Lock()
	if l.held > 0 {
		l.held--
	}
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// Stats reports slots held and callers waiting (for metrics).
func (l *Limiter) Stats() (held, waiting, size int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, l.waiting, l.size
}
