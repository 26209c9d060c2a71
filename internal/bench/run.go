package bench

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/moby/moby/client"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/runtime"
)

// Config selects what a benchmark run measures.
type Config struct {
	Runs     int      // samples per row
	Warmup   int      // unrecorded runs before each row
	Runtimes []string // python, node, bash
	Backend  string   // "docker" (default) or "native"
	Owner    string   // sandbox owner label for the engines it makes
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

// Run measures every row of the configuration and returns them in table
// order. Progress goes to log.
func Run(ctx context.Context, cfg Config, log io.Writer) ([]*Row, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 20
	}
	if cfg.Owner == "" {
		cfg.Owner = "isol8-bench"
	}
	if cfg.Backend == "" {
		cfg.Backend = "docker"
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var rows []*Row
	add := func(r *Row) {
		fmt.Fprintf(log, "  %-36s p50 %s ms (%d runs, %d failures)\n", r.Name, ms(r.Quantile(.5)), len(r.Samples), r.Fails)
		rows = append(rows, r)
	}
	for _, rt := range cfg.Runtimes {
		p, ok := probe[rt]
		if !ok {
			return nil, fmt.Errorf("runtime %q has no benchmark probe", rt)
		}
		ad, err := runtime.Get(rt)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "%s:\n", rt)
		bare := "bare " + strings.Join(p.bare[:1], " ") + " (" + rt + ")"
		add(Measure(bare, "", cfg.Warmup, cfg.Runs, Bare(ctx, p.bare)))
		floor := "docker API create+start+exec+remove (" + rt + ")"
		if cfg.Backend == "docker" {
			add(Measure(floor, "", min(cfg.Warmup, 2), cfg.Runs, DockerFloor(ctx, cli, ad.Image, p.bare)))
		}
		req := &isol8.Request{Runtime: isol8.Runtime(rt), Code: p.code}
		cold, err := newEngine(cfg, isol8.Options{Mode: isol8.Ephemeral})
		if err != nil {
			return nil, err
		}
		coldFloor := floor
		if cfg.Backend != "docker" {
			coldFloor = bare
		}
		add(Measure("isol8 "+cfg.Backend+" cold ("+rt+")", coldFloor, min(cfg.Warmup, 2), cfg.Runs, execute(ctx, cold, req)))
		_ = cold.Stop(ctx)
		pers, err := newEngine(cfg, isol8.Options{Mode: isol8.Persistent})
		if err != nil {
			return nil, err
		}
		add(Measure("isol8 "+cfg.Backend+" persistent ("+rt+")", bare, 1, cfg.Runs, execute(ctx, pers, req)))
		_ = pers.Stop(ctx)
	}
	return rows, nil
}

func newEngine(cfg Config, opts isol8.Options) (*isol8.LocalEngine, error) {
	opts.Backend = cfg.Backend
	return isol8.New(isol8.EngineConfig{Options: opts, Owner: cfg.Owner})
}

// execute runs req on e and checks that it printed 1.
func execute(ctx context.Context, e isol8.Engine, req *isol8.Request) func() error {
	return func() error {
		res, err := e.Execute(ctx, req)
		if err != nil {
			return err
		}
		if res.ExitCode != 0 || res.Stdout != "1\n" {
			return fmt.Errorf("exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
		}
		return nil
	}
}
