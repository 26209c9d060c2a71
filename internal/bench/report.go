package bench

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// WriteReport prints the report as Markdown tables, with the machine the
// numbers came from.
func WriteReport(w io.Writer, rep *Report) {
	WriteTable(w, rep.Rows)
	if len(rep.Batches) > 0 {
		fmt.Fprintf(w, "\n| batch | runs | at once | wall s | runs/s | per run p50 / p99 ms | goal | failures / note |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---|---|\n")
		for _, b := range rep.Batches {
			goal := fmt.Sprintf("≥ %.0f runs/s, no failures: %s", b.Goal, check(b.PerSecond() >= b.Goal && b.Fails == 0))
			fmt.Fprintf(w, "| %s | %d | %d | %.2f | %.1f | %s / %s | %s | %s |\n", b.Name, b.Runs, b.Concurrency,
				b.Wall.Seconds(), b.PerSecond(), ms(b.Latency.Quantile(.5)), ms(b.Latency.Quantile(.99)),
				goal, failNote(b.Fails, b.Note))
		}
	}
	if len(rep.Memory) > 0 {
		fmt.Fprintf(w, "\n| idle warm sandbox | measured | cgroup MB each | of which anon MB | PSS MB, processes in its cgroup | PSS MB outside it (Docker's shim) | goal (cgroup) |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---|\n")
		for _, m := range rep.Memory {
			goal := fmt.Sprintf("≤ %.0f MB: %s", m.Goal, check(m.Count > 0 && m.Cgroup <= m.Goal))
			if m.Note != "" {
				goal += " (" + m.Note + ")"
			}
			fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %s |\n", m.Name, m.Count, m.Cgroup, m.Anon, m.PSS, m.Outside, goal)
		}
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "\nNot measured: %s\n", s)
	}
	fmt.Fprintf(w, "\nMachine: %s\n", Machine())
}

// WriteTable prints the latency rows as a Markdown table.
func WriteTable(w io.Writer, rows []*Row) {
	byName := map[string]*Row{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	fmt.Fprintf(w, "| path | runs | p50 ms | p90 ms | p99 ms | vs floor (p50) | goal | failures / note |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---|---|---|\n")
	for _, r := range rows {
		if r.Derived {
			fmt.Fprintf(w, "| %s | – | %s | – | – | – | %s | |\n", r.Name, ms(r.P50), goal(r, 0))
			continue
		}
		ratio, rv := "floor", 0.0
		if f := byName[r.Floor]; f != nil && f.Quantile(.5) > 0 && len(r.Samples) > 0 {
			rv = float64(r.Quantile(.5)) / float64(f.Quantile(.5))
			ratio = fmt.Sprintf("%.2f× %s", rv, shortName(f.Name))
		} else if r.Floor != "" {
			ratio = "– (no floor)"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", r.Name, len(r.Samples),
			ms(r.Quantile(.5)), ms(r.Quantile(.9)), ms(r.Quantile(.99)), ratio, goal(r, rv), failNote(r.Fails, r.Note))
	}
}

// goal says whether a row meets its goal (judged on p50).
func goal(r *Row, ratio float64) string {
	var parts []string
	if r.MaxRatio > 0 {
		parts = append(parts, fmt.Sprintf("≤ %.2g× floor: %s", r.MaxRatio, check(ratio > 0 && ratio <= r.MaxRatio)))
	}
	if r.MaxP50 > 0 {
		ok := r.Quantile(.5) <= r.MaxP50 && (r.Derived || len(r.Samples) > 0)
		parts = append(parts, fmt.Sprintf("p50 ≤ %s ms: %s", ms(r.MaxP50), check(ok)))
	}
	return strings.Join(parts, "; ")
}

func shortName(floor string) string {
	if strings.HasPrefix(floor, "docker API") {
		return "docker API"
	}
	return "bare"
}

func failNote(fails int, note string) string {
	s := fmt.Sprint(fails)
	if note != "" {
		s += " (" + strings.ReplaceAll(note, "|", "/") + ")"
	}
	return s
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
	docker := ""
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Output(); err == nil {
		docker = ", Docker " + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d cores (%s), Linux %s%s, %s, %s", runtime.NumCPU(), cpu, kernel, docker,
		runtime.Version(), time.Now().UTC().Format("2006-01-02"))
}
