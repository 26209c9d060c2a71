package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// testLimits fills /sandbox, /tmp and /dev/shm: each must stop with ENOSPC
// at its size, without touching the memory limit.
func (s *suite) testLimits(t *testing.T) {
	t.Parallel()
	sb := s.create(t, nil)
	out := py(t, sb, `import os, sys
chunk = b"\1" * 65536
for d in sys.argv[1:]:
    n, err = 0, 0
    fd = os.open(d + "/fill", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while n < 1 << 30:
            n += os.write(fd, chunk)
    except OSError as e:
        err = e.errno
    os.close(fd)
    os.remove(d + "/fill")
    print(d, n, err)`, sandbox.SandboxDir, sandbox.TmpDir, "/dev/shm")
	got := fields(out)
	for dir, size := range map[string]int64{sandbox.SandboxDir: sandboxSize, sandbox.TmpDir: tmpSize, "/dev/shm": memoryBytes / 2} {
		f := strings.Fields(got[dir])
		if len(f) != 2 {
			t.Errorf("%s: %q", dir, got[dir])
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if f[1] != "28" {
			t.Errorf("%s: errno %s after %d bytes, want ENOSPC (28)", dir, f[1], n)
		}
		if n > size || (dir != "/dev/shm" && n < size-(1<<20)) {
			t.Errorf("%s: %d bytes written, size is %d", dir, n, size)
		}
	}
}

func (s *suite) testPids(t *testing.T) {
	t.Parallel()
	sb := s.create(t, nil)
	got := fields(py(t, sb, `import os, time
n, err = 0, 0
while n < 1000:
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        os.close(1); os.close(2)
        time.sleep(300)
        os._exit(0)
    n += 1
print("forked", n)
print("errno", err)`))
	n, _ := strconv.Atoi(got["forked"])
	if got["errno"] != "11" || n >= pidsLimit {
		t.Errorf("forked %d processes, then errno %s; want EAGAIN (11) below %d", n, got["errno"], pidsLimit)
	}
}

func (s *suite) testOOM(t *testing.T) {
	t.Parallel()
	sb := s.create(t, func(sp *sandbox.Spec) { sp.MemoryBytes = 64 << 20 })
	r := run(t, sb, sandbox.ExecSpec{Argv: []string{"python3", "-c", `
hold = []
while True:
    hold.append(b"\1" * (4 << 20))`}})
	if r.status.Code != 137 || !r.status.OOMKilled {
		t.Errorf("memory balloon: exit %d, OOMKilled %v; want 137, true (stderr %q)", r.status.Code, r.status.OOMKilled, r.stderr)
	}
	if r := sh(t, sb, "true"); r.status.Code != 0 || r.status.OOMKilled {
		t.Errorf("next exec: exit %d, OOMKilled %v; want 0, false", r.status.Code, r.status.OOMKilled)
	}
}

// testDestroy leaves a double-forked, setsid'd grandchild that ignores
// SIGTERM and SIGHUP; Destroy must kill it, quickly, and leave nothing.
func (s *suite) testDestroy(t *testing.T) {
	t.Parallel()
	spec := s.spec(map[string]string{"dev.isol8.case": "destroy"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb, err := s.b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("86400.%09d", rand.IntN(1e9))
	py(t, sb, `import os, signal, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        fd = os.open("/dev/null", os.O_RDWR)
        for i in range(3):
            os.dup2(fd, i)
        os.execvp("sleep", ["sleep", sys.argv[1]])
    os._exit(0)
os.wait()`, marker)
	inside := fields(py(t, sb, `import os, sys
for p in os.listdir("/proc"):
    try:
        if p.isdigit() and int(p) != os.getpid() and sys.argv[1] in open("/proc/%s/cmdline" % p).read():
            ign = [l for l in open("/proc/%s/status" % p) if l.startswith("SigIgn")][0].split()[1]
            print("found", p, int(ign, 16) & (1 << 14) != 0)
    except OSError:
        pass`, marker))
	if inside["found"] == "" || !strings.HasSuffix(inside["found"], "True") {
		t.Fatalf("the SIGTERM-ignoring grandchild is not running: %q", inside["found"])
	}
	visible := hostHas(marker) // a local backend's processes show on this host

	start := time.Now()
	if err := sb.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	d := time.Since(start)
	t.Logf("Destroy: %v", d.Round(time.Millisecond))
	if d > 3*time.Second {
		t.Errorf("Destroy took %v with a process ignoring SIGTERM", d)
	}
	if err := sb.Destroy(ctx); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if left, err := s.b.List(ctx, spec.Labels); err != nil || len(left) != 0 {
		t.Errorf("after Destroy, List finds %v (%v)", left, err)
	}
	if visible && !waitFor(2*time.Second, func() bool { return !hostHas(marker) }) {
		t.Error("the grandchild survived Destroy")
	} else if !visible {
		t.Log("sandbox processes are not visible on this host; relying on List")
	}
}

// hostHas reports whether a process on this host has marker in its argv.
func hostHas(marker string) bool {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), marker) {
			return true
		}
	}
	return false
}

