package securitytest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

// defaultPids is the engine's default pids limit (contract section 2).
const defaultPids = 64

func exhaustionCases() []Case {
	return []Case{
		{
			Name: "exhaustion/fork-bomb-bash", Runtime: isol8.Bash, Serial: true, Budget: 45 * time.Second,
			Options: isol8.Options{TimeoutMs: 10000},
			// The bomb fills the pids limit; the main shell, which needs no
			// more forks, then counts the sandbox user's processes (a
			// backend's own init may run as another user, outside the limit).
			Code: `bomb() { bomb | bomb & }
bomb >/dev/null 2>&1
SECONDS=0
while (( SECONDS < 3 )); do :; done
n=0
for p in /proc/[0-9]*; do
  while read -r k v _; do
    if [[ $k == Uid: ]]; then [[ $v == "$UID" ]] && n=$((n+1)); break; fi
  done < "$p/status" 2>/dev/null
done
echo "@@{\"procs\": $n}"
`,
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if !mustRun(t, res, err) || res.TimedOut {
					return // killed by the timeout at the latest: fine
				}
				var r struct{ Procs int }
				if reportOf(t, res, &r) && r.Procs > defaultPids {
					t.Errorf("the bomb reached %d processes, over the pids limit of %d", r.Procs, defaultPids)
				}
			},
		},
		{
			Name: "exhaustion/fork-loop-python", Runtime: isol8.Python, Serial: true, Budget: 45 * time.Second,
			Code: pyPrelude + `import time
n, err = 0, None
try:
    while n < 5000:
        pid = os.fork()
        if pid == 0:
            os.closerange(0, 3)
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as e:
    err = en(e)
report({"forked": n, "err": err})
`,
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if !mustRun(t, res, err) {
					return
				}
				var r struct {
					Forked int
					Err    string
				}
				if !reportOf(t, res, &r) {
					return
				}
				if r.Err != "EAGAIN" || r.Forked >= defaultPids {
					t.Errorf("forked %d children, then %q; want EAGAIN below the pids limit of %d", r.Forked, r.Err, defaultPids)
				}
			},
		},
		{
			Name: "exhaustion/fork-bomb-python", Runtime: isol8.Python, Serial: true, Budget: 40 * time.Second,
			Options: isol8.Options{TimeoutMs: 4000},
			Code: `import os
while True:
    try:
        os.fork()
    except OSError:
        pass
`,
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if mustRun(t, res, err) && (!res.TimedOut || res.ExitCode != 137) {
					t.Errorf("a bomb that never ends: timedOut=%v exit=%d, want the timeout (137)", res.TimedOut, res.ExitCode)
				}
			},
		},
		{
			Name: "exhaustion/worker-threads-node", Runtime: isol8.Node, Serial: true, Budget: 45 * time.Second,
			Options: isol8.Options{TimeoutMs: 15000},
			Code: `import { Worker } from 'node:worker_threads';
let online = 0, errors = 0, thrown = 0;
for (let i = 0; i < 200; i++) {
  try {
    const w = new Worker('setInterval(() => {}, 1000)', { eval: true });
    w.on('online', () => { online++; });
    w.on('error', () => { errors++; });
  } catch (e) { thrown++; break; }
}
setTimeout(() => {
  console.log('@@' + JSON.stringify({ online, errors, thrown }));
  process.exit(0);
}, 3000);
`,
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if !mustRun(t, res, err) || res.TimedOut || res.ExitCode != 0 {
					return // crashed at the limit or killed by the timeout: fine
				}
				var r struct{ Online, Errors, Thrown int }
				if reportOf(t, res, &r) && r.Online >= defaultPids {
					t.Errorf("%d worker threads came online, past the pids limit of %d", r.Online, defaultPids)
				}
			},
		},
		{
			Name: "exhaustion/memory-balloon-python", Runtime: isol8.Python, Budget: 60 * time.Second,
			Options: isol8.Options{MemoryLimit: "128m", TimeoutMs: 30000},
			Code: `chunks = []
while True:
    chunks.append(bytearray(b"\x01") * (8 << 20))
`,
			Check: wantOOM,
		},
		{
			Name: "exhaustion/memory-balloon-node", Runtime: isol8.Node, Budget: 60 * time.Second,
			Options: isol8.Options{MemoryLimit: "128m", TimeoutMs: 30000},
			Code: `const chunks = [];
for (;;) chunks.push(Buffer.alloc(8 << 20, 1));
`,
			Check: wantOOM,
		},
		{
			Name: "exhaustion/shm-fill", Runtime: isol8.Python, Budget: 60 * time.Second,
			Options: isol8.Options{MemoryLimit: "128m", TimeoutMs: 30000},
			Code: pyPrelude + `fd = os.open("/dev/shm/fill", os.O_CREAT | os.O_WRONLY, 0o600)
buf = b"\x02" * (1 << 20)
n, err = 0, None
try:
    while n < (1 << 30):
        n += os.write(fd, buf)
except OSError as e:
    err = en(e)
report({"written": n, "err": err})
`,
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if !mustRun(t, res, err) {
					return
				}
				if res.ExitCode == 137 && res.OOMKilled {
					return // killed by the memory limit: fine
				}
				var r struct {
					Written int64
					Err     string
				}
				if reportOf(t, res, &r) && (r.Err != "ENOSPC" || r.Written > 128<<20) {
					t.Errorf("/dev/shm took %d bytes, then %q; want ENOSPC within the memory limit (or an OOM kill)", r.Written, r.Err)
				}
			},
		},
		diskFillCase(),
		timeoutCase("exhaustion/timeout-busy-loop-python", isol8.Python,
			"print('started', flush=True)\nwhile True:\n    pass\n"),
		timeoutCase("exhaustion/timeout-sigterm-ignored-bash", isol8.Bash,
			"trap '' TERM INT HUP\necho started\nwhile :; do :; done\n"),
		{Name: "exhaustion/daemons-ephemeral", Serial: true, Budget: 60 * time.Second, Attack: daemonsEphemeral},
		{Name: "exhaustion/daemons-persistent", Serial: true, Budget: 90 * time.Second, Attack: daemonsPersistent},
		{Name: "exhaustion/cancel-kills-run", Serial: true, Budget: 45 * time.Second, Attack: cancelKillsRun},
		heldStdoutCase(isol8.Bash, "sleep 30 &\necho done\n"),
		heldStdoutCase(isol8.Python, "import subprocess\nsubprocess.Popen(['sleep', '30'])\nprint('done', flush=True)\n"),
		heldStdoutCase(isol8.Node, "import { spawn } from 'node:child_process';\n"+
			"spawn('sleep', ['30'], { stdio: 'inherit', detached: true }).unref();\nconsole.log('done');\n"),
	}
}

