package isol8_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

// TestWarmMatchesCold runs the same requests on an engine without a pool
// (the exec path in a new sandbox) and on a warm one (an agent in a pooled
// sandbox): masking, truncation, the setup phase, outputPaths, exit codes,
// tracebacks and timeouts must come out the same.
func TestWarmMatchesCold(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		secret := map[string]string{"API_TOKEN": "tok-7f3a9c1e"}
		cold, _ := warmEngine(t, backend, isol8.Options{PoolSize: &isol8.PoolSize{}, Secrets: secret, MaxOutputSize: 4096, TimeoutMs: 3000})
		warm, _ := warmEngine(t, backend, isol8.Options{PoolStrategy: "fast", PoolSize: &isol8.PoolSize{Clean: 1, Dirty: 1},
			Secrets: secret, MaxOutputSize: 4096, TimeoutMs: 3000})
		cases := []struct {
			name string
			req  isol8.Request
		}{
			{"hello", isol8.Request{Runtime: isol8.Python, Code: "print('hello')"}},
			{"exit code and stderr", isol8.Request{Runtime: isol8.Python, Code: "import sys\nprint('out')\nsys.stderr.write('err\\n')\nsys.exit(7)"}},
			{"traceback", isol8.Request{Runtime: isol8.Python, Code: "def f():\n    raise KeyError('k')\nf()"}},
			{"syntax error", isol8.Request{Runtime: isol8.Python, Code: "print(\n"}},
			{"secret masked", isol8.Request{Runtime: isol8.Python, Code: "import os, sys, time\nt = os.environ['API_TOKEN']\nprint(t)\nsys.stdout.write(t[:5]); sys.stdout.flush(); time.sleep(0.1); print(t[5:])\nraise ValueError(t)"}},
			{"truncated", isol8.Request{Runtime: isol8.Python, Code: "print('é' * 10000)"}},
			{"stdin, env, argv", isol8.Request{Runtime: isol8.Python, Code: "import sys, os\nprint(sys.argv, os.environ['GREETING'], sys.stdin.read())",
				Stdin: "from stdin", Env: map[string]string{"GREETING": "hi"}}},
			{"files and outputs", isol8.Request{Runtime: isol8.Python,
				Code:        "import os\nopen('/sandbox/out/b.txt','w').write(open('/sandbox/in/a.txt').read().upper())\nos.symlink('/etc/passwd', '/sandbox/out/link')\nos.mkfifo('/sandbox/out/fifo')",
				Files:       map[string][]byte{"/sandbox/in/a.txt": []byte("abc")},
				OutputPaths: []string{"/sandbox/out/b.txt", "/sandbox/out/link", "/sandbox/out/fifo", "/sandbox/out/missing"}}},
			{"workdir", isol8.Request{Runtime: isol8.Python, Code: "import os; print(os.getcwd())", Workdir: "/sandbox/w", Files: map[string][]byte{"/sandbox/w/x": nil}}},
			{"setup script", isol8.Request{Runtime: isol8.Python, SetupScript: "echo setting up; echo ready > /sandbox/ready", Code: "print(open('/sandbox/ready').read())"}},
			{"failing setup", isol8.Request{Runtime: isol8.Python, SetupScript: "echo no >&2; exit 4", Code: "print('never')"}},
			{"cmd", isol8.Request{Runtime: isol8.Python, Cmd: "echo $HOME; yes | head -3; exit 3"}},
			{"killed by a signal", isol8.Request{Runtime: isol8.Python, Code: "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)"}},
			{"timeout", isol8.Request{Runtime: isol8.Python, Code: "print('spinning', flush=True)\nwhile True: pass", TimeoutMs: 1500}},
			{"node hello", isol8.Request{Runtime: isol8.Node, Code: "console.log('hi', process.argv.length)"}},
			{"node error", isol8.Request{Runtime: isol8.Node, Code: "console.error('bad'); process.exitCode = 5"}},
			{"node cjs", isol8.Request{Runtime: isol8.Node, FileExtension: ".cjs", Code: "console.log(typeof require, require.main === module)"}},
			{"bash", isol8.Request{Runtime: isol8.Bash, Code: "echo bash $((6*7))"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c, w := tc.req, tc.req
				rc := execute(t, cold, &c)
				rw := execute(t, warm, &w)
				for _, d := range diffResults(rc, rw) {
					t.Error(d)
				}
			})
		}
		if s := warm.PoolStats(); s.WarmRuns < int64(len(cases))/2 {
			t.Errorf("the warm engine's pool was hardly hit: %+v", s)
		}
	})
}

