// Package sandbox is the seam between the isol8 engine and the mechanisms
// that isolate code: a Backend creates Sandboxes; a Sandbox writes files,
// runs processes and reads files back. The docker backend is the first
// implementation; native (Linux namespaces) and kube implement the same
// interfaces and must pass the same conformance suite (sandbox/conformance).
//
// The seam is deliberately low level: it knows nothing of runtimes, requests
// or secrets. Every value in a Spec is already validated and clamped by the
// engine; a backend applies it and adds its own hardening, which no Spec can
// switch off (unprivileged uid, no capabilities, no_new_privs, seccomp,
// read-only root, nosuid/nodev tmpfs, no network unless asked).
package sandbox

import (
	"context"
	"errors"
	"io"
	"time"
)

// Label keys put on everything a backend creates, so cleanup and a restarted
// engine find exactly their own sandboxes and nothing else.
const (
	// LabelManaged marks every object isol8 creates ("true").
	LabelManaged = "dev.isol8.managed"
	// LabelOwner names the engine instance (or server) that created it.
	LabelOwner = "dev.isol8.owner"
	// LabelCreated is the creation time, RFC 3339.
	LabelCreated = "dev.isol8.created"
)

// The uid and gid that user code runs as inside every sandbox.
const (
	UID = 1000
	GID = 1000
)

// Fixed paths inside every sandbox.
const (
	SandboxDir = "/sandbox"
	TmpDir     = "/tmp"
)

// Network is a sandbox's network policy.
type Network string

// The network policies a backend must support. NetworkFiltered leaves the
// sandbox only loopback; the engine reaches it with a listener in its
// network namespace (LoopbackListener).
const (
	NetworkNone     Network = "none"
	NetworkFiltered Network = "filtered"
	NetworkHost     Network = "host"
)

// Spec describes a sandbox to create. Sizes are bytes.
type Spec struct {
	Image       string  // runtime image (a root filesystem)
	MemoryBytes int64   // memory limit; swap is never allowed beyond it
	CPUs        float64 // CPU quota in CPUs
	Pids        int64   // max processes and threads
	SandboxSize int64   // size of the /sandbox tmpfs
	TmpSize     int64   // size of the /tmp tmpfs
	Network     Network
	// ReadonlyRootFS is true unless a trusted config asked otherwise.
	ReadonlyRootFS bool
	// SeccompProfile is a seccomp profile in Docker's JSON format; empty
	// means the backend's built-in strict profile.
	SeccompProfile []byte
	// Labels are added to the sandbox (the backend adds LabelManaged).
	Labels map[string]string
}

// File is one file to write into a sandbox.
type File struct {
	Path string // absolute, clean, inside /sandbox (or /tmp)
	Data []byte
	Mode int64 // permission bits; 0 means 0644
}

// ExecSpec is one process to run in a sandbox, as the sandbox user.
type ExecSpec struct {
	Argv   []string
	Env    []string // KEY=VALUE; nothing of the host's environment is inherited
	Dir    string   // working directory, default /sandbox
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Signals, when set, delivers "SIGINT", "SIGTERM" or "SIGKILL" to the
	// process while it runs.
	Signals <-chan string
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code      int  // exit code; 128+signal when killed by a signal
	OOMKilled bool // the sandbox's memory limit killed something in this exec
}

// Info describes a sandbox found by List.
type Info struct {
	ID      string
	Labels  map[string]string
	Created time.Time
	Running bool
}

// Backend creates and finds sandboxes.
type Backend interface {
	// Name is the backend's name ("docker", "native").
	Name() string
	// Create makes a running sandbox ready for Exec.
	Create(ctx context.Context, spec Spec) (Sandbox, error)
	// List returns the sandboxes carrying all the given labels (and LabelManaged).
	List(ctx context.Context, labels map[string]string) ([]Info, error)
	// Remove destroys a sandbox found by List; removing a missing one is not an error.
	Remove(ctx context.Context, id string) error
	// Close releases the backend's own resources (not its sandboxes).
	Close() error
}

// Sandbox is one isolated environment.
type Sandbox interface {
	// ID is unique among the backend's sandboxes.
	ID() string
	// WriteFiles writes files, creating parent folders, owned by the
	// sandbox user. It never follows a symbolic link planted inside the
	// sandbox out of it, and no path passes through a shell or an argv.
	WriteFiles(ctx context.Context, files []File) error
	// ReadFile returns a regular file's content. It fails with ErrNotFound
	// when the path does not exist, ErrNotRegular for links, FIFOs, devices
	// and folders, and ErrTooLarge past max bytes; it never follows a link,
	// never blocks on a FIFO and never reads more than max bytes.
	ReadFile(ctx context.Context, path string, max int64) ([]byte, error)
	// Exec runs a process as the sandbox user and waits for it. Cancelling
	// ctx kills the process (the engine then destroys the sandbox).
	Exec(ctx context.Context, spec ExecSpec) (ExitStatus, error)
	// Destroy kills every process of the sandbox and removes all it holds.
	// It is idempotent.
	Destroy(ctx context.Context) error
}

// Errors a Sandbox returns (wrapped).
var (
	ErrNotFound   = errors.New("no such file")
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
	// ErrUnavailable means the mechanism behind the backend cannot be
	// reached (the Docker engine is down, namespaces are not permitted).
	ErrUnavailable = errors.New("sandbox backend unavailable")
	// ErrImageNotFound means the Spec's image does not exist yet.
	ErrImageNotFound = errors.New("image not found")
)
