package isol8_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

// TestStateful: in a stateful persistent session, one run's globals are
// the next run's; a dead kernel or a timeout is reported and the session
// goes on with a new kernel (or sandbox); RestartKernel empties the state.
func TestStateful(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		stateful := true
		for _, tc := range []struct {
			rt                   isol8.Runtime
			set, get, has, crash string
			crashCode            int
		}{
			{isol8.Python, "x = 42", "print(x)", "print('x' in globals())", "import os; os._exit(3)", 3},
			{isol8.Node, "x = 42", "console.log(x)", "console.log(typeof x !== 'undefined')", "process.kill(process.pid, 'SIGKILL')", 137},
		} {
			t.Run(string(tc.rt), func(t *testing.T) {
				t.Parallel()
				e, _ := warmEngine(t, backend, isol8.Options{Mode: isol8.Persistent, Stateful: &stateful, TimeoutMs: 10000})
				run := func(code string, timeoutMs int64) *isol8.Result {
					t.Helper()
					return execute(t, e, &isol8.Request{Runtime: tc.rt, Code: code, TimeoutMs: timeoutMs})
				}
				if r := run(tc.set, 0); r.ExitCode != 0 {
					t.Fatalf("set: %+v", r)
				}
				if r := run(tc.get, 0); r.Stdout != "42\n" {
					t.Fatalf("the second run does not see the first one's x: %+v", r)
				}
				// An exception leaves the state as it was.
				run("raise_me()", 0)
				if r := run(tc.get, 0); r.Stdout != "42\n" {
					t.Fatalf("state lost after an exception: %+v", r)
				}

				r := run(tc.crash, 0)
				if r.ExitCode != tc.crashCode || !strings.Contains(r.Stderr, "kernel exited") {
					t.Errorf("kernel crash: %+v", r)
				}
				if r := run(tc.has, 0); r.Stdout != "False\n" && r.Stdout != "false\n" {
					t.Errorf("after a crash the state should be empty: %+v", r)
				}

				run(tc.set, 0)
				r = run("while True: pass", 1500)
				if tc.rt == isol8.Node {
					r = run("for (;;) {}", 1500)
				}
				if !r.TimedOut || r.ExitCode != 137 || !strings.Contains(r.Stderr, "state and files are lost") {
					t.Errorf("timeout: %+v", r)
				}
				if r := run(tc.has, 0); r.Stdout != "False\n" && r.Stdout != "false\n" {
					t.Errorf("after a timeout the state should be empty: %+v", r)
				}

				run(tc.set, 0)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := e.RestartKernel(ctx); err != nil {
					t.Fatal(err)
				}
				if r := run(tc.has, 0); r.Stdout != "False\n" && r.Stdout != "false\n" {
					t.Errorf("after RestartKernel the state should be empty: %+v", r)
				}
			})
		}
	})
}

// TestStatefulNodeAsync: a run ends when its asynchronous work is done,
// and process.exit ends the run, not the kernel.
func TestStatefulNodeAsync(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		stateful := true
		e, _ := warmEngine(t, backend, isol8.Options{Mode: isol8.Persistent, Stateful: &stateful})
		r := execute(t, e, &isol8.Request{Runtime: isol8.Node, Code: "var n = 1; setTimeout(() => { n = 2; console.log('later') }, 200); console.log('now')"})
		if r.Stdout != "now\nlater\n" {
			t.Errorf("async output: %+v", r)
		}
		r = execute(t, e, &isol8.Request{Runtime: isol8.Node, Code: "console.log(n); process.exit(4)"})
		if r.Stdout != "2\n" || r.ExitCode != 4 {
			t.Errorf("process.exit: %+v", r)
		}
		r = execute(t, e, &isol8.Request{Runtime: isol8.Node, Code: "console.log(n + 1)"})
		if r.Stdout != "3\n" {
			t.Errorf("state after process.exit: %+v", r)
		}
	})
}
