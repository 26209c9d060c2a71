package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/runtime"
	"github.com/spf13/cobra"
)

// maxStdin bounds piped standard input, which is read whole before the run.
const maxStdin = 64 << 20

// extRuntimes are the contract's file extensions for runtimes that may not
// have an adapter in this build (runtime.FromFile knows the rest).
var extRuntimes = map[string]string{".ts": "bun", ".mts": "deno"}

// request builds the execution request from the flags, FILE and stdin.
func (o *runOptions) request(cmd *cobra.Command, args []string) (*isol8.Request, error) {
	req := &isol8.Request{Runtime: isol8.Runtime(o.runtime)}
	stdinIn := cmd.InOrStdin()
	piped := isPiped(stdinIn)
	codeFromStdin, err := o.code(cmd, args, req, stdinIn, piped)
	if err != nil {
		return nil, err
	}
	if req.Runtime == "" {
		req.Runtime = isol8.Python
	}
	switch req.Runtime {
	case isol8.Python, isol8.Node, isol8.Bun, isol8.Deno, isol8.Bash:
	default:
		return nil, usageErrorf("--runtime %q: unknown runtime (one of python, node, bun, deno, bash)", o.runtime)
	}
	switch {
	case cmd.Flags().Changed("stdin"):
		req.Stdin = o.stdin
	case piped && !codeFromStdin:
		if req.Stdin, err = readStdin(stdinIn); err != nil {
			return nil, err
		}
	}

	if req.Env, err = keyValues("env", o.env); err != nil {
		return nil, err
	}
	if o.workdir != "" {
		if req.Workdir, err = sandboxPath("--workdir", o.workdir); err != nil {
			return nil, err
		}
	}
	if req.SetupScript, err = setupScript(o.setup); err != nil {
		return nil, err
	}
	if o.filesDir != "" {
		if req.Files, err = readDir(o.filesDir); err != nil {
			return nil, err
		}
	}
	for _, out := range o.outputs {
		req.OutputPaths = append(req.OutputPaths, out.path)
	}
	for _, hook := range requestHooks {
		if err := hook(cmd, o, req); err != nil {
			return nil, err
		}
	}
	if err := req.Validate(); err != nil {
		return nil, usageErrorf("%v", message(err))
	}
	return req, nil
}

// codeSource is another way to give the code, added by its own file
// (remote code adds --url, --github and --gist): given reports whether
// its flags were used; fill sets the request's code (or codeUrl) and,
// when it can tell, its runtime.
type codeSource struct {
	given func(cmd *cobra.Command) bool
	fill  func(cmd *cobra.Command, req *isol8.Request) error
}

// codeSources are the extra ways to give the code.
var codeSources []codeSource

// requestHooks adjust the request, the config and the engine options
// after the flags are read (--install adds packages and the network they
// need), before the request is validated.
var requestHooks []func(cmd *cobra.Command, o *runOptions, req *isol8.Request) error

// code fills in the request's code (or cmd) from FILE, -e, --cmd or piped
// standard input, and its runtime from FILE's extension, and reports
// whether standard input was the code.
func (o *runOptions) code(cmd *cobra.Command, args []string, req *isol8.Request, stdinIn io.Reader, piped bool) (bool, error) {
	sources := 0
	for _, given := range []bool{len(args) > 0, cmd.Flags().Changed("eval"), cmd.Flags().Changed("cmd")} {
		if given {
			sources++
		}
	}
	for _, src := range codeSources {
		if src.given(cmd) {
			sources++
		}
	}
	if sources > 1 {
		return false, usageErrorf("give the code one way only: FILE, -e/--eval, --cmd or --url/--github/--gist")
	}
	for _, src := range codeSources {
		if src.given(cmd) {
			return false, src.fill(cmd, req)
		}
	}
	switch {
	case len(args) > 0 && args[0] != "-":
		file := args[0]
		data, err := os.ReadFile(file)
		if err != nil {
			return false, usageErrorf("FILE %s: %v", file, unwrapPath(err))
		}
		if len(data) == 0 {
			return false, usageErrorf("FILE %s: empty", file)
		}
		req.Code = string(data)
		if req.Runtime == "" {
			rt, err := runtimeOfFile(file)
			if err != nil {
				return false, usageErrorf("%v", err)
			}
			req.Runtime = rt
		}
		// CommonJS needs its extension; .js and .mjs run as ES modules.
		if strings.EqualFold(filepath.Ext(file), ".cjs") && req.Runtime == isol8.Node {
			req.FileExtension = ".cjs"
		}
	case cmd.Flags().Changed("eval"):
		if o.eval == "" {
			return false, usageErrorf("--eval: the code is empty")
		}
		req.Code = o.eval
	case cmd.Flags().Changed("cmd"):
		if o.cmd == "" {
			return false, usageErrorf("--cmd: the command is empty")
		}
		req.Cmd = o.cmd
	default:
		if !piped {
			return false, usageErrorf("no code to run: pass a FILE, -e CODE or --cmd CMD, or pipe code on standard input")
		}
		data, err := readStdin(stdinIn)
		if err != nil {
			return false, err
		}
		if strings.TrimSpace(data) == "" {
			return false, usageErrorf("no code to run: standard input was empty")
		}
		req.Code = data
		return true, nil
	}
	return false, nil
}

