package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slots is a tiny stand-in for the engine's limiter.
type slots struct {
	mu         sync.Mutex
	held, size int
	peak       int
}

func (s *slots) TryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held >= s.size {
		return false
	}
	s.held++
	s.peak = max(s.peak, s.held)
	return true
}

func (s *slots) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == 0 {
		panic("release without a slot")
	}
	s.held--
}

func (s *slots) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

type fake struct {
	id        int64
	resets    atomic.Int32
	destroyed atomic.Int32
	failReset bool
}

func (f *fake) Reset(ctx context.Context) error {
	f.resets.Add(1)
	if f.failReset {
		return errors.New("reset failed")
	}
	return nil
}

func (f *fake) Destroy(ctx context.Context) error {
	if f.destroyed.Add(1) != 1 {
		panic("destroyed twice")
	}
	return nil
}

type factory struct {
	n    atomic.Int64
	fail atomic.Bool
}

func (f *factory) make(ctx context.Context) (Item, error) {
	if f.fail.Load() {
		return nil, errors.New("no")
	}
	return &fake{id: f.n.Add(1)}, nil
}

func newPool(t *testing.T, s Strategy, clean, dirty, size int) (*Pool, *slots) {
	t.Helper()
	sl := &slots{size: size}
	p := New(Config{Strategy: s, Clean: clean, Dirty: dirty, TryAcquire: sl.TryAcquire, Release: sl.Release})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Error(err)
		}
		if h := sl.Held(); h != 0 {
			t.Errorf("%d slots still held after Stop", h)
		}
	})
	return p, sl
}

