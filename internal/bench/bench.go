// Package bench measures isol8 against the floors it must be compared with,
// in one run on one machine (performance.md): the bare interpreter start on
// the host, the Docker Engine API's own create + start + exec + remove for
// the same image, then isol8's own paths. It prints p50/p90/p99 and the
// ratio of each row to its floor as a Markdown table.
package bench

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"runtime"
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
}

// Quantile returns the q-quantile (0..1) of the samples.
func (r *Row) Quantile(q float64) time.Duration {
	if len(r.Samples) == 0 {
		return 0
	}
	s := slices.Clone(r.Samples)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

// Measure runs fn n times after warm warm-up runs and records each duration.
func Measure(name, floor string, warm, n int, fn func() error) *Row {
	r := &Row{Name: name, Floor: floor}
	for i := 0; i < warm; i++ {
		_ = fn()
	}
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := fn(); err != nil {
			r.Fails++
			if r.Note == "" {
				r.Note = firstLine(err.Error())
			}
			continue
		}
		r.Samples = append(r.Samples, time.Since(t0))
	}
	return r
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
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

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// WriteTable prints the rows as a Markdown table with the machine they ran on.
func WriteTable(w io.Writer, rows []*Row) {
	byName := map[string]*Row{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	fmt.Fprintf(w, "| path | runs | p50 ms | p90 ms | p99 ms | vs floor (p50) | failures |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---|---:|\n")
	for _, r := range rows {
		ratio := "floor"
		if f := byName[r.Floor]; f != nil && f.Quantile(.5) > 0 {
			ratio = fmt.Sprintf("%.2f× %s", float64(r.Quantile(.5))/float64(f.Quantile(.5)), f.Name)
		} else if r.Floor != "" {
			ratio = r.Floor
		}
		fails := fmt.Sprint(r.Fails)
		if r.Note != "" {
			fails += " (" + r.Note + ")"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s |\n", r.Name, len(r.Samples),
			ms(r.Quantile(.5)), ms(r.Quantile(.9)), ms(r.Quantile(.99)), ratio, fails)
	}
	fmt.Fprintf(w, "\nMachine: %s\n", Machine())
}

// Machine describes where the numbers came from.
func Machine() string {
	cpu := "unknown CPU"
	if out, err := exec.Command("sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").Output(); err == nil {
		cpu = strings.TrimSpace(string(out))
	}
	kernel := ""
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		kernel = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d cores (%s), Linux %s, %s, %s", runtime.NumCPU(), cpu, kernel, runtime.Version(), time.Now().UTC().Format("2006-01-02"))
}
