package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/isol8/isol8/internal/bench"
)

func init() { register(newBenchCmd) }

func newBenchCmd() *cobra.Command {
	var cfg bench.Config
	var runtimes string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure isol8 against its floors on this machine",
		Long: `Measure, in one run on this machine, the floors isol8 is compared with
(the bare interpreter started on the host; the Docker Engine API's own
create + start + exec + remove of the same image) and then isol8's own
paths (cold, persistent, …) for each runtime. Prints p50/p90/p99 and the
ratio of each row to its floor as a Markdown table, with the machine it
came from. Machines are noisy: compare ratios, and rerun the floors
whenever you compare.`,
		Example: `  isol8 bench
  isol8 bench --runs 50 --runtimes python`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Runtimes = strings.Split(runtimes, ",")
			rows, err := bench.Run(cmd.Context(), cfg, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout())
			bench.WriteTable(cmd.OutOrStdout(), rows)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Runs, "runs", 30, "samples per row")
	f.IntVar(&cfg.Warmup, "warmup", 3, "unrecorded runs before each row")
	f.StringVar(&runtimes, "runtimes", "python,node,bash", "comma-separated runtimes to measure")
	f.StringVar(&cfg.Backend, "backend", "docker", "backend to measure: docker or native")
	return cmd
}
