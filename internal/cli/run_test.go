package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunEvalWithStdinFlag(t *testing.T) {
	needDocker(t)
	isolate(t)
	o := cli(t, "run", "-e", "import json,sys; d=json.load(sys.stdin); print(len(d))", "--stdin", `[{"x":1},{"x":2}]`)
	expectCode(t, o, 0)
	if o.stdout != "2\n" {
		t.Fatalf("stdout %q, want \"2\\n\"", o.stdout)
	}
}

func TestRunExitCode(t *testing.T) {
	needDocker(t)
	isolate(t)
	expectCode(t, cli(t, "run", "-e", "import sys; sys.exit(5)"), 5)
}

func TestRunFileRuntimes(t *testing.T) {
	needDocker(t)
	dir := isolate(t)
	files := map[string]struct{ code, want string }{
		"x.py":  {"import sys; print('python', sys.version_info.major)", "python 3"},
		"x.mjs": {"import { platform } from 'node:os'; console.log('node esm', platform())", "node esm linux"},
		"x.cjs": {"const os = require('os'); console.log('node cjs', os.platform())", "node cjs linux"},
		"x.sh":  {"echo \"bash ${BASH_VERSINFO[0]}\"", "bash 5"},
	}
	for name, f := range files {
		t.Run(name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, name), f.code)
			o := cli(t, "run", name)
			expectCode(t, o, 0)
			if strings.TrimSpace(o.stdout) != f.want {
				t.Fatalf("stdout %q, want %q", o.stdout, f.want)
			}
		})
	}
}

func TestRunPipedStdin(t *testing.T) {
	needDocker(t)
	isolate(t)
	t.Run("is the code", func(t *testing.T) {
		o := cliIn(t, strings.NewReader("print(6 * 7)\n"), "run")
		expectCode(t, o, 0)
		if o.stdout != "42\n" {
			t.Fatalf("stdout %q, want 42", o.stdout)
		}
	})
	t.Run("feeds the program", func(t *testing.T) {
		o := cliIn(t, strings.NewReader("a\nb\nc\n"), "run", "-r", "bash", "--cmd", "wc -l")
		expectCode(t, o, 0)
		if strings.TrimSpace(o.stdout) != "3" {
			t.Fatalf("stdout %q, want 3", o.stdout)
		}
	})
	t.Run("node code", func(t *testing.T) {
		o := cliIn(t, strings.NewReader("console.log([1,2,3].length)"), "run", "-r", "node")
		expectCode(t, o, 0)
		if o.stdout != "3\n" {
			t.Fatalf("stdout %q, want 3", o.stdout)
		}
	})
}

func TestRunTimeout(t *testing.T) {
	needDocker(t)
	isolate(t)
	o := cli(t, "run", "--timeout", "1000", "-e", "import time; time.sleep(30)")
	expectCode(t, o, 137)
	if o.took > 3*time.Second {
		t.Fatalf("took %s, want < 3s", o.took)
	}
	for _, want := range []string{"EXECUTION TIMED OUT", "killed: timed out after 1000 ms"} {
		if !strings.Contains(o.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, o.stderr)
		}
	}
}

func TestRunOutOfMemory(t *testing.T) {
	needDocker(t)
	isolate(t)
	o := cli(t, "run", "--memory", "64m", "-e", "x = b'\\x01' * (300 * 1024 * 1024); print(len(x))")
	expectCode(t, o, 137)
	if !strings.Contains(o.stderr, "killed: out of memory (limit 64m") {
		t.Fatalf("stderr does not say out of memory:\n%s", o.stderr)
	}
}

func TestRunFilesAndOut(t *testing.T) {
	needDocker(t)
	dir := isolate(t)
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(filepath.Join(in, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(in, "a.txt"), "hello")
	writeFile(t, filepath.Join(in, "sub", "b.txt"), "world")
	code := `
import os
print(open("a.txt").read(), open("sub/b.txt").read())
open("result.txt", "w").write(open("a.txt").read().upper())
os.makedirs("deep/er", exist_ok=True)
open("deep/er/c.txt", "w").write("c")
`
	o := cli(t, "run", "--files", "in", "--out", "result.txt", "--out", "/sandbox/deep/er/c.txt:got/", "-e", code)
	expectCode(t, o, 0)
	if o.stdout != "hello world\n" {
		t.Fatalf("stdout %q", o.stdout)
	}
	for path, want := range map[string]string{"result.txt": "HELLO", "got/c.txt": "c"} {
		data, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil || string(data) != want {
			t.Errorf("%s: %q, %v; want %q", path, data, err, want)
		}
	}

	t.Run("missing output", func(t *testing.T) {
		o := cli(t, "run", "--out", "nothing.txt", "-e", "print(1)")
		expectCode(t, o, 1)
		if !strings.Contains(o.stderr, "/sandbox/nothing.txt") {
			t.Fatalf("stderr does not name the missing file:\n%s", o.stderr)
		}
	})
	t.Run("symlink refused", func(t *testing.T) {
		if err := os.Symlink("/etc/passwd", filepath.Join(in, "link")); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(in, "link"))
		o := cli(t, "run", "--files", "in", "-e", "print(1)")
		expectCode(t, o, 2)
		if !strings.Contains(o.stderr, "link is a symbolic link") {
			t.Fatalf("stderr does not explain the link:\n%s", o.stderr)
		}
	})
}

