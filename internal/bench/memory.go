package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

// Mem is the host memory of one pool's idle warm sandboxes, per sandbox.
type Mem struct {
	Name  string // "docker python"
	Count int    // idle sandboxes measured
	// Cgroup is the sandbox cgroup's memory usage (memory.usage_in_bytes
	// on cgroup v1, memory.current on v2), Anon the anonymous part of it
	// (total_rss / anon in memory.stat). Page cache the sandbox was first
	// to read is in Cgroup, not in Anon.
	Cgroup, Anon float64
	// PSS is the proportional set size of the processes in the sandbox's
	// memory cgroup (the native init is listed there through its spawner
	// thread); Outside that of the processes that serve it from outside
	// (Docker's containerd shim; any process only in another controller).
	PSS, Outside float64
	Goal         float64 // MB, judged on Cgroup
	Note         string
}

const mb = 1 << 20

// sandboxMem is what one sandbox holds: its memory cgroup folder, and the
// processes inside and outside it.
type sandboxMem struct {
	memDir        string
	usage         uint64 // when memDir is unknown (Docker stats API)
	procs, others []int
}

// memory measures the idle sandboxes of a warm pool of rt on backend.
func (r *runner) memory(backend, rt string) {
	m := &Mem{Name: backend + " " + rt, Goal: dockerIdleMB}
	if backend == "native" {
		m.Goal = nativeIdleMB
	}
	defer func() {
		fmt.Fprintf(r.log, "  idle %-39s %.1f MB cgroup, %.1f MB PSS (+%.1f outside), %d sandboxes %s\n",
			m.Name, m.Cgroup, m.PSS, m.Outside, m.Count, m.Note)
		r.rep.Memory = append(r.rep.Memory, m)
	}()
	e, owner, err := r.engine(backend, warmOptions())
	if err != nil {
		m.Note = firstLine(err.Error())
		return
	}
	defer stop(e)
	if err := execute(r.ctx, e, &isol8.Request{Runtime: isol8.Runtime(rt), Code: probe[rt].code})(); err != nil {
		m.Note = firstLine(err.Error())
		return
	}
	waitIdle(r.ctx, e, 30*time.Second)
	time.Sleep(2 * time.Second) // idle: the agents are waiting, the resets done
	var sbs []sandboxMem
	if backend == "docker" {
		sbs, err = dockerSandboxes(r.ctx, r.cli, owner)
	} else {
		sbs, err = nativeSandboxes(owner)
	}
	if err == nil && len(sbs) == 0 {
		err = errors.New("no idle sandbox found")
	}
	if err != nil {
		m.Note = firstLine(err.Error())
		return
	}
	for _, s := range sbs {
		usage, anon := s.usage, uint64(0)
		if s.memDir != "" {
			usage = readUint(filepath.Join(s.memDir, "memory.usage_in_bytes"), filepath.Join(s.memDir, "memory.current"))
			st := filepath.Join(s.memDir, "memory.stat")
			anon = max(statValue(st, "total_rss"), statValue(st, "anon"))
		}
		m.Cgroup += float64(usage) / mb
		m.Anon += float64(anon) / mb
		m.PSS += float64(pss(s.procs)) / mb
		m.Outside += float64(pss(s.others)) / mb
	}
	m.Count = len(sbs)
	n := float64(len(sbs))
	m.Cgroup, m.Anon, m.PSS, m.Outside = m.Cgroup/n, m.Anon/n, m.PSS/n, m.Outside/n
}

// dockerSandboxes finds the running containers of owner, their memory
// cgroups and their shims (the parent of the container's init).
func dockerSandboxes(ctx context.Context, cli *client.Client, owner string) ([]sandboxMem, error) {
	f := client.Filters{}.Add("label", sandbox.LabelOwner+"="+owner)
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	var out []sandboxMem
	for _, c := range res.Items {
		var s sandboxMem
		for _, d := range []string{"/sys/fs/cgroup/memory/docker/" + c.ID,
			"/sys/fs/cgroup/system.slice/docker-" + c.ID + ".scope", "/sys/fs/cgroup/docker/" + c.ID} {
			if fileExists(filepath.Join(d, "cgroup.procs")) {
				s.memDir = d
				s.procs = procsIn(d)
				break
			}
		}
		if s.memDir == "" {
			if s.usage, err = dockerStatsUsage(ctx, cli, c.ID); err != nil {
				return nil, err
			}
		}
		if ins, err := cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{}); err == nil && ins.Container.State != nil {
			if pp := ppid(ins.Container.State.Pid); pp > 1 {
				s.others = []int{pp}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// dockerStatsUsage is the Docker stats API's memory usage of a container,
// for hosts whose cgroup layout is not one of the known ones.
func dockerStatsUsage(ctx context.Context, cli *client.Client, id string) (uint64, error) {
	res, err := cli.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return 0, err
	}
	return st.MemoryStats.Usage, nil
}

// nativeStateDir is where the native backend keeps a record per sandbox
// (its default state folder, which the bench's engines use).
const nativeStateDir = "/var/lib/isol8/native/sandboxes"

// nativeSandboxes finds the sandboxes of owner from the native backend's
// records, which name their cgroups. On cgroup v1 the init's leader is
// outside the memory cgroup but inside the freezer one.
func nativeSandboxes(owner string) ([]sandboxMem, error) {
	files, err := filepath.Glob(filepath.Join(nativeStateDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []sandboxMem
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var rec struct {
			Labels  map[string]string `json:"labels"`
			Cgroups []string          `json:"cgroups"`
		}
		if json.Unmarshal(data, &rec) != nil || rec.Labels[sandbox.LabelOwner] != owner {
			continue
		}
		var s sandboxMem
		in := map[int]bool{}
		for _, d := range rec.Cgroups {
			if fileExists(filepath.Join(d, "memory.usage_in_bytes")) || fileExists(filepath.Join(d, "memory.current")) {
				s.memDir = d
				s.procs = procsIn(d)
				for _, p := range s.procs {
					in[p] = true
				}
			}
		}
		if s.memDir == "" {
			return nil, fmt.Errorf("native sandbox %s: no memory cgroup", filepath.Base(f))
		}
		for _, d := range rec.Cgroups {
			for _, p := range procsIn(d) {
				if !in[p] {
					in[p] = true
					s.others = append(s.others, p)
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func procsIn(dir string) []int {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
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

// readUint reads the first of paths that exists as a number.
func readUint(paths ...string) uint64 {
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			n, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
			return n
		}
	}
	return 0
}

// statValue reads "key N" from a memory.stat file.
func statValue(path, key string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+" "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// pss sums the proportional set size of processes, in bytes.
func pss(pids []int) uint64 {
	var total uint64
	for _, p := range pids {
		total += rollupPss(p)
	}
	return total
}

// rollupPss reads "Pss:   1234 kB" from /proc/<pid>/smaps_rollup.
func rollupPss(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// ppid is the parent of pid (0 when unknown).
func ppid(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) >= 2 {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
