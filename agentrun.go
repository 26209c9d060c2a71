package isol8

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/isol8/isol8/agent"
	"github.com/isol8/isol8/pool"
	"github.com/isol8/isol8/runtime"
	"github.com/isol8/isol8/sandbox"
)

// Notes the engine adds to a run's stderr.
const (
	agentLostNote   = "\n[isol8: the sandbox's agent was killed during the run; its exit status is unknown]\n"
	kernelLostNote  = "\n[isol8: the stateful kernel exited; its state is lost and the next run starts a new one]\n"
	sessionLostNote = "\n[isol8: the session's sandbox was destroyed at the timeout; its state and files are lost and the next run starts afresh]\n"
)

// runEphemeral runs req in a sandbox of its own: a pooled one when the
// pool has one of its shape, else a new one. Interactive runs (stdin
// streamed, signals) always take the exec path in a new sandbox.
func (e *LocalEngine) runEphemeral(ctx context.Context, b sandbox.Backend, req *Request, lim Limits, sink EventSink) (*Result, error) {
	rt, err := runtime.Get(string(req.Runtime))
	if err != nil {
		return nil, invalid("runtime", "%v", err)
	}
	spec := e.spec(rt, lim)
	p := e.getPool()
	// Interactive runs, filtered networking (a proxy per run) and package
	// installs take the exec path in a sandbox of their own.
	if p == nil || req.StdinReader != nil || req.Signals != nil || lim.Network == NetworkFiltered || len(lim.Install) > 0 {
		if err := e.lim.Acquire(ctx); err != nil {
			return nil, err
		}
		defer e.lim.Release()
		e.coldRuns.Add(1)
		return e.runCold(ctx, b, rt, spec, req, lim, sink)
	}
	lang := agent.For(rt.Name)
	key := poolKey(b.Name(), spec, lang)
	factory := func(ctx context.Context) (pool.Item, error) { return e.newWarmItem(ctx, b, spec, lang, key) }
	got, err := e.obtainLive(ctx, p, key, factory)
	if err != nil {
		return nil, err
	}
	lent := got != nil
	var it *warmItem
	if lent {
		e.warmRuns.Add(1)
		it = got.(*warmItem)
	} else {
		e.coldRuns.Add(1)
		if it, err = e.newWarmItem(ctx, b, spec, lang, key); err != nil {
			e.lim.Release()
			return nil, err
		}
	}
	var res *Result
	reuse := false
	if it.conn == nil {
		// Without an agent nothing kills the run's background processes
		// but the sandbox's end, which must come before the result.
		res, err = e.runIn(ctx, it.sb, rt, req, lim, sink, nil)
		e.destroyNow(it.sb)
	} else {
		var broken bool
		res, broken, err = e.runAgent(ctx, it.sb, it.conn, rt, req, lim, sink, nil, false)
		// A fast pool resets and reuses the sandbox, unless the run broke
		// it, hit the memory limit, or the root is writable (a reset only
		// cleans the tmpfs folders), or it has served maxUses runs.
		it.uses++
		reuse = !broken && (res == nil || !res.OOMKilled) && lim.ReadonlyRootFS && it.uses < maxUses
	}
	p.Put(key, it, reuse, lent)
	return res, err
}

// runCold is the exec path in a new sandbox, destroyed after the run.
func (e *LocalEngine) runCold(ctx context.Context, b sandbox.Backend, rt *runtime.Adapter, spec sandbox.Spec, req *Request, lim Limits, sink EventSink) (*Result, error) {
	sb, err := e.createSandbox(ctx, b, spec)
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := destroy(sb); derr != nil {
			e.log.Warn("destroy sandbox", "id", sb.ID(), "err", derr)
		}
	}()
	return e.runIn(ctx, sb, rt, req, lim, sink, nil)
}

