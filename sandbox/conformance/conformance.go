// Package conformance is the test suite every sandbox backend must pass,
// run against the real mechanism (a Docker engine, real namespaces), never
// a mock. A backend's own test calls Run:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) sandbox.Backend { return open(t) }, image)
//	}
//
// The image must be a Debian-like root filesystem with bash, python3 and
// coreutils; the probes use nothing else.
package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// Sizes of the sandboxes the suite creates; small, so that filling them
// is quick.
const (
	memoryBytes = 256 << 20
	sandboxSize = 16 << 20
	tmpSize     = 8 << 20
	pidsLimit   = 64
)

// labelRun marks every sandbox of one Run, so the suite can check that it
// left nothing behind.
const labelRun = "dev.isol8.conformance"

// hostSentinel is set in the test process's environment; no sandbox may see it.
const hostSentinel = "ISOL8_CONFORMANCE_HOST_SECRET"

// suite is one Run's shared state.
type suite struct {
	b     sandbox.Backend
	image string
	run   string // unique id of this Run
}

// Run runs the conformance suite against the backend newBackend returns,
// creating sandboxes from image. Subtests run in parallel where they do
// not disturb each other. t must not be a parallel test: Run puts a
// sentinel in the process environment that no sandbox may see.
func Run(t *testing.T, newBackend func(t *testing.T) sandbox.Backend, image string) {
	t.Setenv(hostSentinel, "leaked-"+randomID(t))
	s := &suite{b: newBackend(t), image: image, run: randomID(t)}
	t.Cleanup(func() { s.removeLeftovers(t) })

	t.Run("group", func(t *testing.T) {
		t.Run("shared", s.sharedCases)
		t.Run("Limits", s.testLimits)
		t.Run("PidsLimit", s.testPids)
		t.Run("MemoryLimit", s.testOOM)
		t.Run("BackgroundChildKeepsStdout", s.testBackgroundChild)
		t.Run("Cancel", s.testCancel)
		t.Run("DestroyKillsEverything", s.testDestroy)
		t.Run("ListRemove", s.testListRemove)
		t.Run("MissingImage", s.testMissingImage)
	})
	t.Run("NothingLeft", func(t *testing.T) {
		left, err := s.b.List(context.Background(), map[string]string{labelRun: s.run})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("%d sandboxes left after the suite: %+v", len(left), left)
		}
	})
}

// sharedCases run in parallel in one sandbox: none of them changes what
// the others look at.
func (s *suite) sharedCases(t *testing.T) {
	t.Parallel()
	sb := s.create(t, nil)
	cases := []struct {
		name string
		fn   func(*testing.T, sandbox.Sandbox)
	}{
		{"ExecArgvEnvDir", s.testExecBasics},
		{"ExecStdin", testStdin},
		{"ExitCodes", testExitCodes},
		{"Signals", testSignals},
		{"StdoutStderrStreamed", testStreaming},
		{"Identity", testIdentity},
		{"RefusedSyscalls", testSyscalls},
		{"ReadonlyRoot", testReadonlyRoot},
		{"Mounts", testMounts},
		{"NoNetwork", testNoNetwork},
		{"WriteFiles", testWriteFiles},
		{"WriteFilesLinks", testWriteFilesLinks},
		{"ReadFile", testReadFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, sb)
		})
	}
}

// spec is the Spec every case starts from.
func (s *suite) spec(labels map[string]string) sandbox.Spec {
	l := map[string]string{labelRun: s.run}
	for k, v := range labels {
		l[k] = v
	}
	return sandbox.Spec{
		Image:          s.image,
		MemoryBytes:    memoryBytes,
		CPUs:           1,
		Pids:           pidsLimit,
		SandboxSize:    sandboxSize,
		TmpSize:        tmpSize,
		Network:        sandbox.NetworkNone,
		ReadonlyRootFS: true,
		Labels:         l,
	}
}

// create makes a sandbox destroyed when t ends; edit may change the spec.
func (s *suite) create(t *testing.T, edit func(*sandbox.Spec)) sandbox.Sandbox {
	t.Helper()
	spec := s.spec(nil)
	if edit != nil {
		edit(&spec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	sb, err := s.b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Logf("Create %s: %v", sb.ID(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sb.Destroy(ctx); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return sb
}

// removeLeftovers removes whatever a failed case left behind.
func (s *suite) removeLeftovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	left, err := s.b.List(ctx, map[string]string{labelRun: s.run})
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, i := range left {
		if err := s.b.Remove(ctx, i.ID); err != nil {
			t.Errorf("cleanup %s: %v", i.ID, err)
		}
	}
}

// result is what one exec produced.
type result struct {
	stdout, stderr string
	status         sandbox.ExitStatus
}

// run executes argv with a 60 s deadline and fails t on an Exec error.
func run(t *testing.T, sb sandbox.Sandbox, spec sandbox.ExecSpec) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb syncBuffer
	spec.Stdout, spec.Stderr = &out, &errb
	st, err := sb.Exec(ctx, spec)
	if err != nil {
		t.Fatalf("Exec %q: %v", spec.Argv, err)
	}
	return result{out.String(), errb.String(), st}
}

// py runs a python3 program and fails t unless it exits 0.
func py(t *testing.T, sb sandbox.Sandbox, program string, args ...string) string {
	t.Helper()
	r := run(t, sb, sandbox.ExecSpec{Argv: append([]string{"python3", "-c", program}, args...)})
	if r.status.Code != 0 {
		t.Fatalf("python3 exited %d\nstdout: %s\nstderr: %s", r.status.Code, r.stdout, r.stderr)
	}
	return r.stdout
}

// sh runs a bash command line (test code only, never user input).
func sh(t *testing.T, sb sandbox.Sandbox, cmd string) result {
	t.Helper()
	return run(t, sb, sandbox.ExecSpec{Argv: []string{"bash", "-c", cmd}})
}

// syncBuffer is a bytes.Buffer safe to read while an Exec writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

func randomID(t *testing.T) string {
	buf := make([]byte, 6)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(buf)
}

// fields parses "key value" lines, or "key\tvalue" when keys hold spaces.
func fields(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		sep := " "
		if strings.Contains(line, "\t") {
			sep = "\t"
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(line), sep); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
