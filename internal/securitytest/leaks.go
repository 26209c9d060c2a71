package securitytest

import (
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

// canaryVar is set in the test process; its value must never reach a sandbox.
const canaryVar = "ISOL8_SECURITYTEST_CANARY"

// documentedEnv are the variables a program may see besides its job's own
// env and secrets (HOSTNAME when the backend sets it).
var documentedEnv = []string{"PATH", "HOME", "LANG", "TMPDIR", "HOSTNAME"}

// shellEnv are the variables bash adds to its own environment.
var shellEnv = []string{"PWD", "SHLVL", "_", "OLDPWD"}

func leakCases() []Case {
	return []Case{
		{
			Name: "leaks/environment-python", Runtime: isol8.Python,
			Options: isol8.Options{Secrets: map[string]string{"JOB_SECRET": "job-secret-" + randHex(4)}},
			Tweak:   func(r *isol8.Request) { r.Env = map[string]string{"JOB_VAR": "job-value"} },
			Code: pyPrelude + `def environ(p):
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as e:
        return en(e)
    return [kv.decode("utf-8", "replace") for kv in data.split(b"\0") if kv]
procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        procs[d] = environ("/proc/%s/environ" % d)
report({"os": [k + "=" + v for k, v in os.environ.items()], "self": environ("/proc/self/environ"),
        "pid1": environ("/proc/1/environ"), "procs": procs})
`,
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if !mustRun(t, res, err) {
					return
				}
				checkNoCanary(t, res)
				var r struct {
					OS, Self []string
					Pid1     any
					Procs    map[string]any
				}
				if !reportOf(t, res, &r) {
					return
				}
				allowed := append(slices.Clone(documentedEnv), "JOB_VAR", "JOB_SECRET")
				checkEnv(t, "os.environ", r.OS, allowed)
				checkEnv(t, "/proc/self/environ", r.Self, allowed)
				if vars, ok := r.Pid1.([]any); ok {
					checkEnv(t, "/proc/1/environ", toStrings(vars), allowed)
				} else {
					t.Logf("/proc/1/environ: %v", r.Pid1)
				}
				for pid, v := range r.Procs {
					if vars, ok := v.([]any); ok {
						checkEnv(t, "/proc/"+pid+"/environ", toStrings(vars), allowed)
					}
				}
				if !slices.Contains(r.OS, "JOB_VAR=job-value") {
					t.Errorf("the job's own env var is missing: %v", r.OS)
				}
			},
		},
		{
			Name: "leaks/environment-shell", Runtime: isol8.Bash,
			Cmd: "env; echo =====; tr '\\0' '\\n' < /proc/1/environ",
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if !mustRun(t, res, err) {
					return
				}
				checkNoCanary(t, res)
				own, pid1, _ := strings.Cut(res.Stdout, "=====\n")
				allowed := append(slices.Clone(documentedEnv), shellEnv...)
				checkEnv(t, "env", strings.Fields(own), allowed)
				checkEnv(t, "/proc/1/environ", strings.Fields(pid1), allowed)
			},
		},
		secretsCase(isol8.Python, `import os, sys, time
s = os.environ["API_TOKEN"]
print("plain:", s, flush=True)
print("err:", s, file=sys.stderr, flush=True)
for stream in (sys.stdout, sys.stderr):
    stream.write("halves:" + s[:4]); stream.flush(); time.sleep(0.3)
    stream.write(s[4:] + "\n"); stream.flush()
for ch in s:
    sys.stdout.write(ch); sys.stdout.flush(); time.sleep(0.01)
print(flush=True)
print("twice:", s + s, flush=True)
raise RuntimeError("leak " + s)
`),
		secretsCase(isol8.Bash, `s="$API_TOKEN"
echo "plain: $s"
echo "err: $s" >&2
printf 'halves:%s' "${s:0:4}"; sleep 0.3; printf '%s\n' "${s:4}"
printf 'halves:%s' "${s:0:4}" >&2; sleep 0.3; printf '%s\n' "${s:4}" >&2
for ((i = 0; i < ${#s}; i++)); do printf '%s' "${s:i:1}"; sleep 0.01; done; echo
echo "twice: $s$s"
echo "leak $s" >&2
exit 1
`),
		{Name: "leaks/concurrent-jobs", Budget: 90 * time.Second, Attack: concurrentJobs},
	}
}

