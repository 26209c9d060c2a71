//go:build linux

package nsinit

import (
	"fmt"

	"syscall"
)

// EnvMarker selects the mode: a process started with EnvMarker=ModeInit
// (or ModeNursery) in its environment runs Main (or Nursery) instead of
// its program. Only the engine's re-executed copy of itself gets it.
const EnvMarker = "_ISOL8_NSINIT"

// ControlFD is the init's end of the control socket (the first ExtraFile).
const ControlFD = 3

// Config is the first message on the control socket: what the init needs
// to build the sandbox (its cgroup comes next, see Main). It travels over the socket, never in argv or
// the environment, so nothing of it shows in /proc/1/cmdline or environ.
type Config struct {
	Rootfs      string // host path of the unpacked image, traversable by the mapped root
	Readonly    bool   // read-only root; false puts a tmpfs overlay on top
	SandboxSize int64  // bytes of the /sandbox tmpfs
	TmpSize     int64  // bytes of the /tmp tmpfs
	ShmSize     int64  // bytes of the /dev/shm tmpfs
	Hostname    string
	NewNet      bool   // the init is in a fresh network namespace: bring lo up
	Seccomp     []byte // the filter, struct sock_filter[] in host byte order
	UID, GID    int    // the sandbox user
	// ProcsFD says the last fd sent with OpJoin is a "cgroup.procs" file
	// that the whole init joins (cgroup v2); TaskFDs is how many fds before
	// it are cgroup v1 "tasks" files that only the spawner thread joins.
	TaskFDs int
	ProcsFD bool
}

// Request is a message from the host to the init.
type Request struct {
	Op   string // "exec" or "signal"
	ID   uint64
	Argv []string
	Env  []string
	Dir  string
	// Signal is the signal number for "signal"; Group sends it to the
	// process group (the exec'd process leads its own session).
	Signal int
	Group  bool
}

// The operations of Request and Reply.
const (
	OpExec    = "exec"
	OpSignal  = "signal"
	OpJoin    = "join"
	OpReady   = "ready"
	OpStarted = "started"
	OpExit    = "exit"
	OpFailed  = "failed"
)

// Reply is a message from the init to the host.
type Reply struct {
	Op   string // ready, started, exit, failed
	ID   uint64
	Pid  int // pid inside the sandbox
	Code int
	Err  string
}

// maxFDs bounds the descriptors accepted with one message.
const maxFDs = 8

// Send writes m as one datagram on a SOCK_SEQPACKET socket, with fds.
func Send(fd int, m Message, fds ...int) error {
	b := Marshal(m)
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	for {
		err := syscall.Sendmsg(fd, b, oob, nil, 0)
		if err != syscall.EINTR {
			return err
		}
	}
}

// Recv reads one datagram into m and returns the fds that came with it
// (close-on-exec). It blocks the calling thread.
func Recv(fd int, m Message) ([]int, error) {
	var n int
	var err error
	for {
		// Peek for the size: a request carries argv and env, whose size
		// only the host bounds.
		n, _, err = syscall.Recvfrom(fd, nil, syscall.MSG_PEEK|syscall.MSG_TRUNC)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errClosed
	}
	buf := make([]byte, n)
	oob := make([]byte, syscall.CmsgSpace(maxFDs*4))
	var oobn int
	for {
		n, oobn, _, _, err = syscall.Recvmsg(fd, buf, oob, syscall.MSG_CMSG_CLOEXEC)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	fds, err := ParseRights(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if err := Unmarshal(buf[:n], m); err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("decode message: %w", err)
	}
	return fds, nil
}

// ParseRights returns the descriptors in a control message.
func ParseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		r, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

type closedError struct{}

func (closedError) Error() string { return "control socket closed" }

var errClosed error = closedError{}
