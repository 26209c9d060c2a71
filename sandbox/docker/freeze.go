package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// frozen runs fn with every process of the sandbox frozen (the cgroup
// freezer, through ContainerPause). The archive API checks a path and then
// resolves it again in the daemon; a process of the sandbox that swaps a
// folder for a link between the two could make the daemon read or write
// outside /sandbox (seen in the security suite). Frozen, nothing in the
// sandbox can move while the daemon works.
func (s *Sandbox) frozen(ctx context.Context, fn func() error) error {
	if !s.execd.Load() {
		return fn()
	}
	if _, err := s.b.cli.ContainerPause(ctx, s.id, client.ContainerPauseOptions{}); err != nil {
		if errGone(err) {
			return fmt.Errorf("sandbox %s no longer exists", s.id)
		}
		return fmt.Errorf("freeze sandbox %s: %w", s.id, err)
	}
	// Thaw even when ctx is done: a paused sandbox would hang its next exec.
	defer s.b.cli.ContainerUnpause(context.WithoutCancel(ctx), s.id, client.ContainerUnpauseOptions{})
	return fn()
}
