package docker

import (
	"context"

	"github.com/isol8/isol8/sandbox"
)

// OOMKills reads the container's memory cgroup OOM-kill counter (see
// oomSnapshot); with a remote engine, where only Docker's sticky flag is
// known, it is 0 or 1.
func (s *Sandbox) OOMKills(ctx context.Context) (uint64, error) {
	c := s.oomSnapshot(ctx)
	if c.flag {
		return uint64(c.count) + 1, nil
	}
	return uint64(c.count), nil
}

var _ sandbox.OOMCounter = (*Sandbox)(nil)