func wantOOM(t *testing.T, res *isol8.Result, err error) {
	if !mustRun(t, res, err) {
		return
	}
	if res.ExitCode != 137 || !res.OOMKilled || res.TimedOut {
		t.Errorf("memory balloon: exit=%d oomKilled=%v timedOut=%v; want 137, true, false",
			res.ExitCode, res.OOMKilled, res.TimedOut)
	}
}

// diskFillCase fills each writable folder to ENOSPC and tries to create a
// file in every other folder of the image.
func diskFillCase() Case {
	const size = 32 << 20
	return Case{
		Name: "exhaustion/disk-fill", Runtime: isol8.Python, Budget: 90 * time.Second,
		Options: isol8.Options{SandboxSize: "32m", TmpSize: "32m", TimeoutMs: 60000},
		Code: pyPrelude + `def fill(d):
    p = os.path.join(d, "fill")
    fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    buf = b"\x03" * (256 << 10)
    n, err = 0, None
    try:
        while n < (1 << 30):
            n += os.write(fd, buf)
    except OSError as e:
        err = en(e)
    os.close(fd)
    os.unlink(p)
    return {"written": n, "err": err}

def probe(d):
    p = os.path.join(d, ".isol8-probe")
    try:
        fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    except OSError as e:
        return en(e)
    os.close(fd)
    os.unlink(p)
    return "CREATED"

named = ["/", "/etc", "/usr", "/var", "/home", "/root", "/opt", "/var/tmp", "/run", "/srv", "/mnt",
         "/usr/local", "/usr/bin", "/usr/lib", "/bin", "/lib", "/sbin"]
out = {"fill": {d: fill(d) for d in ["/sandbox", "/tmp", "/dev/shm"]},
       "named": {d: probe(d) for d in named if os.path.isdir(d)}}
skip = {"/proc", "/sys", "/dev", "/sandbox", "/tmp"}
bad, count = {}, 0
for root, dirs, files in os.walk("/"):
    dirs[:] = [x for x in dirs if os.path.join(root, x) not in skip]
    count += 1
    r = probe(root)
    if r == "EROFS" or (r == "EACCES" and not os.access(root, os.X_OK)):
        continue
    bad[root] = r
    if count > 50000:
        break
out["walked"], out["bad"] = count, bad
report(out)
`,
		Check: func(t *testing.T, res *isol8.Result, err error) {
			if !mustRun(t, res, err) {
				return
			}
			var r struct {
				Fill map[string]struct {
					Written int64
					Err     string
				}
				Named  map[string]string
				Walked int
				Bad    map[string]string
			}
			if !reportOf(t, res, &r) {
				return
			}
			for _, d := range []string{"/sandbox", "/tmp"} {
				f := r.Fill[d]
				if f.Err != "ENOSPC" || f.Written > size || f.Written < size-2<<20 {
					t.Errorf("%s took %d bytes, then %q; want ENOSPC at its size of %d", d, f.Written, f.Err, size)
				}
			}
			if f := r.Fill["/dev/shm"]; f.Err != "ENOSPC" || f.Written > 64<<20 {
				t.Errorf("/dev/shm took %d bytes, then %q; want ENOSPC by 64 MiB", f.Written, f.Err)
			}
			for d, e := range r.Named {
				// /root is not searchable by the sandbox user: EACCES comes first there.
				if e != "EROFS" && (d != "/root" || e != "EACCES") {
					t.Errorf("creating a file in %s: %s, want EROFS", d, e)
				}
			}
			if r.Walked < 100 {
				t.Errorf("walked only %d folders of the image", r.Walked)
			}
			for d, e := range r.Bad {
				t.Errorf("creating a file in %s: %s, want EROFS (read-only root)", d, e)
			}
		},
	}
}

