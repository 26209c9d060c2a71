package securitytest

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

// pyPrelude is prepended to the Python attacks: en names an OSError's
// errno ("EPERM"), report prints the attack's findings as one "@@" JSON line.
const pyPrelude = `import errno as _errno, json as _json, os, sys
def en(e):
    n = getattr(e, "errno", None)
    if n is None:
        return type(e).__name__
    return _errno.errorcode.get(n, str(n))
def report(obj):
    sys.stdout.write("@@" + _json.dumps(obj) + "\n")
    sys.stdout.flush()
`

// Cases returns every case of the suite.
func Cases() []Case {
	var cs []Case
	for _, group := range [][]Case{
		exhaustionCases(), outputCases(), privilegeCases(), leakCases(), networkCases(), pathCases(),
	} {
		cs = append(cs, group...)
	}
	return cs
}

// mustRun fails the test unless the run gave a result and no error.
func mustRun(t *testing.T, res *isol8.Result, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("the run failed: %v", err)
		return false
	}
	if res == nil {
		t.Errorf("the run returned neither a result nor an error")
		return false
	}
	return true
}

// reportOf decodes the last "@@" line of the program's stdout into v.
func reportOf(t *testing.T, res *isol8.Result, v any) bool {
	t.Helper()
	if res == nil {
		return false
	}
	lines := strings.Split(res.Stdout, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if line, ok := strings.CutPrefix(lines[i], "@@"); ok {
			if err := json.Unmarshal([]byte(line), v); err != nil {
				t.Errorf("the attack's report is not JSON: %v: %q", err, clip(line, 300))
				return false
			}
			return true
		}
	}
	t.Errorf("the attack printed no report (exit %d); stderr: %q", res.ExitCode, clip(res.Stderr, 1500))
	return false
}

// wantInvalid fails unless err is an ErrInvalidArgument whose message
// names field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("accepted; want an invalid-argument error naming %s", field)
	case !errors.Is(err, isol8.ErrInvalidArgument):
		t.Errorf("error %q is not an ErrInvalidArgument", err)
	case !strings.Contains(err.Error(), field):
		t.Errorf("error %q does not name %s", err, field)
	}
}

// refused reports whether an attack's outcome ("EPERM", "OPENED", …) is a
// refusal: anything but the attack's own success words.
func refused(outcome string) bool {
	switch outcome {
	case "OPENED", "CREATED", "WROTE", "CONNECTED", "SENT", "ROUTED", "RESOLVED", "OK", "":
		return false
	}
	return !strings.HasPrefix(outcome, "NOT TRIED")
}

// recorder collects a streamed run's events and timestamps the first
// event whose data contains each of a set of words.
type recorder struct {
	mu     sync.Mutex
	events []isol8.StreamEvent
	seen   map[string]time.Time
	on     map[string]func()
}

func newRecorder() *recorder {
	return &recorder{seen: map[string]time.Time{}, on: map[string]func(){}}
}

// when calls f (once, from the sink) when an event contains word.
func (r *recorder) when(word string, f func()) { r.on[word] = f }

func (r *recorder) sink(ev isol8.StreamEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	var fire []func()
	if len(r.seen) == len(r.on) {
		r.mu.Unlock()
		return
	}
	for w, f := range r.on {
		if _, done := r.seen[w]; !done && strings.Contains(r.joinedLocked(ev.Type), w) {
			r.seen[w] = time.Now()
			fire = append(fire, f)
		}
	}
	r.mu.Unlock()
	for _, f := range fire {
		f()
	}
}

func (r *recorder) joinedLocked(typ isol8.EventType) string {
	var b strings.Builder
	for _, ev := range r.events {
		if ev.Type == typ {
			b.WriteString(ev.Data)
		}
	}
	return b.String()
}

// joined is the concatenated data of the events of one type.
func (r *recorder) joined(typ isol8.EventType) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.joinedLocked(typ)
}

// at is when an event first contained word (zero if never).
func (r *recorder) at(word string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[word]
}

func (r *recorder) all() []isol8.StreamEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]isol8.StreamEvent(nil), r.events...)
}
