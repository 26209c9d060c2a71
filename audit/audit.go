package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/isol8/isol8"
)

// Record is one line of the audit log.
type Record struct {
	ExecutionID    string               `json:"executionId"`
	Timestamp      time.Time            `json:"timestamp"`
	TenantID       string               `json:"tenantId"`
	KeyID          string               `json:"keyId"`
	SessionID      string               `json:"sessionId,omitempty"`
	RequestID      string               `json:"requestId,omitempty"`
	Transport      string               `json:"transport,omitempty"`
	Runtime        string               `json:"runtime"`
	Outcome        Outcome              `json:"outcome"`
	ExitCode       *int                 `json:"exitCode,omitempty"`
	DurationMs     int64                `json:"durationMs"`
	TimedOut       bool                 `json:"timedOut"`
	OOMKilled      bool                 `json:"oomKilled"`
	Truncated      bool                 `json:"truncated,omitempty"`
	Error          string               `json:"error,omitempty"`
	CodeHash       string               `json:"codeHash,omitempty"`
	Code           string               `json:"code,omitempty"`
	Stdout         string               `json:"stdout,omitempty"`
	Stderr         string               `json:"stderr,omitempty"`
	Metadata       map[string]string    `json:"metadata,omitempty"`
	ContainerID    string               `json:"containerId,omitempty"`
	ResourceUsage  *isol8.ResourceUsage `json:"resourceUsage,omitempty"`
	SecurityEvents []SecurityEvent      `json:"securityEvents,omitempty"`
}

// Outcome says how an execution ended.
type Outcome string

// The outcomes, also used as the server's metric labels.
const (
	OutcomeOK       Outcome = "ok"       // the program ran and exited (any exit code)
	OutcomeTimeout  Outcome = "timeout"  // the timeout killed it
	OutcomeOOM      Outcome = "oom"      // the memory limit killed it
	OutcomeInvalid  Outcome = "invalid"  // the request was invalid
	OutcomeDenied   Outcome = "denied"   // policy refused the request
	OutcomeCanceled Outcome = "canceled" // the caller went away
	OutcomeError    Outcome = "error"    // the run could not happen
)

// OutcomeOf classifies a finished execution.
func OutcomeOf(res *isol8.Result, err error) Outcome {
	switch {
	case errors.Is(err, isol8.ErrInvalidArgument):
		return OutcomeInvalid
	case errors.Is(err, isol8.ErrPermission):
		return OutcomeDenied
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	case err != nil || res == nil:
		return OutcomeError
	case res.TimedOut:
		return OutcomeTimeout
	case res.OOMKilled:
		return OutcomeOOM
	}
	return OutcomeOK
}

// SecurityEvent is something about an execution a security reviewer wants
// to see: a timeout, an OOM kill, a blocked connection, a refused option.
type SecurityEvent struct {
	Type   string `json:"type"`
	Detail string `json:"detail,omitempty"`
}

// The security event types.
const (
	EventTimeout        = "timeout"
	EventOOM            = "oom_killed"
	EventNetworkBlocked = "network_blocked"
	EventPolicyDenied   = "policy_denied"
)

// maxNetworkEvents bounds the blocked-connection events of one record.
const maxNetworkEvents = 100

// Execution is what the caller knows of one execution; Log turns it into a
// Record under the logger's settings.
type Execution struct {
	Request   *isol8.Request
	Result    *isol8.Result // nil when the run did not happen
	Err       error
	Start     time.Time // when the execution was asked for (for its duration when there is no result)
	TenantID  string
	KeyID     string
	SessionID string
	RequestID string
	Transport string // "http", "sse", "ws"
	// Secrets are masked in the code, output, metadata and error recorded.
	Secrets map[string]string
}

// Logger writes the audit log. A nil *Logger, or one made from a disabled
// config, logs nothing. It is safe for concurrent use.
type Logger struct {
	cfg isol8.AuditConfig
	now func() time.Time

	mu  sync.Mutex
	out io.Writer // stdout destination
	fw  *dailyFile
}

