package isol8_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

// The warm path's benchmarks, mirrored by `isol8 bench`: python print(1)
// through LocalEngine.Execute with a fast pool (warm) and without a pool
// (cold: create, exec, remove), and the floor they are compared with, the
// same program started bare on the host. Each reports its p50 and p90
// besides the mean, since these machines are shared and noisy.
//
//	go test -run '^$' -bench 'Python$' -benchtime 100x .

func BenchmarkBarePython(b *testing.B) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		b.Skip("no /usr/bin/python3 on the host")
	}
	measure(b, func() {
		if out, err := exec.Command("/usr/bin/python3", "-c", "print(1)").Output(); err != nil || string(out) != "1\n" {
			b.Fatalf("%q %v", out, err)
		}
	})
}

func BenchmarkWarmPython(b *testing.B) {
	e, _ := warmEngine(b, "docker", isol8.Options{PoolStrategy: "fast", PoolSize: &isol8.PoolSize{Clean: 1, Dirty: 1}})
	benchPython(b, e)
	if s := e.PoolStats(); s.ColdRuns > 1 {
		b.Logf("%d of %d runs missed the pool", s.ColdRuns, s.WarmRuns+s.ColdRuns)
	}
}

func BenchmarkColdPython(b *testing.B) {
	e, _ := warmEngine(b, "docker", isol8.Options{PoolSize: &isol8.PoolSize{}})
	benchPython(b, e)
}

func benchPython(b *testing.B, e *isol8.LocalEngine) {
	req := isol8.Request{Runtime: isol8.Python, Code: "print(1)"}
	run := func() {
		r := req
		res, err := e.Execute(context.Background(), &r)
		if err != nil || res.Stdout != "1\n" {
			b.Fatalf("%v %+v", err, res)
		}
	}
	run() // the image, the pool and the key warmed up
	measure(b, run)
}

func measure(b *testing.B, f func()) {
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		f()
		times = append(times, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(times)
	ms := func(q float64) float64 { return float64(times[int(q*float64(len(times)-1))]) / 1e6 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.9), "p90-ms")
}

// BenchmarkWarmBatch is a batch (Promise.all over datasets): b.N runs of
// python print(1), 10 at a time, on an engine with the default pool and
// maxConcurrent; it reports runs per second.
func BenchmarkWarmBatch(b *testing.B) {
	e, _ := warmEngine(b, "docker", isol8.Options{MaxConcurrent: 10})
	req := isol8.Request{Runtime: isol8.Python, Code: "print(1)"}
	run := func() error {
		r := req
		res, err := e.Execute(context.Background(), &r)
		if err == nil && res.Stdout != "1\n" {
			err = fmt.Errorf("%+v", res)
		}
		return err
	}
	if err := run(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	sem := make(chan struct{}, 10)
	errs := make(chan error, b.N)
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- run()
		}()
	}
	for i := 0; i < b.N; i++ {
		if err := <-errs; err != nil {
			b.Error(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
	s := e.PoolStats()
	b.Logf("warm %d, cold %d", s.WarmRuns, s.ColdRuns)
}
