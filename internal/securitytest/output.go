package securitytest

import (
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

const (
	floodLimit = 1 << 20   // maxOutputSize of the flood cases
	floodTotal = 100 << 20 // what the finite floods write
	// heapSlack is how far past the output limit the test process's heap
	// may grow while a flood passes through the engine.
	heapSlack = 8 << 20
)

func outputCases() []Case {
	return []Case{
		floodCase("output/100mb-lines-stdout", isol8.Python, "stdout", floodTotal, 20000,
			"import sys\nline = b'x' * 1023 + b'\\n'\nw = sys.stdout.buffer.write\n"+
				"for _ in range(100 * 1024):\n    w(line)\nsys.stdout.buffer.flush()\n",
			strings.Repeat(strings.Repeat("x", 1023)+"\n", floodLimit/1024)),
		floodCase("output/100mb-one-line-stdout", isol8.Python, "stdout", floodTotal, 20000,
			"import sys\nsys.stdout.buffer.write(b'y' * (100 << 20))\nsys.stdout.buffer.flush()\n",
			strings.Repeat("y", floodLimit)),
		floodCase("output/100mb-stderr", isol8.Python, "stderr", floodTotal, 20000,
			"import sys\nsys.stderr.buffer.write(b'z' * (100 << 20))\nsys.stderr.buffer.flush()\n",
			strings.Repeat("z", floodLimit)),
		// yes never stops: the timeout ends it, and the output is still cut.
		floodCase("output/yes", isol8.Bash, "stdout", -1, 3000, "exec yes\n",
			strings.Repeat("y\n", floodLimit/2)),
	}
}

var noteRE = regexp.MustCompile(`^\n\[isol8: (stdout|stderr) truncated: (\d+) bytes written, limit (\d+) bytes\]\n`)

// floodCase: a program writes far more than maxOutputSize. The stream must
// be cut at exactly the limit (then the truncation note), the result must
// say truncated, and the test process's heap must stay near the limit.
func floodCase(name string, rt isol8.Runtime, stream string, total, timeoutMs int64, code, want string) Case {
	return Case{Name: name, Serial: true, Budget: 90 * time.Second, Attack: func(t *testing.T, h *H) {
		e := h.Engine(rt, isol8.Options{MaxOutputSize: floodLimit, TimeoutMs: timeoutMs})
		req := h.Request(rt, code)
		heap := startHeapWatch()
		res, err := e.Execute(h.Ctx, req)
		grew := heap.stop()
		logResult(t, "run", res, err)
		if !mustRun(t, res, err) {
			return
		}
		out := res.Stdout
		if stream == "stderr" {
			out = res.Stderr
		}
		if !res.Truncated {
			t.Errorf("truncated is false after a flood")
		}
		if total < 0 && !res.TimedOut {
			t.Errorf("a writer that never stops was not ended by the timeout")
		}
		kept, note := out, ""
		if len(out) >= floodLimit {
			kept, note = out[:floodLimit], out[floodLimit:]
		}
		m := noteRE.FindStringSubmatch(note)
		switch {
		case m == nil:
			t.Errorf("%s is not cut at exactly %d bytes followed by the truncation note: %d bytes, tail %q",
				stream, floodLimit, len(out), tail(out, 200))
		case kept != want:
			t.Errorf("the %d bytes kept of %s are not the first bytes the program wrote", floodLimit, stream)
		default:
			written, _ := strconv.ParseInt(m[2], 10, 64)
			if m[3] != strconv.Itoa(floodLimit) || (total >= 0 && written != total) {
				t.Errorf("truncation note %q: want %d bytes written (when known) and limit %d", strings.TrimSpace(m[0]), total, floodLimit)
			}
			if rest := note[len(m[0]):]; rest != "" {
				t.Errorf("bytes after the truncation note: %q", clip(rest, 200))
			}
		}
		t.Logf("heap: base %s, peak HeapInuse +%s, Sys +%s, after GC +%s",
			mib(grew.base), mib(grew.peakInuse), mib(grew.sys), mib(grew.after))
		if grew.peakInuse > floodLimit+heapSlack {
			t.Errorf("the test process's heap grew by %s during a %s flood; want at most the limit (%s) + %s",
				mib(grew.peakInuse), stream, mib(floodLimit), mib(heapSlack))
		}
		if grew.sys > floodLimit+2*heapSlack {
			t.Errorf("the test process took %s more memory from the OS during a %s flood", mib(grew.sys), stream)
		}
		h.AssertGone(t, res.ContainerID)
	}}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// heapWatch samples the test process's heap while a run goes on.
type heapWatch struct {
	base, sys0 uint64
	mu         sync.Mutex
	peak       uint64
	done       chan struct{}
	wg         sync.WaitGroup
}

type heapGrowth struct{ base, peakInuse, sys, after int64 }

func startHeapWatch() *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &heapWatch{base: ms.HeapInuse, sys0: ms.Sys, peak: ms.HeapInuse, done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				w.mu.Lock()
				w.peak = max(w.peak, ms.HeapInuse)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *heapWatch) stop() heapGrowth {
	close(w.done)
	w.wg.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.mu.Lock()
	peak := max(w.peak, ms.HeapInuse)
	w.mu.Unlock()
	sys := int64(ms.Sys) - int64(w.sys0)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return heapGrowth{base: int64(w.base), peakInuse: int64(peak) - int64(w.base), sys: sys,
		after: int64(ms.HeapInuse) - int64(w.base)}
}