// New opens the audit log that cfg describes; with cfg.Enabled false it
// returns nil (a logger that logs nothing).
func New(cfg isol8.AuditConfig) (*Logger, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	l := &Logger{cfg: cfg, now: time.Now}
	switch cfg.Destination {
	case "stdout":
		l.out = os.Stdout
	case "file", "":
		fw, err := openDaily(cfg.LogDir, cfg.RetentionDays, l.now)
		if err != nil {
			return nil, err
		}
		l.fw = fw
	default:
		return nil, fmt.Errorf("audit.destination: must be \"file\" or \"stdout\", got %q", cfg.Destination)
	}
	return l, nil
}

// NewWriter returns a logger that writes to w, with cfg's includeCode and
// includeOutput (its destination is ignored).
func NewWriter(w io.Writer, cfg isol8.AuditConfig) *Logger {
	return &Logger{cfg: cfg, now: time.Now, out: w}
}

// Log records one execution.
func (l *Logger) Log(e Execution) error {
	if l == nil {
		return nil
	}
	rec := l.Record(e)
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fw != nil {
		return l.fw.write(rec.Timestamp, line)
	}
	if _, err := l.out.Write(line); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Close closes the log file.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fw != nil {
		return l.fw.close()
	}
	return nil
}

// Record builds the record of an execution (as Log writes it).
func (l *Logger) Record(e Execution) Record {
	m := newMasker(e.Secrets)
	rec := Record{
		Timestamp: l.now().UTC(),
		TenantID:  e.TenantID,
		KeyID:     e.KeyID,
		SessionID: e.SessionID,
		RequestID: e.RequestID,
		Transport: e.Transport,
		Outcome:   OutcomeOf(e.Result, e.Err),
	}
	if req := e.Request; req != nil {
		rec.Runtime = string(req.Runtime)
		code := req.Code
		if code == "" {
			code = req.Cmd
		}
		if code == "" {
			code = req.CodeURL
		}
		if code != "" {
			sum := sha256.Sum256([]byte(code))
			rec.CodeHash = hex.EncodeToString(sum[:])
		}
		if l.cfg.IncludeCode {
			rec.Code = m.mask(code)
		}
		if len(req.Metadata) > 0 {
			rec.Metadata = make(map[string]string, len(req.Metadata))
			for k, v := range req.Metadata {
				rec.Metadata[k] = m.mask(v)
			}
		}
	}
	if !e.Start.IsZero() {
		rec.DurationMs = time.Since(e.Start).Milliseconds()
	}
	if e.Err != nil {
		rec.Error = m.mask(e.Err.Error())
		if errors.Is(e.Err, isol8.ErrPermission) {
			rec.SecurityEvents = append(rec.SecurityEvents, SecurityEvent{Type: EventPolicyDenied, Detail: rec.Error})
		}
	}
	if res := e.Result; res != nil {
		rec.ExecutionID = res.ExecutionID
		code := res.ExitCode
		rec.ExitCode = &code
		rec.DurationMs = res.DurationMs
		rec.TimedOut, rec.OOMKilled, rec.Truncated = res.TimedOut, res.OOMKilled, res.Truncated
		rec.ContainerID = res.ContainerID
		rec.ResourceUsage = res.ResourceUsage
		if l.cfg.IncludeOutput {
			rec.Stdout, rec.Stderr = m.mask(res.Stdout), m.mask(res.Stderr)
		}
		if res.TimedOut {
			rec.SecurityEvents = append(rec.SecurityEvents, SecurityEvent{Type: EventTimeout})
		}
		if res.OOMKilled {
			rec.SecurityEvents = append(rec.SecurityEvents, SecurityEvent{Type: EventOOM})
		}
		n := 0
		for _, nl := range res.NetworkLogs {
			if nl.Action == "BLOCK" && n < maxNetworkEvents {
				rec.SecurityEvents = append(rec.SecurityEvents, SecurityEvent{Type: EventNetworkBlocked, Detail: nl.Method + " " + nl.Host})
				n++
			}
		}
	}
	return rec
}

// masker replaces secret values with "***", longest first so a secret that
// contains another is masked whole.
type masker struct{ secrets []string }

func newMasker(secrets map[string]string) masker {
	var m masker
	for _, v := range secrets {
		if v != "" {
			m.secrets = append(m.secrets, v)
		}
	}
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	return m
}

func (m masker) mask(s string) string {
	for _, sec := range m.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}