// runtimeOfFile picks a runtime by FILE's extension.
func runtimeOfFile(file string) (isol8.Runtime, error) {
	if a, err := runtime.FromFile(file); err == nil {
		return isol8.Runtime(a.Name), nil
	}
	if rt, ok := extRuntimes[strings.ToLower(filepath.Ext(file))]; ok {
		return isol8.Runtime(rt), nil
	}
	return "", fmt.Errorf("FILE %s: cannot tell the runtime from its extension (.py, .js, .mjs, .cjs, .ts, .mts, .sh); pass -r/--runtime", file)
}

// isPiped reports whether r is data rather than a terminal (or /dev/null):
// a pipe or a redirected file. Readers that are not files (tests) count.
func isPiped(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return r != nil
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice == 0
}

func readStdin(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxStdin+1))
	if err != nil {
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	if len(data) > maxStdin {
		return "", usageErrorf("standard input is larger than %s", isol8.FormatSize(maxStdin))
	}
	return string(data), nil
}

// sandboxPath resolves p (relative paths are under /sandbox) and checks it
// stays inside /sandbox; flag names the input in the error.
func sandboxPath(flag, p string) (string, error) {
	field := fmt.Sprintf("%s %q", flag, p)
	if !strings.HasPrefix(p, "/") {
		p = path.Join("/sandbox", p)
	}
	if p == "/sandbox" {
		return p, nil
	}
	if err := isol8.SandboxPath(field, p); err != nil {
		return "", usageErrorf("%s", message(err))
	}
	return p, nil
}

// setupScript joins the --setup parts in order. Each part runs in a
// subshell and the first failure ends the script with its exit code, so a
// failing step aborts the run even when a later step would succeed.
func setupScript(parts []string) (string, error) {
	if len(parts) == 0 {
		return "", nil
	}
	var b strings.Builder
	for i, p := range parts {
		body := p
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return "", usageErrorf("--setup %s: %v", p, unwrapPath(err))
			}
			body = string(data)
		}
		if strings.TrimSpace(body) == "" {
			return "", usageErrorf("--setup %q: empty", p)
		}
		if len(parts) == 1 {
			return body, nil
		}
		if !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		fmt.Fprintf(&b, "# --setup %d\n(\n%s) || exit $?\n", i+1, body)
	}
	return b.String(), nil
}

// readDir reads every regular file under dir for files["/sandbox/<rel>"].
// Links are refused rather than followed, so nothing outside dir is sent.
func readDir(dir string) (map[string][]byte, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, usageErrorf("--files %s: %v", dir, unwrapPath(err))
	}
	if !fi.IsDir() {
		return nil, usageErrorf("--files %s: not a directory", dir)
	}
	files := map[string][]byte{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return usageErrorf("--files %s: %v", p, unwrapPath(err))
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return usageErrorf("--files %s: %s is a symbolic link; links are not followed (copy the file it points to instead)", dir, rel)
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return usageErrorf("--files %s: %s is not a regular file", dir, rel)
		}
		target := "/sandbox/" + filepath.ToSlash(rel)
		if err := isol8.SandboxPath("--files "+rel, target); err != nil {
			return usageErrorf("%s", message(err))
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return usageErrorf("--files %s: %v", p, unwrapPath(err))
		}
		files[target] = data
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// unwrapPath drops the path an *fs.PathError repeats, since the message
// names it already.
func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
