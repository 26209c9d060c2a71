package sandbox

import "context"

// Usage is what a sandbox's cgroups have counted so far.
type Usage struct {
	MemoryBytes     int64 // memory in use now
	PeakMemoryBytes int64 // the most it used since it was made
	CPUNanos        int64 // CPU time used since it was made
}

// UsageReader is an optional power of a Sandbox, discovered by type
// assertion: its resource usage, for a result's resourceUsage.
type UsageReader interface {
	Usage(ctx context.Context) (Usage, error)
}
