package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/isol8/isol8"
	"github.com/spf13/cobra"
)

func init() { register(newRunCmd) }

// stopTimeout bounds the engine's cleanup after a run.
const stopTimeout = 30 * time.Second

func newRunCmd() *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run [FILE]",
		Short: "Run code in a sandbox",
		Long: `Run code from FILE, -e/--eval CODE, --cmd CMD, or standard input in a fresh
sandbox, and exit with the program's exit code.

The runtime is -r/--runtime, else FILE's extension (.py python; .js, .mjs,
.cjs node; .ts bun; .mts deno; .sh bash), else python. A .cjs file runs as
CommonJS (require); .js and .mjs run as ES modules (import).

Standard input: --stdin STR is fed to the program. Otherwise, when the code
came from FILE, -e or --cmd and standard input is piped, the piped data is
fed to the program; when no code was given, piped standard input IS the
code. Piped input is read to its end before the run starts (in a loop that
reads its own input, pass --stdin '' so isol8 leaves it alone).

Output streams to your terminal as the program writes it (stdout to stdout,
stderr to stderr); --no-stream prints stdout, then stderr, at the end.
Secrets (--secret) are masked as *** in all output.

Files: --files DIR copies every regular file under DIR to /sandbox, keeping
relative paths (symbolic links are refused). --out PATH[:LOCAL] copies the
sandbox file PATH (relative paths are under /sandbox) to LOCAL after the
run; without LOCAL it is written to the current directory under its base
name, and a LOCAL that is a directory (or ends in /) receives it under its
base name. If the program exits 0 but an --out file is missing, isol8 says
so and exits 1.

--setup runs bash in the same sandbox before the code (a FILE that exists
is read as a script, anything else is a command); parts run in order, and
the first failure aborts the run with its exit code and output.

Limits: a run killed by --timeout or by the --memory limit exits 137 and
says why on stderr. Flags override the config (see "isol8 config"); the
first run builds a missing runtime image (see "isol8 setup").

Exit codes: the program's; 1 when isol8 or the sandbox backend failed; 2
for a bad flag, value or config; 130 when interrupted.`,
		Example: `  # a file; the runtime comes from the extension
  isol8 run script.py
  isol8 run app.cjs

  # inline code with data on stdin
  isol8 run -e "import json,sys; d=json.load(sys.stdin); print(len(d))" --stdin '[{"x":1},{"x":2}]'
  curl -s https://example.com/data.json | isol8 run -e "import sys; print(len(sys.stdin.read()))"

  # code on stdin
  echo 'console.log(1 + 1)' | isol8 run -r node

  # a shell command, with tight limits
  isol8 run --cmd 'ls -la /sandbox' --timeout 5000 --memory 128m --cpu 0.5

  # files in and out
  isol8 run --files ./data --out report.csv:./out/ analyse.py

  # secrets and environment
  isol8 run --secret API_TOKEN --env MODE=test -e 'import os; print(os.environ["API_TOKEN"])'   # prints ***

  # set up, then run
  isol8 run --setup 'echo 42 > /sandbox/answer' -e 'print(open("answer").read())'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("run takes at most one FILE, got %d arguments (quote code given with -e)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args)
		},
	}
	o.addFlags(cmd)
	return cmd
}

func (o *runOptions) run(cmd *cobra.Command, args []string) error {
	if err := o.applyFlags(cmd); err != nil {
		return err
	}
	req, err := o.request(cmd, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	eng, err := newEngine(cmd, o)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		_ = eng.Stop(sctx)
	}()

	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	var res *isol8.Result
	if o.noStream {
		res, err = eng.Execute(ctx, req)
		if err == nil {
			io.WriteString(stdout, res.Stdout)
			io.WriteString(stderr, res.Stderr)
		}
	} else {
		sink := &streamSink{stdout: stdout, stderr: stderr, cancel: cancel}
		res, err = eng.ExecuteStream(ctx, req, sink.event)
		if sink.err != nil {
			// Nobody reads the output any more (a closed pipe): the run
			// was stopped; exit as a program killed by SIGPIPE would.
			return &exitStatus{code: exitBrokenPipe}
		}
	}
	if err != nil {
		return err
	}
	for _, hook := range runResultHooks {
		hook(cmd, o, res)
	}
	return o.finish(req, res, stderr)
}

// streamSink prints a run's output events as they arrive. When the output
// cannot be written it stops the run, so the sandbox is removed at once.
type streamSink struct {
	stdout, stderr io.Writer
	cancel         context.CancelFunc
	err            error
}

func (s *streamSink) event(ev isol8.StreamEvent) {
	var w io.Writer
	switch ev.Type {
	case isol8.EventStdout:
		w = s.stdout
	case isol8.EventStderr:
		w = s.stderr
	default:
		return
	}
	if s.err != nil {
		return
	}
	if _, err := io.WriteString(w, ev.Data); err != nil {
		s.err = err
		s.cancel()
	}
}

// finish explains a killed run, writes the --out files and turns the
// program's exit code into the process's.
func (o *runOptions) finish(req *isol8.Request, res *isol8.Result, stderr io.Writer) error {
	lim := o.cfg.Resolve(o.options, req)
	switch {
	case res.TimedOut:
		fmt.Fprintf(stderr, "isol8: killed: timed out after %d ms (raise the limit with --timeout MS)\n", lim.Timeout.Milliseconds())
	case res.OOMKilled:
		fmt.Fprintf(stderr, "isol8: killed: out of memory (limit %s; raise it with --memory)\n", isol8.FormatSize(lim.MemoryBytes))
	}
	missing, err := writeOutputs(o.outputs, res)
	if err != nil {
		return err
	}
	code := res.ExitCode
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "isol8: --out: the program did not leave %s\n", strings.Join(missing, ", "))
		if code == 0 {
			code = exitError
		}
	}
	if code != 0 {
		return &exitStatus{code: exitCode(code)}
	}
	return nil
}

// exitCode fits a program's exit code into a process exit status.
func exitCode(code int) int {
	if code < 0 || code > 255 {
		return exitError
	}
	return code
}

// engineProviders may supply run's engine instead of the local one (remote
// mode adds one in its own file). A provider returns nil, nil when the
// command line does not ask for it.
var engineProviders []func(cmd *cobra.Command, o *runOptions) (isol8.Engine, error)

// newEngine returns the engine run uses: a provider's (remote mode), else a
// local engine on the configured backend that builds a missing runtime
// image with progress on stderr.
func newEngine(cmd *cobra.Command, o *runOptions) (isol8.Engine, error) {
	for _, provide := range engineProviders {
		eng, err := provide(cmd, o)
		if err != nil || eng != nil {
			return eng, err
		}
	}
	stderr := cmd.ErrOrStderr()
	return isol8.New(isol8.EngineConfig{
		Options:     o.options,
		Config:      o.cfg,
		Owner:       cliOwner,
		EnsureImage: ensureImage(o.cfg),
		Progress:    stderr,
	})
}