// timeoutCase runs a program that never ends with a 2 s timeout: the
// result must come within the timeout plus one second of the program's
// start, timed out, exit 137.
func timeoutCase(name string, rt isol8.Runtime, code string) Case {
	const timeout = 2000
	return Case{Name: name, Serial: true, Budget: 30 * time.Second, Attack: func(t *testing.T, h *H) {
		e := h.Engine(rt, isol8.Options{TimeoutMs: timeout})
		rec := newRecorder()
		rec.when("started", func() {})
		start := time.Now()
		res, err := e.ExecuteStream(h.Ctx, h.Request(rt, code), rec.sink)
		returned := time.Now()
		logResult(t, "run", res, err)
		if !mustRun(t, res, err) {
			return
		}
		if !res.TimedOut || res.ExitCode != 137 || !strings.Contains(res.Stderr, "EXECUTION TIMED OUT") {
			t.Errorf("timedOut=%v exit=%d stderr=%q; want true, 137 and the timeout note", res.TimedOut, res.ExitCode, clip(res.Stderr, 300))
		}
		started := rec.at("started")
		if started.IsZero() {
			t.Errorf("the program's first output never arrived as an event")
			started = start
		}
		if el := returned.Sub(started); el > (timeout+1000)*time.Millisecond {
			t.Errorf("the result came %v after the program started; want within the timeout + 1 s", el.Round(time.Millisecond))
		}
		t.Logf("result %v after start of program, %v after Execute was called",
			returned.Sub(started).Round(time.Millisecond), returned.Sub(start).Round(time.Millisecond))
		h.AssertGone(t, res.ContainerID)
	}}
}

