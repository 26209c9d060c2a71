//go:build linux

package native

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// limits are what a sandbox's cgroup enforces.
type limits struct {
	memory int64   // bytes, swap never allowed beyond it; 0 = none
	cpus   float64 // CPUs; 0 = none
	pids   int64   // processes and threads of the sandbox user; 0 = none
}

// cgroups makes the cgroup of each sandbox, on whichever cgroup version
// the host runs.
type cgroups interface {
	// create makes the sandbox's cgroup with its limits.
	create(id string, l limits) (jobCgroup, error)
	// initFDs says what initFiles returns: how many "tasks" files, and
	// whether a "cgroup.procs".
	initFDs() (tasks int, procs bool)
	// paths are the folders create makes for id.
	paths(id string) []string
	// load finds the cgroup of a sandbox from its state file.
	load(paths []string) jobCgroup
	// roots are the folders holding every sandbox's cgroup, for tests.
	roots() []string
}

// jobCgroup is the cgroup of one sandbox: every process of the sandbox
// user is in it, with no way out.
type jobCgroup interface {
	// paths are the cgroup folders, saved in the state file.
	paths() []string
	// initFiles are what the init joins: on v1, the "tasks" files its
	// spawner thread writes itself into; on v2 the one "cgroup.procs". They are opened here, by root, so the
	// init (root only in its own user namespace) can write them.
	initFiles() (tasks []*os.File, procs *os.File, err error)
	// oomKills is the memory controller's count of OOM kills.
	oomKills() uint64
	// kill sends SIGKILL to every process in the cgroup and returns when
	// none is left (or the deadline passes): by cgroup, never by pid.
	kill(deadline time.Time) error
	// empty reports whether no process is left.
	empty() bool
	// remove deletes the cgroup folders once empty.
	remove(deadline time.Time) error
	// close releases open descriptors.
	close()
}

// detectCgroups picks v2 when /sys/fs/cgroup is the unified hierarchy,
// else v1 with the memory, pids, cpu and freezer controllers.
func detectCgroups() (cgroups, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	if m, ok := mounts[""]; ok && m == "/sys/fs/cgroup" {
		return newCgroupV2(m)
	}
	return newCgroupV1(mounts, own)
}

// cgroupMounts maps each v1 controller to its mount point, and "" to the
// v2 mount, from /proc/self/mountinfo.
func cgroupMounts() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		switch g[0] {
		case "cgroup2":
			if _, seen := out[""]; !seen || f[4] == "/sys/fs/cgroup" {
				out[""] = f[4]
			}
		case "cgroup":
			for _, opt := range strings.Split(g[2], ",") {
				if _, seen := out[opt]; !seen {
					out[opt] = f[4]
				}
			}
		}
	}
	return out, sc.Err()
}

// ownCgroups maps each v1 controller (and "" for v2) to this process's
// cgroup path, from /proc/self/cgroup.
func ownCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

// Helpers shared by both versions.

func writeFile(dir, name, value string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("cgroup %s: %w", name, err)
	}
	return nil
}

// counter reads "key N" from a flat-keyed cgroup file.
func counter(path, key string) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return parseCounter(data, key)
}

// oomFile is a cgroup's OOM counter file, open while the sandbox lives:
// an Exec reads it twice, without opening it each time.
type oomFile struct {
	mu sync.Mutex
	f  *os.File
}

func (o *oomFile) open(path string) {
	f, err := os.Open(path)
	if err != nil {
		return // a missing file only loses the OOM flag, not the limit
	}
	o.mu.Lock()
	o.f = f
	o.mu.Unlock()
}

func (o *oomFile) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f != nil {
		o.f.Close()
		o.f = nil
	}
}

// kills reads the "oom_kill" count.
func (o *oomFile) kills() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return counterAt(o.f, "oom_kill")
}

// counterAt reads "key N" from an open cgroup file, from its start.
func counterAt(f *os.File, key string) uint64 {
	if f == nil {
		return 0
	}
	var buf [512]byte
	n, err := f.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0
	}
	return parseCounter(buf[:n], key)
}

func parseCounter(data []byte, key string) uint64 {
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// pidsIn lists the processes in a cgroup.procs file.
func pidsIn(path string) []int {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// rmdirAll removes cgroup folders, retrying while the kernel still counts
// exiting tasks in them. A folder already gone is fine.
func rmdirAll(dirs []string, deadline time.Time) error {
	var errs []error
	for _, d := range dirs {
		for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
			err := unix.Rmdir(d)
			if err == nil || err == unix.ENOENT {
				break
			}
			if err != unix.EBUSY || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
				break
			}
			time.Sleep(wait)
		}
	}
	return errors.Join(errs...)
}