func TestRunSecretAndEnv(t *testing.T) {
	needDocker(t)
	isolate(t)
	t.Setenv("FROM_HOST", "hostvalue")
	o := cli(t, "run", "--secret", "TOKEN=s3cr3t-value", "--env", "MODE=test", "--env", "FROM_HOST",
		"-e", "import os, sys; print(os.environ['TOKEN'], os.environ['MODE'], os.environ['FROM_HOST']); print(os.environ['TOKEN'], file=sys.stderr)")
	expectCode(t, o, 0)
	if o.stdout != "*** test hostvalue\n" {
		t.Fatalf("stdout %q, want the secret masked", o.stdout)
	}
	if strings.Contains(o.stdout+o.stderr, "s3cr3t") {
		t.Fatal("the secret leaked")
	}
	o = cli(t, "run", "--env", "1BAD=x", "-e", "print(1)")
	expectCode(t, o, 2)
	if !strings.Contains(o.stderr, "--env") {
		t.Fatalf("stderr does not name --env:\n%s", o.stderr)
	}
}

func TestRunWorkdir(t *testing.T) {
	needDocker(t)
	dir := isolate(t)
	if err := os.MkdirAll(filepath.Join(dir, "in", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "in", "sub", "data.txt"), "here")
	o := cli(t, "run", "--files", "in", "--workdir", "/sandbox/sub", "-e", "import os; print(os.getcwd(), open('data.txt').read())")
	expectCode(t, o, 0)
	if o.stdout != "/sandbox/sub here\n" {
		t.Fatalf("stdout %q", o.stdout)
	}
	o = cli(t, "run", "--workdir", "/etc", "-e", "print(1)")
	expectCode(t, o, 2)
	if !strings.Contains(o.stderr, "--workdir") {
		t.Fatalf("stderr does not name --workdir:\n%s", o.stderr)
	}
}

func TestRunSetup(t *testing.T) {
	needDocker(t)
	dir := isolate(t)
	t.Run("failure aborts", func(t *testing.T) {
		o := cli(t, "run", "--setup", "echo preparing; echo broken >&2; exit 3", "--setup", "echo later", "-e", "print('never')")
		expectCode(t, o, 3)
		if !strings.Contains(o.stderr, "broken") || strings.Contains(o.stdout, "never") || strings.Contains(o.stdout, "later") {
			t.Fatalf("setup did not abort the run:\n%s", o)
		}
	})
	t.Run("command and file", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "setup.sh"), "echo -n from-file > /sandbox/b\n")
		o := cli(t, "run", "--no-stream", "--setup", "echo -n from-cmd > /sandbox/a", "--setup", "setup.sh",
			"-e", "print(open('/sandbox/a').read(), open('/sandbox/b').read())")
		expectCode(t, o, 0)
		if o.stdout != "from-cmd from-file\n" {
			t.Fatalf("stdout %q", o.stdout)
		}
	})
}

func TestRunNoStream(t *testing.T) {
	needDocker(t)
	isolate(t)
	o := cli(t, "run", "--no-stream", "-e", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)")
	expectCode(t, o, 4)
	if o.stdout != "out\n" || o.stderr != "err\n" {
		t.Fatalf("got %s", o)
	}
}

func TestRunMissingImage(t *testing.T) {
	needDocker(t)
	isolate(t)
	o := cli(t, "run", "--image", "isol8-test-no-such-image:latest", "-e", "print(1)")
	expectCode(t, o, 1)
	if !strings.Contains(o.stderr, "isol8-test-no-such-image:latest") || strings.Contains(o.stderr, "goroutine") {
		t.Fatalf("stderr does not name the image plainly:\n%s", o.stderr)
	}
}
