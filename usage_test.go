package isol8

import (
	"context"
	"testing"
	"time"
)

// Results carry resourceUsage where the backend can measure it (the
// Docker backend reads the container's cgroups), cold and warm alike.
func TestResultCarriesResourceUsage(t *testing.T) {
	dockerBackend(t)
	for _, pool := range []*PoolSize{{}, nil} {
		e, err := New(EngineConfig{Owner: "test-usage-" + time.Now().Format("150405.000"), Options: Options{PoolSize: pool}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var res *Result
		for i := 0; i < 2; i++ { // the second run is warm when the pool is on
			res, err = e.Execute(ctx, &Request{Runtime: Python, Code: "x = bytearray(20 << 20); sum(range(10**6)); print(len(x))"})
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("run: %v %+v", err, res)
			}
		}
		e.Stop(ctx)
		ru := res.ResourceUsage
		if ru == nil || ru.PeakMemoryMB < 20 || ru.MemoryMB <= 0 || ru.CPUPercent <= 0 {
			t.Fatalf("pool %v: resourceUsage %+v", pool, ru)
		}
		t.Logf("pool %v: %+v", pool, *ru)
	}
}
