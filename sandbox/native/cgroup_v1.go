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

// The v1 controllers a sandbox uses, in the order of its saved paths.
var v1Controllers = []string{"memory", "pids", "cpu", "freezer"}

// cgroupV1 places sandboxes in per-controller hierarchies. Only the init's
// spawner thread joins the sandbox's cgroups (v1 moves single threads),
// and everything it forks is born in them: the limits count exactly the
// sandbox user's processes, plus that one thread, and the OOM killer only
// ever picks among them (it considers thread-group leaders only, and the
// init's leader is not in the memory cgroup). The freezer cgroup's
// cgroup.procs still lists the init (a thread of it is there), so a
// cgroup-wide kill takes the init too. Moving one thread, the writer
// itself, also skips the global lock that moving a whole process takes,
// which can cost milliseconds on a busy host.
type cgroupV1 struct {
	bases []string // per v1Controllers: the folder holding sandbox cgroups
}

func newCgroupV1(mounts, own map[string]string) (*cgroupV1, error) {
	c := &cgroupV1{}
	for _, ctl := range v1Controllers {
		m, ok := mounts[ctl]
		if !ok {
			return nil, fmt.Errorf("cgroup v1 controller %q is not mounted", ctl)
		}
		// Sandboxes nest under the engine's own cgroup, so whatever limits
		// the engine runs under also bound its sandboxes.
		base := filepath.Join(m, own[ctl], "isol8")
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup v1 %s: %w", ctl, err)
		}
		c.bases = append(c.bases, base)
	}
	return c, nil
}

func (c *cgroupV1) roots() []string { return c.bases }

func (c *cgroupV1) initFDs() (int, bool) { return len(v1Controllers), false }

func (c *cgroupV1) paths(id string) []string {
	dirs := make([]string, len(c.bases))
	for i, b := range c.bases {
		dirs[i] = filepath.Join(b, id)
	}
	return dirs
}

func (c *cgroupV1) load(paths []string) jobCgroup {
	if len(paths) != len(v1Controllers) {
		return &jobV1{}
	}
	return &jobV1{dirs: paths}
}

func (c *cgroupV1) create(id string, l limits) (jobCgroup, error) {
	j := &jobV1{}
	for _, d := range c.paths(id) {
		if err := os.Mkdir(d, 0o755); err != nil {
			_ = rmdirAll(j.dirs, time.Now())
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		j.dirs = append(j.dirs, d)
	}
	if err := j.setLimits(l); err != nil {
		_ = rmdirAll(j.dirs, time.Now())
		return nil, err
	}
	j.oom.open(filepath.Join(j.memory(), "memory.oom_control"))
	return j, nil
}

type jobV1 struct {
	dirs []string // memory, pids, cpu, freezer
	oom  oomFile  // memory.oom_control
}

func (j *jobV1) memory() string  { return j.dirs[0] }
func (j *jobV1) pids() string    { return j.dirs[1] }
func (j *jobV1) cpu() string     { return j.dirs[2] }
func (j *jobV1) freezer() string { return j.dirs[3] }

func (j *jobV1) setLimits(l limits) error {
	if l.memory > 0 {
		v := strconv.FormatInt(l.memory, 10)
		if err := writeFile(j.memory(), "memory.limit_in_bytes", v); err != nil {
			return err
		}
		// memory+swap equal to memory: no swap at all. Without swap
		// accounting the file is missing, and swappiness 0 is the most
		// that can be asked.
		err := writeFile(j.memory(), "memory.memsw.limit_in_bytes", v)
		if errors.Is(err, os.ErrNotExist) {
			err = writeFile(j.memory(), "memory.swappiness", "0")
		}
		if err != nil {
			return err
		}
	}
	if l.pids > 0 {
		// +1: the init's spawner thread lives in this cgroup too.
		if err := writeFile(j.pids(), "pids.max", strconv.FormatInt(l.pids+1, 10)); err != nil {
			return err
		}
	}
	if l.cpus > 0 {
		// The kernel's default period, 100 ms.
		const period = 100000
		quota := max(int64(l.cpus*period), 1000)
		if err := writeFile(j.cpu(), "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)); err != nil {
			return err
		}
	}
	return nil
}

func (j *jobV1) paths() []string { return j.dirs }

func (j *jobV1) close() { j.oom.close() }

func (j *jobV1) initFiles() ([]*os.File, *os.File, error) {
	var tasks []*os.File
	fail := func(err error) ([]*os.File, *os.File, error) {
		for _, f := range tasks {
			f.Close()
		}
		return nil, nil, err
	}
	for _, d := range j.dirs {
		f, err := os.OpenFile(filepath.Join(d, "tasks"), os.O_WRONLY, 0)
		if err != nil {
			return fail(err)
		}
		tasks = append(tasks, f)
	}
	return tasks, nil, nil
}

func (j *jobV1) oomKills() uint64 { return j.oom.kills() }

func (j *jobV1) empty() bool {
	return len(j.dirs) == 0 || len(pidsIn(filepath.Join(j.freezer(), "cgroup.procs"))) == 0
}

// kill freezes the sandbox, so that no process can fork or exit while the
// list is read (an exited pid could be reused by someone else), sends
// SIGKILL to every listed process, and thaws it so they die.
func (j *jobV1) kill(deadline time.Time) error {
	if len(j.dirs) == 0 {
		return nil
	}
	procs := filepath.Join(j.freezer(), "cgroup.procs")
	for !j.empty() {
		if err := writeFile(j.freezer(), "freezer.state", "FROZEN"); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed meanwhile (by its own engine's cleanup)
			}
			return err
		}
		for wait := 50 * time.Microsecond; freezerState(j.freezer()) != "FROZEN" && time.Now().Before(deadline); wait = min(2*wait, 10*time.Millisecond) {
			time.Sleep(wait)
		}
		for _, pid := range pidsIn(procs) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if err := writeFile(j.freezer(), "freezer.state", "THAWED"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for wait := 50 * time.Microsecond; !j.empty() && time.Now().Before(deadline); wait = min(2*wait, 10*time.Millisecond) {
			time.Sleep(wait)
		}
		if time.Now().After(deadline) {
			if j.empty() {
				return nil
			}
			return fmt.Errorf("cgroup %s: processes left after SIGKILL", j.freezer())
		}
	}
	return nil
}

func freezerState(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "freezer.state"))
	return strings.TrimSpace(string(b))
}

func (j *jobV1) remove(deadline time.Time) error {
	j.close()
	return rmdirAll(j.dirs, deadline)
}
