package agent_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8/agent"
	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/sandbox/docker"
)

var (
	backendOnce sync.Once
	backend     *docker.Backend
	backendErr  error
)

// newSandbox makes a hardened sandbox of image on the local Docker engine.
// Docker being down fails the test; ISOL8_SKIP_DOCKER=1 opts out.
func newSandbox(t testing.TB, image string) sandbox.Sandbox {
	t.Helper()
	if os.Getenv("ISOL8_SKIP_DOCKER") == "1" {
		t.Skip("ISOL8_SKIP_DOCKER=1: not testing against docker")
	}
	backendOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		backend, backendErr = docker.Open(ctx, sandbox.Config{Owner: "isol8-test-agent"})
	})
	if backendErr != nil {
		t.Fatalf("docker backend: %v\n(set ISOL8_SKIP_DOCKER=1 to skip these tests deliberately)", backendErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := backend.Create(ctx, sandbox.Spec{Image: image, MemoryBytes: 256 << 20, CPUs: 1, Pids: 64,
		SandboxSize: 64 << 20, TmpSize: 64 << 20, Network: sandbox.NetworkNone, ReadonlyRootFS: true})
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = sb.Destroy(ctx)
	})
	return sb
}

func start(t testing.TB, lang agent.Lang) (sandbox.Sandbox, *agent.Conn) {
	t.Helper()
	sb := newSandbox(t, "isol8:"+string(lang))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := agent.Start(ctx, sb, lang)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sb, c
}

var baseEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/sandbox", "LANG=C.UTF-8", "TMPDIR=/tmp"}

type result struct {
	agent.Outcome
	stdout, stderr string
}

