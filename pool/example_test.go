package pool_test

import (
	"context"
	"fmt"

	"github.com/isol8/isol8/pool"
)

type sandbox struct{ resets int }

func (s *sandbox) Reset(context.Context) error   { s.resets++; return nil }
func (s *sandbox) Destroy(context.Context) error { return nil }

func Example() {
	// The engine passes its limiter's TryAcquire and Release.
	p := pool.New(pool.Config{Strategy: pool.Fast, Clean: 1, Dirty: 1,
		TryAcquire: func() bool { return true }, Release: func() {}})
	defer p.Stop(context.Background())

	made := func(context.Context) (pool.Item, error) { return &sandbox{}, nil }
	it, lent := p.Get("python/512m", made)
	if !lent {
		// A miss: the caller takes a slot of its own and makes one.
		it, lent = &sandbox{}, false
	}
	// ... run a job in it ...
	p.Put("python/512m", it, true, lent) // reset in the background, then ready again
	fmt.Println(p.Strategy(), lent)
	// Output: fast false
}