func (s *suite) testListRemove(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	caseLabels := map[string]string{labelRun: s.run, "dev.isol8.case": "list"}
	sb, err := s.b.Create(ctx, s.spec(caseLabels))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Destroy(ctx)
	list := func(labels map[string]string) []sandbox.Info {
		t.Helper()
		got, err := s.b.List(ctx, labels)
		if err != nil {
			t.Fatalf("List(%v): %v", labels, err)
		}
		return got
	}
	got := list(caseLabels)
	if len(got) != 1 || got[0].ID != sb.ID() || !got[0].Running {
		t.Fatalf("List by labels: %+v, want exactly the running %s", got, sb.ID())
	}
	info := got[0]
	if info.Labels[sandbox.LabelManaged] != "true" || info.Labels["dev.isol8.case"] != "list" {
		t.Errorf("labels %v lack %s=true or the spec's", info.Labels, sandbox.LabelManaged)
	}
	if time.Since(info.Created) > 5*time.Minute || time.Until(info.Created) > time.Minute {
		t.Errorf("created %v", info.Created)
	}
	owner, ok := info.Labels[sandbox.LabelOwner]
	if !ok {
		t.Fatalf("no %s label: %v", sandbox.LabelOwner, info.Labels)
	}
	if byOwner := list(map[string]string{sandbox.LabelOwner: owner, labelRun: s.run}); !hasID(byOwner, sb.ID()) {
		t.Errorf("List by owner %q misses the sandbox", owner)
	}
	if other := list(map[string]string{sandbox.LabelOwner: owner + "-other", labelRun: s.run}); len(other) != 0 {
		t.Errorf("List by another owner finds %+v", other)
	}
	if err := s.b.Remove(ctx, sb.ID()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if left := list(caseLabels); len(left) != 0 {
		t.Errorf("after Remove, List finds %+v", left)
	}
	if err := s.b.Remove(ctx, sb.ID()); err != nil {
		t.Errorf("Remove of a removed sandbox: %v", err)
	}
	if err := sb.Destroy(ctx); err != nil {
		t.Errorf("Destroy of a removed sandbox: %v", err)
	}
}

func hasID(infos []sandbox.Info, id string) bool {
	for _, i := range infos {
		if i.ID == id {
			return true
		}
	}
	return false
}

func (s *suite) testMissingImage(t *testing.T) {
	t.Parallel()
	image := "isol8-conformance-missing:" + s.run
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spec := s.spec(nil)
	spec.Image = image
	sb, err := s.b.Create(ctx, spec)
	if err == nil {
		sb.Destroy(ctx)
		t.Fatal("Create with a missing image succeeded")
	}
	if !errors.Is(err, sandbox.ErrImageNotFound) || !strings.Contains(err.Error(), image) {
		t.Errorf("err %v, want ErrImageNotFound naming %s", err, image)
	}
}
