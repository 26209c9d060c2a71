//go:build linux

package native

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isol8/isol8/sandbox"
)

// BenchmarkNativeCold is one whole cold run: Create, Exec of
// python3 -c 'print(1)', Destroy. Each iteration also times a bare
// python3 on the host, the floor, so the ratio holds on a noisy machine:
// it reports p50, p90, the floor's p50, cold/floor, and the CPU time of a
// cold run (engine, nursery, init and python) next to the floor's.
func BenchmarkNativeCold(b *testing.B) {
	be := openBackend(b)
	spec := testSpec(testImage(b, be))
	ctx := context.Background()
	bare := barePython(b)
	run := func() {
		sb, err := be.Create(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"python3", "-c", "print(1)"}, Stdout: &out})
		if err != nil || st.Code != 0 || out.String() != "1\n" {
			b.Fatalf("exec: %v, %+v, %q", err, st, out.String())
		}
		if err := sb.Destroy(ctx); err != nil {
			b.Fatal(err)
		}
	}
	run() // warm the image cache, the compiled filter and the nursery
	n, err := getNursery()
	if err != nil {
		b.Fatal(err)
	}
	var cold, floor []time.Duration
	var coldCPU, floorCPU time.Duration
	for b.Loop() {
		start, cpu0, ncpu0 := time.Now(), selfCPU(), treeCPU(n.pid)
		run()
		cold = append(cold, time.Since(start))
		waitCleanups(b, be)
		coldCPU += selfCPU() - cpu0 + treeCPU(n.pid) - ncpu0
		b.StopTimer()
		start, cpu0 = time.Now(), selfCPU()
		bare()
		floor = append(floor, time.Since(start))
		floorCPU += selfCPU() - cpu0
		b.StartTimer()
	}
	c50, f50 := percentile(cold, 0.5), percentile(floor, 0.5)
	b.ReportMetric(c50, "p50-ms")
	b.ReportMetric(percentile(cold, 0.9), "p90-ms")
	b.ReportMetric(f50, "bare-p50-ms")
	b.ReportMetric(c50/f50, "x-bare")
	b.ReportMetric(float64(coldCPU.Microseconds())/1000/float64(len(cold)), "cpu-ms")
	b.ReportMetric(float64(floorCPU.Microseconds())/1000/float64(len(floor)), "bare-cpu-ms")
}

// selfCPU is the CPU time of this process and its reaped children.
func selfCPU() time.Duration {
	var s, c unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &s)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &c)
	return time.Duration(s.Utime.Nano() + s.Stime.Nano() + c.Utime.Nano() + c.Stime.Nano())
}

// treeCPU is the CPU time of a process and its reaped children (the
// nursery reaps the inits, the inits their processes), in clock ticks.
func treeCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// BenchmarkBarePython is the floor alone: python3 -c 'print(1)' on the host.
func BenchmarkBarePython(b *testing.B) {
	bare := barePython(b)
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		bare()
		times = append(times, time.Since(start))
	}
	b.ReportMetric(percentile(times, 0.5), "p50-ms")
	b.ReportMetric(percentile(times, 0.9), "p90-ms")
}

func barePython(b *testing.B) func() {
	python, err := exec.LookPath("python3")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		python = "/usr/bin/python3" // not a version manager's shim
	}
	return func() {
		out, err := exec.Command(python, "-c", "print(1)").Output()
		if err != nil || string(out) != "1\n" {
			b.Fatalf("%v %q", err, out)
		}
	}
}

// percentile of times, in milliseconds.
func percentile(times []time.Duration, p float64) float64 {
	s := slices.Clone(times)
	slices.Sort(s)
	return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
}
