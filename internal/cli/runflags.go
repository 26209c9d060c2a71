package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/isol8/isol8"
	"github.com/spf13/cobra"
)

// runOptions holds the flags of "isol8 run" and what is computed from them.
// Another file (remote mode) may add flags to run through runFlagHooks and
// read them back in its engine provider with cmd.Flags().
type runOptions struct {
	runtime  string
	eval     string
	cmd      string
	stdin    string
	secrets  []string
	env      []string
	workdir  string
	setup    []string
	filesDir string
	outs     []string
	noStream bool

	// cfg is the loaded config with the flags applied (flag > env > file).
	cfg *isol8.Config
	// options are the engine options the flags set explicitly (the same
	// values as in cfg), for an engine that takes per-run options.
	options isol8.Options
	// outputs are the parsed --out flags.
	outputs []outSpec
}

// runConfigFlags are run's flags that override config keys.
var runConfigFlags = []configFlag{
	{flag: "timeout", key: "defaults.timeoutMs", normalize: positiveInt},
	{flag: "memory", key: "defaults.memoryLimit", normalize: size},
	{flag: "cpu", key: "defaults.cpuLimit", normalize: positiveFloat},
	{flag: "pids-limit", key: "defaults.pidsLimit", normalize: positiveInt},
	{flag: "sandbox-size", key: "defaults.sandboxSize", normalize: size},
	{flag: "tmp-size", key: "defaults.tmpSize", normalize: size},
	{flag: "max-output", key: "defaults.maxOutputSize", normalize: byteCount},
	{flag: "image", key: "defaults.image"},
	{flag: "net", key: "defaults.network", normalize: network},
	{flag: "backend", key: "defaults.backend", normalize: oneOf("docker", "native", "auto")},
	{flag: "persistent", key: "defaults.mode", normalize: func(v string) (string, error) {
		if v == "true" {
			return string(isol8.Persistent), nil
		}
		return string(isol8.Ephemeral), nil
	}},
}

// runFlagHooks add flags to run (remote mode adds --host, --key, …).
var runFlagHooks []func(cmd *cobra.Command)

// runApplyHooks apply the flags a hook added to o.cfg and o.options, after
// run's own flags and before the engine is made (netflags.go).
var runApplyHooks []func(cmd *cobra.Command, o *runOptions) error

// runResultHooks see a run's result after its output has been printed and
// before the exit code is worked out (netflags.go prints the network log).
var runResultHooks []func(cmd *cobra.Command, o *runOptions, res *isol8.Result)

func network(v string) (string, error) {
	switch v {
	case "none", "filtered", "host":
		return v, nil
	}
	return "", fmt.Errorf("must be none, filtered or host")
}

