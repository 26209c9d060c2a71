//go:build linux

package nsinit

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
)

// defaultPath is used to find argv[0] when the exec's env has no PATH,
// as runc does.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// server runs the init's side of the control socket.
type server struct {
	cfg   *Config // set before the spawner restricts itself
	spawn chan *spawnReq
	ready chan error // the spawner's restriction: done, or why not

	// mu orders forks and reaping: the spawner holds it across fork and
	// registration, so the reaper cannot see a child's exit before knowing
	// whose it is.
	mu    sync.Mutex
	procs map[int]uint64 // pid → request id, for processes still running
	byID  map[uint64]int // request id → pid
}

type spawnReq struct {
	id    uint64
	path  string
	argv  []string
	env   []string
	dir   string
	files []uintptr
	done  chan error
}

func newServer() *server {
	return &server{
		spawn: make(chan *spawnReq),
		ready: make(chan error, 1),
		procs: map[int]uint64{},
		byID:  map[uint64]int{},
	}
}

// startSpawner starts the one thread that forks sandbox processes. It
// waits for the cgroup "tasks" files to join, then restricts itself (see
// restrictThread) and reports on s.ready.
func (s *server) startSpawner() chan<- []int {
	tasks := make(chan []int, 1)
	go func() {
		// Never unlocked: the thread carries the sandbox's restrictions,
		// and Go ends a locked thread whose goroutine returns rather than
		// reuse it.
		runtime.LockOSThread()
		if err := restrictThread(<-tasks, s.cfg.Seccomp); err != nil {
			s.ready <- err
			return
		}
		s.ready <- nil
		for r := range s.spawn {
			r.done <- s.forkExec(r)
		}
	}()
	return tasks
}

// forkExec runs on the spawner thread.
func (s *server) forkExec(r *spawnReq) error {
	attr := &syscall.ProcAttr{
		Dir:   r.dir,
		Env:   r.env,
		Files: r.files,
		Sys: &syscall.SysProcAttr{
			// Its own session and process group, so a cancelled exec's
			// whole group can be killed and nothing reaches a terminal.
			Setsid: true,
			Credential: &syscall.Credential{
				Uid: uint32(s.cfg.UID), Gid: uint32(s.cfg.GID), Groups: []uint32{},
			},
		},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, err := syscall.ForkExec(r.path, r.argv, attr)
	if err != nil {
		return err
	}
	s.procs[pid] = r.id
	s.byID[r.id] = pid
	return nil
}

// serve handles requests until the host goes away, then returns: the
// init's exit kills every process left in its pid namespace.
func (s *server) serve() error {
	sigchld := make(chan os.Signal, 16)
	signal.Notify(sigchld, syscall.SIGCHLD)
	go s.reap(sigchld)
	for {
		var req Request
		fds, err := Recv(ControlFD, &req)
		if errors.Is(err, errClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		switch req.Op {
		case OpExec:
			s.exec(&req, fds)
		case OpSignal:
			closeAll(fds)
			s.signal(&req)
		default:
			closeAll(fds)
		}
	}
}

// exec starts one process with the request's stdin, stdout and stderr.
// A failure to start is reported like a shell would: 127 when the program
// is not found, 126 when it cannot be run, with the reason on stderr.
func (s *server) exec(req *Request, fds []int) {
	defer closeAll(fds)
	if len(fds) != 3 || len(req.Argv) == 0 {
		_ = Send(ControlFD, &Reply{Op: OpExit, ID: req.ID, Code: 126, Err: "malformed exec request"})
		return
	}
	path, err := lookPath(req.Argv[0], req.Env)
	if err == nil {
		r := &spawnReq{
			id: req.ID, path: path, argv: req.Argv, env: req.Env, dir: req.Dir,
			files: []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])},
			done:  make(chan error, 1),
		}
		s.spawn <- r
		err = <-r.done
	}
	if err == nil {
		return
	}
	code := 126
	if errors.Is(err, syscall.ENOENT) {
		code = 127
	}
	msg := fmt.Sprintf("exec %q: %v", req.Argv[0], err)
	if len(msg) > 1024 { // replies stay small (see the engine's maxReply)
		msg = msg[:1024]
	}
	_, _ = syscall.Write(fds[2], []byte("isol8: "+msg+"\n"))
	_ = Send(ControlFD, &Reply{Op: OpExit, ID: req.ID, Code: code, Err: msg})
}

func (s *server) signal(req *Request) {
	s.mu.Lock()
	pid, ok := s.byID[req.ID]
	s.mu.Unlock()
	if !ok || req.Signal <= 0 {
		return
	}
	if req.Group {
		pid = -pid
	}
	_ = syscall.Kill(pid, syscall.Signal(req.Signal))
}

// reap collects every child of the init, including orphans that the pid
// namespace hands to it, and reports the exit of those the host started.
func (s *server) reap(sigchld <-chan os.Signal) {
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
			s.mu.Lock()
			id, ok := s.procs[pid]
			if ok {
				delete(s.procs, pid)
				delete(s.byID, id)
			}
			s.mu.Unlock()
			if !ok {
				continue
			}
			code := ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			_ = Send(ControlFD, &Reply{Op: OpExit, ID: id, Code: code})
		}
	}
}

// lookPath finds argv[0] in the exec's PATH, inside the sandbox.
func lookPath(file string, env []string) (string, error) {
	for i := 0; i < len(file); i++ {
		if file[i] == '/' {
			return file, nil
		}
	}
	path := defaultPath
	for _, e := range env {
		if len(e) >= 5 && e[:5] == "PATH=" {
			path = e[5:]
		}
	}
	for len(path) > 0 {
		dir := path
		for i := 0; i < len(path); i++ {
			if path[i] == ':' {
				dir = path[:i]
				break
			}
		}
		path = path[min(len(dir)+1, len(path)):]
		if len(dir) == 0 || dir[0] != '/' {
			continue // relative entries depend on a cwd the init does not share
		}
		p := dir + "/" + file
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable file not found in $PATH: %w", syscall.ENOENT)
}
