package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

func (s *suite) testExecBasics(t *testing.T, sb sandbox.Sandbox) {
	prog := `import os, sys, json
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}))`
	cases := []struct {
		name    string
		argv    []string
		env     []string
		dir     string
		wantDir string
	}{
		{"default dir", []string{"a b", "$(id)", "'; rm -rf /", ""}, nil, "", sandbox.SandboxDir},
		{"env and dir", []string{"x"}, []string{"FOO=bar baz", "EMPTY=", "MULTI=a=b"}, "/tmp", "/tmp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, sb, sandbox.ExecSpec{
				Argv: append([]string{"python3", "-c", prog}, c.argv...),
				Env:  c.env,
				Dir:  c.dir,
			})
			if r.status.Code != 0 {
				t.Fatalf("exit %d: %s", r.status.Code, r.stderr)
			}
			var got struct {
				Argv []string          `json:"argv"`
				Cwd  string            `json:"cwd"`
				Env  map[string]string `json:"env"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("%v: %q", err, r.stdout)
			}
			if strings.Join(got.Argv, "\x00") != strings.Join(c.argv, "\x00") {
				t.Errorf("argv %q, want %q (passed literally)", got.Argv, c.argv)
			}
			if got.Cwd != c.wantDir {
				t.Errorf("cwd %q, want %q", got.Cwd, c.wantDir)
			}
			for _, kv := range c.env {
				k, v, _ := strings.Cut(kv, "=")
				if got.Env[k] != v {
					t.Errorf("env %s=%q, want %q", k, got.Env[k], v)
				}
			}
			for k, v := range got.Env {
				if k == hostSentinel || v == os.Getenv(hostSentinel) {
					t.Errorf("the host's environment leaked: %s=%s", k, v)
				}
			}
		})
	}
}

func testStdin(t *testing.T, sb sandbox.Sandbox) {
	in := strings.Repeat("line of input\n", 20000) + "\x00\xff end"
	cases := []struct {
		name  string
		stdin io.Reader
		want  string
	}{
		{"data", strings.NewReader(in), in},
		{"empty", strings.NewReader(""), ""},
		{"none", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, sb, sandbox.ExecSpec{
				Argv:  []string{"python3", "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"},
				Stdin: c.stdin,
			})
			if r.status.Code != 0 || r.stdout != c.want {
				t.Errorf("exit %d, echoed %d bytes, want %d (stderr %q)", r.status.Code, len(r.stdout), len(c.want), r.stderr)
			}
		})
	}
}

func testExitCodes(t *testing.T, sb sandbox.Sandbox) {
	cases := []struct {
		cmd  string
		want int
	}{
		{"true", 0},
		{"exit 1", 1},
		{"exit 42", 42},
		{"exit 255", 255},
		{"kill -KILL $$", 137},
		{"kill -TERM $$", 143},
	}
	for _, c := range cases {
		t.Run(c.cmd, func(t *testing.T) {
			if r := sh(t, sb, c.cmd); r.status.Code != c.want {
				t.Errorf("exit %d, want %d", r.status.Code, c.want)
			}
		})
	}
	t.Run("missing program", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"/no/such/program"}})
		if err == nil && st.Code == 0 {
			t.Error("running a missing program succeeded")
		}
		t.Logf("missing program: exit %d, %v", st.Code, err)
	})
}

// testStreaming proves output reaches the writers while the process runs,
// and that stdout and stderr stay apart: the program waits for a line on
// stdin that the test sends only after seeing the first output.
func testStreaming(t *testing.T, sb sandbox.Sandbox) {
	prog := `import sys
print("out-1", flush=True)
print("err-1", file=sys.stderr, flush=True)
sys.stdin.readline()
print("out-2")
print("err-2", file=sys.stderr)`
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	var out, errb syncBuffer
	done := make(chan error, 1)
	var st sandbox.ExitStatus
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var err error
		st, err = sb.Exec(ctx, sandbox.ExecSpec{
			Argv: []string{"python3", "-c", prog}, Stdin: stdinR, Stdout: &out, Stderr: &errb,
		})
		done <- err
	}()
	if !waitFor(30*time.Second, func() bool {
		return strings.Contains(out.String(), "out-1") && strings.Contains(errb.String(), "err-1")
	}) {
		t.Fatalf("no output while the process runs: stdout %q stderr %q", out.String(), errb.String())
	}
	if _, err := stdinW.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st.Code != 0 || out.String() != "out-1\nout-2\n" || errb.String() != "err-1\nerr-2\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", st.Code, out.String(), errb.String())
	}
}

// testBackgroundChild leaves a child holding stdout: Exec must return when
// the process it ran exits. It has its own sandbox because some engines
// (Docker 20.10) delay the next exec in the same container while such a
// child lives; the delay is logged, not failed.
func (s *suite) testBackgroundChild(t *testing.T) {
	t.Parallel()
	sb := s.create(t, nil)
	start := time.Now()
	// The output written just before exiting must arrive in full too.
	r := sh(t, sb, `sleep 300 & head -c 2000000 /dev/zero | tr '\0' x; echo; echo started`)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Exec took %v: a background child holding stdout kept it waiting", d)
	}
	want := strings.Repeat("x", 2000000) + "\nstarted\n"
	if r.status.Code != 0 || r.stdout != want {
		t.Errorf("exit %d, %d bytes of stdout, want %d ending in %q", r.status.Code, len(r.stdout), len(want), "started")
	}
	start = time.Now()
	if r := sh(t, sb, "echo next"); r.stdout != "next\n" {
		t.Errorf("next exec: exit %d, stdout %q", r.status.Code, r.stdout)
	}
	t.Logf("the next exec took %v", time.Since(start).Round(time.Millisecond))
}

// testCancel cancels an Exec: it must return promptly with ctx's error.
func (s *suite) testCancel(t *testing.T) {
	t.Parallel()
	sb := s.create(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"sleep", "300"}})
	d := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want context.DeadlineExceeded", err)
	}
	if d > 3*time.Second {
		t.Errorf("Exec returned %v after its context ended", d-500*time.Millisecond)
	}
}

// testSignals delivers signals to a running process through ExecSpec.Signals.
func testSignals(t *testing.T, sb sandbox.Sandbox) {
	// os.write, not print: a signal that lands while print is still inside
	// the buffered writer makes the handler's print fail ("reentrant
	// call"), a race of the probe, not of the backend.
	prog := `import os, signal, sys, time
def on(sig, frame):
    os.write(1, ("got " + signal.Signals(sig).name + "\n").encode())
    os._exit(3)
signal.signal(signal.SIGINT, on)
signal.signal(signal.SIGTERM, on)
os.write(1, b"ready\n")
time.sleep(60)`
	cases := []struct {
		signal   string
		wantCode int
		wantOut  string
	}{
		{"SIGINT", 3, "got SIGINT\n"},
		{"SIGTERM", 3, "got SIGTERM\n"},
		{"SIGKILL", 137, ""},
	}
	for _, c := range cases {
		t.Run(c.signal, func(t *testing.T) {
			t.Parallel()
			sigs := make(chan string, 1)
			var out syncBuffer
			done := make(chan struct{})
			var st sandbox.ExitStatus
			var err error
			go func() {
				defer close(done)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				st, err = sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"python3", "-c", prog}, Stdout: &out, Signals: sigs})
			}()
			if !waitFor(30*time.Second, func() bool { return strings.Contains(out.String(), "ready") }) {
				t.Fatalf("program not ready: %q", out.String())
			}
			start := time.Now()
			sigs <- c.signal
			<-done
			if err != nil {
				// stdout tells a lost signal ("ready" alone) from a lost exit.
				t.Fatalf("%v after %s; stdout %q", err, c.signal, out.String())
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v to end after %s", d, c.signal)
			}
			if st.Code != c.wantCode || strings.TrimPrefix(out.String(), "ready\n") != c.wantOut {
				t.Errorf("exit %d, stdout %q; want %d, %q", st.Code, out.String(), c.wantCode, c.wantOut)
			}
		})
	}
}
