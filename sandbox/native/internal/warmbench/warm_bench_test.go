//go:build linux

package warmbench_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/isol8/isol8"
	_ "github.com/isol8/isol8/sandbox/native"
)

// BenchmarkNativeWarm is python print(1) through the engine's warm path
// (a fast pool of sandboxes made ahead, each with its interpreter agent
// started) on this backend; the warm goal is p50 ≤ 3 ms.
func BenchmarkNativeWarm(b *testing.B) {
	if os.Getenv("ISOL8_SKIP_NATIVE") == "1" {
		b.Skip("ISOL8_SKIP_NATIVE=1")
	}
	opts := isol8.Options{Backend: "native", PoolStrategy: "fast",
		PoolSize: &isol8.PoolSize{Clean: 1, Dirty: 1}, MaxConcurrent: 4}
	if img := os.Getenv("ISOL8_NATIVE_IMAGE"); img != "" {
		opts.Image = img
	}
	e, err := isol8.New(isol8.EngineConfig{Owner: "native-bench-warm", Options: opts})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Stop(context.Background()) })
	run := func() {
		res, err := e.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: "print(1)"})
		if err != nil || res.Stdout != "1\n" {
			b.Fatalf("%v %+v", err, res)
		}
	}
	run()
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		run()
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*9/10].Microseconds())/1000, "p90-ms")
	if s := e.PoolStats(); s.ColdRuns > 1 {
		b.Logf("%d of %d runs missed the pool", s.ColdRuns, s.WarmRuns+s.ColdRuns)
	}
}
