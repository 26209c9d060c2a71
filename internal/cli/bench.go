package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/isol8/isol8/internal/bench"
)

func init() { register(newBenchCmd) }

func newBenchCmd() *cobra.Command {
	var cfg bench.Config
	var runtimes, only string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure isol8 against its floors on this machine",
		Long: `Measure, in one run on this machine, the floors isol8 is compared with
(the bare interpreter started on the host; the Docker Engine API's own
create + start + exec + remove of the same image) and then isol8's own
paths for each runtime: Docker cold (pool off), warm (pool on),
persistent and over HTTP (the real server on loopback, POST /execute);
native cold and warm when the native backend opens here; a batch of
runs at once; and the host memory of an idle warm sandbox.

Prints p50/p90/p99, the ratio of each row to its floor and whether it
meets its goal, as Markdown tables, with the machine they came from.
Machines are noisy: compare ratios, and rerun the floors whenever you
compare. Every sandbox the run makes is removed before it returns.`,
		Example: `  isol8 bench
  isol8 bench --runs 50 --runtimes python
  isol8 bench --only warm,http --runtimes python
  isol8 bench --backend docker --only cold`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Runtimes = splitList(runtimes)
			cfg.Only = splitList(only)
			switch cfg.Backend {
			case "auto", "docker", "native":
			default:
				return fmt.Errorf("--backend: must be auto, docker or native, got %q", cfg.Backend)
			}
			rep, err := bench.Run(cmd.Context(), cfg, cmd.ErrOrStderr())
			if rep != nil {
				fmt.Fprintln(cmd.OutOrStdout())
				bench.WriteReport(cmd.OutOrStdout(), rep)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Runs, "runs", 30, "samples per row")
	f.IntVar(&cfg.Warmup, "warmup", 3, "unrecorded runs before each row")
	f.StringVar(&runtimes, "runtimes", "python,node,bash", "comma-separated runtimes to measure")
	f.StringVar(&cfg.Backend, "backend", "auto", "auto (docker, and native when it opens), docker or native")
	f.StringVar(&only, "only", "", "comma-separated groups to measure: "+strings.Join(bench.Groups, ",")+" (default all)")
	f.IntVar(&cfg.BatchRuns, "batch-runs", 200, "runs in each batch row")
	f.IntVar(&cfg.BatchConcurrency, "batch-concurrency", 4, "runs at once (and maxConcurrent) in each batch row")
	f.DurationVar(&cfg.Timeout, "timeout", 20*time.Minute, "bound on the whole benchmark")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
