package docker

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/isol8/isol8/sandbox"
)

var _ sandbox.UsageReader = (*Sandbox)(nil)

// Usage reads the container's memory and CPU counters from its cgroups,
// found next to the OOM counter (oom.go): cgroup v1 memory and cpuacct,
// or v2 memory.current, memory.peak and cpu.stat. A remote engine's
// cgroups cannot be read: the error says so and the result has none.
func (s *Sandbox) Usage(ctx context.Context) (sandbox.Usage, error) {
	s.oomOnce.Do(func() { s.oomPath = s.findOOMFile(ctx) })
	var u sandbox.Usage
	switch {
	case strings.HasSuffix(s.oomPath, "/memory.oom_control"): // v1
		dir := strings.TrimSuffix(s.oomPath, "/memory.oom_control")
		rel := strings.TrimPrefix(dir, cgroupRoot+"/memory")
		u.MemoryBytes = readInt(dir + "/memory.usage_in_bytes")
		u.PeakMemoryBytes = readInt(dir + "/memory.max_usage_in_bytes")
		u.CPUNanos = readInt(cgroupRoot + "/cpuacct" + rel + "/cpuacct.usage")
	case strings.HasSuffix(s.oomPath, "/memory.events"): // v2
		dir := strings.TrimSuffix(s.oomPath, "/memory.events")
		u.MemoryBytes = readInt(dir + "/memory.current")
		u.PeakMemoryBytes = readInt(dir + "/memory.peak")
		if data, err := os.ReadFile(dir + "/cpu.stat"); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					u.CPUNanos = n * 1000
				}
			}
		}
	default:
		return u, errors.New("the container's cgroups cannot be read from here")
	}
	return u, nil
}

func readInt(file string) int64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}