// get waits for an item of k the way the engine does, without a limiter.
func get(t *testing.T, p *Pool, k string, f Factory) Item {
	t.Helper()
	if it, ok := p.Get(k, f); ok {
		return it
	}
	w := p.Wait(k)
	defer w.Cancel()
	select {
	case it := <-w.C:
		return it
	case <-time.After(5 * time.Second):
		t.Fatal("no item came")
		return nil
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestFastReusesAndAlternates(t *testing.T) {
	p, sl := newPool(t, Fast, 1, 1, 10)
	f := &factory{}
	seen := map[Item]int{}
	for i := 0; i < 20; i++ {
		it := get(t, p, "k", f.make)
		seen[it]++
		p.Put("k", it, true, true)
	}
	if n := f.n.Load(); n > 2 {
		t.Errorf("made %d items for back-to-back runs, want at most 2 (Clean+Dirty)", n)
	}
	eventually(t, "the pool to settle", func() bool { s := p.Stats(); return s.Resetting == 0 && s.Creating == 0 })
	if h := sl.Held(); h > 2 {
		t.Errorf("%d slots held by an idle pool of Clean+Dirty=2", h)
	}
}

func TestFastDestroysWhatMustNotBeReused(t *testing.T) {
	p, _ := newPool(t, Fast, 1, 1, 10)
	f := &factory{}
	it := get(t, p, "k", f.make).(*fake)
	p.Put("k", it, false, true)
	eventually(t, "destroy", func() bool { return it.destroyed.Load() == 1 })
	if it.resets.Load() != 0 {
		t.Error("a broken item was reset")
	}
	it2 := get(t, p, "k", f.make).(*fake)
	it2.failReset = true
	p.Put("k", it2, true, true)
	eventually(t, "destroy after a failed reset", func() bool { return it2.destroyed.Load() == 1 })
}

func TestSecureServesOnce(t *testing.T) {
	p, _ := newPool(t, Secure, 1, 1, 10)
	f := &factory{}
	var items []*fake
	for i := 0; i < 5; i++ {
		it := get(t, p, "k", f.make).(*fake)
		items = append(items, it)
		p.Put("k", it, true, true)
	}
	for i, it := range items {
		for _, other := range items[i+1:] {
			if it == other {
				t.Fatal("an item served twice under Secure")
			}
		}
		eventually(t, "destroy", func() bool { return it.destroyed.Load() == 1 })
		if it.resets.Load() != 0 {
			t.Error("Secure reset an item")
		}
	}
}

func TestSlotsBoundItems(t *testing.T) {
	p, sl := newPool(t, Fast, 3, 3, 2)
	f := &factory{}
	p.Get("a", f.make)
	eventually(t, "refill", func() bool { return p.Stats().Idle == 2 })
	if f.n.Load() != 2 || sl.peak != 2 {
		t.Fatalf("made %d items with 2 slots (peak %d)", f.n.Load(), sl.peak)
	}
	// A waiting run makes the pool give up its oldest idle item.
	if !p.Evict(1) {
		t.Fatal("nothing evicted")
	}
	if p.Evict(1) {
		t.Fatal("evicted twice for one waiter")
	}
	eventually(t, "the evicted slot", func() bool { return sl.Held() == 1 })
}

func TestWaiterGetsReturnedItem(t *testing.T) {
	p, sl := newPool(t, Fast, 0, 1, 10)
	f := &factory{}
	sl.TryAcquire() // a run that missed makes its own item with its own slot
	it, _ := f.make(context.Background())
	w := p.Wait("k")
	defer w.Cancel()
	p.Put("k", it, true, false)
	select {
	case got := <-w.C:
		if got != it {
			t.Fatal("a different item")
		}
		p.Put("k", got, false, true)
	case <-time.After(5 * time.Second):
		t.Fatal("the returned item did not reach the waiter")
	}
}

func TestCancelledWaiterGivesBack(t *testing.T) {
	p, sl := newPool(t, Fast, 0, 1, 10)
	f := &factory{}
	sl.TryAcquire()
	it, _ := f.make(context.Background())
	w := p.Wait("k")
	p.Put("k", it, true, false)
	eventually(t, "delivery", func() bool { return len(w.C) == 1 })
	w.Cancel() // the delivered item must not be lost with its slot
	if got, ok := p.Get("k", nil); !ok || got != it {
		t.Fatal("the item delivered to a cancelled waiter is gone")
	}
	p.Put("k", it, false, true)
}

func TestRefillBacksOff(t *testing.T) {
	p, sl := newPool(t, Fast, 1, 1, 10)
	f := &factory{}
	f.fail.Store(true)
	p.Get("k", f.make)
	eventually(t, "the failure", func() bool { return p.Stats().Failures == 1 })
	p.Get("k", f.make)
	time.Sleep(10 * time.Millisecond)
	if s := p.Stats(); s.Failures != 1 || s.Creating != 0 {
		t.Fatalf("refilled again right after a failure: %+v", s)
	}
	if sl.Held() != 0 {
		t.Fatal("a failed refill kept its slot")
	}
}

func TestStopDestroysEverything(t *testing.T) {
	sl := &slots{size: 10}
	p := New(Config{Strategy: Fast, Clean: 2, Dirty: 1, TryAcquire: sl.TryAcquire, Release: sl.Release})
	f := &factory{}
	p.Get("a", f.make)
	p.Get("b", f.make)
	w := p.Wait("c")
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w.C; ok {
		t.Fatal("a waiter got an item from a stopped pool")
	}
	w.Cancel()
	if sl.Held() != 0 {
		t.Fatalf("%d slots held after Stop", sl.Held())
	}
	if _, ok := p.Get("a", f.make); ok {
		t.Fatal("a stopped pool lent an item")
	}
}

func TestPatience(t *testing.T) {
	p := &Pool{cfg: Config{Strategy: Fast}}
	ks := &key{lent: 2, create: avg(400 * time.Millisecond), run: avg(10 * time.Millisecond), reset: avg(5 * time.Millisecond)}
	if got := p.patience(ks, 0); got != 30*time.Millisecond {
		t.Errorf("short runs: wait %v, want twice a run and a reset", got)
	}
	if got := p.patience(ks, 100); got != 0 {
		t.Errorf("a long queue should make its own: wait %v", got)
	}
	ks.run = avg(time.Second)
	if got := p.patience(ks, 0); got != 0 {
		t.Errorf("long runs should fan out: wait %v", got)
	}
	ks.resetting = 1
	if got := p.patience(ks, 0); got != maxPatience {
		t.Errorf("an item being reset for nobody ahead: wait %v", got)
	}
	p.cfg.Strategy = Secure
	ks.resetting = 0
	if got := p.patience(ks, 0); got != 0 {
		t.Errorf("secure items never come back: wait %v", got)
	}
}
