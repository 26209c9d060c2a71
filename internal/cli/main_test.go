package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/sandbox"
)

// dockerOK is false when ISOL8_SKIP_DOCKER=1; then tests that need the
// engine skip, and the rest (flags, config) still run.
var dockerOK = os.Getenv("ISOL8_SKIP_DOCKER") != "1"

// TestMain checks the Docker engine and builds the runtime images when
// they are missing, printing the build's progress. An unreachable engine
// fails the run: these tests never skip silently in CI.
func TestMain(m *testing.M) {
	if dockerOK {
		if err := prepareDocker(); err != nil {
			fmt.Fprintf(os.Stderr, "internal/cli tests need the Docker engine: %v\n(set ISOL8_SKIP_DOCKER=1 to skip the tests that use it)\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func prepareDocker() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b, err := isol8.OpenBackend(ctx, "docker", sandbox.Config{Owner: "isol8-cli-test"})
	if err != nil {
		return err
	}
	b.Close()
	builder, err := image.New()
	if err != nil {
		return err
	}
	defer builder.Close()
	opts, err := imageOptions(isol8.DefaultConfig(), false, image.LineWriter(os.Stderr, false))
	if err != nil {
		return err
	}
	return builder.EnsureRuntimeImages(ctx, opts)
}

func needDocker(t *testing.T) {
	t.Helper()
	if !dockerOK {
		t.Skip("ISOL8_SKIP_DOCKER=1")
	}
}

// outcome is what one in-process invocation did.
type outcome struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

func (o outcome) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", o.code, o.stdout, o.stderr)
}

// isolate gives a test its own working directory and home, and clears the
// environment overrides, so no real config file or variable leaks in.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "ISOL8_") && k != "ISOL8_SKIP_DOCKER" {
			t.Setenv(k, "")
		}
	}
	return dir
}

// cli runs the CLI in-process with no standard input (/dev/null).
func cli(t *testing.T, args ...string) outcome {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	return cliIn(t, null, args...)
}

// cliIn runs the CLI in-process with stdin as its standard input.
func cliIn(t *testing.T, stdin io.Reader, args ...string) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	code := Run(ctx, args, stdin, &stdout, &stderr)
	o := outcome{code: code, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	t.Logf("isol8 %q\n%s", args, o)
	return o
}

func expectCode(t *testing.T, o outcome, code int) {
	t.Helper()
	if o.code != code {
		t.Fatalf("exit code %d, want %d\n%s", o.code, code, o)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
