package isol8_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/moby/moby/client"
)

// warmEngine is an engine of its own on backend (its own limiter and a
// unique owner label); it also returns a count of the engine's sandboxes as
// the backend lists them. The backend being unusable fails the test (see
// observeBackend), and so does a sandbox left behind after Stop.
func warmEngine(t testing.TB, backend string, opts isol8.Options) (*isol8.LocalEngine, func() int) {
	t.Helper()
	observer := observeBackend(t, backend)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	owner := "isol8-test-warm-" + hex.EncodeToString(suffix)
	opts.Backend = backend
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = 4
	}
	e, err := isol8.New(isol8.EngineConfig{Owner: owner, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("%s: %v\n(set %s=1 to skip these tests deliberately)", backend, err, optOut(backend))
	}
	sandboxes := func() int { return countSandboxes(t, observer, owner) }
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if n := sandboxes(); n != 0 {
			t.Errorf("%d sandboxes left behind after Stop", n)
		}
	})
	return e, sandboxes
}

func execute(t testing.TB, e *isol8.LocalEngine, req *isol8.Request) *isol8.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := e.Execute(ctx, req)
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	return res
}

// poolOpts gives a fast pool one sandbox at a time: its next run then
// always lands where the previous one ran, however long the reset takes.
// A secure pool needs a spare slot to make a replacement.
func poolOpts(strategy string, clean, dirty int) isol8.Options {
	o := isol8.Options{PoolStrategy: strategy, PoolSize: &isol8.PoolSize{Clean: clean, Dirty: dirty}, MaxConcurrent: 4}
	if strategy == "fast" {
		o.MaxConcurrent = 1
	}
	return o
}

// probe describes what a job can see of its sandbox: the other processes
// (by command line, without pids), the writable folders, its environment,
// network interfaces, IPC objects and its own limits. A job on a fresh
// sandbox and one on a reset sandbox must see the same.
const probe = `import os, json, resource, hashlib, ctypes
me = os.getpid()
procs = []
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) != me:
        try:
            cmd = open('/proc/%s/cmdline' % p, 'rb').read()
            st = open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        procs.append([cmd.split(b'\0')[0].decode(), hashlib.sha256(cmd).hexdigest()[:12], st[0] == 'Z'])
dirs = {}
for d in ['/sandbox', '/tmp', '/dev/shm', '/dev/mqueue']:
    dirs[d] = [oct(os.stat(d).st_mode), sorted(x for x in os.listdir(d) if x != 'main.py')]
mq = ctypes.CDLL(None).mq_open(b'/leak', os.O_RDONLY) >= 0
ipc = {k: open('/proc/sysvipc/' + k).read().count('\n') for k in ('shm', 'msg', 'sem')}
ipc['mq /leak'] = int(mq)
limits = {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith('RLIMIT_')}
print(json.dumps({'procs': sorted(procs), 'dirs': dirs, 'env': dict(os.environ), 'ipc': ipc,
    'net': sorted(os.listdir('/sys/class/net')), 'limits': limits, 'nice': os.nice(0),
    'cpus': sorted(os.sched_getaffinity(0)), 'cwd': os.getcwd(), 'umask': os.umask(0o22)}, sort_keys=True))
`

// dirty leaves everything a job could leave behind for the next one.
const dirty = `import os, subprocess, ctypes
os.environ['LEAK'] = 'leaked'
for p, s in [('/sandbox/.bashrc', 'export LEAK=1\n'), ('/sandbox/.profile', 'export LEAK=1\n'),
             ('/tmp/leak', 'x'), ('/dev/shm/leak', 'x'), ('/sandbox/leak', 'x')]:
    open(p, 'w').write(s)
os.makedirs('/sandbox/locked/inner')
open('/sandbox/locked/inner/f', 'w').write('x')
os.chmod('/sandbox/locked/inner', 0)
os.chmod('/sandbox/locked', 0)
os.mkfifo('/tmp/fifo')
os.symlink('/etc', '/sandbox/link')
libc = ctypes.CDLL(None)
assert libc.mq_open(b'/leak', os.O_CREAT | os.O_RDWR, 0o600, None) >= 0  # a POSIX message queue
assert libc.shmget(0x1508, 4096, 0o1666) >= 0
os.chmod('/sandbox', 0o700)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', '1000'])
    os._exit(0)
subprocess.Popen(['nohup', 'sleep', '1001'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
subprocess.Popen('trap "" TERM HUP INT; exec sleep 1002', shell=True, stdout=subprocess.DEVNULL)
print('dirty')
`

