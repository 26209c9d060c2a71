//go:build linux

package native

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// TestInitSurvivesExeOverwrite attacks the init's program (CVE-2019-5736,
// runc): from inside through /proc/1/exe and /proc/self/exe, and from the
// host through /proc/<init>/exe. The init runs from a sealed memfd, so
// nothing can be written, the binary on disk is untouched, and the
// sandbox keeps working.
func TestInitSurvivesExeOverwrite(t *testing.T) {
	b := openBackend(t)
	sbi := create(t, b, testSpec(testImage(t, b)))
	sb := sbi.(*Sandbox)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}

	out, errOut, code := execOut(t, sb, "python3", "-c", `import os
for p in ("/proc/1/exe", "/proc/self/exe", "/usr/bin/python3"):
    for mode in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
        try:
            fd = os.open(p, mode)
            try:
                os.write(fd, b"\x7fELF pwned")
                print("wrote", p)
            except OSError as e:
                print("write-refused", p, e.errno)
            os.close(fd)
        except OSError as e:
            print("open-refused", p, e.errno)`)
	if code != 0 || strings.Contains(out, "wrote") {
		t.Fatalf("inside: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("inside:\n%s", out)

	exe := fmt.Sprintf("/proc/%d/exe", sb.pid)
	if link, err := os.Readlink(exe); err != nil || !strings.HasPrefix(link, "/memfd:isol8-init") {
		t.Errorf("init runs %q (%v), want the sealed memfd", link, err)
	}
	for _, flag := range []int{os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
		f, err := os.OpenFile(exe, flag, 0)
		if err != nil {
			continue // ETXTBSY: the file is being executed
		}
		if _, err := f.Write([]byte("\x7fELF pwned")); err == nil {
			t.Errorf("host: wrote to the init's program (flags %#x)", flag)
		}
		if err := f.Truncate(0); err == nil {
			t.Errorf("host: truncated the init's program (flags %#x)", flag)
		}
		f.Close()
	}

	after, err := os.ReadFile(self)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the binary on disk changed (%v)", err)
	}
	if out, _, code := execOut(t, sb, "python3", "-c", "print(6*7)"); code != 0 || out != "42\n" {
		t.Errorf("sandbox after the attack: exit %d, %q", code, out)
	}
	if out, _, code := execOut(t, create(t, b, testSpec(testImage(t, b))), "true"); code != 0 {
		t.Errorf("a new sandbox after the attack: exit %d, %q", code, out)
	}
}

// TestNoLeaks runs Create, Exec of true, Destroy a thousand times (a
// hundred with -short) and checks that the host is left as it was: no
// more mounts, cgroups, isol8 processes or state files.
func TestNoLeaks(t *testing.T) {
	b := openBackend(t)
	spec := testSpec(testImage(t, b))
	spec.Labels = map[string]string{"dev.isol8.test": "leaks-" + hex.EncodeToString(randomBytes(4))}
	runs := 1000
	if testing.Short() {
		runs = 100
	}
	// One run first, so that the nursery and the image cache exist.
	sb := create(t, b, spec)
	execOut(t, sb, "true")
	if err := sb.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitCleanups(t, b)
	img, err := b.images.resolve(context.Background(), spec.Image)
	if err != nil {
		t.Fatal(err)
	}
	before := hostState(t, b, img.rootfs)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	next := make(chan struct{}, runs)
	for range runs {
		next <- struct{}{}
	}
	close(next)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if err := coldRun(ctx, b, spec); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d runs in %v (%v each, 2 at a time)", runs, time.Since(start).Round(time.Millisecond), (time.Since(start) / time.Duration(runs)).Round(time.Microsecond))
	waitCleanups(t, b)
	after := hostState(t, b, img.rootfs)
	t.Logf("before %v, after %v", before, after)
	for k, v := range after {
		if v > before[k] {
			t.Errorf("%s: %d before, %d after %d runs", k, before[k], v, runs)
		}
	}
	if left, err := b.List(ctx, spec.Labels); err != nil || len(left) != 0 {
		t.Errorf("List finds %d sandboxes (%v)", len(left), err)
	}
}

func coldRun(ctx context.Context, b *Backend, spec sandbox.Spec) error {
	sb, err := b.Create(ctx, spec)
	if err != nil {
		return err
	}
	st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"true"}})
	if err == nil && st.Code != 0 {
		err = fmt.Errorf("true exited %d", st.Code)
	}
	if derr := sb.Destroy(ctx); err == nil {
		err = derr
	}
	return err
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// waitCleanups waits for the background part of every Destroy.
func waitCleanups(t testing.TB, b *Backend) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		b.cleanups.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("sandbox cleanups still running after a minute")
	}
}

// hostState counts what a sandbox could leave on the host.
func hostState(t testing.TB, b *Backend, rootfs string) map[string]int {
	t.Helper()
	m := map[string]int{}
	// Other programs (a Docker engine) mount and unmount on this host
	// too: count the mounts a sandbox could leak, on its image or state.
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			for _, dir := range []string{b.dir, rootfs} {
				if f[4] == dir || strings.HasPrefix(f[4], dir+"/") {
					m["mounts on the image or state"]++
				}
			}
		}
	}
	for _, root := range b.cgroupRoots() {
		ents, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				m["cgroups"]++
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		if comm, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(comm), "isol8-init") {
			m["isol8-init processes"]++
		}
	}
	recs, _ := os.ReadDir(b.records.dir)
	m["state files"] = len(recs)
	return m
}

// TestRemoveAfterRestart plays an engine that died: a second backend on
// the same state folder finds the first one's sandbox by its labels and
// removes it through its cgroup, processes and all.
func TestRemoveAfterRestart(t *testing.T) {
	first := openBackend(t)
	spec := testSpec(testImage(t, first))
	spec.Labels = map[string]string{"dev.isol8.test": "restart-" + hex.EncodeToString(randomBytes(4))}
	sb := create(t, first, spec).(*Sandbox)
	execOut(t, sb, "bash", "-c", "setsid sleep 300 >/dev/null 2>&1 < /dev/null & disown")

	second := openBackend(t)
	ctx := context.Background()
	found, err := second.List(ctx, spec.Labels)
	if err != nil || len(found) != 1 || found[0].ID != sb.ID() || !found[0].Running {
		t.Fatalf("List from a new backend: %+v, %v", found, err)
	}
	if err := second.Remove(ctx, sb.ID()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if !waitExit(int(sb.pidfd.Fd()), time.Now().Add(5*time.Second)) {
		t.Error("the init survived Remove")
	}
	for _, d := range sb.job.paths() {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left: %v", d, err)
		}
	}
	if left, _ := second.List(ctx, spec.Labels); len(left) != 0 {
		t.Errorf("List after Remove: %+v", left)
	}
}