// runAgent runs req through the sandbox's agent: the code in the warm
// interpreter (or, with kernel, in the session's stateful kernel), a cmd
// as a new program. The result has the same shape as the exec path's:
// masked, bounded output, the setup phase, timeouts, OOM and outputPaths.
// broken reports that the sandbox is gone or must not be used again; a
// timed-out or cancelled run destroys it before returning, so that every
// process of the run is dead when the result returns.
func (e *LocalEngine) runAgent(ctx context.Context, sb sandbox.Sandbox, conn *agent.Conn, rt *runtime.Adapter, req *Request, lim Limits, sink EventSink, extra map[string][]byte, kernel bool) (res *Result, broken bool, err error) {
	start := time.Now()
	ext := req.FileExtension
	if ext == "" {
		ext = rt.Extension
	}
	codeFile := runtime.CodeFile + ext
	dir := req.Workdir
	if dir == "" {
		dir = sandbox.SandboxDir
	}
	job := agent.Job{Env: runEnv(req, lim), Dir: dir, Stdin: []byte(req.Stdin),
		OutputPaths: req.OutputPaths, MaxFileSize: maxOutputFile, Keep: kernel}
	for _, m := range []map[string][]byte{extra, req.Files} {
		for p, data := range m {
			job.Files = append(job.Files, agent.File{Path: p, Data: data})
		}
	}
	sort.Slice(job.Files, func(i, j int) bool { return job.Files[i].Path < job.Files[j].Path })
	switch {
	case req.Cmd != "":
		job.Mode, job.Argv = agent.ModeExec, runtime.ShellArgv(req.Cmd)
	case kernel:
		job.Mode, job.CodeFile = agent.ModeKernel, codeFile
	default:
		job.Mode, job.CodeFile = agent.ModeCode, codeFile
	}
	if req.Cmd == "" {
		job.Files = append(job.Files, agent.File{Path: codeFile, Data: []byte(req.Code)})
	}

	u0, haveUsage := usageOf(ctx, sb)
	stdout := newOutputStream(EventStdout, lim.MaxOutput, lim.Secrets, sink)
	stderr := newOutputStream(EventStderr, lim.MaxOutput, lim.Secrets, sink)
	codeStarted := true
	if req.SetupScript != "" {
		job.Files = append(job.Files, agent.File{Path: setupFile, Data: []byte(req.SetupScript), Mode: 0o700})
		job.Setup = []string{"bash", setupFile}
		stdout.setPhase(PhaseSetup)
		stderr.setPhase(PhaseSetup)
		codeStarted = false
		job.OnCode = func() {
			codeStarted = true
			stdout.setPhase(PhaseCode)
			stderr.setPhase(PhaseCode)
		}
	}
	res = &Result{ExecutionID: uuid.NewString(), Runtime: req.Runtime, ContainerID: sb.ID()}
	oc, _ := sb.(sandbox.OOMCounter)
	var oomBefore uint64
	if oc != nil {
		oomBefore, _ = oc.OOMKills(ctx)
	}
	runCtx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	out, err := conn.Run(runCtx, job, stdout, stderr)
	var je *agent.JobError
	switch {
	case err == nil:
	case errors.As(err, &je):
		return nil, false, fmt.Errorf("running the program: %s", je.Msg)
	case ctx.Err() != nil:
		e.destroyNow(sb)
		return nil, true, ctx.Err()
	case runCtx.Err() != nil:
		// The timeout: kill the whole sandbox now, grandchildren included.
		e.destroyNow(sb)
		stdout.close()
		stderr.close()
		stderr.appendNote(timeoutNote)
		if kernel {
			stderr.appendNote(sessionLostNote)
		}
		res.TimedOut = true
		return e.finish(res, stdout, stderr, sandbox.ExitStatus{Code: 137}, start), true, nil
	case errors.Is(err, agent.ErrLost):
		// The job killed the agent, or the memory limit did. Either way
		// nothing in this sandbox can be trusted any more.
		e.log.Warn("sandbox agent lost", "id", sb.ID(), "err", err)
		oom := oc != nil && e.oomSince(oc, oomBefore)
		e.destroyNow(sb)
		stdout.close()
		stderr.close()
		if !oom {
			stderr.appendNote(agentLostNote)
		}
		return e.finish(res, stdout, stderr, sandbox.ExitStatus{Code: 137, OOMKilled: oom}, start), true, nil
	default:
		return nil, true, fmt.Errorf("running the program: %w", err)
	}
	st := sandbox.ExitStatus{Code: out.ExitCode, OOMKilled: oc != nil && e.oomSince(oc, oomBefore)}
	if out.KernelLost {
		stderr.close()
		stderr.appendNote(kernelLostNote)
	}
	res = e.finish(res, stdout, stderr, st, start)
	recordUsage(ctx, sb, u0, haveUsage, res, time.Since(start))
	if len(req.OutputPaths) > 0 && codeStarted {
		res.Files = out.Files
		if res.Files == nil {
			res.Files = map[string][]byte{}
		}
		for p, why := range out.Skipped {
			e.log.Info("output path skipped", "path", p, "err", why)
		}
	}
	return res, false, nil
}

func (e *LocalEngine) oomSince(oc sandbox.OOMCounter, before uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
	defer cancel()
	after, err := oc.OOMKills(ctx)
	return err == nil && after > before
}

func (e *LocalEngine) destroyNow(sb sandbox.Sandbox) {
	if err := destroy(sb); err != nil {
		e.log.Warn("destroy sandbox", "id", sb.ID(), "err", err)
	}
}
