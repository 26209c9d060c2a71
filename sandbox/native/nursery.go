//go:build linux

package native

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isol8/isol8/sandbox/native/internal/nsinit"
)

// nursery is the helper process that starts sandbox inits (see
// nsinit.Nursery for why). One serves the whole engine process.
type nursery struct {
	pid    int
	conn   *net.UnixConn
	mu     sync.Mutex // one request at a time
	nextID uint64
	dead   atomic.Bool
}

var nurseries struct {
	sync.Mutex
	n *nursery
}

// getNursery returns the running nursery, starting one if there is none
// or the last one died.
func getNursery() (*nursery, error) {
	nurseries.Lock()
	defer nurseries.Unlock()
	if n := nurseries.n; n != nil && !n.dead.Load() {
		return n, nil
	}
	n, err := startNursery()
	if err != nil {
		return nil, err
	}
	nurseries.n = n
	return n, nil
}

func startNursery() (*nursery, error) {
	exe, err := sealedSelf()
	if err != nil {
		return nil, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("nursery socket: %w", err)
	}
	host, child := os.NewFile(uintptr(pair[0]), "nursery"), os.NewFile(uintptr(pair[1]), "nursery")
	defer child.Close()
	conn, err := net.FileConn(host)
	host.Close()
	if err != nil {
		return nil, fmt.Errorf("nursery socket: %w", err)
	}
	n := &nursery{conn: conn.(*net.UnixConn)}
	started := make(chan error, 1)
	go func() {
		// The nursery gets SIGKILL when the thread that started it ends
		// (prctl PR_SET_PDEATHSIG follows threads, not processes), and Go
		// ends a thread whose goroutine exits locked to it. This thread
		// stays until the nursery is gone.
		runtime.LockOSThread()
		cmd := &exec.Cmd{
			Path:        exe,
			Args:        []string{"isol8-nursery"},
			Env:         []string{nsinit.EnvMarker + "=" + nsinit.ModeNursery, "GOMAXPROCS=1"},
			ExtraFiles:  []*os.File{child},
			Stderr:      os.Stderr, // only a crash writes there
			SysProcAttr: &unix.SysProcAttr{Pdeathsig: unix.SIGKILL},
		}
		err := cmd.Start()
		if err == nil {
			n.pid = cmd.Process.Pid
		}
		started <- err
		if err != nil {
			return
		}
		_ = cmd.Wait()
		n.dead.Store(true)
		n.conn.Close()
	}()
	if err := <-started; err != nil {
		n.conn.Close()
		return nil, fmt.Errorf("start nursery: %w", err)
	}
	return n, nil
}

// spawn asks the nursery for an init and sets s.pid and s.pidfd. It
// returns the engine's end of the init's control socket and the read end
// of its stderr.
func (n *nursery) spawn(req *nsinit.SpawnRequest, s *Sandbox) (ctl, stderr *os.File, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nextID++
	req.ID = n.nextID
	_ = n.conn.SetDeadline(time.Now().Add(startTimeout))
	defer n.conn.SetDeadline(time.Time{})
	if _, _, err := n.conn.WriteMsgUnix(nsinit.Marshal(req), nil, nil); err != nil {
		n.broken()
		return nil, nil, fmt.Errorf("nursery: %w", err)
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	nb, noob, _, _, err := n.conn.ReadMsgUnix(buf, oob)
	if err == nil && nb == 0 {
		err = errors.New("nursery exited")
	}
	if err != nil {
		n.broken()
		return nil, nil, fmt.Errorf("nursery: %w", err)
	}
	got, err := nsinit.ParseRights(oob[:noob])
	if err != nil {
		return nil, nil, fmt.Errorf("nursery: %w", err)
	}
	var reply nsinit.SpawnReply
	if err := nsinit.Unmarshal(buf[:nb], &reply); err != nil || reply.ID != req.ID {
		closeFDs(got)
		n.broken()
		return nil, nil, fmt.Errorf("nursery: bad reply %q: %v", buf[:nb], err)
	}
	if reply.Err != "" || len(got) != 3 {
		closeFDs(got)
		return nil, nil, fmt.Errorf("start init: %s", reply.Err)
	}
	s.pid, s.pidfd = reply.Pid, os.NewFile(uintptr(got[0]), "pidfd")
	return os.NewFile(uintptr(got[1]), "control"), os.NewFile(uintptr(got[2]), "init stderr"), nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// broken retires a nursery that lost track of its requests; the next
// Create starts a new one.
func (n *nursery) broken() {
	n.dead.Store(true)
	n.conn.Close()
}
