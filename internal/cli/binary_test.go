package cli

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

// TestBinary builds cmd/isol8 with a version stamp and checks what only the
// real process shows: the -X version, os.Exit of the program's code, and
// standard input arriving through a real pipe.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "isol8")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/isol8/isol8/internal/cli.Version=v0.0.0-test", "github.com/isol8/isol8/cmd/isol8")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := isolate(t)

	run := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("isol8 %q: exit %d\nstdout: %q\nstderr: %q", args, code, stdout.String(), stderr.String())
		return code, stdout.String(), stderr.String()
	}

	if code, out, _ := run("", "version"); code != 0 || !strings.HasPrefix(out, "isol8 v0.0.0-test\n") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	if code, _, errOut := run("", "run", "--memory", "lots", "-e", "1"); code != 2 || !strings.Contains(errOut, "--memory") {
		t.Fatalf("bad flag: exit %d, %q", code, errOut)
	}
	if !dockerOK {
		return
	}
	if code, _, _ := run("", "run", "-e", "import sys; sys.exit(7)"); code != 7 {
		t.Fatalf("exit code %d, want 7", code)
	}
	if code, out, _ := run("print(sum(range(10)))\n", "run"); code != 0 || out != "45\n" {
		t.Fatalf("piped code: exit %d, %q", code, out)
	}
	if code, out, _ := run("x y z", "run", "x.py"); code != 2 || out != "" {
		t.Fatalf("missing FILE: exit %d", code)
	}
	writeFile(t, filepath.Join(dir, "count.py"), "import sys; print(len(sys.stdin.read().split()))")
	if code, out, _ := run("x y z", "run", "count.py"); code != 0 || out != "3\n" {
		t.Fatalf("piped stdin to FILE: exit %d, %q", code, out)
	}

	// isol8 run … | head -1: the reader goes away; isol8 must stop the
	// run and remove the sandbox, not die of SIGPIPE and leave it behind.
	before := cliSandboxes(t)
	cmd := exec.Command(bin, "run", "-e", "import time\nwhile True:\n    print('x' * 100, flush=True); time.sleep(0.01)")
	cmd.Dir = dir
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(pipe).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	pipe.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitBrokenPipe {
		t.Fatalf("closed stdout: %v, want exit %d", err, exitBrokenPipe)
	}
	if after := cliSandboxes(t); after > before {
		t.Fatalf("a sandbox was left behind (%d before, %d after)", before, after)
	}
}

// cliSandboxes counts the sandboxes the CLI's engines own.
func cliSandboxes(t *testing.T) int {
	t.Helper()
	b, err := isol8.OpenBackend(context.Background(), "docker", sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	list, err := b.List(context.Background(), map[string]string{sandbox.LabelOwner: cliOwner})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestSetupUpToDate: the images exist (TestMain made sure), so a setup is a
// quick no-op that says so.
func TestSetupUpToDate(t *testing.T) {
	needDocker(t)
	isolate(t)
	start := time.Now()
	o := cli(t, "setup")
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "isol8: the runtime images are up to date") {
		t.Fatalf("setup did not say the images are up to date:\n%s", o)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("a no-op setup took %s", took)
	}
}

// TestEnsureImageHook: the hook run gives the engine builds a runtime
// image (here a no-op, the image being up to date) and refuses others.
func TestEnsureImageHook(t *testing.T) {
	needDocker(t)
	isolate(t)
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	var w strings.Builder
	if err := ensureImage(cfg)(context.Background(), "isol8:bash", &w); err != nil {
		t.Fatalf("ensure isol8:bash: %v\n%s", err, w.String())
	}
	if !strings.Contains(w.String(), "isol8:bash is up to date") || !strings.Contains(w.String(), "isol8:bash is ready") {
		t.Fatalf("progress: %q", w.String())
	}
	err = ensureImage(cfg)(context.Background(), "someone/else:1", &w)
	if err == nil || !strings.Contains(err.Error(), "someone/else:1") {
		t.Fatalf("a foreign image: %v", err)
	}
}
