package isol8

import (
	"context"
	"io"
)

// Runtime names the language of a request's code.
type Runtime string

// The runtimes isol8 knows.
const (
	Python Runtime = "python"
	Node   Runtime = "node"
	Bun    Runtime = "bun"
	Deno   Runtime = "deno"
	Bash   Runtime = "bash"
)

// Mode says whether a sandbox lives for one run or is kept between runs.
type Mode string

// The execution modes.
const (
	Ephemeral  Mode = "ephemeral"
	Persistent Mode = "persistent"
)

// NetworkMode is a sandbox's network policy, from tightest to loosest.
type NetworkMode string

// The network modes.
const (
	NetworkNone     NetworkMode = "none"
	NetworkFiltered NetworkMode = "filtered"
	NetworkHost     NetworkMode = "host"
)

// Request is one execution: what to run and with which inputs (contract section 1).
type Request struct {
	Runtime              Runtime           `json:"runtime"`
	Code                 string            `json:"code,omitempty"`
	Cmd                  string            `json:"cmd,omitempty"`
	CodeURL              string            `json:"codeUrl,omitempty"`
	CodeHash             string            `json:"codeHash,omitempty"`
	AllowInsecureCodeURL bool              `json:"allowInsecureCodeUrl,omitempty"`
	Stdin                string            `json:"stdin,omitempty"`
	Files                map[string][]byte `json:"files,omitempty"`
	OutputPaths          []string          `json:"outputPaths,omitempty"`
	Env                  map[string]string `json:"env,omitempty"`
	TimeoutMs            int64             `json:"timeoutMs,omitempty"`
	Workdir              string            `json:"workdir,omitempty"`
	SetupScript          string            `json:"setupScript,omitempty"`
	InstallPackages      []string          `json:"installPackages,omitempty"`
	FileExtension        string            `json:"fileExtension,omitempty"`
	Metadata             map[string]string `json:"metadata,omitempty"`

	// StdinReader, when set, is streamed to the program's standard input
	// instead of Stdin (interactive use, such as WebSocket stdin messages).
	StdinReader io.Reader `json:"-"`
	// Signals, when set, delivers signals ("SIGINT", "SIGTERM", "SIGKILL")
	// to the running program.
	Signals <-chan string `json:"-"`
}

// NetworkFilter holds the host patterns of the filtered network mode.
type NetworkFilter struct {
	Whitelist []string `json:"whitelist"`
	Blacklist []string `json:"blacklist"`
}

// SecurityOptions selects the seccomp profile.
type SecurityOptions struct {
	Seccomp           string `json:"seccomp,omitempty"`
	CustomProfilePath string `json:"customProfilePath,omitempty"`
}

// PoolSize is the number of warm sandboxes kept per pool key.
type PoolSize struct {
	Clean int `json:"clean"`
	Dirty int `json:"dirty"`
}

// Options are the engine options (contract section 2). The same names are
// used by the library, the HTTP body's "options" and the config file's
// "defaults". A zero value (or nil pointer) means "not set here", so layers
// can be merged: request over engine options over config over defaults.
type Options struct {
	Mode           Mode              `json:"mode,omitempty"`
	Network        NetworkMode       `json:"network,omitempty"`
	NetworkFilter  *NetworkFilter    `json:"networkFilter,omitempty"`
	LogNetwork     *bool             `json:"logNetwork,omitempty"`
	TimeoutMs      int64             `json:"timeoutMs,omitempty"`
	MemoryLimit    string            `json:"memoryLimit,omitempty"`
	CPULimit       float64           `json:"cpuLimit,omitempty"`
	PidsLimit      int64             `json:"pidsLimit,omitempty"`
	SandboxSize    string            `json:"sandboxSize,omitempty"`
	TmpSize        string            `json:"tmpSize,omitempty"`
	MaxOutputSize  int64             `json:"maxOutputSize,omitempty"`
	ReadonlyRootFs *bool             `json:"readonlyRootFs,omitempty"`
	Secrets        map[string]string `json:"secrets,omitempty"`
	Image          string            `json:"image,omitempty"`
	Security       *SecurityOptions  `json:"security,omitempty"`
	PoolStrategy   string            `json:"poolStrategy,omitempty"`
	PoolSize       *PoolSize         `json:"poolSize,omitempty"`
	MaxConcurrent  int               `json:"maxConcurrent,omitempty"`
	Backend        string            `json:"backend,omitempty"`
	// Stateful, in persistent mode, keeps one long-lived interpreter
	// (a kernel) for python and node code: globals set by one run are seen
	// by the next (`x = 42`, then `print(x)`). A kernel that dies (a crash,
	// os._exit) is reported in that run's stderr and the next run starts a
	// new, empty one; a timeout destroys the session's sandbox as in any
	// persistent run, so the next run starts afresh. cmd and bash runs are
	// unaffected. Off by default (beyond upstream isol8).
	Stateful *bool `json:"stateful,omitempty"`
}

