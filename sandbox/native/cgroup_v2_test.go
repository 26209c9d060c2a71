//go:build linux

package native

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// unifiedMount is the cgroup2 mount of this host: /sys/fs/cgroup on a v2
// host, /sys/fs/cgroup/unified on a hybrid one (as this machine's is).
func unifiedMount(t *testing.T) string {
	t.Helper()
	mounts, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := mounts[""]
	if !ok {
		t.Fatal("no cgroup2 hierarchy is mounted; the cgroup v2 lifecycle cannot be tested")
	}
	return m
}

// TestCgroupV2Lifecycle runs the v2 code on the host's real unified
// hierarchy: a sandbox's cgroup is made, processes born into it (as the
// init's are, through the cgroup's fd) including a detached grandchild,
// cgroup.kill ends them all, and the folder goes. The memory, pids and
// cpu controllers are not tested here when the host binds them to v1
// (this machine does); their files are written by setLimits only.
func TestCgroupV2Lifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to make cgroups (CI runs as root)")
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	c := &cgroupV2{base: filepath.Join(unifiedMount(t), "isol8-test-"+hex.EncodeToString(suffix))}
	if err := os.Mkdir(c.base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(c.base) })

	j, err := c.create("0123456789abcdef", limits{}) // no controller: no limit files
	if err != nil {
		t.Fatal(err)
	}
	if !j.empty() {
		t.Fatal("a new cgroup is not empty")
	}
	_, procs, err := j.initFiles()
	if err != nil {
		t.Fatal(err)
	}
	defer procs.Close()
	cmd := exec.Command("sh", "-c", "setsid sleep 1000 & sleep 1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: dirFD(t, j.paths()[0])}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	procsFile := filepath.Join(j.paths()[0], "cgroup.procs")
	for deadline := time.Now().Add(10 * time.Second); len(pidsIn(procsFile)) < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("processes in the cgroup: %v, want sh and two sleeps", pidsIn(procsFile))
		}
	}
	if j.empty() {
		t.Fatal("a cgroup with processes reports empty")
	}
	if err := j.kill(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if !j.empty() || len(pidsIn(procsFile)) != 0 {
		t.Fatalf("processes survived cgroup.kill: %v", pidsIn(procsFile))
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed shell was not reaped")
	}
	if err := j.remove(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(j.paths()[0]); !os.IsNotExist(err) {
		t.Fatalf("the cgroup folder is still there: %v", err)
	}
	// A saved record's paths find the same cgroup again; removing a gone
	// one is not an error.
	if err := c.load(c.paths("0123456789abcdef")).remove(time.Now().Add(time.Second)); err != nil {
		t.Fatalf("removing a removed cgroup: %v", err)
	}
}

func dirFD(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}
