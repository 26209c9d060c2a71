package egress

import (
	"slices"
	"sync"
	"time"
)

// Log actions.
const (
	ActionAllow = "ALLOW"
	ActionBlock = "BLOCK"
)

// Log is one request the proxy saw: a plain-HTTP request or a CONNECT
// tunnel. It maps field for field onto the result's networkLogs entry
// (contract §3); Reason is for operators (the audit log) and is not part
// of that entry.
type Log struct {
	Timestamp  time.Time // when the request arrived
	Method     string    // "GET", "CONNECT", …
	Host       string    // canonical host (no port)
	Path       string    // URL path of a plain-HTTP request, without the query; "" for CONNECT
	Action     string    // ActionAllow or ActionBlock
	DurationMs int64     // until the response was sent or the tunnel closed
	// Reason says why a request was blocked, or what went wrong upstream
	// for an allowed one ("" when all went well). It may name internal
	// addresses: do not show it to the sandbox.
	Reason string
}

// LogBuffer collects logs up to a bound, for a run's networkLogs; its Add
// method is a Config.OnLog. A sandbox that makes a million requests costs
// at most Max entries: the first Max are kept and the rest counted. The
// zero value keeps DefaultMaxLogs entries. It is safe for concurrent use.
type LogBuffer struct {
	Max int

	mu      sync.Mutex
	logs    []Log
	dropped int
}

// DefaultMaxLogs is the bound of a LogBuffer whose Max is zero.
const DefaultMaxLogs = 1000

// Add records l, or counts it when the buffer is full.
func (b *LogBuffer) Add(l Log) {
	b.mu.Lock()
	defer b.mu.Unlock()
	max := b.Max
	if max <= 0 {
		max = DefaultMaxLogs
	}
	if len(b.logs) >= max {
		b.dropped++
		return
	}
	b.logs = append(b.logs, l)
}

// Logs returns a copy of the kept logs and how many were dropped. They
// are in the order the requests arrived (Timestamp): a log is delivered
// when its request ends, so a long request is added after shorter ones
// that came later.
func (b *LogBuffer) Logs() ([]Log, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.logs)
	slices.SortStableFunc(out, func(x, y Log) int { return x.Timestamp.Compare(y.Timestamp) })
	return out, b.dropped
}
