package docker

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// thawTimeout bounds an unpause: a daemon that cannot thaw the sandbox
// must not hold the caller (the sandbox is then reported broken).
const thawTimeout = 30 * time.Second

// frozen runs fn with every process of the sandbox frozen (the cgroup
// freezer, through ContainerPause). The archive API checks a path and then
// resolves it again in the daemon; a process of the sandbox that swaps a
// folder for a link between the two could make the daemon read or write
// outside /sandbox (seen in the security suite). Frozen, nothing in the
// sandbox can move while the daemon works.
//
// No exec may be starting meanwhile: runc's helper that starts an exec
// joins the container's cgroup before the program runs, and frozen there
// it never finishes; the exec, and every later call on the container
// (even a forced removal), then hang in the daemon (seen in the
// conformance suite, whose cases run in parallel on one sandbox). Execs
// hold s.starting shared until their process runs; a freeze holds it
// exclusively.
func (s *Sandbox) frozen(ctx context.Context, fn func() error) error {
	if !s.execd.Load() {
		return fn()
	}
	s.starting.Lock()
	defer s.starting.Unlock()
	if _, err := s.b.cli.ContainerPause(ctx, s.id, client.ContainerPauseOptions{}); err != nil {
		if errGone(err) {
			return fmt.Errorf("sandbox %s no longer exists", s.id)
		}
		// It may be paused all the same (a timeout on the way back).
		_ = s.thaw(ctx)
		return fmt.Errorf("freeze sandbox %s: %w", s.id, err)
	}
	err := fn()
	// Thaw even when ctx is done: a paused sandbox would hang its next exec.
	if terr := s.thaw(ctx); terr != nil && err == nil {
		err = terr
	}
	return err
}

func (s *Sandbox) thaw(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), thawTimeout)
	defer cancel()
	_, err := s.b.cli.ContainerUnpause(ctx, s.id, client.ContainerUnpauseOptions{})
	if err != nil && !cerrdefs.IsConflict(err) && !errGone(err) { // conflict: not paused
		return fmt.Errorf("thaw sandbox %s: %w", s.id, err)
	}
	return nil
}