func toStrings(v []any) []string {
	out := make([]string, 0, len(v))
	for _, x := range v {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// checkEnv fails for any variable not in allowed.
func checkEnv(t *testing.T, where string, vars, allowed []string) {
	t.Helper()
	for _, kv := range vars {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(allowed, k) {
			t.Errorf("%s holds an undocumented variable %q", where, clip(kv, 100))
		}
	}
}

func checkNoCanary(t *testing.T, res *isol8.Result) {
	t.Helper()
	canary := os.Getenv(canaryVar)
	if canary == "" {
		t.Errorf("the canary %s is not set in the test process", canaryVar)
		return
	}
	if strings.Contains(res.Stdout+res.Stderr, canary) || strings.Contains(res.Stdout+res.Stderr, canaryVar) {
		t.Errorf("the test process's environment (%s) reached the sandbox", canaryVar)
	}
}

// secretsCase prints a secret every way it can; it must come out masked in
// the result and in every streamed event, in the setup phase too.
func secretsCase(rt isol8.Runtime, code string) Case {
	return Case{Name: "leaks/secrets-masked-" + string(rt), Attack: func(t *testing.T, h *H) {
		secret := "tok-" + randHex(12)
		e := h.Engine(rt, isol8.Options{Secrets: map[string]string{"API_TOKEN": secret}})
		req := h.Request(rt, code)
		req.SetupScript = "echo \"setup:$API_TOKEN\"\necho \"setup-err:$API_TOKEN\" >&2\n"
		rec := newRecorder()
		// While the program runs: no process's argv, and nothing the
		// Docker API shows of the sandbox, holds the secret.
		exposed := make(chan []string, 1)
		rec.when("plain:", func() {
			where := hostArgv(secret)
			if h.s.docker != nil {
				where = append(where, h.s.docker.inspectHolding(h.Ctx, h.Owner, secret)...)
			}
			exposed <- where
		})
		res, err := e.ExecuteStream(h.Ctx, req, rec.sink)
		logResult(t, "run", res, err)
		if !mustRun(t, res, err) {
			return
		}
		for _, w := range received(exposed) {
			t.Errorf("the secret is exposed while the program runs: %s", w)
		}
		if strings.Contains(h.logs(), secret) {
			t.Errorf("the engine's log holds the secret")
		}
		for _, s := range []struct{ where, text string }{
			{"result stdout", res.Stdout}, {"result stderr", res.Stderr},
			{"streamed stdout", rec.joined(isol8.EventStdout)}, {"streamed stderr", rec.joined(isol8.EventStderr)},
		} {
			if strings.Contains(s.text, secret) {
				t.Errorf("the secret appears unmasked in the %s", s.where)
			}
		}
		for _, ev := range rec.all() {
			if strings.Contains(ev.Data, secret) {
				t.Errorf("a %s event carries the secret", ev.Type)
			}
		}
		// The masks are there: the test saw the program print it.
		for _, want := range []string{"setup:***", "plain: ***", "halves:***\n", "twice: ******"} {
			if !strings.Contains(res.Stdout, want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
		for _, want := range []string{"setup-err:***", "err: ***", "halves:***\n", "leak ***"} {
			if !strings.Contains(res.Stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		if !strings.Contains(res.Stdout, "\n***\n") {
			t.Errorf("the secret written one byte at a time is not masked as a whole")
		}
	}}
}

// isolationProbe leaves traces of itself everywhere, waits on stdin until
// the other job is up too, then reports what it sees.
const isolationProbe = pyPrelude + `import socket, subprocess
me = os.environ["ISOL8_JOB"]
for d in ["/sandbox", "/tmp", "/dev/shm"]:
    with open(os.path.join(d, me), "w") as f:
        f.write(me)
srv = socket.socket()
bind = None
try:
    srv.bind(("127.0.0.1", 40123))
    srv.listen(4)
except OSError as e:
    bind = en(e)
import time
p = subprocess.Popen(["bash", "-c", 'exec -a "$0" sleep 60', "proc-" + me])
for _ in range(200):  # until the marked process has exec'd
    try:
        if open("/proc/%d/cmdline" % p.pid, "rb").read().startswith(b"proc-"):
            break
    except OSError:
        pass
    time.sleep(0.01)
print("UP", flush=True)
sys.stdin.readline()
procs = []
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            procs.append(open("/proc/%s/cmdline" % d, "rb").read().replace(b"\0", b" ").decode())
        except OSError:
            pass
files = []
for d in ["/sandbox", "/tmp", "/dev/shm"]:
    files += [os.path.join(d, x) for x in os.listdir(d)]
got = None
if bind is None:
    c = socket.create_connection(("127.0.0.1", 40123), timeout=2)
    conn, _ = srv.accept()
    conn.sendall(me.encode())
    got = c.recv(100).decode()
p.kill()
report({"me": me, "hostname": socket.gethostname(), "bind": bind, "got": got, "procs": procs, "files": files})
`

type isolationReport struct {
	Me, Hostname, Got string
	Bind              *string
	Procs, Files      []string
}

func concurrentJobs(t *testing.T, h *H) {
	e := h.Engine(isol8.Python, isol8.Options{})
	ids := [2]string{"jobA-" + randHex(6), "jobB-" + randHex(6)}
	var writers [2]*io.PipeWriter
	var readers [2]*io.PipeReader
	var results [2]*isol8.Result
	var errs [2]error
	var up, done sync.WaitGroup
	up.Add(2)
	for i := range 2 {
		pr, pw := io.Pipe()
		readers[i], writers[i] = pr, pw
		req := h.Request(isol8.Python, isolationProbe)
		req.Env = map[string]string{"ISOL8_JOB": ids[i]}
		req.StdinReader = pr
		var once sync.Once
		rec := newRecorder()
		rec.when("UP", func() { once.Do(up.Done) })
		done.Add(1)
		go func() {
			defer done.Done()
			results[i], errs[i] = e.ExecuteStream(h.Ctx, req, rec.sink)
			once.Do(up.Done) // a job that died early must not block the other
		}()
	}
	bothUp := make(chan struct{})
	go func() { up.Wait(); close(bothUp) }()
	select {
	case <-bothUp:
	case <-h.Ctx.Done():
	}
	for _, w := range writers {
		// A job that never reads its stdin must not block the test.
		go func() {
			_, _ = io.WriteString(w, "go\n")
			w.Close()
		}()
	}
	done.Wait()
	for _, r := range readers {
		r.Close()
	}
	var reps [2]isolationReport
	for i := range 2 {
		logResult(t, ids[i], results[i], errs[i])
		if !mustRun(t, results[i], errs[i]) || !reportOf(t, results[i], &reps[i]) {
			return
		}
	}
	if results[0].ContainerID == results[1].ContainerID {
		t.Errorf("both jobs ran in sandbox %s", results[0].ContainerID)
	}
	if reps[0].Hostname == reps[1].Hostname {
		t.Errorf("both jobs see the hostname %q", reps[0].Hostname)
	}
	for i, r := range reps {
		other := ids[1-i]
		if r.Bind != nil {
			t.Errorf("%s could not bind 127.0.0.1:40123 (%s): the jobs share a network namespace", r.Me, *r.Bind)
		} else if r.Got != r.Me {
			t.Errorf("%s connected to its own loopback and reached %q", r.Me, r.Got)
		}
		for _, s := range append(slices.Clone(r.Procs), r.Files...) {
			if strings.Contains(s, other) {
				t.Errorf("%s sees the other job's %q", r.Me, s)
			}
		}
		if !slices.ContainsFunc(r.Procs, func(s string) bool { return strings.Contains(s, "proc-"+r.Me) }) {
			t.Errorf("%s does not see even its own marked process: %v", r.Me, r.Procs)
		}
	}
}