func (o *runOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&o.runtime, "runtime", "r", "", "language `NAME`: python, node, bun, deno, bash (default: from FILE's extension, else python)")
	f.StringVarP(&o.eval, "eval", "e", "", "run `CODE` given on the command line")
	f.StringVar(&o.cmd, "cmd", "", "run a shell command (bash -c `CMD`) in the runtime's image")
	f.StringVar(&o.stdin, "stdin", "", "feed `STR` to the program's standard input (default: piped stdin, when the code came from elsewhere)")
	f.String("timeout", "", "wall-clock limit in `MS` (milliseconds; default 30000)")
	f.String("memory", "", "memory limit, a `SIZE` such as 256m or 1g (default 512m)")
	f.String("cpu", "", "CPU limit in `CPUS`, such as 0.5 or 2 (default 1)")
	f.String("pids-limit", "", "limit of `N` processes and threads (default 64)")
	f.String("sandbox-size", "", "size of the writable /sandbox, a `SIZE` (default 512m)")
	f.String("tmp-size", "", "size of /tmp, a `SIZE` (default 256m)")
	f.String("max-output", "", "keep at most `BYTES` of stdout and of stderr each, such as 65536 or 64k (default 1m)")
	f.String("image", "", "run in `IMAGE` (default: the runtime's isol8:<runtime>)")
	f.StringArrayVar(&o.secrets, "secret", nil, "secret env var `K=V`, masked as *** in all output; a bare K takes $K from your environment (repeatable)")
	f.StringArrayVar(&o.env, "env", nil, "env var `K=V` for the program; a bare K takes $K from your environment (repeatable)")
	f.StringVar(&o.workdir, "workdir", "", "working directory, a `DIR` inside /sandbox (default /sandbox; relative paths are under /sandbox)")
	f.StringArrayVar(&o.setup, "setup", nil, "bash to run before the code in the same sandbox, a `CMD|FILE`: an existing FILE is read as a script, else it is a command; a failure aborts the run (repeatable, run in order)")
	f.StringVar(&o.filesDir, "files", "", "copy every regular file under `DIR` into /sandbox, keeping relative paths")
	f.StringArrayVar(&o.outs, "out", nil, "copy the sandbox file PATH to LOCAL after the run, as `PATH[:LOCAL]` (see above; repeatable)")
	f.BoolVar(&o.noStream, "no-stream", false, "print stdout, then stderr, when the run ends instead of as they arrive")
	f.String("net", "", "network `MODE`: none, filtered (only through the egress proxy, see --allow) or host (default none)")
	f.Bool("persistent", false, "run in a persistent sandbox (kept between the runs of a session; on its own it is removed when isol8 exits)")
	f.String("backend", "", "sandbox backend `NAME`: docker, native or auto (default docker)")
	for _, hook := range runFlagHooks {
		hook(cmd)
	}
}

// applyFlags loads the config, applies the config flags and computes the
// explicit engine options.
func (o *runOptions) applyFlags(cmd *cobra.Command) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if err := applyConfigFlags(cmd, cfg, runConfigFlags); err != nil {
		return err
	}
	o.cfg = cfg
	o.options = explicitOptions(cmd, cfg)
	secrets, err := keyValues("secret", o.secrets)
	if err != nil {
		return err
	}
	if len(secrets) > 0 {
		o.options.Secrets = secrets
	}
	if o.outputs, err = parseOuts(o.outs); err != nil {
		return err
	}
	for _, hook := range runApplyHooks {
		if err := hook(cmd, o); err != nil {
			return err
		}
	}
	return nil
}

// explicitOptions copies the values of the config flags that were given.
func explicitOptions(cmd *cobra.Command, cfg *isol8.Config) isol8.Options {
	d := cfg.Defaults
	var opt isol8.Options
	set := func(name string) bool { return cmd.Flags().Changed(name) }
	if set("timeout") {
		opt.TimeoutMs = d.TimeoutMs
	}
	if set("memory") {
		opt.MemoryLimit = d.MemoryLimit
	}
	if set("cpu") {
		opt.CPULimit = d.CPULimit
	}
	if set("pids-limit") {
		opt.PidsLimit = d.PidsLimit
	}
	if set("sandbox-size") {
		opt.SandboxSize = d.SandboxSize
	}
	if set("tmp-size") {
		opt.TmpSize = d.TmpSize
	}
	if set("max-output") {
		opt.MaxOutputSize = d.MaxOutputSize
	}
	if set("image") {
		opt.Image = d.Image
	}
	if set("net") {
		opt.Network = d.Network
	}
	if set("backend") {
		opt.Backend = d.Backend
	}
	if set("persistent") {
		opt.Mode = d.Mode
	}
	return opt
}

// keyValues parses repeated K=V flags; a bare K takes $K from the
// environment, so a secret need not appear in the shell's history.
func keyValues(flag string, list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				return nil, usageErrorf("--%s %q: expected KEY=VALUE (or the name of a variable set in your environment)", flag, kv)
			}
		}
		if !validEnvName(k) {
			return nil, usageErrorf("--%s %q: %q is not a valid variable name (letters, digits and _, not starting with a digit)", flag, kv, k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, usageErrorf("--%s %q: the value contains a NUL byte", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

func validEnvName(s string) bool {
	if s == "" || len(s) > 256 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
