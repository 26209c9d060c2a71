package isol8

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/isol8/isol8/runtime"
	"github.com/isol8/isol8/sandbox"
)

const (
	// maxOutputFile caps each file read back through outputPaths or GetFile.
	maxOutputFile = 64 << 20
	setupFile     = "/sandbox/.isol8/setup.sh"
	timeoutNote   = "\nEXECUTION TIMED OUT\n"
	// destroyTimeout bounds cleanup, which runs even when the caller's
	// context is gone.
	destroyTimeout = 30 * time.Second
)

// baseEnv is the environment every program starts from; nothing of the
// engine's own environment reaches a sandbox.
var baseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/sandbox",
	"LANG=C.UTF-8",
	"TMPDIR=/tmp",
}

func (e *LocalEngine) spec(rt *runtime.Adapter, lim Limits) sandbox.Spec {
	image := lim.Image
	if image == "" {
		image = rt.Image
	}
	return sandbox.Spec{
		Image: image, MemoryBytes: lim.MemoryBytes, CPUs: lim.CPUs, Pids: lim.Pids,
		SandboxSize: lim.SandboxBytes, TmpSize: lim.TmpBytes,
		Network: sandbox.Network(lim.Network), ReadonlyRootFS: lim.ReadonlyRootFS,
	}
}

// createSandbox creates a sandbox, building a missing runtime image first
// when the engine knows how.
func (e *LocalEngine) createSandbox(ctx context.Context, b sandbox.Backend, spec sandbox.Spec) (sandbox.Sandbox, error) {
	sb, err := b.Create(ctx, spec)
	if errors.Is(err, sandbox.ErrImageNotFound) && e.ec.EnsureImage != nil {
		// A build takes minutes: without a progress writer, say so on
		// stderr rather than hang silently.
		w := e.ec.Progress
		if w == nil {
			w = os.Stderr
		}
		if berr := e.ec.EnsureImage(ctx, spec.Image, w); berr != nil {
			return nil, fmt.Errorf("image %s is missing and could not be built: %w", spec.Image, berr)
		}
		sb, err = b.Create(ctx, spec)
	}
	if errors.Is(err, sandbox.ErrImageNotFound) {
		return nil, fmt.Errorf("%w: %w (run `isol8 setup` to build the runtime images)", ErrUnavailable, err)
	}
	return sb, classify(err)
}

func destroy(sb sandbox.Sandbox) error {
	ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
	defer cancel()
	return sb.Destroy(ctx)
}

