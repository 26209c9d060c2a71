package isol8

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimiterBoundsHoldersAndQueue(t *testing.T) {
	l := NewLimiter(3, 5, 2*time.Second)
	var cur, peak, ok, refused atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Acquire(context.Background()); err != nil {
				if !errors.Is(err, ErrResourceExhausted) {
					t.Errorf("unexpected error %v", err)
				}
				refused.Add(1)
				return
			}
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			cur.Add(-1)
			ok.Add(1)
			l.Release()
		}()
	}
	wg.Wait()
	if peak.Load() > 3 {
		t.Fatalf("peak %d holders, limit 3", peak.Load())
	}
	if ok.Load()+refused.Load() != 20 || ok.Load() < 8 {
		t.Fatalf("ok %d refused %d", ok.Load(), refused.Load())
	}
	if h, w, _ := l.Stats(); h != 0 || w != 0 {
		t.Fatalf("leftover held %d waiting %d", h, w)
	}
}

func TestLimiterDeadlineAndEvict(t *testing.T) {
	l := NewLimiter(1, 0, 50*time.Millisecond)
	if !l.TryAcquire() {
		t.Fatal("first TryAcquire failed")
	}
	if err := l.Acquire(context.Background()); !errors.Is(err, ErrResourceExhausted) {
		t.Fatalf("want deadline refusal, got %v", err)
	}
	l.SetEvict(func() bool { l.Release(); return true })
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("evict should free the slot: %v", err)
	}
}
