// Package bench measures isol8 against the floors it must be compared with,
// in one run on one machine (performance.md): the bare interpreter start on
// the host, the Docker Engine API's own create + start + exec + remove for
// the same image, then isol8's own paths (Docker cold, warm, persistent,
// over HTTP; native cold and warm; a batch; idle sandbox memory). It prints
// p50/p90/p99, the ratio of each row to its floor and whether the row meets
// its goal, as Markdown tables.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Row is one measured path.
type Row struct {
	Name    string
	Floor   string // name of the row this one is compared with ("" for a floor)
	Samples []time.Duration
	Fails   int
	Note    string
	// Goals, judged on p50: at most MaxRatio × the floor's p50, at most
	// MaxP50 (0: no such goal).
	MaxRatio float64
	MaxP50   time.Duration
	// Derived rows (HTTP minus library) have no samples, only a p50.
	Derived bool
	P50     time.Duration
}

// Quantile returns the q-quantile (0..1) of the samples.
func (r *Row) Quantile(q float64) time.Duration {
	if r.Derived {
		return r.P50
	}
	if len(r.Samples) == 0 {
		return 0
	}
	s := slices.Clone(r.Samples)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func (r *Row) fail(err error) {
	r.Fails++
	if r.Note == "" {
		r.Note = firstLine(err.Error())
	}
}

// Measure runs fn n times after warm warm-up runs and records each duration.
func Measure(name, floor string, warm, n int, fn func() error) *Row {
	r := &Row{Name: name, Floor: floor}
	MeasureInterleaved(warm, n, []*Row{r}, []func() error{fn}, nil)
	return r
}

// MeasureInterleaved measures several rows in one loop, one run of each in
// turn, so that a slow spell of a noisy machine hits them all alike (the
// HTTP row and the library row it is compared with). settle, when set,
// is called before each timed run (untimed): the warm rows wait there for
// their pools to be idle again.
func MeasureInterleaved(warm, n int, rows []*Row, fns []func() error, settle func()) {
	for i := 0; i < warm; i++ {
		for _, fn := range fns {
			_ = fn()
		}
	}
	for i := 0; i < n; i++ {
		for j, fn := range fns {
			if settle != nil {
				settle()
			}
			t0 := time.Now()
			if err := fn(); err != nil {
				rows[j].fail(err)
				continue
			}
			rows[j].Samples = append(rows[j].Samples, time.Since(t0))
		}
	}
}

// PairedDiff is the median of b's samples minus a's, taken pair by pair
// (MeasureInterleaved runs them back to back, so each pair shares the
// machine's state of the moment): far steadier than the difference of
// the two medians when runs spread widely. With a failed run the pairs
// are unknown, and it falls back to that difference.
func PairedDiff(a, b *Row) time.Duration {
	if len(a.Samples) == 0 || len(a.Samples) != len(b.Samples) || a.Fails+b.Fails > 0 {
		return b.Quantile(.5) - a.Quantile(.5)
	}
	d := &Row{Samples: make([]time.Duration, len(a.Samples))}
	for i := range a.Samples {
		d.Samples[i] = b.Samples[i] - a.Samples[i]
	}
	return d.Quantile(.5)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// hostBinary prefers the distribution's interpreter (/usr/bin) to whatever
// PATH finds first: a version manager's shim (pyenv) is a script that
// takes hundreds of milliseconds and would make every ratio look good.
func hostBinary(name string) string {
	if p := "/usr/bin/" + name; fileExists(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Bare is the floor of an interpreter started on the host without a sandbox.
func Bare(ctx context.Context, argv []string) func() error {
	return func() error {
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
		if err == nil && strings.TrimSpace(string(out)) != "1" {
			err = fmt.Errorf("unexpected output %q", out)
		}
		return err
	}
}

func ms(d time.Duration) string {
	if d != 0 && d > -10*time.Millisecond && d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000)
}

func check(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}
