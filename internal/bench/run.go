package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/runtime"
	"github.com/isol8/isol8/sandbox"
)

// Groups are the parts of a run that can be selected (Config.Only).
var Groups = []string{"cold", "warm", "persistent", "http", "native", "batch", "memory"}

// Config selects what a benchmark run measures.
type Config struct {
	Runs     int      // samples per row
	Warmup   int      // unrecorded runs before each row
	Runtimes []string // python, node, bash
	// Backend is "auto" (Docker rows, and native rows when the native
	// backend opens), "docker" or "native".
	Backend string
	Only    []string // groups to measure (nil: all)
	Owner   string   // prefix of the sandbox owner labels of its engines
	Timeout time.Duration
	// BatchRuns and BatchConcurrency shape the batch rows.
	BatchRuns, BatchConcurrency int
}

// Report is what a run measured.
type Report struct {
	Rows    []*Row
	Batches []*Batch
	Memory  []*Mem
	Skipped []string // what could not be measured, and why
}

// probe is the program each row runs: it prints 1.
var probe = map[string]struct {
	code string
	bare []string
}{
	"python": {"print(1)", []string{"python3", "-c", "print(1)"}},
	"node":   {"console.log(1)", []string{"node", "-e", "console.log(1)"}},
	"bash":   {"echo 1", []string{"bash", "-c", "echo 1"}},
}

// Goals from performance.md.
const (
	coldRatio      = 1.10 // Docker cold vs the Docker API floor
	warmRatio      = 2.0  // Docker warm vs the bare interpreter
	nativeCold     = 2.0  // native cold vs the bare interpreter
	nativeWarm     = 3 * time.Millisecond
	httpOverhead   = 2 * time.Millisecond
	dockerBatchMin = 30.0  // runs/s
	nativeBatchMin = 100.0 // runs/s
	dockerIdleMB   = 15.0
	nativeIdleMB   = 5.0
)

// runner holds what one run made, so that all of it is cleaned up.
type runner struct {
	ctx     context.Context
	cfg     Config
	log     io.Writer
	cli     *client.Client
	rep     *Report
	suffix  string
	n       int
	engines []*isol8.LocalEngine
	owners  map[string][]string // backend -> owners used
}

func (r *runner) want(group string) bool {
	return len(r.cfg.Only) == 0 || slices.Contains(r.cfg.Only, group)
}

func (r *runner) add(row *Row) {
	fmt.Fprintf(r.log, "  %-44s p50 %7s ms (%d runs, %d failures)\n", row.Name, ms(row.Quantile(.5)), len(row.Samples), row.Fails)
	r.rep.Rows = append(r.rep.Rows, row)
}

func (r *runner) skip(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(r.log, "  skipped: %s\n", msg)
	r.rep.Skipped = append(r.rep.Skipped, msg)
}

// engine makes an engine with an owner label of its own.
func (r *runner) engine(backend string, opts isol8.Options) (*isol8.LocalEngine, string, error) {
	r.n++
	owner := fmt.Sprintf("%s-%s-%d", r.cfg.Owner, r.suffix, r.n)
	opts.Backend = backend
	e, err := isol8.New(isol8.EngineConfig{Options: opts, Owner: owner})
	if err != nil {
		return nil, "", err
	}
	r.engines = append(r.engines, e)
	r.owners[backend] = append(r.owners[backend], owner)
	return e, owner, e.Start(r.ctx)
}

// stop stops an engine now (and is idempotent, so cleanup may repeat it).
func stop(e *isol8.LocalEngine) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = e.Stop(ctx)
}