// daemonScript starts four processes that try to outlive the run, then
// prints how many of them it sees (all carry the marker in argv[0] and
// the environment).
const daemonScript = `M="$ISOL8_MARK"
( trap '' TERM HUP INT; exec -a "$M-ignterm" sleep 300 ) >/dev/null 2>&1 </dev/null &
( ( trap '' TERM HUP INT; exec -a "$M-dfork" sleep 300 ) & ) >/dev/null 2>&1 </dev/null &
setsid bash -c 'trap "" TERM HUP INT; exec -a "$0-setsid" sleep 300' "$M" >/dev/null 2>&1 </dev/null &
nohup bash -c 'exec -a "$0-nohup" sleep 300' "$M" >/dev/null 2>&1 </dev/null &
n=0
for i in $(seq 50); do
  n=0
  for d in /proc/[0-9]*; do
    a=""; read -r -d '' a < "$d/cmdline" 2>/dev/null
    case "$a" in "$M"-*) n=$((n+1));; esac
  done
  [ "$n" -ge 4 ] && break
  sleep 0.1
done
echo "inside=$n"
echo READY
sleep 0.5
`

// countLeftovers lists, from inside a sandbox, the processes whose
// argv[0] starts with $ISOL8_FIND.
const countLeftovers = `n=0
for d in /proc/[0-9]*; do
  a=""; read -r -d '' a < "$d/cmdline" 2>/dev/null
  case "$a" in "$ISOL8_FIND"-*) echo "leftover ${d#/proc/}: $a"; n=$((n+1));; esac
done
echo "@@{\"leftover\": $n}"
`

func daemonsEphemeral(t *testing.T, h *H) {
	mark := "isol8mark" + randHex(8)
	e := h.Engine(isol8.Bash, isol8.Options{})
	req := h.Request(isol8.Bash, daemonScript)
	req.Env = map[string]string{"ISOL8_MARK": mark}
	rec := newRecorder()
	seen := make(chan []string, 1)
	rec.when("READY", func() { seen <- hostProcs(mark) })
	res, err := e.ExecuteStream(h.Ctx, req, rec.sink)
	after := hostProcs(mark)
	during := received(seen)
	logResult(t, "run", res, err)
	if !mustRun(t, res, err) {
		return
	}
	if !strings.Contains(res.Stdout, "inside=4") {
		t.Errorf("the daemons did not all start inside the sandbox: %q", res.Stdout)
	}
	h.AssertGone(t, res.ContainerID)
	checkHostView(t, during, after)
}

// checkHostView: processes seen on the host while the run went on must
// all be gone when the result returned.
func checkHostView(t *testing.T, during, after []string) {
	t.Helper()
	if len(during) == 0 {
		t.Logf("the host's /proc does not show the sandbox's processes (separate pid namespace); relying on the sandbox check alone")
	} else {
		t.Logf("host saw %d marked processes during the run", len(during))
	}
	if len(after) > 0 {
		t.Errorf("processes of the run still alive on the host after its result returned: %v", after)
	}
}

func daemonsPersistent(t *testing.T, h *H) {
	mark := "isol8mark" + randHex(8)
	e := h.Engine(isol8.Bash, isol8.Options{Mode: isol8.Persistent})
	req := h.Request(isol8.Bash, daemonScript)
	req.Env = map[string]string{"ISOL8_MARK": mark}
	rec := newRecorder()
	seen := make(chan []string, 1)
	rec.when("READY", func() { seen <- hostProcs(mark) })
	res1, err := e.ExecuteStream(h.Ctx, req, rec.sink)
	after := hostProcs(mark)
	during := received(seen)
	logResult(t, "run 1", res1, err)
	if !mustRun(t, res1, err) {
		return
	}
	if !strings.Contains(res1.Stdout, "inside=4") {
		t.Errorf("the daemons did not all start inside the sandbox: %q", res1.Stdout)
	}
	checkHostView(t, during, after)

	req2 := h.Request(isol8.Bash, countLeftovers)
	req2.Env = map[string]string{"ISOL8_FIND": mark}
	res2, err := e.Execute(h.Ctx, req2)
	logResult(t, "run 2", res2, err)
	if !mustRun(t, res2, err) {
		return
	}
	var r struct{ Leftover int }
	if reportOf(t, res2, &r) && r.Leftover > 0 {
		t.Errorf("the persistent sandbox's next run sees %d processes left by the previous run:\n%s", r.Leftover, res2.Stdout)
	}
	if res2.ContainerID != res1.ContainerID {
		t.Logf("note: run 2 ran in sandbox %s, run 1 in %s", res2.ContainerID, res1.ContainerID)
	}
}