func run(t testing.TB, c *agent.Conn, job agent.Job) result {
	t.Helper()
	if job.Env == nil {
		job.Env = baseEnv
	}
	if job.Dir == "" {
		job.Dir = "/sandbox"
	}
	if job.MaxFileSize == 0 {
		job.MaxFileSize = 1 << 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	o, err := c.Run(ctx, job, &out, &errb)
	if err != nil {
		t.Fatalf("run: %v (stdout %q, stderr %q)", err, out.String(), errb.String())
	}
	return result{o, out.String(), errb.String()}
}

// code is a job that runs src as the language's code file.
func code(lang agent.Lang, src string) agent.Job {
	file := "/sandbox/main.py"
	if lang == agent.Node {
		file = "/sandbox/main.mjs"
	}
	return agent.Job{Mode: agent.ModeCode, CodeFile: file, Files: []agent.File{{Path: file, Data: []byte(src)}}}
}

func TestRunAndReset(t *testing.T) {
	for _, tc := range []struct {
		lang      agent.Lang
		hello     string
		fail      string
		failCode  int
		failWords string
	}{
		{agent.Python, "print('hello', 6*7)", "import sys; print('bad', file=sys.stderr); sys.exit(3)", 3, "bad"},
		{agent.Node, "console.log('hello', 6*7)", "console.error('bad'); process.exit(3)", 3, "bad"},
	} {
		t.Run(string(tc.lang), func(t *testing.T) {
			t.Parallel()
			_, c := start(t, tc.lang)
			r := run(t, c, code(tc.lang, tc.hello))
			if r.stdout != "hello 42\n" || r.ExitCode != 0 {
				t.Fatalf("got %+v", r)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := c.Reset(ctx); err != nil {
				t.Fatal(err)
			}
			r = run(t, c, code(tc.lang, tc.fail))
			if r.ExitCode != tc.failCode || !strings.Contains(r.stderr, tc.failWords) {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

func TestPythonFidelity(t *testing.T) {
	_, c := start(t, agent.Python)
	src := `import sys, os
print(sys.argv, __name__, __file__, sys.path[0])
print(sorted(k for k in os.environ))
print(os.getcwd(), os.getpgrp() == os.getpid(), sys.stdout.write_through)
data = sys.stdin.read()
print(repr(data))
raise ValueError("boom")
`
	j := code(agent.Python, src)
	j.Stdin = []byte("some input")
	r := run(t, c, j)
	want := "['/sandbox/main.py'] __main__ /sandbox/main.py /sandbox\n" +
		"['HOME', 'HOSTNAME', 'LANG', 'PATH', 'TMPDIR']\n" +
		"/sandbox True True\n'some input'\n"
	if r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	wantErr := "Traceback (most recent call last):\n  File \"/sandbox/main.py\", line 7, in <module>\n    raise ValueError(\"boom\")\nValueError: boom\n"
	if r.stderr != wantErr || r.ExitCode != 1 {
		t.Errorf("stderr %q (exit %d), want %q", r.stderr, r.ExitCode, wantErr)
	}
}

func TestExecAndErrors(t *testing.T) {
	_, c := start(t, agent.Python)
	r := run(t, c, agent.Job{Mode: agent.ModeExec, Argv: []string{"bash", "-c", "echo $FOO; yes | head -2; kill -9 $$"},
		Env: append(append([]string{}, baseEnv...), "FOO=bar")})
	if r.stdout != "bar\ny\ny\n" || r.ExitCode != 137 {
		t.Fatalf("got %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	_, err := c.Run(ctx, agent.Job{Mode: agent.ModeExec, Argv: []string{"no-such-program"}, Env: baseEnv, Dir: "/sandbox"}, &out, &out)
	var je *agent.JobError
	if !errors.As(err, &je) {
		t.Fatalf("missing program: %v", err)
	}
	_, err = c.Run(ctx, agent.Job{Mode: agent.ModeExec, Argv: []string{"true"}, Env: baseEnv, Dir: "/sandbox/nope"}, &out, &out)
	if !errors.As(err, &je) {
		t.Fatalf("missing workdir: %v", err)
	}
	// The Conn still works after job errors.
	r = run(t, c, code(agent.Python, "print(1)"))
	if r.stdout != "1\n" {
		t.Fatalf("got %+v", r)
	}
}

// TestPythonJobPaths takes each way a Python job's process starts: the
// spare (a spec small enough to travel with its fds), a new fork when the
// spec is too large for that (the spare is dropped), the spare failing to
// start a job (a missing workdir) and the fork after it, and a setup
// script's code phase. A job's process holds none of the supervisor's
// modules, and the rehearsal in the spare leaves no trace.
func TestPythonJobPaths(t *testing.T) {
	_, c := start(t, agent.Python)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reset := func() {
		t.Helper()
		if err := c.Reset(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const look = `import sys, os
print(sorted(m for m in ("json", "base64", "select", "socket") if m in sys.modules),
      sys.modules["__main__"].__file__, sys.stdout.fileno(), sys.path.count("/sandbox"), len(os.environ.get("BIG", "")))
`
	r := run(t, c, code(agent.Python, look))
	if r.stdout != "[] /sandbox/main.py 1 1 0\n" || r.ExitCode != 0 {
		t.Errorf("in the spare: %+v", r)
	}
	reset()
	big := code(agent.Python, look)
	big.Env = append(append([]string{}, baseEnv...), "BIG="+strings.Repeat("x", 200<<10))
	if r := run(t, c, big); r.stdout != "[] /sandbox/main.py 1 1 204800\n" {
		t.Errorf("a spec larger than a message: %+v", r)
	}
	// No spare now: this one forks anew.
	if r := run(t, c, code(agent.Python, look)); r.stdout != "[] /sandbox/main.py 1 1 0\n" {
		t.Errorf("a new fork: %+v", r)
	}
	reset()
	var out bytes.Buffer
	var je *agent.JobError
	bad := code(agent.Python, "print(1)")
	bad.Env, bad.Dir, bad.MaxFileSize = baseEnv, "/sandbox/nope", 1<<20
	if _, err := c.Run(ctx, bad, &out, &out); !errors.As(err, &je) || !strings.Contains(je.Msg, "workdir") {
		t.Fatalf("a missing workdir in the spare: %v", err)
	}
	if r := run(t, c, code(agent.Python, "print(2)")); r.stdout != "2\n" {
		t.Errorf("after the spare failed: %+v", r)
	}
	reset()
	j := code(agent.Python, look)
	j.Files = append(j.Files, agent.File{Path: "/sandbox/setup.sh", Data: []byte("echo setting up"), Mode: 0o700})
	j.Setup = []string{"bash", "/sandbox/setup.sh"}
	if r := run(t, c, j); r.stdout != "setting up\n[] /sandbox/main.py 1 1 0\n" {
		t.Errorf("setup, then code: %+v", r)
	}
}

func BenchmarkRun(b *testing.B) {
	for _, lang := range []agent.Lang{agent.Python, agent.Node} {
		b.Run(string(lang), func(b *testing.B) {
			_, c := start(b, lang)
			j := code(lang, "print(1)")
			if lang == agent.Node {
				j = code(lang, "console.log(1)")
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := c.Reset(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				run(b, c, j)
			}
		})
	}
}
