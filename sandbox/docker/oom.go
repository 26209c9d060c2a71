package docker

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/moby/moby/client"
)

// cgroupRoot is where the host's cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// oomCounter is a snapshot of "has the memory limit killed something".
// count is the memory cgroup's oom_kill counter when it can be read (a
// local engine); otherwise flag is Docker's sticky State.OOMKilled, which
// only tells the first OOM kill of a container's life.
type oomCounter struct {
	count int64
	flag  bool
}

// oomSnapshot reads the counter; errors leave it zero, which at worst
// misses an OOM kill (the exit code 137 still shows the kill).
func (s *Sandbox) oomSnapshot(ctx context.Context) oomCounter {
	s.oomOnce.Do(func() { s.oomPath = s.findOOMFile(ctx) })
	if s.oomPath != "" {
		if n, ok := readOOMKills(s.oomPath); ok {
			return oomCounter{count: n}
		}
	}
	res, err := s.b.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil {
		return oomCounter{}
	}
	return oomCounter{flag: res.Container.State.OOMKilled}
}

// killedSince reports whether an OOM kill happened between two snapshots.
func (before oomCounter) killedSince(after oomCounter) bool {
	return after.count > before.count || (after.flag && !before.flag)
}

// findOOMFile locates the container's OOM-kill counter from its init
// process's /proc/<pid>/cgroup, which works for the cgroupfs and systemd
// drivers alike: cgroup v1 memory.oom_control, else v2 memory.events. It
// returns "" when the engine is not local (the pid is not the container's
// here), and Exec then falls back to State.OOMKilled.
func (s *Sandbox) findOOMFile(ctx context.Context) string {
	// The usual places first (cgroupfs and systemd drivers, v1 and v2):
	// a path that names the full container id is this container's, and
	// finding it costs no API round trip on the run's path.
	for _, f := range []string{
		cgroupRoot + "/memory/docker/" + s.id + "/memory.oom_control",
		cgroupRoot + "/memory/system.slice/docker-" + s.id + ".scope/memory.oom_control",
		cgroupRoot + "/system.slice/docker-" + s.id + ".scope/memory.events",
		cgroupRoot + "/docker/" + s.id + "/memory.events",
	} {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	res, err := s.b.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil || res.Container.State.Pid <= 0 {
		return ""
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(res.Container.State.Pid) + "/cgroup")
	// Another pid namespace (isol8 itself in a container) shows some other
	// process, or none: only trust a cgroup that names this container.
	if err != nil || !bytes.Contains(data, []byte(s.id)) {
		return ""
	}
	var v2 string
	for line := range strings.Lines(string(data)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				return cgroupRoot + "/memory" + parts[2] + "/memory.oom_control"
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
	}
	if v2 == "" {
		return ""
	}
	// Pure v2 mounts the unified hierarchy at cgroupRoot, hybrid at unified/.
	for _, base := range []string{cgroupRoot, cgroupRoot + "/unified"} {
		f := base + v2 + "/memory.events"
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}

// readOOMKills parses the "oom_kill N" line both memory.oom_control (v1)
// and memory.events (v2) carry.
func readOOMKills(file string) (int64, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
