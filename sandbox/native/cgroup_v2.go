//go:build linux

package native

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// initReserve is how many tasks of the pids limit the init's own threads
// may take on cgroup v2, where it must live in the sandbox's cgroup: a
// domain cgroup cannot hold single threads, and the sandbox's processes
// can only be born where their parent is (clone3 into a cgroup is refused
// by the seccomp profile, since it would also allow namespace flags).
// The init runs with GOMAXPROCS=1 and needs about six threads.
const initReserve = 16

var v2Controllers = []string{"memory", "pids", "cpu"}

// cgroupV2 places each sandbox, init included, in one cgroup of the
// unified hierarchy (the init joins it first thing), and cgroup.kill ends
// all of it at once.
type cgroupV2 struct {
	base string
}

func newCgroupV2(mount string) (*cgroupV2, error) {
	have, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	var enable []string
	for _, c := range v2Controllers {
		if !strings.Contains(" "+strings.TrimSpace(string(have))+" ", " "+c+" ") {
			return nil, fmt.Errorf("cgroup v2: controller %q is not available", c)
		}
		enable = append(enable, "+"+c)
	}
	// Like Docker's cgroupfs driver: one folder at the top, out of any
	// service's cgroup, since a cgroup with processes cannot delegate
	// controllers to children.
	base := filepath.Join(mount, "isol8")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	for _, d := range []string{mount, base} {
		if err := writeFile(d, "cgroup.subtree_control", strings.Join(enable, " ")); err != nil {
			return nil, err
		}
	}
	return &cgroupV2{base: base}, nil
}

func (c *cgroupV2) roots() []string { return []string{c.base} }

func (c *cgroupV2) initFDs() (int, bool) { return 0, true }

func (c *cgroupV2) paths(id string) []string { return []string{filepath.Join(c.base, id)} }

func (c *cgroupV2) load(paths []string) jobCgroup {
	if len(paths) != 1 {
		return &jobV2{}
	}
	return &jobV2{dir: paths[0]}
}

func (c *cgroupV2) create(id string, l limits) (jobCgroup, error) {
	d := filepath.Join(c.base, id)
	if err := os.Mkdir(d, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	j := &jobV2{dir: d}
	if err := j.setLimits(l); err != nil {
		_ = rmdirAll([]string{d}, time.Now())
		return nil, err
	}
	j.oom.open(filepath.Join(d, "memory.events"))
	return j, nil
}

type jobV2 struct {
	dir string
	oom oomFile // memory.events
}

func (j *jobV2) setLimits(l limits) error {
	if l.memory > 0 {
		if err := writeFile(j.dir, "memory.max", strconv.FormatInt(l.memory, 10)); err != nil {
			return err
		}
		if err := writeFile(j.dir, "memory.swap.max", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if l.pids > 0 {
		if err := writeFile(j.dir, "pids.max", strconv.FormatInt(l.pids+initReserve, 10)); err != nil {
			return err
		}
	}
	if l.cpus > 0 {
		const period = 100000
		quota := max(int64(l.cpus*period), 1000)
		if err := writeFile(j.dir, "cpu.max", fmt.Sprintf("%d %d", quota, period)); err != nil {
			return err
		}
	}
	return nil
}

func (j *jobV2) paths() []string {
	if j.dir == "" {
		return nil
	}
	return []string{j.dir}
}

func (j *jobV2) close() { j.oom.close() }

func (j *jobV2) initFiles() ([]*os.File, *os.File, error) {
	procs, err := os.OpenFile(filepath.Join(j.dir, "cgroup.procs"), os.O_WRONLY, 0)
	return nil, procs, err
}

func (j *jobV2) oomKills() uint64 { return j.oom.kills() }

func (j *jobV2) empty() bool {
	if j.dir == "" {
		return true
	}
	if _, err := os.Stat(j.dir); errors.Is(err, os.ErrNotExist) {
		return true
	}
	return counter(filepath.Join(j.dir, "cgroup.events"), "populated") == 0
}

// kill uses cgroup.kill (Linux 5.14), which the kernel applies to the
// whole cgroup atomically; older kernels freeze, kill each and thaw.
func (j *jobV2) kill(deadline time.Time) error {
	if j.empty() {
		return nil
	}
	if err := writeFile(j.dir, "cgroup.kill", "1"); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if j.empty() {
			return nil // removed meanwhile (by its own engine's cleanup)
		}
		if err := writeFile(j.dir, "cgroup.freeze", "1"); err != nil {
			return err
		}
		for wait := 50 * time.Microsecond; counter(filepath.Join(j.dir, "cgroup.events"), "frozen") != 1 && time.Now().Before(deadline); wait = min(2*wait, 10*time.Millisecond) {
			time.Sleep(wait)
		}
		for _, pid := range pidsIn(filepath.Join(j.dir, "cgroup.procs")) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if err := writeFile(j.dir, "cgroup.freeze", "0"); err != nil {
			return err
		}
	}
	for wait := 50 * time.Microsecond; !j.empty(); wait = min(2*wait, 10*time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes left after kill", j.dir)
		}
		time.Sleep(wait)
	}
	return nil
}

func (j *jobV2) remove(deadline time.Time) error {
	j.close()
	return rmdirAll(j.paths(), deadline)
}
