//go:build linux

package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/sandbox/native/internal/nsinit"
)

// drainGrace is how long output still in flight is copied once the
// process has exited but a background child keeps its stdout or stderr
// open (the same grace as the docker backend).
const drainGrace = 200 * time.Millisecond

var signals = map[string]unix.Signal{
	"SIGINT":  unix.SIGINT,
	"SIGTERM": unix.SIGTERM,
	"SIGKILL": unix.SIGKILL,
}

// Exec runs spec.Argv as the sandbox user with spec.Env over the image's
// environment and HOSTNAME (what Docker gives an exec: a program finds
// PATH even when the caller sets none; nothing comes from the host), in
// spec.Dir (default /sandbox). Its stdin, stdout and stderr are pipes
// whose far ends the init hands to the process; output is streamed as it
// comes. Exec returns when the process exits, whatever its children do.
func (s *Sandbox) Exec(ctx context.Context, spec sandbox.ExecSpec) (sandbox.ExitStatus, error) {
	if len(spec.Argv) == 0 {
		return sandbox.ExitStatus{}, errors.New("exec: empty argv")
	}
	dir := spec.Dir
	if dir == "" {
		dir = sandbox.SandboxDir
	}
	id, replies, err := s.register()
	if err != nil {
		return sandbox.ExitStatus{}, fmt.Errorf("exec %q: %w", spec.Argv[0], err)
	}
	st, err := s.exec(ctx, id, replies, spec, dir)
	if err != nil {
		s.unregister(id)
		return st, err
	}
	return st, nil
}

func (s *Sandbox) exec(ctx context.Context, id uint64, replies chan nsinit.Reply, spec sandbox.ExecSpec, dir string) (sandbox.ExitStatus, error) {
	var far [3]*os.File // the process's ends, closed here once sent
	defer func() {
		for _, f := range far {
			if f != nil {
				f.Close()
			}
		}
	}()
	var stdinW *os.File
	if spec.Stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return sandbox.ExitStatus{}, err
		}
		far[0], stdinW = r, w
	} else {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return sandbox.ExitStatus{}, err
		}
		far[0] = f
	}
	var outs []*output
	for i, w := range []io.Writer{spec.Stdout, spec.Stderr} {
		if w == nil {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return sandbox.ExitStatus{}, err
			}
			far[i+1] = f
			continue
		}
		r, wr, err := os.Pipe()
		if err != nil {
			return sandbox.ExitStatus{}, err
		}
		far[i+1] = wr
		outs = append(outs, &output{r: r, w: w, done: make(chan struct{})})
	}
	defer func() {
		for _, o := range outs {
			o.stop()
		}
	}()

	before := s.job.oomKills()
	req := &nsinit.Request{Op: nsinit.OpExec, ID: id, Argv: spec.Argv, Env: mergeEnv(s.env, spec.Env), Dir: dir}
	err := s.send(req, unix.UnixRights(int(far[0].Fd()), int(far[1].Fd()), int(far[2].Fd())))
	for i, f := range far {
		f.Close()
		far[i] = nil
	}
	if err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		return sandbox.ExitStatus{}, fmt.Errorf("exec %q: %w", spec.Argv[0], err)
	}
	if stdinW != nil {
		// Not waited for: a Stdin that never ends must not hold Exec.
		go func() {
			_, _ = io.Copy(stdinW, spec.Stdin)
			stdinW.Close()
		}()
		defer stdinW.Close()
	}
	var copies sync.WaitGroup
	for _, o := range outs {
		copies.Add(1)
		o.started = true
		go func() {
			defer copies.Done()
			o.copy()
		}()
	}
	copied := make(chan struct{})
	go func() {
		copies.Wait()
		close(copied)
	}()

	sigs := spec.Signals
	for {
		select {
		case <-ctx.Done():
			// Its whole process group, at once; the engine destroys the
			// sandbox next, which kills everything else.
			_ = s.send(&nsinit.Request{Op: nsinit.OpSignal, ID: id, Signal: int(unix.SIGKILL), Group: true}, nil)
			return sandbox.ExitStatus{}, ctx.Err()
		case name, ok := <-sigs:
			if !ok {
				sigs = nil
				continue
			}
			if sig, known := signals[name]; known {
				_ = s.send(&nsinit.Request{Op: nsinit.OpSignal, ID: id, Signal: int(sig)}, nil)
			}
		case r := <-replies:
			if r.Op == nsinit.OpFailed {
				return sandbox.ExitStatus{}, fmt.Errorf("exec %q: %s", spec.Argv[0], r.Err)
			}
			select {
			case <-copied:
			case <-time.After(drainGrace):
			case <-ctx.Done():
			}
			return sandbox.ExitStatus{Code: r.Code, OOMKilled: s.job.oomKills() > before}, nil
		}
	}
}

// output copies one of the process's streams to the caller's writer.
type output struct {
	r       *os.File
	w       io.Writer
	done    chan struct{}
	started bool // set by Exec's goroutine before copy runs
}

func (o *output) copy() {
	defer close(o.done)
	_, _ = io.Copy(o.w, o.r)
}

// stop ends the copy (a background child may hold the pipe open forever)
// and waits for it, so nothing is written to the caller's writer after
// Exec returns.
func (o *output) stop() {
	_ = o.r.SetReadDeadline(time.Now())
	if o.started {
		<-o.done
	}
	o.r.Close()
}

// mergeEnv is base with over's variables replacing those of the same name
// (a program's getenv takes the first), in a stable order.
func mergeEnv(base, over []string) []string {
	if len(base) == 0 {
		return over
	}
	set := make(map[string]bool, len(over))
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	env := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			env = append(env, kv)
		}
	}
	return append(env, over...)
}
