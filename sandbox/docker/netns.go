package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/isol8/isol8/sandbox"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// ListenLoopback listens on addr (such as "127.0.0.1:3128") inside the
// container's network namespace and returns the listener to the engine,
// which serves the egress proxy on it (sandbox.LoopbackListener). A
// NetworkFiltered container is a "none" container, so that listener is the
// only thing its loopback leads out to.
//
// It needs a local engine (the container's init pid must be a process of
// this host's pid namespace) and root, or CAP_SYS_ADMIN: it enters the
// namespace through /proc/PID/ns/net. It checks, through a pidfd, that the
// pid is the container's own init and stayed so while the namespace was
// opened, so a recycled pid cannot lead into another process's network.
func (s *Sandbox) ListenLoopback(ctx context.Context, addr string) (net.Listener, error) {
	if err := sandbox.CheckLoopbackAddr(addr); err != nil {
		return nil, err
	}
	res, err := s.b.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
	if err != nil {
		if errGone(err) {
			return nil, fmt.Errorf("listen in sandbox %s: it no longer exists", s.id)
		}
		return nil, fmt.Errorf("listen in sandbox %s: %w", s.id, err)
	}
	st := res.Container.State
	if st == nil || !st.Running || st.Pid <= 0 {
		return nil, fmt.Errorf("listen in sandbox %s: it is not running", s.id)
	}
	ns, err := s.openNetNS(st.Pid)
	if err != nil {
		return nil, fmt.Errorf("listen in sandbox %s: %w", s.id, err)
	}
	defer ns.Close()
	l, err := sandbox.ListenInNetNS(int(ns.Fd()), addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.id, err)
	}
	return l, nil
}

// errNotLocal explains why a remote or containerised engine cannot serve
// a filtered sandbox.
var errNotLocal = errors.New("the container's processes are not visible here: " +
	"filtered networking needs the Docker engine on this host and isol8 in the host's pid namespace")

// openNetNS opens the network namespace of pid, the container's init.
func (s *Sandbox) openNetNS(pid int) (*os.File, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, errNotLocal
		}
		return nil, fmt.Errorf("pidfd_open %d: %w (Linux 5.3 or later is needed)", pid, err)
	}
	defer unix.Close(pidfd)
	proc := "/proc/" + strconv.Itoa(pid)
	// The cgroup names the container's id on a local engine, whatever the
	// cgroup driver; another pid namespace shows another process or none.
	cg, err := os.ReadFile(proc + "/cgroup")
	if err != nil || !bytes.Contains(cg, []byte(s.id)) {
		return nil, errNotLocal
	}
	ns, err := os.Open(proc + "/ns/net")
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w (filtered networking needs isol8 to run as root)", err)
		}
		return nil, err
	}
	// Alive now means it was never reaped since pidfd_open: the pid named
	// the same process for both reads above.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		ns.Close()
		return nil, fmt.Errorf("the container's init exited: %w", err)
	}
	return ns, nil
}

var _ sandbox.LoopbackListener = (*Sandbox)(nil)
