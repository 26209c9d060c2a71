package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

func decodeLines(t *testing.T, data []byte) []Record {
	t.Helper()
	var recs []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func sampleExecution() Execution {
	return Execution{
		Request: &isol8.Request{Runtime: isol8.Python, Code: "print('hunter2')", Metadata: map[string]string{"job": "j1", "note": "pw hunter2"}},
		Result: &isol8.Result{ExecutionID: "e-1", ExitCode: 0, DurationMs: 12, Stdout: "***\n", Stderr: "",
			ResourceUsage: &isol8.ResourceUsage{MemoryMB: 3},
			NetworkLogs:   []isol8.NetworkLog{{Method: "CONNECT", Host: "evil.example", Action: "BLOCK"}, {Method: "GET", Host: "ok.example", Action: "ALLOW"}}},
		TenantID: "acme", KeyID: "key-1", SessionID: "s1", Transport: "http",
		Secrets: map[string]string{"PW": "hunter2"},
	}
}

func TestRecordPrivacyDefaults(t *testing.T) {
	var buf bytes.Buffer
	l := NewWriter(&buf, isol8.AuditConfig{Enabled: true})
	if err := l.Log(sampleExecution()); err != nil {
		t.Fatal(err)
	}
	recs := decodeLines(t, buf.Bytes())
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	r := recs[0]
	sum := sha256.Sum256([]byte("print('hunter2')"))
	if r.CodeHash != hex.EncodeToString(sum[:]) {
		t.Errorf("codeHash = %q", r.CodeHash)
	}
	if r.Code != "" || r.Stdout != "" || r.Stderr != "" {
		t.Errorf("code or output recorded without includeCode/includeOutput: %+v", r)
	}
	if r.ExecutionID != "e-1" || r.TenantID != "acme" || r.KeyID != "key-1" || r.Runtime != "python" ||
		r.ExitCode == nil || *r.ExitCode != 0 || r.Outcome != OutcomeOK || r.ResourceUsage == nil {
		t.Errorf("record = %+v", r)
	}
	if r.Metadata["job"] != "j1" || r.Metadata["note"] != "pw ***" {
		t.Errorf("metadata = %v (secrets must be masked)", r.Metadata)
	}
	if len(r.SecurityEvents) != 1 || r.SecurityEvents[0].Type != EventNetworkBlocked {
		t.Errorf("security events = %+v, want one network_blocked", r.SecurityEvents)
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("a secret reached the audit log: %s", buf.String())
	}
}

func TestRecordIncludesCodeAndOutputMasked(t *testing.T) {
	var buf bytes.Buffer
	l := NewWriter(&buf, isol8.AuditConfig{Enabled: true, IncludeCode: true, IncludeOutput: true})
	e := sampleExecution()
	e.Result.Stderr = "leak hunter2"
	if err := l.Log(e); err != nil {
		t.Fatal(err)
	}
	r := decodeLines(t, buf.Bytes())[0]
	if r.Code != "print('***')" || r.Stdout != "***\n" || r.Stderr != "leak ***" {
		t.Errorf("code %q stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

func TestRecordOutcomes(t *testing.T) {
	l := NewWriter(&bytes.Buffer{}, isol8.AuditConfig{})
	req := &isol8.Request{Runtime: isol8.Bash, Cmd: "true"}
	cases := []struct {
		res    *isol8.Result
		err    error
		want   Outcome
		events int
	}{
		{res: &isol8.Result{ExitCode: 3}, want: OutcomeOK},
		{res: &isol8.Result{ExitCode: 137, TimedOut: true}, want: OutcomeTimeout, events: 1},
		{res: &isol8.Result{ExitCode: 137, OOMKilled: true}, want: OutcomeOOM, events: 1},
		{err: &isol8.FieldError{Field: "options.network", Reason: "no", Class: isol8.ErrPermission}, want: OutcomeDenied, events: 1},
		{err: &isol8.FieldError{Field: "code", Reason: "missing"}, want: OutcomeInvalid},
		{err: fmt.Errorf("run: %w", errors.New("boom")), want: OutcomeError},
	}
	for _, c := range cases {
		r := l.Record(Execution{Request: req, Result: c.res, Err: c.err, Start: time.Now()})
		if r.Outcome != c.want || len(r.SecurityEvents) != c.events {
			t.Errorf("res %+v err %v: outcome %s with %d events, want %s with %d", c.res, c.err, r.Outcome, len(r.SecurityEvents), c.want, c.events)
		}
		if (c.res == nil) != (r.ExitCode == nil) {
			t.Errorf("exitCode presence wrong for %+v", c)
		}
	}
}

func TestDisabledLogsNothing(t *testing.T) {
	l, err := New(isol8.AuditConfig{Enabled: false, Destination: "file", LogDir: t.TempDir()})
	if err != nil || l != nil {
		t.Fatalf("New(disabled) = %v, %v; want nil, nil", l, err)
	}
	if err := l.Log(sampleExecution()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFileDestinationDailyAndRetention(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2025, 3, 10, 23, 59, 0, 0, time.UTC)
	clock := day
	// Files of 2025-02-01 (older than 7 days) must go; 2025-03-05 stays;
	// files that are not audit files are never touched.
	for _, name := range []string{FileName(time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)), FileName(time.Date(2025, 3, 5, 0, 0, 0, 0, time.UTC)), "notes.txt", "audit-garbage.jsonl"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := openDaily(dir, 7, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	l := &Logger{cfg: isol8.AuditConfig{Enabled: true}, now: func() time.Time { return clock }, fw: fw}
	if err := l.Log(sampleExecution()); err != nil {
		t.Fatal(err)
	}
	clock = day.Add(2 * time.Minute) // the next day
	if err := l.Log(sampleExecution()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names[e.Name()] = true
	}
	for name, want := range map[string]bool{
		"audit-2025-02-01.jsonl": false, "audit-2025-03-05.jsonl": true, "notes.txt": true, "audit-garbage.jsonl": true,
		"audit-2025-03-10.jsonl": true, "audit-2025-03-11.jsonl": true,
	} {
		if names[name] != want {
			t.Errorf("%s present = %v, want %v (have %v)", name, names[name], want, names)
		}
	}
	for _, name := range []string{"audit-2025-03-10.jsonl", "audit-2025-03-11.jsonl"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if recs := decodeLines(t, data); len(recs) != 1 {
			t.Errorf("%s holds %d records, want 1", name, len(recs))
		}
		if st, _ := os.Stat(filepath.Join(dir, name)); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
}

func TestNewFileDestination(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	l, err := New(isol8.AuditConfig{Enabled: true, Destination: "file", LogDir: dir, RetentionDays: 90})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Log(sampleExecution()); err != nil {
		t.Fatal(err)
	}
	l.Close()
	data, err := os.ReadFile(filepath.Join(dir, FileName(time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	if recs := decodeLines(t, data); len(recs) != 1 || recs[0].KeyID != "key-1" {
		t.Fatalf("records %+v", recs)
	}
}
