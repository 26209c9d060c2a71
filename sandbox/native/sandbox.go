//go:build linux

package native

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isol8/isol8/sandbox/native/internal/nsinit"
)

// Sandbox is one native sandbox: an init process in its own namespaces
// and cgroup, reached through a control socket.
type Sandbox struct {
	b      *Backend
	id     string
	rec    *record
	job    jobCgroup
	pid    int      // the init's host pid; pidfd pins it
	pidfd  *os.File // the init, for signals and to learn of its exit
	newNet bool     // in a network namespace of its own
	env    []string // the image's environment and HOSTNAME, under every exec's
	conn   *net.UnixConn
	stderr *tail
	done   chan struct{} // closed when readLoop ends

	mu      sync.Mutex
	nextID  uint64
	waiters map[uint64]chan nsinit.Reply
	gone    bool // the init is gone: no new requests

	filesMu sync.RWMutex // held for writing only to close the fds below
	files   struct {
		once          sync.Once
		root, sbx, tm int
		err           error
	}

	destroyOnce sync.Once
	destroyErr  error
	dead        atomic.Bool
}

// errGone is what requests get once the init has exited.
var errGone = errors.New("sandbox is gone (destroyed, or its init exited)")

// ID is the sandbox's 16 hex digits.
func (s *Sandbox) ID() string { return s.id }

func (s *Sandbox) destroyed() bool { return s.dead.Load() }

// maxReply bounds a message from the init (an exit code and, at most, a
// short error).
const maxReply = 16 << 10

// readReply reads one message from the init into buf.
func (s *Sandbox) readReply(buf []byte) (nsinit.Reply, error) {
	var r nsinit.Reply
	n, _, _, _, err := s.conn.ReadMsgUnix(buf, nil)
	if err != nil {
		return r, err
	}
	if n == 0 {
		return r, errors.New("init exited")
	}
	if err := nsinit.Unmarshal(buf[:n], &r); err != nil {
		return r, fmt.Errorf("reply from init: %w", err)
	}
	return r, nil
}

// readLoop hands each reply to the Exec waiting for it; when the init
// goes, every waiter learns it.
func (s *Sandbox) readLoop() {
	defer close(s.done)
	buf := make([]byte, maxReply)
	for {
		r, err := s.readReply(buf)
		if err != nil {
			break
		}
		s.mu.Lock()
		ch := s.waiters[r.ID]
		delete(s.waiters, r.ID)
		s.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	s.mu.Lock()
	s.gone = true
	for id, ch := range s.waiters {
		ch <- nsinit.Reply{Op: nsinit.OpFailed, ID: id, Err: errGone.Error()}
		delete(s.waiters, id)
	}
	s.mu.Unlock()
}

// register reserves a request id and the channel its reply comes on.
func (s *Sandbox) register() (uint64, chan nsinit.Reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.dead.Load() {
		return 0, nil, errGone
	}
	s.nextID++
	ch := make(chan nsinit.Reply, 1)
	s.waiters[s.nextID] = ch
	return s.nextID, ch, nil
}

func (s *Sandbox) unregister(id uint64) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.mu.Unlock()
}

// send writes one request, with fds, to the init.
func (s *Sandbox) send(req *nsinit.Request, oob []byte) error {
	if _, _, err := s.conn.WriteMsgUnix(nsinit.Marshal(req), oob, nil); err != nil {
		return fmt.Errorf("%w: %v", errGone, err)
	}
	return nil
}

// Destroy kills every process of the sandbox and releases what it holds.
// It returns once every process is gone; the rest (a cgroup-wide sweep,
// removing the cgroup and the state file) goes on in the background, off
// the caller's path, and Backend.Close waits for it. Mounts need no
// cleanup: they live in the sandbox's mount namespace, which ends with its
// last process. Destroy is idempotent; every step is bounded, so ctx is
// not needed.
func (s *Sandbox) Destroy(ctx context.Context) error {
	s.destroyOnce.Do(func() {
		s.kill()
		if !s.waitGone() {
			s.destroyErr = fmt.Errorf("destroy sandbox %s: its init did not exit after SIGKILL", s.id)
		}
		if s.rec != nil {
			// Gone for List from now on, in this engine and any other.
			if err := s.b.records.markGone(s.id); err != nil {
				s.b.logf("destroy sandbox %s: %v", s.id, err)
			}
		}
		s.b.cleanups.Add(1)
		go func() {
			defer s.b.cleanups.Done()
			if err := s.cleanup(); err != nil {
				s.b.logf("%v", err)
			}
		}()
	})
	return s.destroyErr
}

// teardown is Destroy done synchronously, for a Create that failed.
func (s *Sandbox) teardown() error {
	s.destroyOnce.Do(func() {
		s.kill()
		s.waitGone()
		s.destroyErr = s.cleanup()
	})
	return s.destroyErr
}

// waitGone waits until the init has exited. The kernel reports its exit
// only after every other process of its pid namespace has exited, so
// then nothing of the sandbox runs any more.
func (s *Sandbox) waitGone() bool {
	return s.pidfd == nil || waitExit(int(s.pidfd.Fd()), time.Now().Add(killTimeout))
}

// kill ends the sandbox's init through its pidfd (which cannot name
// another process). When the init of a pid namespace dies, the kernel
// kills every other process in it, and nothing of the sandbox lives
// outside that namespace. Requests in flight fail; no new one starts.
func (s *Sandbox) kill() {
	s.dead.Store(true)
	if s.pidfd != nil {
		_ = unix.PidfdSendSignal(int(s.pidfd.Fd()), unix.SIGKILL, nil, 0)
	}
	if s.conn != nil {
		s.conn.Close()
	}
	s.closeFiles()
}

// cleanup waits for the sandbox to be gone and removes its cgroup and
// state file. A failure keeps the state file, so that Remove, or the next
// engine to open the state folder, can try again.
func (s *Sandbox) cleanup() error {
	var errs []error
	if s.pidfd != nil {
		if !s.waitGone() {
			errs = append(errs, errors.New("init did not exit after SIGKILL"))
		}
		s.pidfd.Close()
	}
	if s.done != nil {
		<-s.done
	}
	if s.job != nil {
		// The cgroup-wide kill finds nothing, unless the init died
		// before its pid namespace held everything.
		if err := s.job.kill(time.Now().Add(killTimeout)); err != nil {
			errs = append(errs, err)
		}
		if err := s.job.remove(time.Now().Add(removeTimeout)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && s.rec != nil {
		if err := s.b.records.remove(s.id); err != nil {
			errs = append(errs, err)
		}
	}
	s.b.mu.Lock()
	delete(s.b.live, s.id)
	s.b.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("destroy sandbox %s: %w", s.id, errors.Join(errs...))
	}
	return nil
}

// waitExit waits for the process behind a pidfd to exit.
func waitExit(pidfd int, deadline time.Time) bool {
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			return false
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// alive reports whether the init still runs; a pid read before this
// returns true named the init, since a pid is not reused while its
// process exists.
func (s *Sandbox) alive() bool {
	return s.pidfd != nil && unix.PidfdSendSignal(int(s.pidfd.Fd()), 0, nil, 0) == nil
}