func diffResults(cold, warm *isol8.Result) []string {
	var out []string
	check := func(name string, c, w any) {
		if !reflect.DeepEqual(c, w) {
			out = append(out, fmt.Sprintf("%s: cold %#v, warm %#v", name, c, w))
		}
	}
	check("stdout", cold.Stdout, warm.Stdout)
	check("stderr", cold.Stderr, warm.Stderr)
	check("exitCode", cold.ExitCode, warm.ExitCode)
	check("truncated", cold.Truncated, warm.Truncated)
	check("timedOut", cold.TimedOut, warm.TimedOut)
	check("oomKilled", cold.OOMKilled, warm.OOMKilled)
	check("files", cold.Files, warm.Files)
	return out
}

// TestWarmLimits: the memory limit, a background child that keeps stdout
// open, and a fork bomb behave on the warm path as the security cases
// require, and the pool recovers for the next run.
func TestWarmLimits(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		e, _ := warmEngine(t, backend, isol8.Options{PoolStrategy: "fast", PoolSize: &isol8.PoolSize{Clean: 1, Dirty: 1},
			MemoryLimit: "96m", TimeoutMs: 20000})
		ok := func() {
			t.Helper()
			if r := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "print('ok')"}); r.Stdout != "ok\n" {
				t.Fatalf("the next run: %+v", r)
			}
		}
		ok()
		res := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "x = []\nwhile True: x.append(bytearray(8 << 20))"})
		if !res.OOMKilled || res.ExitCode != 137 {
			t.Errorf("memory balloon: %+v", res)
		}
		ok()
		// The child holds stdout for 60 s; the run (timeout 20 s) must end
		// when the program does, with the child dead.
		res = execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "import subprocess\nsubprocess.Popen(['sleep', '60'])\nprint('main done')"})
		if res.Stdout != "main done\n" || res.TimedOut || res.ExitCode != 0 {
			t.Errorf("background child holding stdout: %+v", res)
		}
		res = execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", TimeoutMs: 2000})
		if !res.TimedOut || res.ExitCode != 137 {
			t.Errorf("fork bomb: %+v", res)
		}
		ok()
		if s := e.PoolStats(); s.WarmRuns == 0 {
			t.Errorf("the pool was not hit: %+v", s)
		}
	})
}

// TestBoundedSandboxes: a burst of parallel runs never makes the engine
// hold more sandboxes than maxConcurrent, pooled ones included, as the
// backend lists them; the burst is served mostly warm.
func TestBoundedSandboxes(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		const maxConcurrent, runs = 4, 40
		e, sandboxes := warmEngine(t, backend, isol8.Options{MaxConcurrent: maxConcurrent, PoolStrategy: "fast",
			PoolSize: &isol8.PoolSize{Clean: 2, Dirty: 2}})
		execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "print(1)"}) // warm the key up

		var peak atomic.Int64
		stop := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for {
				if n := int64(sandboxes()); n > peak.Load() {
					peak.Store(n)
				}
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
		var wg sync.WaitGroup
		var failures atomic.Int64
		for i := 0; i < runs; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				res, err := e.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: fmt.Sprintf("import time; time.sleep(0.05); print(%d)", i)})
				if err != nil || strings.TrimSpace(res.Stdout) != fmt.Sprint(i) {
					failures.Add(1)
					t.Errorf("run %d: %v %+v", i, err, res)
				}
			}()
		}
		wg.Wait()
		close(stop)
		<-watched
		if p := peak.Load(); p > maxConcurrent {
			t.Errorf("%d sandboxes at once, maxConcurrent %d", p, maxConcurrent)
		}
		s := e.PoolStats()
		t.Logf("peak %d sandboxes; %+v", peak.Load(), s)
		if s.WarmRuns < runs/2 {
			t.Errorf("only %d of %d runs were warm", s.WarmRuns, runs)
		}
	})
}