// heldStdoutCase: a background child keeps stdout open after the program
// exits; the result must still come at once.
func heldStdoutCase(rt isol8.Runtime, code string) Case {
	return Case{Name: "exhaustion/stdout-held-open-" + string(rt), Serial: true, Budget: 45 * time.Second,
		Attack: func(t *testing.T, h *H) {
			mark := "isol8mark" + randHex(8)
			e := h.Engine(rt, isol8.Options{TimeoutMs: 20000})
			req := h.Request(rt, code)
			req.Env = map[string]string{"ISOL8_MARK": mark}
			rec := newRecorder()
			rec.when("done", func() {})
			res, err := e.ExecuteStream(h.Ctx, req, rec.sink)
			returned := time.Now()
			after := hostProcs(mark)
			logResult(t, "run", res, err)
			if !mustRun(t, res, err) {
				return
			}
			if res.TimedOut || res.ExitCode != 0 || !strings.Contains(res.Stdout, "done") {
				t.Errorf("timedOut=%v exit=%d stdout=%q; want the program's own exit 0 and its output",
					res.TimedOut, res.ExitCode, res.Stdout)
			}
			if done := rec.at("done"); !done.IsZero() && returned.Sub(done) > 2*time.Second {
				t.Errorf("the result came %v after the program's last output; the background child held it up",
					returned.Sub(done).Round(time.Millisecond))
			}
			h.AssertGone(t, res.ContainerID)
			if len(after) > 0 {
				t.Errorf("the background child is still alive on the host: %v", after)
			}
		}}
}

// received is what a sink callback sent, or nil if it never ran.
func received(ch chan []string) []string {
	select {
	case v := <-ch:
		return v
	default:
		return nil
	}
}

// cancelKillsRun: cancelling the caller's context (a client that went
// away) kills the run and its background children within seconds.
func cancelKillsRun(t *testing.T, h *H) {
	mark := "isol8mark" + randHex(8)
	e := h.Engine(isol8.Bash, isol8.Options{TimeoutMs: 60000})
	req := h.Request(isol8.Bash, daemonScript+"sleep 60\n")
	req.Env = map[string]string{"ISOL8_MARK": mark}
	ctx, cancel := context.WithCancel(h.Ctx)
	defer cancel()
	rec := newRecorder()
	var cancelled time.Time
	var mu sync.Mutex
	rec.when("READY", func() {
		mu.Lock()
		cancelled = time.Now()
		mu.Unlock()
		cancel()
	})
	res, err := e.ExecuteStream(ctx, req, rec.sink)
	returned := time.Now()
	after := hostProcs(mark)
	logResult(t, "run", res, err)
	mu.Lock()
	at := cancelled
	mu.Unlock()
	if at.IsZero() {
		t.Fatalf("the program never got going, so nothing was cancelled")
	}
	if err == nil {
		t.Errorf("a cancelled run returned no error")
	}
	if el := returned.Sub(at); el > 5*time.Second {
		t.Errorf("the run returned %v after its context was cancelled", el.Round(time.Millisecond))
	}
	if len(after) > 0 {
		t.Errorf("processes of the cancelled run are still alive on the host: %v", after)
	}
	if left, _ := h.s.probe.owned(context.Background(), h.Owner); len(left) > 0 {
		t.Errorf("the cancelled run's sandbox is still there: %v", left)
	}
}