// runIn runs one request in sb. extra files (a session's pending puts)
// are written first. It does not destroy sb, except that a timed-out run
// destroys it at once so that every process of the run is gone when the
// result returns.
func (e *LocalEngine) runIn(ctx context.Context, sb sandbox.Sandbox, rt *runtime.Adapter, req *Request, lim Limits, sink EventSink, extra map[string][]byte) (*Result, error) {
	start := time.Now()
	ext := req.FileExtension
	if ext == "" {
		ext = rt.Extension
	}
	codeFile := runtime.CodeFile + ext
	files := make([]sandbox.File, 0, len(req.Files)+len(extra)+2)
	for _, m := range []map[string][]byte{extra, req.Files} {
		for p, data := range m {
			files = append(files, sandbox.File{Path: p, Data: data})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	argv := runtime.ShellArgv(req.Cmd)
	if req.Cmd == "" {
		files = append(files, sandbox.File{Path: codeFile, Data: []byte(req.Code)})
		argv = rt.Run(codeFile)
	}
	if req.SetupScript != "" {
		files = append(files, sandbox.File{Path: setupFile, Data: []byte(req.SetupScript), Mode: 0o700})
	}
	if err := sb.WriteFiles(ctx, files); err != nil {
		return nil, fmt.Errorf("writing files into the sandbox: %w", err)
	}
	eg, err := startEgress(ctx, sb, lim) // nil unless the network is filtered
	if err != nil {
		return nil, err
	}
	defer eg.Finish() // stops the proxy on every return; idempotent
	u0, haveUsage := usageOf(ctx, sb)

	stdout := newOutputStream(EventStdout, lim.MaxOutput, lim.Secrets, sink)
	stderr := newOutputStream(EventStderr, lim.MaxOutput, lim.Secrets, sink)
	res := &Result{ExecutionID: uuid.NewString(), Runtime: req.Runtime, ContainerID: sb.ID()}
	defer eg.record(res) // networkLogs (with logNetwork) and network bytes
	env := append(runEnv(req, lim), eg.Env()...)
	env = packageEnv(req.Runtime, env, len(lim.Install) > 0)
	dir := req.Workdir
	if dir == "" {
		dir = sandbox.SandboxDir
	}
	runCtx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()

	var st sandbox.ExitStatus
	if len(lim.Install) > 0 {
		stdout.setPhase(PhaseSetup)
		stderr.setPhase(PhaseSetup)
		ist, timedOut, ierr := e.cfg.installPackages(runCtx, sb, req.Runtime, lim.Install, eg.Env(), stderr)
		stdout.setPhase(PhaseCode)
		stderr.setPhase(PhaseCode)
		if ierr != nil {
			return nil, ierr
		}
		if timedOut {
			_ = destroy(sb)
		}
		if ist.Code != 0 {
			return e.finish(res, stdout, stderr, ist, start), nil
		}
	}
	if req.SetupScript != "" {
		stdout.setPhase(PhaseSetup)
		stderr.setPhase(PhaseSetup)
		st, err = sb.Exec(runCtx, sandbox.ExecSpec{Argv: []string{"bash", setupFile}, Env: env, Dir: dir,
			Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr})
		stdout.setPhase(PhaseCode)
		stderr.setPhase(PhaseCode)
		if err == nil && st.Code != 0 {
			return e.finish(res, stdout, stderr, st, start), nil
		}
	}
	if err == nil {
		var stdin io.Reader = strings.NewReader(req.Stdin)
		if req.StdinReader != nil {
			stdin = req.StdinReader
		}
		st, err = sb.Exec(runCtx, sandbox.ExecSpec{Argv: argv, Env: env, Dir: dir, Stdin: stdin,
			Stdout: stdout, Stderr: stderr, Signals: req.Signals})
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if runCtx.Err() == nil {
			return nil, fmt.Errorf("running the program: %w", classify(err))
		}
		// The timeout: kill the whole sandbox now, grandchildren included.
		if derr := destroy(sb); derr != nil {
			e.log.Warn("destroy timed-out sandbox", "id", sb.ID(), "err", derr)
		}
		stdout.close()
		stderr.close()
		stderr.appendNote(timeoutNote)
		res.TimedOut = true
		return e.finish(res, stdout, stderr, sandbox.ExitStatus{Code: 137}, start), nil
	}
	res = e.finish(res, stdout, stderr, st, start)
	recordUsage(ctx, sb, u0, haveUsage, res, time.Since(start))
	if len(req.OutputPaths) > 0 {
		res.Files = readOutputs(ctx, sb, req.OutputPaths, e)
	}
	return res, nil
}

// usageOf reads a sandbox's counters where its backend can (UsageReader).
func usageOf(ctx context.Context, sb sandbox.Sandbox) (sandbox.Usage, bool) {
	ur, ok := sb.(sandbox.UsageReader)
	if !ok {
		return sandbox.Usage{}, false
	}
	u, err := ur.Usage(ctx)
	return u, err == nil
}

// recordUsage fills res.ResourceUsage: CPU over the run (against its wall
// time), memory now and at the sandbox's peak.
func recordUsage(ctx context.Context, sb sandbox.Sandbox, before sandbox.Usage, ok bool, res *Result, wall time.Duration) {
	after, ok2 := usageOf(ctx, sb)
	if !ok || !ok2 {
		return
	}
	ru := res.ResourceUsage
	if ru == nil {
		ru = &ResourceUsage{}
		res.ResourceUsage = ru
	}
	ru.MemoryMB = float64(after.MemoryBytes) / (1 << 20)
	ru.PeakMemoryMB = float64(after.PeakMemoryBytes) / (1 << 20)
	if wall > 0 && after.CPUNanos >= before.CPUNanos {
		ru.CPUPercent = 100 * float64(after.CPUNanos-before.CPUNanos) / float64(wall.Nanoseconds())
	}
}

// killStray kills every process a run left behind in a kept sandbox
// (daemons, setsid and nohup children, double forks). kill(-1) by the
// sandbox user signals every process of that user but the caller; the
// sandbox's init and idle process run as another user (or are the pid
// namespace's init) and stay. Repeated, in case a dying process forked.
func killStray(ctx context.Context, sb sandbox.Sandbox) error {
	_, err := sb.Exec(ctx, sandbox.ExecSpec{
		Argv:  []string{"bash", "-c", "for i in 1 2 3; do kill -KILL -1 2>/dev/null; done; exit 0"},
		Env:   baseEnv,
		Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard,
	})
	return err
}

func (e *LocalEngine) finish(res *Result, stdout, stderr *outputStream, st sandbox.ExitStatus, start time.Time) *Result {
	stdout.close()
	stderr.close()
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	res.Truncated = stdout.truncated || stderr.truncated
	res.ExitCode = st.Code
	if st.OOMKilled {
		res.OOMKilled = true
		res.ExitCode = 137
	}
	res.DurationMs = time.Since(start).Milliseconds()
	res.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
	return res
}

// runEnv is the program's environment: the base, the request's env and the
// secrets (whose values are masked in all output).
func runEnv(req *Request, lim Limits) []string {
	env := append([]string{}, baseEnv...)
	keys := make([]string, 0, len(req.Env))
	for k := range req.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+req.Env[k])
	}
	for k, v := range lim.Secrets {
		env = append(env, k+"="+v)
	}
	return env
}

// readOutputs reads back outputPaths; missing paths are left out, and so
// are links, FIFOs, devices and files over the cap (logged, never followed).
func readOutputs(ctx context.Context, sb sandbox.Sandbox, paths []string, e *LocalEngine) map[string][]byte {
	files := map[string][]byte{}
	for _, p := range paths {
		data, err := sb.ReadFile(ctx, p, maxOutputFile)
		if err != nil {
			if !errors.Is(err, sandbox.ErrNotFound) {
				e.log.Info("output path skipped", "path", p, "err", err)
			}
			continue
		}
		files[p] = data
	}
	return files
}
