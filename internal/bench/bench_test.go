package bench

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestQuantileAndTable(t *testing.T) {
	floor := &Row{Name: "bare x"}
	row := &Row{Name: "isol8 x", Floor: "bare x", MaxRatio: 2}
	for i := 1; i <= 10; i++ {
		floor.Samples = append(floor.Samples, time.Duration(i)*time.Millisecond)
		row.Samples = append(row.Samples, time.Duration(3*i)*time.Millisecond)
	}
	row.fail(errors.New("boom | here\nsecond line"))
	if q := floor.Quantile(.5); q != 6*time.Millisecond {
		t.Fatalf("p50 %v", q)
	}
	diff := &Row{Name: "diff", Derived: true, P50: 1500 * time.Microsecond, MaxP50: 2 * time.Millisecond}
	var b strings.Builder
	WriteTable(&b, []*Row{floor, row, diff})
	out := b.String()
	for _, want := range []string{"3.00× bare", "≤ 2× floor: **not met**", "1 (boom / here)", "| diff | – | 1.50 |", "p50 ≤ 2.00 ms: met"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestProcReaders(t *testing.T) {
	if ppid(os.Getpid()) != os.Getppid() {
		t.Errorf("ppid %d, want %d", ppid(os.Getpid()), os.Getppid())
	}
	if _, err := os.Stat("/proc/self/smaps_rollup"); err == nil && pss([]int{os.Getpid()}) == 0 {
		t.Error("no PSS for this process")
	}
}