type view struct {
	Procs  [][]any            `json:"procs"`
	Dirs   map[string][]any   `json:"dirs"`
	Env    map[string]string  `json:"env"`
	IPC    map[string]int     `json:"ipc"`
	Net    []string           `json:"net"`
	Limits map[string][]int64 `json:"limits"`
	Nice   int                `json:"nice"`
	CPUs   []int              `json:"cpus"`
	Cwd    string             `json:"cwd"`
	Umask  int                `json:"umask"`
}

func look(t *testing.T, e *isol8.LocalEngine) (view, *isol8.Result) {
	t.Helper()
	res := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: probe})
	var v view
	if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil || res.ExitCode != 0 {
		t.Fatalf("probe: %v: %+v", err, res)
	}
	return v, res
}

// TestCrossTenant: job A leaves detached processes, files in every
// writable folder, a planted link, an unreadable folder, IPC objects and
// environment; job B, on the reused (fast) or replacement (secure) sandbox,
// sees exactly what a job on a fresh sandbox sees.
func TestCrossTenant(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		for _, strategy := range []string{"fast", "secure"} {
			t.Run(strategy, func(t *testing.T) {
				t.Parallel()
				// One sandbox at a time for fast, so B lands where A ran.
				e, _ := warmEngine(t, backend, poolOpts(strategy, 1, 0))
				fresh, r0 := look(t, e)
				res := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: dirty})
				if res.Stdout != "dirty\n" || res.ExitCode != 0 {
					t.Fatalf("dirty job: %+v", res)
				}
				after, r2 := look(t, e)
				if strategy == "secure" { // another sandbox, another name
					delete(fresh.Env, "HOSTNAME")
					delete(after.Env, "HOSTNAME")
				}
				if !reflect.DeepEqual(fresh, after) {
					t.Errorf("the sandbox after a dirty job differs from a fresh one:\nfresh %+v\nafter %+v", fresh, after)
				}
				if _, leaked := after.Env["LEAK"]; leaked {
					t.Error("LEAK reached the next job's environment")
				}
				sameBox := r0.ContainerID == res.ContainerID && res.ContainerID == r2.ContainerID
				if strategy == "fast" && !sameBox {
					t.Errorf("fast did not reuse the sandbox: %s %s %s", r0.ContainerID, res.ContainerID, r2.ContainerID)
				}
				if strategy == "secure" && (r0.ContainerID == res.ContainerID || res.ContainerID == r2.ContainerID) {
					t.Error("secure reused a sandbox")
				}
				if s := e.PoolStats(); s.WarmRuns < 2 {
					t.Errorf("the pool was not hit: %+v", s)
				}
			})
		}
	})
}

// TestResetEqualsFresh compares a reset sandbox with a brand new one of
// another engine: same processes, folders, environment, network, limits.
func TestResetEqualsFresh(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		reused, _ := warmEngine(t, backend, poolOpts("fast", 1, 0))
		execute(t, reused, &isol8.Request{Runtime: isol8.Python, Code: dirty})
		after, _ := look(t, reused)
		other, _ := warmEngine(t, backend, poolOpts("secure", 1, 0))
		fresh, _ := look(t, other)
		delete(fresh.Env, "HOSTNAME") // each sandbox has its own name
		delete(after.Env, "HOSTNAME")
		if !reflect.DeepEqual(fresh, after) {
			t.Errorf("a reset sandbox differs from a fresh one:\nfresh %+v\nreset %+v", fresh, after)
		}
		// docker: docker-init, its idle process, the agent and its zygote.
		// native: isol8-init, the agent and its zygote; the init holds the
		// sandbox itself, with no idle process.
		want := map[string]int{"docker": 4, "native": 3}[backend]
		if len(fresh.Procs) != want {
			t.Errorf("a fresh sandbox's job sees %d other processes, want %d: %v", len(fresh.Procs), want, fresh.Procs)
		}
		if !reflect.DeepEqual(fresh.Net, []string{"lo"}) {
			t.Errorf("network interfaces %v", fresh.Net)
		}
	})
}