// Run measures every selected row and returns them in table order.
// Progress goes to log. Every engine it made is stopped before it returns.
func Run(ctx context.Context, cfg Config, log io.Writer) (*Report, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 30
	}
	if cfg.Owner == "" {
		cfg.Owner = "isol8-bench"
	}
	if cfg.Backend == "" {
		cfg.Backend = "auto"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Minute
	}
	if cfg.BatchRuns <= 0 {
		cfg.BatchRuns = 200
	}
	if cfg.BatchConcurrency <= 0 {
		cfg.BatchConcurrency = 4
	}
	for _, g := range cfg.Only {
		if !slices.Contains(Groups, g) {
			return nil, fmt.Errorf("unknown group %q (have %s)", g, strings.Join(Groups, ", "))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	r := &runner{ctx: ctx, cfg: cfg, log: log, cli: cli, rep: &Report{},
		suffix: hex.EncodeToString(suffix), owners: map[string][]string{}}
	defer r.cleanup()

	docker := cfg.Backend != "native"
	native := cfg.Backend != "docker" && (r.want("native") || r.want("batch") || r.want("memory"))
	if native {
		b, err := isol8.OpenBackend(ctx, "native", sandbox.Config{Owner: cfg.Owner + "-probe"})
		if err != nil {
			if cfg.Backend == "native" {
				return nil, err
			}
			r.skip("native rows: the native backend does not open here: %v", firstLine(err.Error()))
			native = false
		} else {
			b.Close()
		}
	}
	for _, rt := range cfg.Runtimes {
		if err := r.runtime(rt, docker, native); err != nil {
			return r.rep, err
		}
	}
	if r.want("batch") {
		if docker {
			r.batch("docker")
		}
		if native {
			r.batch("native")
		}
	}
	if r.want("memory") {
		for _, rt := range []string{"python", "node"} {
			if !slices.Contains(cfg.Runtimes, rt) {
				continue
			}
			if docker {
				r.memory("docker", rt)
			}
			if native {
				r.memory("native", rt)
			}
		}
	}
	return r.rep, ctx.Err()
}

// runtime measures the rows of one runtime.
func (r *runner) runtime(rt string, docker, native bool) error {
	p, ok := probe[rt]
	if !ok {
		return fmt.Errorf("runtime %q has no benchmark probe", rt)
	}
	ad, err := runtime.Get(rt)
	if err != nil {
		return err
	}
	ctx, cfg := r.ctx, r.cfg
	fmt.Fprintf(r.log, "%s:\n", rt)
	argv := append([]string{hostBinary(p.bare[0])}, p.bare[1:]...)
	bare := "bare " + p.bare[0] + " on the host (" + rt + ")"
	if r.want("warm") || r.want("http") || r.want("persistent") || (native && r.want("native")) {
		r.add(Measure(bare, "", cfg.Warmup, cfg.Runs, Bare(ctx, argv)))
	}
	req := &isol8.Request{Runtime: isol8.Runtime(rt), Code: p.code}
	if docker && r.want("cold") {
		floor := "docker API create+start+exec+remove (" + rt + ")"
		r.add(Measure(floor, "", min(cfg.Warmup, 2), cfg.Runs, DockerFloor(ctx, r.cli, ad.Image, p.bare)))
		r.measureEngine("isol8 docker cold, pool off ("+rt+")", floor, "docker",
			isol8.Options{PoolSize: &isol8.PoolSize{}}, req, coldRatio, 0)
	}
	if docker && (r.want("warm") || r.want("http")) {
		if err := r.warm(rt, bare, req); err != nil {
			return err
		}
	}
	if docker && r.want("persistent") {
		r.measureEngine("isol8 docker persistent ("+rt+")", bare, "docker",
			isol8.Options{Mode: isol8.Persistent}, req, 0, 0)
	}
	if native && r.want("native") {
		r.measureEngine("isol8 native cold, pool off ("+rt+")", bare, "native",
			isol8.Options{PoolSize: &isol8.PoolSize{}}, req, nativeCold, 0)
		var goal time.Duration
		if rt == "python" {
			goal = nativeWarm
		}
		r.measureEngine("isol8 native warm, pool on ("+rt+")", bare, "native", warmOptions(), req, 0, goal)
	}
	return ctx.Err()
}

// warmOptions is the warm path: a fast pool, one ready and one more.
func warmOptions() isol8.Options {
	return isol8.Options{PoolStrategy: "fast", PoolSize: &isol8.PoolSize{Clean: 1, Dirty: 1}, MaxConcurrent: 4}
}

// measureEngine measures req on a new engine, which it stops after.
func (r *runner) measureEngine(name, floor, backend string, opts isol8.Options, req *isol8.Request, maxRatio float64, maxP50 time.Duration) *Row {
	e, _, err := r.engine(backend, opts)
	row := &Row{Name: name, Floor: floor, MaxRatio: maxRatio, MaxP50: maxP50}
	if err != nil {
		row.fail(err)
		r.add(row)
		return row
	}
	defer stop(e)
	warm := r.cfg.Warmup
	if opts.PoolSize != nil && *opts.PoolSize == (isol8.PoolSize{}) {
		warm = min(warm, 2)
	} else if opts.Mode != isol8.Persistent {
		warm = max(warm, 1) // the first run fills the pool
	}
	for i := 0; i < warm; i++ {
		_ = execute(r.ctx, e, req)()
	}
	waitIdle(r.ctx, e, 30*time.Second)
	before := e.PoolStats()
	settle := func() { waitIdle(r.ctx, e, 5*time.Second) }
	MeasureInterleaved(0, r.cfg.Runs, []*Row{row}, []func() error{execute(r.ctx, e, req)}, settle)
	notePool(row, e, before)
	r.add(row)
	return row
}

// notePool adds the pool's hits during the row to its note.
func notePool(row *Row, e *isol8.LocalEngine, before isol8.PoolStats) {
	after := e.PoolStats()
	if after.Stats == (before.Stats) && after.WarmRuns == before.WarmRuns {
		return // no pool
	}
	hits := after.WarmRuns - before.WarmRuns
	s := fmt.Sprintf("pool hits %d/%d", hits, hits+after.ColdRuns-before.ColdRuns)
	if row.Note != "" {
		s += "; " + row.Note
	}
	row.Note = s
}

// waitIdle waits (bounded) until the engine's pool has made and reset
// what it was going to: the measured runs then find it warm.
func waitIdle(ctx context.Context, e *isol8.LocalEngine, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s := e.PoolStats()
		if s.Creating == 0 && s.Resetting == 0 && s.Lent == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// execute runs req on e and checks that it printed 1.
func execute(ctx context.Context, e isol8.Engine, req *isol8.Request) func() error {
	return func() error {
		r := *req
		res, err := e.Execute(ctx, &r)
		if err != nil {
			return err
		}
		if res.ExitCode != 0 || res.Stdout != "1\n" {
			return fmt.Errorf("exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
		}
		return nil
	}
}

// cleanup stops every engine and removes any sandbox still carrying one
// of the run's owner labels.
func (r *runner) cleanup() {
	for _, e := range r.engines {
		stop(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for backend, owners := range r.owners {
		b, err := isol8.OpenBackend(ctx, backend, sandbox.Config{Owner: r.cfg.Owner})
		if err != nil {
			continue
		}
		left := 0
		for _, owner := range owners {
			infos, _ := b.List(ctx, map[string]string{sandbox.LabelOwner: owner})
			for _, info := range infos {
				if b.Remove(ctx, info.ID) == nil {
					left++
				}
			}
		}
		b.Close()
		if left > 0 {
			fmt.Fprintf(r.log, "removed %d %s sandboxes left after their engines stopped\n", left, backend)
		}
	}
}
