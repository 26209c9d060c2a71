// Package cli is the isol8 command line. Each command lives in its own file
// and registers itself with the root in init, so adding a command is adding
// a file. Main runs the program; Run does the same with the caller's
// standard streams, which is how the tests drive it in-process.
package cli

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	// The sandbox backends register themselves.
	_ "github.com/isol8/isol8/sandbox/docker"
)

// cliOwner labels the sandboxes the CLI makes (sandbox.LabelOwner), so they
// can be told from a server's.
const cliOwner = "isol8-cli"

// commands are the constructors of the root's subcommands, added by each
// command's file in init. A fresh tree is built per Run, so no flag value
// outlives one invocation.
var commands []func() *cobra.Command

// register adds a subcommand constructor to the root.
func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

// Main runs isol8 with the process's standard streams and returns the exit
// code; cmd/isol8 passes it to os.Exit.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills isol8 the usual way.
	go func() { <-ctx.Done(); stop() }()
	// A closed stdout (isol8 run … | head) must end the run and remove its
	// sandbox, not kill isol8 with SIGPIPE and leave the sandbox running:
	// with SIGPIPE notified, writes fail with EPIPE instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	return Run(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

// Run runs isol8 with the given arguments and streams and returns the exit
// code. Cancelling ctx stops a running program (its sandbox is removed).
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	return report(ctx, stderr, err)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "isol8",
		Short: "Run untrusted code in secure sandboxes",
		Long: `isol8 runs Python, Node.js, Bun, Deno and Bash code in hardened, disposable sandboxes:
no network unless asked, a read-only root filesystem, an unprivileged user,
no Linux capabilities, a strict seccomp profile, and limits on time, memory,
CPU, processes, disk and output.

Start with "isol8 setup" to build the runtime images (once), then
"isol8 run" to run code. Settings come from flags, then the environment
(ISOL8_*), then ./isol8.config.json (or ~/.isol8/config.json, or the file
named by $ISOL8_CONFIG), then the built-in defaults; "isol8 config" shows
the result and where each value came from.

Exit codes: "isol8 run" exits with the program's own code (137 when the
time or memory limit killed it); otherwise 0 is success, 1 an error of
isol8 or its sandbox backend, 2 a bad command line, flag value or config,
130 an interrupted run.`,
		Example: `  isol8 setup
  isol8 run script.py
  isol8 run -e 'print(1 + 1)'
  echo 'console.log(process.version)' | isol8 run -r node
  isol8 config
  isol8 cleanup --force`,
		Version:           Version,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
	}
	root.SetVersionTemplate("isol8 {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%v (see %q)", err, cmd.CommandPath()+" --help")
	})
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	return root
}