// ResourceUsage is what the backend measured of a run, where it can.
type ResourceUsage struct {
	CPUPercent      float64 `json:"cpuPercent"`
	MemoryMB        float64 `json:"memoryMB"`
	PeakMemoryMB    float64 `json:"peakMemoryMB"`
	NetworkBytesIn  int64   `json:"networkBytesIn"`
	NetworkBytesOut int64   `json:"networkBytesOut"`
}

// NetworkLog is one request seen by the egress proxy.
type NetworkLog struct {
	Timestamp  string `json:"timestamp"`
	Method     string `json:"method"`
	Host       string `json:"host"`
	Path       string `json:"path,omitempty"`
	Action     string `json:"action"`
	DurationMs int64  `json:"durationMs"`
}

// Result is what a run produced (contract section 3).
type Result struct {
	Stdout        string            `json:"stdout"`
	Stderr        string            `json:"stderr"`
	ExitCode      int               `json:"exitCode"`
	DurationMs    int64             `json:"durationMs"`
	Truncated     bool              `json:"truncated"`
	TimedOut      bool              `json:"timedOut"`
	OOMKilled     bool              `json:"oomKilled"`
	ExecutionID   string            `json:"executionId"`
	Runtime       Runtime           `json:"runtime"`
	Timestamp     string            `json:"timestamp"`
	ContainerID   string            `json:"containerId,omitempty"`
	Files         map[string][]byte `json:"files,omitempty"`
	ResourceUsage *ResourceUsage    `json:"resourceUsage,omitempty"`
	NetworkLogs   []NetworkLog      `json:"networkLogs,omitempty"`
}

// EventType is the kind of a stream event.
type EventType string

// The stream event types.
const (
	EventStdout EventType = "stdout"
	EventStderr EventType = "stderr"
	EventExit   EventType = "exit"
	EventError  EventType = "error"
)

// Phase tells which part of a run produced an event.
type Phase string

// The phases of a run.
const (
	PhaseSetup Phase = "setup"
	PhaseCode  Phase = "code"
)

// StreamEvent is one event of a streamed run (contract section 4). An "exit"
// event carries the exit code as a string and is always the last.
type StreamEvent struct {
	Type  EventType `json:"type"`
	Data  string    `json:"data"`
	Phase Phase     `json:"phase,omitempty"`
}

// EventSink receives the events of a streamed run, in order, from one
// goroutine at a time.
type EventSink func(StreamEvent)

// Engine runs requests in sandboxes. The local engine (New) and the remote
// client (package client) both implement it.
type Engine interface {
	// Start prepares the engine (connects to the backend, warms pools).
	Start(ctx context.Context) error
	// Stop releases everything the engine holds; its sandboxes are removed.
	Stop(ctx context.Context) error
	// Execute runs req and returns its result once it has finished.
	Execute(ctx context.Context, req *Request) (*Result, error)
	// ExecuteStream runs req, sending output to sink as it arrives, and
	// returns the same result Execute would. The last event is "exit".
	ExecuteStream(ctx context.Context, req *Request, sink EventSink) (*Result, error)
	// PutFile writes a file into the persistent sandbox.
	PutFile(ctx context.Context, path string, content []byte) error
	// GetFile reads a file from the persistent sandbox.
	GetFile(ctx context.Context, path string) ([]byte, error)
}
