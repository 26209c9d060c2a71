package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/isol8/isol8/sandbox"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// Polling the exec's state while its output stream is open: a background
// child that inherited stdout keeps the stream open after the process we
// ran has exited, so the stream's end cannot be the only sign of exit.
const (
	pollFirst = 20 * time.Millisecond
	pollMax   = 500 * time.Millisecond
	// Once the process has exited but the stream is still open, output
	// still arriving is copied until drainGrace passes without any, or
	// drainMax in all.
	drainGrace = 200 * time.Millisecond
	drainMax   = 2 * time.Second
	// killTimeout bounds the best-effort kill when ctx is cancelled.
	killTimeout = time.Second
)

var signals = map[string]unix.Signal{
	"SIGINT":  unix.SIGINT,
	"SIGTERM": unix.SIGTERM,
	"SIGKILL": unix.SIGKILL,
}

// Exec runs spec.Argv as the sandbox user, streaming output as it arrives.
// The environment is spec.Env plus what Docker always adds and cannot be
// told not to: the image's own variables, PATH, HOSTNAME and HOME (from the
// image's passwd, else "/"). Nothing comes from the host.
func (s *Sandbox) Exec(ctx context.Context, spec sandbox.ExecSpec) (sandbox.ExitStatus, error) {
	if len(spec.Argv) == 0 {
		return sandbox.ExitStatus{}, errors.New("exec: empty argv")
	}
	// No freeze while this process starts (see frozen): held until the
	// daemon reports its pid, or the exec ends.
	s.starting.RLock()
	var startedOnce sync.Once
	started := func() { startedOnce.Do(s.starting.RUnlock) }
	defer started()
	s.execd.Store(true)
	dir := spec.Dir
	if dir == "" {
		dir = sandbox.SandboxDir
	}
	var moved atomic.Int64 // output bytes copied so far
	stdout := &counting{orDiscard(spec.Stdout), &moved}
	stderr := &counting{orDiscard(spec.Stderr), &moved}
	before := s.oomSnapshot(ctx)

	cr, err := s.b.cli.ExecCreate(ctx, s.id, client.ExecCreateOptions{
		User:         strconv.Itoa(sandbox.UID) + ":" + strconv.Itoa(sandbox.GID),
		AttachStdin:  spec.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
		Env:          spec.Env,
		WorkingDir:   dir,
		Cmd:          spec.Argv,
	})
	if err != nil {
		if errGone(err) {
			return sandbox.ExitStatus{}, fmt.Errorf("exec %q: sandbox %s no longer exists", spec.Argv[0], s.id)
		}
		return sandbox.ExitStatus{}, fmt.Errorf("exec %q: %w", spec.Argv[0], err)
	}
	att, err := s.b.cli.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return sandbox.ExitStatus{}, ctx.Err()
		}
		return sandbox.ExitStatus{}, fmt.Errorf("exec %q: start: %w", spec.Argv[0], err)
	}
	defer att.Close()

	if spec.Stdin != nil {
		// Not waited for: a Stdin that never ends must not hold Exec.
		go func() {
			_, _ = io.Copy(att.Conn, spec.Stdin)
			_ = att.CloseWrite()
		}()
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(stdout, stderr, att.Reader)
	}()
	// stop ends the copy and waits for it, so that nothing writes to
	// spec.Stdout or spec.Stderr once Exec has returned.
	stop := func() {
		att.Close()
		<-copied
	}

	e := &execution{s: s, id: cr.ID}
	sigs := spec.Signals
	poll := time.NewTimer(pollFirst)
	defer poll.Stop()
	delay := pollFirst
	streamOpen := true
	eof := (<-chan struct{})(copied) // nil once seen: a closed channel is always ready
	for {
		select {
		case <-ctx.Done():
			e.kill(ctx)
			stop()
			return sandbox.ExitStatus{}, ctx.Err()

		case name, ok := <-sigs:
			if !ok {
				sigs = nil
				continue
			}
			e.signal(ctx, name)

		case <-eof:
			// The stream ended: the process has exited or is about to.
			eof, streamOpen = nil, false
			delay = 5 * time.Millisecond
			poll.Reset(0)

		case <-poll.C:
			st, err := s.b.cli.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
			if err != nil {
				if ctx.Err() != nil {
					continue // reported by the ctx case
				}
				stop()
				return sandbox.ExitStatus{}, fmt.Errorf("exec %q: inspect: %w", spec.Argv[0], err)
			}
			if st.PID != 0 {
				e.pid = st.PID
				started()
			}
			// Running is also false before the process starts; a pid (or
			// the end of the stream) tells the two apart.
			if !st.Running && (st.PID != 0 || !streamOpen) {
				if streamOpen {
					drain(copied, &moved)
				}
				stop()
				after := s.oomSnapshot(ctx)
				return sandbox.ExitStatus{Code: st.ExitCode, OOMKilled: before.killedSince(after)}, nil
			}
			delay = min(delay*2, pollMax)
			poll.Reset(delay)
		}
	}
}

// drain lets output already on its way arrive after the process has
// exited while a background child still holds the stream: it waits until
// the stream ends, or no byte arrived for drainGrace, or drainMax passed
// (a child that never stops writing must not hold Exec).
func drain(copied <-chan struct{}, moved *atomic.Int64) {
	deadline := time.Now().Add(drainMax)
	for last := int64(-1); time.Now().Before(deadline); {
		n := moved.Load()
		if n == last {
			return
		}
		last = n
		select {
		case <-copied:
			return
		case <-time.After(drainGrace):
		}
	}
}

// counting counts the bytes written through it.
type counting struct {
	w io.Writer
	n *atomic.Int64
}

func (c *counting) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// execution is one running exec, for delivering signals to it.
type execution struct {
	s   *Sandbox
	id  string
	pid int // host pid, 0 until known
}

// signal delivers a named signal to the exec'd process (not its children).
//
// The daemon reports the process's host pid, so the signal is sent from
// here, and only after checking that the pid belongs to this container's
// cgroup: a pid from another pid namespace, or a reused one, is never
// signalled. With a remote daemon that check fails and the signal is
// dropped: the Engine API has no way to signal one exec (cancelling ctx
// still ends the run, as the engine then destroys the sandbox).
func (e *execution) signal(ctx context.Context, name string) {
	sig, ok := signals[name]
	if !ok {
		return
	}
	// The process may not have started yet; wait a little for its pid.
	for wait := 10 * time.Millisecond; e.pid == 0 && wait < time.Second; wait *= 2 {
		st, err := e.s.b.cli.ExecInspect(ctx, e.id, client.ExecInspectOptions{})
		if err != nil {
			return
		}
		if e.pid = st.PID; e.pid != 0 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	if e.pid != 0 && e.s.owns(e.pid) {
		_ = unix.Kill(e.pid, sig)
	}
}

// kill is the best-effort SIGKILL of a cancelled exec; the engine destroys
// the sandbox right after, which kills everything else.
func (e *execution) kill(ctx context.Context) {
	if e.pid == 0 {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		defer cancel()
		if st, err := e.s.b.cli.ExecInspect(kctx, e.id, client.ExecInspectOptions{}); err == nil {
			e.pid = st.PID
		}
	}
	if e.pid != 0 && e.s.owns(e.pid) {
		_ = unix.Kill(e.pid, unix.SIGKILL)
	}
}

// owns reports whether a host pid is a process of this container.
func (s *Sandbox) owns(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	return err == nil && bytes.Contains(data, []byte(s.id))
}
