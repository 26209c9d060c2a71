package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/isol8/isol8/sandbox"
)

// Mode says how a job's program runs.
type Mode string

// The job modes.
const (
	// ModeCode runs CodeFile in a warm interpreter (Python: a fork of the
	// agent; Node: a stub started ahead of time).
	ModeCode Mode = "code"
	// ModeExec runs Argv as a new program (a cmd, another runtime).
	ModeExec Mode = "exec"
	// ModeKernel runs CodeFile in the sandbox's stateful kernel, which
	// keeps its globals from run to run; it is started on first use.
	ModeKernel Mode = "kernel"
)

// File is a file the agent writes before the job starts.
type File struct {
	Path string `json:"path"`
	Data []byte `json:"data"`
	Mode int64  `json:"mode,omitempty"` // permission bits; 0 means 0644
}

// Job is one program for the agent to run. Files and outputs are confined
// to /sandbox and /tmp and never go through a link.
type Job struct {
	Mode     Mode     `json:"mode"`
	CodeFile string   `json:"codeFile,omitempty"` // ModeCode, ModeKernel
	Argv     []string `json:"argv,omitempty"`     // ModeExec
	// Setup, when set, runs first (a setup script); a non-zero exit ends
	// the job with that exit code.
	Setup []string `json:"setup,omitempty"`
	// Env is the whole environment, KEY=VALUE, over what the sandbox
	// itself gives every process (as an exec would see it).
	Env         []string `json:"env"`
	Dir         string   `json:"dir"`
	Stdin       []byte   `json:"stdin,omitempty"`
	Files       []File   `json:"files,omitempty"`
	OutputPaths []string `json:"outputPaths,omitempty"`
	MaxFileSize int64    `json:"maxFileSize"`
	// Keep leaves the job's other processes alive when it ends (sessions);
	// otherwise every process of the sandbox user but the agent is killed
	// when the program exits, before its output is drained.
	Keep bool `json:"keep,omitempty"`
	// OnCode, when set, is called when the setup script has succeeded and
	// the program starts.
	OnCode func() `json:"-"`
}

// Outcome is how a job ended.
type Outcome struct {
	ExitCode int // 128+signal when killed by a signal
	// Files are the output paths read back; missing ones are left out.
	Files map[string][]byte
	// Skipped are output paths that exist but were not read, with why
	// (wrapping sandbox.ErrNotRegular or sandbox.ErrTooLarge).
	Skipped map[string]error
	// KernelLost means the stateful kernel died during the job; its state
	// is gone and the next kernel job starts a new one.
	KernelLost bool
}

// Run runs job, writing its output to stdout and stderr as it arrives,
// and returns when the agent reports the program's end (with the output
// of every process of the job, which are dead by then unless job.Keep).
//
// When ctx ends first, Run returns ctx.Err() and the Conn is unusable:
// the caller destroys the sandbox, which is what kills the job. A
// *JobError means the job could not start and the Conn is still usable;
// an error wrapping ErrLost means the agent is gone.
func (c *Conn) Run(ctx context.Context, job Job, stdout, stderr io.Writer) (out Outcome, err error) {
	if err := c.begin(); err != nil {
		return Outcome{}, err
	}
	defer func() { c.end(err) }()
	if len(c.frames) > 0 {
		return Outcome{}, fmt.Errorf("%w: unexpected frames before a job", ErrLost)
	}
	payload, err := json.Marshal(job)
	if err != nil {
		return Outcome{}, fmt.Errorf("agent job: %w", err)
	}
	if err := c.send(ctx, kindJob, payload); err != nil {
		return Outcome{}, err
	}
	for {
		f, err := c.next(ctx)
		if err != nil {
			return Outcome{}, err
		}
		switch f.kind {
		case kindStdout:
			_, _ = stdout.Write(f.data)
			f.release()
		case kindStderr:
			_, _ = stderr.Write(f.data)
			f.release()
		case kindPhase:
			if job.OnCode != nil {
				job.OnCode()
			}
		case kindFile:
			if err := addFile(&out, f.data); err != nil {
				return Outcome{}, err
			}
		case kindExit:
			var x struct {
				Code       int    `json:"code"`
				Error      string `json:"error"`
				KernelLost bool   `json:"kernelLost"`
			}
			if err := json.Unmarshal(f.data, &x); err != nil {
				return Outcome{}, fmt.Errorf("%w: bad exit frame: %v", ErrLost, err)
			}
			if x.Error != "" {
				return Outcome{}, &JobError{Msg: x.Error}
			}
			out.ExitCode, out.KernelLost = x.Code, x.KernelLost
			return out, nil
		default:
			return Outcome{}, fmt.Errorf("%w: unexpected frame %q during a job", ErrLost, f.kind)
		}
	}
}

func addFile(out *Outcome, data []byte) error {
	var f struct {
		Path  string `json:"path"`
		Data  []byte `json:"data"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("%w: bad file frame: %v", ErrLost, err)
	}
	if f.Error == "" {
		if out.Files == nil {
			out.Files = map[string][]byte{}
		}
		out.Files[f.Path] = f.Data
		return nil
	}
	if out.Skipped == nil {
		out.Skipped = map[string]error{}
	}
	switch f.Error {
	case "notregular":
		out.Skipped[f.Path] = fmt.Errorf("read %s: %w", f.Path, sandbox.ErrNotRegular)
	case "toolarge":
		out.Skipped[f.Path] = fmt.Errorf("read %s: %w", f.Path, sandbox.ErrTooLarge)
	default:
		out.Skipped[f.Path] = fmt.Errorf("read %s: %s", f.Path, f.Error)
	}
	return nil
}

// Reset returns the sandbox to the state of a fresh one: every process of
// the sandbox user but the agent killed, /sandbox, /tmp, /dev/shm and the
// message queues emptied, SysV IPC objects removed, and the agent ready to
// start the next job from a process that never held an earlier job's data
// (Python: its zygote; Node: a new stub).
// It fails, and the sandbox must be destroyed, when any of that cannot be
// verified, for instance because a job changed the agent's limits.
func (c *Conn) Reset(ctx context.Context) (err error) {
	return c.exchange(ctx, kindReset)
}

// StopKernel kills the stateful kernel, if any; the next ModeKernel job
// starts a new one with empty state.
func (c *Conn) StopKernel(ctx context.Context) error {
	return c.exchange(ctx, kindStopKernel)
}

func (c *Conn) exchange(ctx context.Context, kind byte) (err error) {
	if err := c.begin(); err != nil {
		return err
	}
	defer func() { c.end(err) }()
	if err := c.send(ctx, kind, nil); err != nil {
		return err
	}
	f, err := c.next(ctx)
	if err != nil {
		return err
	}
	switch f.kind {
	case kindHello:
		return c.hello(f)
	case kindReply:
		var r struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(f.data, &r); err != nil {
			return fmt.Errorf("%w: bad reply: %v", ErrLost, err)
		}
		if r.Error != "" {
			return fmt.Errorf("agent %c: %s", kind, r.Error)
		}
		return nil
	}
	return fmt.Errorf("%w: unexpected frame %q", ErrLost, f.kind)
}
