package agent

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/isol8/isol8/sandbox"
)

var (
	//go:embed agent_boot.py
	pyBoot string
	//go:embed agent.py
	pyMain string
	//go:embed agent_sandbox.py
	pySandbox string
	//go:embed agent_job.py
	pyJob string
	//go:embed agent_kernel.py
	pyKernel string
	// pythonSource is the Python agent's supervisor: one program in four
	// files, run by the bootstrap (pyBoot) once it has forked the zygote.
	pythonSource = pyMain + "\n" + pySandbox + "\n" + pyJob + "\n" + pyKernel + "\nmain()\n"

	//go:embed agent.mjs
	nodeSource string
	//go:embed stub.cjs
	stubSource string
	//go:embed kernel.cjs
	kernelSource string
)

// Lang is a language with an agent.
type Lang string

// The languages with an agent.
const (
	Python Lang = "python"
	Node   Lang = "node"
)

// For returns the agent language of a runtime name ("python", "node"), or
// "" when the runtime has none.
func For(runtime string) Lang {
	switch Lang(runtime) {
	case Python, Node:
		return Lang(runtime)
	}
	return ""
}

// nodeBoot copies the node binary to an execute-only file and execs it: a
// process started from a file its user cannot read is not dumpable, which
// is how the Node agent gets what Python gets from prctl. The copy is
// removed by the agent once it runs.
const nodeBoot = `set -e
d=$(mktemp -d /tmp/.isol8-agent.XXXXXXXX)
cp /usr/bin/node "$d/node"
chmod 0111 "$d/node"
exec "$d/node" --input-type=module -e "$1" "$2" "$3" "$d/node"`

// argv is the agent's command line: constant code, never user content.
func argv(lang Lang) ([]string, error) {
	switch lang {
	case Python:
		return []string{"python3", "-I", "-c", pyBoot, pythonSource}, nil
	case Node:
		return []string{"/bin/sh", "-c", nodeBoot, "isol8-agent", nodeSource, stubSource, kernelSource}, nil
	}
	return nil, fmt.Errorf("agent: no agent for %q", lang)
}

// Errors of a Conn.
var (
	// ErrLost means the agent is gone (it exited, was killed, or its
	// stream broke); the sandbox should be destroyed.
	ErrLost = errors.New("sandbox agent lost")
	// ErrBusy means a Run or Reset is already in progress.
	ErrBusy = errors.New("sandbox agent busy")
)

// JobError is a job that could not start (a missing workdir or program, a
// file that could not be written); the sandbox is still usable.
type JobError struct{ Msg string }

func (e *JobError) Error() string { return e.Msg }

// Conn is the host's end of one agent running in a sandbox. Its methods
// must not be called concurrently, except Close.
type Conn struct {
	sb   sandbox.Sandbox
	lang Lang
	pid  int

	in     *io.PipeWriter // to the agent's fd 0
	inR    *io.PipeReader
	frames chan frame    // from the agent's fd 1; closed when it ends
	done   chan struct{} // closed when the agent's exec has returned
	cancel context.CancelFunc
	stderr tail

	mu     sync.Mutex
	busy   bool
	broken error
}

// Start launches the agent in sb through sb.Exec and waits until it is
// ready for a job.
func Start(ctx context.Context, sb sandbox.Sandbox, lang Lang) (*Conn, error) {
	args, err := argv(lang)
	if err != nil {
		return nil, err
	}
	// The agent outlives the caller's context: it is the sandbox's.
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	// A short queue: output waiting here is host memory (the agent's own
	// pipe is the buffer the job fills).
	c := &Conn{sb: sb, lang: lang, in: inW, inR: inR, frames: make(chan frame, 4),
		done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(c.frames)
		for {
			f, err := readFrame(outR)
			if err != nil {
				outR.CloseWithError(err) // unblocks the exec's copy
				c.died(err)
				return
			}
			c.frames <- f
		}
	}()
	go func() {
		defer close(c.done)
		_, err := sb.Exec(ectx, sandbox.ExecSpec{Argv: args, Dir: "/", Stdin: inR, Stdout: outW, Stderr: &c.stderr})
		if err == nil {
			err = io.EOF
		}
		outW.CloseWithError(err)
		inR.CloseWithError(ErrLost) // unblocks a pending send
	}()
	f, err := c.next(ctx)
	if err == nil && f.kind != kindHello {
		err = fmt.Errorf("%w: expected hello, got frame %q", ErrLost, f.kind)
	}
	if err == nil {
		err = c.hello(f)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("start %s agent: %w", lang, err)
	}
	return c, nil
}

func (c *Conn) hello(f frame) error {
	var h struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(f.data, &h); err != nil {
		return fmt.Errorf("%w: bad hello: %v", ErrLost, err)
	}
	c.pid = h.PID
	return nil
}

// died marks the Conn broken as soon as the agent's stream ends, so that
// an idle agent that is gone is not mistaken for a ready one (a run in
// progress reports the loss itself).
func (c *Conn) died(err error) {
	lost := c.lost(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = lost
	}
}

// Lang is the agent's language.
func (c *Conn) Lang() Lang { return c.lang }

// Err is nil while the agent is usable, else why it is not.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Close ends the agent (its processes die with the sandbox). It does not
// destroy the sandbox.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = fmt.Errorf("%w: closed", ErrLost)
	}
	c.mu.Unlock()
	c.in.Close()
	c.cancel()
	<-c.done
	return nil
}

// begin marks the Conn busy for one exchange.
func (c *Conn) begin() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.broken != nil:
		return c.broken
	case c.busy:
		return ErrBusy
	}
	c.busy = true
	return nil
}

// end ends an exchange; err other than a JobError breaks the Conn, since
// the agent's state is then unknown.
func (c *Conn) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	var je *JobError
	if err != nil && !errors.As(err, &je) && c.broken == nil {
		c.broken = err
	}
}

// send writes a frame without outliving ctx: a stuck agent must not hold
// the caller (the write ends when the sandbox is destroyed).
func (c *Conn) send(ctx context.Context, kind byte, payload []byte) error {
	errc := make(chan error, 1)
	go func() { errc <- writeFrame(c.in, kind, payload) }()
	select {
	case err := <-errc:
		if err != nil {
			return c.lost(err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next returns the agent's next frame.
func (c *Conn) next(ctx context.Context) (frame, error) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			return frame{}, c.lost(nil)
		}
		return f, nil
	case <-ctx.Done():
		return frame{}, ctx.Err()
	}
}

// lost describes the agent's end, with the last of what it wrote to stderr.
func (c *Conn) lost(err error) error {
	msg := ErrLost.Error()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
		msg += ": " + err.Error()
	}
	if t := c.stderr.String(); t != "" {
		msg += ": " + t
	}
	return fmt.Errorf("%w%s", ErrLost, msg[len(ErrLost.Error()):])
}

// tail keeps the last bytes written to it (the agent's own diagnostics).
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 2048

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
