//go:build linux

package native

import (
	"context"
	"fmt"
	"net"

	"github.com/isol8/isol8/sandbox"
)

// ListenLoopback listens on addr (such as "127.0.0.1:3128") inside the
// sandbox's network namespace and returns the listener to the engine,
// which serves the egress proxy on it (sandbox.LoopbackListener). A
// NetworkFiltered sandbox has no interface but loopback, so that listener
// is its only way out. The namespace is entered through the init's pidfd,
// which cannot name another process.
func (s *Sandbox) ListenLoopback(ctx context.Context, addr string) (net.Listener, error) {
	if err := sandbox.CheckLoopbackAddr(addr); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.filesMu.RLock() // keeps the pidfd open while it is used
	defer s.filesMu.RUnlock()
	if s.dead.Load() || !s.alive() {
		return nil, fmt.Errorf("listen in sandbox %s: %w", s.id, errGone)
	}
	if !s.newNet {
		return nil, fmt.Errorf("listen in sandbox %s: it shares the host's network", s.id)
	}
	l, err := sandbox.ListenInNetNS(int(s.pidfd.Fd()), addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.id, err)
	}
	return l, nil
}

// OOMKills is how many processes the sandbox's memory limit has killed
// (sandbox.OOMCounter), from the memory cgroup's own counter.
func (s *Sandbox) OOMKills(ctx context.Context) (uint64, error) {
	if s.dead.Load() {
		return 0, errGone
	}
	return s.job.oomKills(), nil
}

var (
	_ sandbox.LoopbackListener = (*Sandbox)(nil)
	_ sandbox.OOMCounter       = (*Sandbox)(nil)
)