// TestNodeCrossTenant: the same for the node agent, whose jobs run in a
// stub started after each reset.
func TestNodeCrossTenant(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		e, _ := warmEngine(t, backend, poolOpts("fast", 1, 0))
		const nodeProbe = `import fs from 'node:fs';
const procs = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
  .map((p) => { try { return fs.readFileSync('/proc/' + p + '/cmdline', 'latin1').split('\0')[0]; } catch { return null; } })
  .filter((x) => x !== null).sort();
const dirs = ['/sandbox', '/tmp', '/dev/shm'].map((d) => fs.readdirSync(d).filter((x) => x !== 'main.mjs').sort());
console.log(JSON.stringify({ procs, dirs, env: process.env }));`
		const nodeDirty = `import fs from 'node:fs'; import { spawn } from 'node:child_process';
for (const p of ['/sandbox/leak', '/tmp/leak', '/dev/shm/leak', '/sandbox/.bashrc']) fs.writeFileSync(p, 'x');
spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' }).unref();
spawn('sh', ['-c', 'sleep 1001 & sleep 1002'], { stdio: 'ignore' }).unref();
process.env.LEAK = '1';
console.log('dirty');`
		first := execute(t, e, &isol8.Request{Runtime: isol8.Node, Code: nodeProbe})
		res := execute(t, e, &isol8.Request{Runtime: isol8.Node, Code: nodeDirty})
		if res.Stdout != "dirty\n" {
			t.Fatalf("dirty job: %+v", res)
		}
		after := execute(t, e, &isol8.Request{Runtime: isol8.Node, Code: nodeProbe})
		if first.Stdout != after.Stdout || first.ExitCode != 0 {
			t.Errorf("after a dirty job:\n%s\nfresh:\n%s\n(stderr %q)", after.Stdout, first.Stdout, after.Stderr)
		}
		if first.ContainerID != after.ContainerID {
			t.Error("fast did not reuse the node sandbox")
		}
		// The sandbox's own sleep processes: docker's idle process; none on
		// native, whose init holds the sandbox itself.
		idle := map[string]int{"docker": 1, "native": 0}[backend]
		if n := strings.Count(after.Stdout, `"sleep"`); n != idle {
			t.Errorf("%d sleep processes, want %d: one of the previous job survived", n, idle)
		}
	})
}

// TestTamperedAgentIsReplaced: a job that lowers the limits of the
// agent's processes (which later jobs would inherit) makes the reset fail,
// so the next job runs in a new sandbox with the usual limits.
func TestTamperedAgentIsReplaced(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		e, _ := warmEngine(t, backend, poolOpts("fast", 1, 0))
		const tamper = `import os, resource
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) != os.getpid():
        try:
            resource.prlimit(int(p), resource.RLIMIT_NOFILE, (32, 32))
        except OSError:
            pass
print('done')`
		a := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: tamper})
		b := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE)[1])"})
		if a.ContainerID == b.ContainerID {
			t.Error("the tampered sandbox was reused")
		}
		if strings.TrimSpace(b.Stdout) == "32" {
			t.Error("the next job inherited the tampered limit")
		}
	})
}

// TestAgentKilledByJob: a job that kills the agent gets a result that
// says so, and the next run works.
func TestAgentKilledByJob(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		e, _ := warmEngine(t, backend, poolOpts("fast", 1, 1))
		const kill = `import os, signal
print('before', flush=True)
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) not in (1, os.getpid()):
        try:
            os.kill(int(p), signal.SIGKILL)
        except OSError:
            pass
import time; time.sleep(5)`
		res := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: kill})
		if res.ExitCode != 137 || !strings.Contains(res.Stderr, "agent was killed") {
			t.Errorf("got %+v", res)
		}
		res = execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "print('ok')"})
		if res.Stdout != "ok\n" {
			t.Errorf("the next run: %+v", res)
		}
	})
}

