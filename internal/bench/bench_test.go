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

// TestPairedDiff: pairs that drift together (a slow moment slows both)
// give their steady difference, where the difference of the medians does
// not; with a failed run it falls back to that difference.
func TestPairedDiff(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	lib := &Row{Samples: ms(100, 300, 150, 400, 120)}
	http := &Row{Samples: ms(101, 301, 151, 401, 121)}
	if d := PairedDiff(lib, http); d != time.Millisecond {
		t.Errorf("paired %v, want 1ms", d)
	}
	http.Samples = ms(101, 301, 151, 121)
	http.Fails = 1
	if d := PairedDiff(lib, http); d != http.Quantile(.5)-lib.Quantile(.5) {
		t.Errorf("with a failure %v, want the difference of the medians", d)
	}
}
