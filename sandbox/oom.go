package sandbox

import "context"

// OOMCounter is an optional power of a Sandbox, discovered by type
// assertion: how many processes its memory limit has killed so far. A
// caller that runs several programs through one long-lived process (the
// warm path's agent) compares the count before and after a program, since
// ExitStatus.OOMKilled only covers one Exec.
type OOMCounter interface {
	// OOMKills is the number of OOM kills in the sandbox since it was
	// made. A backend that can only tell whether one happened returns 0
	// or 1.
	OOMKills(ctx context.Context) (uint64, error)
}