// TestNodeInspectorSignal: SIGUSR1 (which opens node's inspector on
// loopback) sent by a job to the node agent opens nothing a job could
// attach to, and the sandbox is still reused.
func TestNodeInspectorSignal(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		e, _ := warmEngine(t, backend, poolOpts("fast", 1, 0))
		const signal = `import fs from 'node:fs';
for (const p of fs.readdirSync('/proc')) {
  if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
  const cmd = fs.readFileSync('/proc/' + p + '/cmdline', 'latin1');
  if (cmd.startsWith('isol8-agent')) process.kill(Number(p), 'SIGUSR1'); // the agent: same uid
}
await new Promise((r) => setTimeout(r, 500));
console.log(fs.readFileSync('/proc/net/tcp', 'latin1').trim().split('\n').length - 1);`
		a := execute(t, e, &isol8.Request{Runtime: isol8.Node, Code: signal})
		if a.Stdout != "0\n" {
			t.Errorf("listening sockets after SIGUSR1: %+v", a)
		}
		b := execute(t, e, &isol8.Request{Runtime: isol8.Node, Code: "console.log('ok')"})
		if b.Stdout != "ok\n" || a.ContainerID != b.ContainerID {
			t.Errorf("the next run: %+v", b)
		}
	})
}

// TestIdleAgentGone: a pooled sandbox whose agent ended while it sat idle
// is passed over; the next run is not blamed for it.
func TestIdleAgentGone(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, backend string) {
		e, _ := warmEngine(t, backend, poolOpts("fast", 1, 0))
		a := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "print(1)"})
		for deadline := time.Now().Add(30 * time.Second); e.PoolStats().Idle != 1; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the sandbox did not come back to the pool: %+v", e.PoolStats())
			}
		}
		killIdleAgent(t, backend, a.ContainerID)
		time.Sleep(time.Second) // the agent's stream ends
		b := execute(t, e, &isol8.Request{Runtime: isol8.Python, Code: "print('ok')"})
		if b.Stdout != "ok\n" || b.ExitCode != 0 || b.Stderr != "" {
			t.Errorf("the run after an idle agent died: %+v", b)
		}
		if b.ContainerID == a.ContainerID {
			t.Error("the sandbox with the dead agent was used")
		}
	})
}

// killIdleAgent SIGKILLs, from outside, the python agent (and its zygote)
// idle in sandbox id: through docker exec for docker; for native, which
// has no exec from outside, by pid on the host, picking the processes in
// the sandbox's cgroup (.../isol8/<id>) whose command line is the agent's.
func killIdleAgent(t *testing.T, backend, id string) {
	t.Helper()
	if backend == "docker" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cli, err := client.New(client.FromEnv)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		const killAgent = `for p in /proc/[0-9]*; do case "$(tr '\0' ' ' < $p/cmdline)" in "python3 -I -c"*) kill -9 ${p#/proc/};; esac; done`
		ex, err := cli.ExecCreate(ctx, id, client.ExecCreateOptions{User: "1000:1000", Cmd: []string{"sh", "-c", killAgent}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.ExecStart(ctx, ex.ID, client.ExecStartOptions{Detach: true}); err != nil {
			t.Fatal(err)
		}
		return
	}
	pids, _ := filepath.Glob("/proc/[0-9]*")
	killed := 0
	for _, p := range pids {
		cg, err1 := os.ReadFile(p + "/cgroup")
		cmd, err2 := os.ReadFile(p + "/cmdline")
		if err1 != nil || err2 != nil || !strings.HasPrefix(string(cmd), "python3\x00-I\x00-c\x00") ||
			!strings.Contains(string(cg)+"\n", "/isol8/"+id+"\n") {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("no agent process of native sandbox %s found in /proc", id)
	}
}
