//go:build linux

package nsinit

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// The values of EnvMarker.
const (
	ModeInit    = "1"
	ModeNursery = "nursery"
)

// SpawnRequest asks the nursery for an init in new namespaces (Cloneflags)
// whose ids 0..IDs-1 are the host's HostID.. .
type SpawnRequest struct {
	ID         uint64
	Cloneflags uintptr
	HostID     int
	IDs        int
}

// SpawnReply answers a SpawnRequest. On success three fds come with it:
// a pidfd of the init, the engine's end of the init's control socket, and
// the read end of the init's stderr.
type SpawnReply struct {
	ID  uint64
	Pid int
	Err string
}

// Nursery starts sandbox inits for the engine.
//
// The engine could start them itself, but a process that creates a user
// namespace cannot be forked with vfork (the child must wait for its id
// maps), so the whole parent is copied, which costs milliseconds with a
// large engine heap; the nursery is small. It also keeps one spare init
// per kind ready: forked, executed and its Go runtime started, waiting
// for its Config with nothing of any sandbox in it yet (no file system,
// cgroup, limit or filter; only empty namespaces). Handing out a spare
// takes that start-up off Create's path; the nursery then makes the next
// one in the background.
//
// The nursery runs as the engine's user, in the engine's namespaces, and
// dies with the engine; its spares then see their control socket close
// and exit.
func Nursery() error {
	sigchld := make(chan os.Signal, 16)
	signal.Notify(sigchld, syscall.SIGCHLD)
	go func() {
		// Reap the inits; nothing needs their status (the engine
		// watches their pidfds).
		for range sigchld {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if err == syscall.EINTR {
					continue
				}
				if err != nil || pid <= 0 {
					break
				}
			}
		}
	}()
	devnull, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	n := &nursery{devnull: devnull, spares: map[SpawnRequest]*spare{}}
	for {
		var req SpawnRequest
		fds, err := Recv(ControlFD, &req)
		closeAll(fds)
		if errors.Is(err, errClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		id := req.ID
		req.ID = 0 // the kind of init, as a map key
		sp, err := n.take(req)
		if err != nil {
			_ = Send(ControlFD, &SpawnReply{ID: id, Err: err.Error()})
			continue
		}
		err = Send(ControlFD, &SpawnReply{ID: id, Pid: sp.pid}, sp.pidfd, sp.ctl, sp.stderr)
		sp.close()
		if err != nil {
			_ = syscall.Kill(sp.pid, syscall.SIGKILL)
			return err
		}
		go n.refill(req)
	}
}

type nursery struct {
	devnull int
	mu      sync.Mutex
	spares  map[SpawnRequest]*spare // at most one ready init per kind
	busy    map[SpawnRequest]bool
}

// spare is an init waiting for its Config, and the nursery's ends of it.
type spare struct {
	pid, pidfd  int
	ctl, stderr int
}

func (s *spare) close() {
	syscall.Close(s.pidfd)
	syscall.Close(s.ctl)
	syscall.Close(s.stderr)
}

// take hands out the spare of this kind, or starts an init now.
func (n *nursery) take(req SpawnRequest) (*spare, error) {
	n.mu.Lock()
	sp := n.spares[req]
	delete(n.spares, req)
	n.mu.Unlock()
	if sp != nil {
		if _, _, e := syscall.RawSyscall6(sysPidfdSendSignal, uintptr(sp.pidfd), 0, 0, 0, 0, 0); e == 0 {
			return sp, nil
		}
		sp.close() // died while waiting; start another
	}
	return n.start(req)
}

// refill makes the next spare of a kind, unless one is ready or coming.
func (n *nursery) refill(req SpawnRequest) {
	n.mu.Lock()
	if n.spares[req] != nil || n.busy[req] {
		n.mu.Unlock()
		return
	}
	if n.busy == nil {
		n.busy = map[SpawnRequest]bool{}
	}
	n.busy[req] = true
	n.mu.Unlock()
	sp, err := n.start(req)
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.busy, req)
	if err != nil {
		return // the next request starts one itself and reports why
	}
	if n.spares[req] != nil {
		sp.close()
		_ = syscall.Kill(sp.pid, syscall.SIGKILL)
		return
	}
	n.spares[req] = sp
}

// start forks and executes an init, with a new control socket and stderr
// pipe.
func (n *nursery) start(req SpawnRequest) (*spare, error) {
	ctl, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var errp [2]int
	if err := syscall.Pipe2(errp[:], syscall.O_CLOEXEC); err != nil {
		closeAll(ctl[:])
		return nil, err
	}
	// Requests carry argv and env: allow datagrams beyond the default
	// buffer (root may exceed wmem_max).
	_ = syscall.SetsockoptInt(ctl[0], syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, 8<<20)
	defer closeAll([]int{ctl[1], errp[1]})
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: req.HostID, Size: req.IDs}}
	pidfd := -1
	attr := &syscall.SysProcAttr{
		Cloneflags:  req.Cloneflags,
		UidMappings: ids,
		GidMappings: ids,
		// The init drops supplementary groups for every process it starts.
		GidMappingsEnableSetgroups: true,
		// Become the namespace's root: the nursery's own uid 0 is not
		// mapped in there.
		Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}},
		// No Pdeathsig: a sandbox outlives a crashed nursery. It ends
		// with the engine anyway, when its control socket closes.
		PidFD: &pidfd,
	}
	// /proc/self/exe is the nursery's own program: the sealed copy the
	// engine started it from, never the file on disk.
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"isol8-init"}, &syscall.ProcAttr{
		// Nothing of the engine's environment; GOMAXPROCS=1 keeps the
		// init to a few threads (and off the runtime's cgroup polling).
		Env:   []string{EnvMarker + "=" + ModeInit, "GOMAXPROCS=1"},
		Files: []uintptr{uintptr(n.devnull), uintptr(n.devnull), uintptr(errp[1]), uintptr(ctl[1])},
		Sys:   attr,
	})
	if err != nil {
		closeAll([]int{ctl[0], errp[0]})
		return nil, fmt.Errorf("start init: %w", err)
	}
	if pidfd < 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		closeAll([]int{ctl[0], errp[0]})
		return nil, errors.New("start init: no pidfd (Linux 5.2 or later is needed)")
	}
	return &spare{pid: pid, pidfd: pidfd, ctl: ctl[0], stderr: errp[0]}, nil
}
