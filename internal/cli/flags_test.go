package cli

import (
	"strings"
	"testing"
)

// Bad command lines exit 2 with a message naming the flag, before any
// sandbox is made (so these run without Docker).
func TestBadFlags(t *testing.T) {
	isolate(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--memory", "12x", "-e", "1"}, "--memory"},
		{[]string{"run", "--memory", "10k", "-e", "1"}, "--memory"},
		{[]string{"run", "--timeout", "abc", "-e", "1"}, "--timeout"},
		{[]string{"run", "--timeout", "0", "-e", "1"}, "--timeout"},
		{[]string{"run", "--cpu", "-1", "-e", "1"}, "--cpu"},
		{[]string{"run", "--pids-limit", "0", "-e", "1"}, "--pids-limit"},
		{[]string{"run", "--max-output", "lots", "-e", "1"}, "--max-output"},
		{[]string{"run", "--net", "bridge", "-e", "1"}, "--net"},
		{[]string{"run", "--backend", "kvm", "-e", "1"}, "--backend"},
		{[]string{"run", "--secret", "NOPE_NOT_SET_ANYWHERE", "-e", "1"}, "--secret"},
		{[]string{"run", "--out", "../etc/passwd", "-e", "1"}, "--out"},
		{[]string{"run", "--workdir", "/sandbox/../etc", "-e", "1"}, "--workdir"},
		{[]string{"run", "--files", "no-such-dir", "-e", "1"}, "--files"},
		{[]string{"run", "-e", "1", "--cmd", "ls"}, "one way only"},
		{[]string{"run", "x.rb"}, "x.rb"},
		{[]string{"run", "-r", "ruby", "-e", "puts 1"}, "--runtime"},
		{[]string{"run", "a.py", "b.py"}, "at most one FILE"},
		{[]string{"run"}, "no code to run"},
		{[]string{"run", "--bogus"}, "--bogus"},
		{[]string{"nope"}, "unknown command"},
		{[]string{"config", "extra"}, "takes no arguments"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			o := cli(t, c.args...)
			expectCode(t, o, 2)
			if !strings.Contains(o.stderr, c.want) || strings.Contains(o.stderr, "goroutine") {
				t.Fatalf("stderr does not name %q:\n%s", c.want, o.stderr)
			}
		})
	}
}

func TestDockerUnreachable(t *testing.T) {
	isolate(t)
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/isol8-test.sock")
	o := cli(t, "run", "-e", "print(1)")
	expectCode(t, o, 1)
	for _, want := range []string{"Docker engine cannot be reached", "systemctl start docker"} {
		if !strings.Contains(o.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, o.stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	o := cli(t, "version")
	expectCode(t, o, 0)
	if !strings.HasPrefix(o.stdout, "isol8 dev\n") || !strings.Contains(o.stdout, "go1.") {
		t.Fatalf("stdout %q", o.stdout)
	}
}

func TestHelpAnswers(t *testing.T) {
	o := cli(t, "run", "--help")
	expectCode(t, o, 0)
	for _, want := range []string{`--stdin '[{"x":1},{"x":2}]'`, "--out PATH[:LOCAL]", "Exit codes", ".cjs"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
}
