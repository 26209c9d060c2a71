package bench

import (
	"fmt"
	"sync"
	"time"

	"github.com/isol8/isol8"
)

// Batch is a batch of runs (Promise.all over datasets): Runs runs of
// python print(1), Concurrency at a time, on one engine whose
// maxConcurrent is Concurrency and whose fast pool holds as many.
type Batch struct {
	Name        string
	Runs        int
	Concurrency int
	Wall        time.Duration
	Fails       int
	Note        string
	Latency     *Row // each run's own duration
	Goal        float64
}

// PerSecond is the batch's throughput.
func (b *Batch) PerSecond() float64 {
	if b.Wall <= 0 {
		return 0
	}
	return float64(b.Runs-b.Fails) / b.Wall.Seconds()
}

func (r *runner) batch(backend string) {
	n, conc := r.cfg.BatchRuns, r.cfg.BatchConcurrency
	goal := dockerBatchMin
	if backend == "native" {
		goal = nativeBatchMin
	}
	b := &Batch{Name: backend + " warm, python print(1)", Runs: n, Concurrency: conc, Goal: goal,
		Latency: &Row{Name: backend + " batch"}}
	defer func() {
		fmt.Fprintf(r.log, "  batch %-38s %.1f runs/s (%d runs, %d failures)\n", b.Name, b.PerSecond(), b.Runs, b.Fails)
		r.rep.Batches = append(r.rep.Batches, b)
	}()
	half := (conc + 1) / 2
	e, _, err := r.engine(backend, isol8.Options{MaxConcurrent: conc, PoolStrategy: "fast",
		PoolSize: &isol8.PoolSize{Clean: half, Dirty: conc - half}})
	if err != nil {
		b.Fails, b.Note = n, firstLine(err.Error())
		return
	}
	defer stop(e)
	req := &isol8.Request{Runtime: isol8.Python, Code: "print(1)"}
	run := execute(r.ctx, e, req)
	// Fill the pool, then let it settle: the batch starts warm.
	_ = run()
	parallel(2*conc, conc, func(int) { _ = run() })
	waitIdle(r.ctx, e, 30*time.Second)
	before := e.PoolStats()

	var mu sync.Mutex
	start := time.Now()
	parallel(n, conc, func(int) {
		t0 := time.Now()
		err := run()
		d := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			b.Fails++
			b.Latency.fail(err)
			return
		}
		b.Latency.Samples = append(b.Latency.Samples, d)
	})
	b.Wall = time.Since(start)
	notePool(b.Latency, e, before)
	b.Note = b.Latency.Note
}

// parallel calls fn(i) for i in [0, n), at most conc at once.
func parallel(n, conc int, fn func(int)) {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}
