package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

// Acceptance of the seed's data-processing patterns through the real CLI
// (issues 4 and 6): the persistent pipeline against a real "isol8 serve"
// (--host, --session-id, --files, --out), --persistent alone, and, on the
// native backend, the stdin transform and files in and out. The server is
// "isol8 serve" run in-process on a loopback port; the runs are in-process
// invocations of "isol8 run".

// nativeOK is read before isolate clears the ISOL8_ variables: with
// ISOL8_SKIP_NATIVE=1 the native cases skip; otherwise a native backend
// that cannot run fails them.
var nativeOK = os.Getenv("ISOL8_SKIP_NATIVE") != "1"

// The seed's persistent pipeline: its data and steps, verbatim.
const (
	seedRaw       = `[{"id": 1, "value": 10}, {"id": 2, "value": null}, {"id": 3, "value": 7}, {"id": 4}]`
	seedCleanStep = `
import json
raw = json.load(open("/sandbox/raw.json"))
clean = [r for r in raw if r.get("value") is not None]
json.dump(clean, open("/sandbox/clean.json", "w"))
print(len(clean))
`
	seedReportStep = `
import json
clean = json.load(open("/sandbox/clean.json"))
report = {"count": len(clean)}
json.dump(report, open("/sandbox/report.json", "w"))
`
	seedReport = `{"count": 2}`
)

var pipelineBackends = []string{"docker", "native"}

// needBackend skips only on the backend's opt-out variable, and otherwise
// fails when the backend cannot run here. It returns an observer of the
// backend's sandboxes.
func needBackend(t *testing.T, name string) sandbox.Backend {
	t.Helper()
	switch name {
	case "docker":
		needDocker(t)
	case "native":
		if !nativeOK {
			t.Skip("ISOL8_SKIP_NATIVE=1")
		}
	}
	b, err := isol8.OpenBackend(context.Background(), name, sandbox.Config{Owner: "cli-accept-observer"})
	if err != nil {
		t.Fatalf("the %s backend cannot run here: %v\n(ISOL8_SKIP_DOCKER=1 / ISOL8_SKIP_NATIVE=1 skip deliberately)", name, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// lockedBuffer collects the in-process server's logs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// served is an "isol8 serve" running in-process on a loopback port.
type served struct {
	t        *testing.T
	base     string
	key      string
	owner    string
	observer sandbox.Backend
	logs     *lockedBuffer
}

// startServe runs "isol8 serve --backend NAME" on a free loopback port
// until the test ends; then it stops it as SIGTERM would (its context
// ends) and checks that the server left none of its sandboxes.
func startServe(t *testing.T, backend string, observer sandbox.Backend) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	s := &served{t: t, base: "http://127.0.0.1:" + port, key: "cli-accept-master-key",
		owner: "serve-" + port, observer: observer, logs: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	args := []string{"serve", "--bind", "127.0.0.1", "-p", port, "-k", s.key, "--backend", backend}
	go func() { done <- Run(ctx, args, strings.NewReader(""), s.logs, s.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("isol8 serve exited %d after its context ended\n%s", code, s.logs)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("isol8 serve did not stop within 60s\n%s", s.logs)
		}
		if left := s.sandboxes(); len(left) > 0 {
			t.Errorf("%d sandboxes of %s left after the server stopped\n%s", len(left), s.owner, s.logs)
			for _, info := range left {
				observer.Remove(context.Background(), info.ID)
			}
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case code := <-done:
			t.Fatalf("isol8 %q exited %d before answering\n%s", args, code, s.logs)
		default:
		}
		resp, err := http.Get(s.base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("isol8 serve did not answer /health within 60s: %v\n%s", err, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(s.logs.String(), "sandbox owner "+s.owner) {
		t.Fatalf("isol8 serve does not report owner %s:\n%s", s.owner, s.logs)
	}
	return s
}

func (s *served) sandboxes() []sandbox.Info {
	s.t.Helper()
	infos, err := s.observer.List(context.Background(), map[string]string{sandbox.LabelOwner: s.owner})
	if err != nil {
		s.t.Fatal(err)
	}
	return infos
}

func (s *served) waitSandboxes(n int, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := len(s.sandboxes())
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d sandboxes of %s after %v, want %d\n%s", got, s.owner, within, n, s.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api sends one request to the server with its master key and decodes
// the JSON answer.
func (s *served) api(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		s.t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, m
}

func (s *served) sessionIDs() []string {
	s.t.Helper()
	status, m := s.api("GET", "/sessions", nil)
	if status != 200 {
		s.t.Fatalf("GET /sessions: %d %v", status, m)
	}
	var ids []string
	list, _ := m["sessions"].([]any)
	for _, x := range list {
		sess, _ := x.(map[string]any)
		id, _ := sess["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

func expectFile(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if string(data) != want {
		t.Fatalf("%s: %q, want %q", path, data, want)
	}
}

// writeRaw makes the folder --files uploads: raw.json at its top.
func writeRaw(t *testing.T, dir string) string {
	t.Helper()
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(in, "raw.json"), seedRaw)
	return in
}

// Issue 4 (docker) and 6 (native): the seed's remote pipeline through the
// CLI against a real server: --files puts raw.json into the named session,
// the cleaning and the report steps run in it, --out brings report.json
// back; the session outlives each CLI process until "isol8 session stop".
// Then --persistent alone: one run in a session of its own, removed when
// the CLI exits.
func TestPipelineCLIRemoteSession(t *testing.T) {
	for _, backend := range pipelineBackends {
		t.Run(backend, func(t *testing.T) {
			observer := needBackend(t, backend)
			dir := isolate(t)
			srv := startServe(t, backend, observer)
			in := writeRaw(t, dir)
			const session = "data-job-123"
			remote := []string{"run", "--host", srv.base, "--key", srv.key, "--session-id", session}

			o := cli(t, append(remote, "--files", in, "-e", `import json; print(len(json.load(open("/sandbox/raw.json"))))`)...)
			expectCode(t, o, 0)
			if o.stdout != "4\n" {
				t.Fatalf("--files: stdout %q, want 4 rows of raw.json", o.stdout)
			}
			o = cli(t, append(remote, "-e", seedCleanStep)...)
			expectCode(t, o, 0)
			if o.stdout != "2\n" {
				t.Fatalf("clean step: stdout %q, want 2", o.stdout)
			}
			o = cli(t, append(remote, "-e", seedReportStep)...)
			expectCode(t, o, 0)
			local := filepath.Join(dir, "out", "report.json")
			if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
				t.Fatal(err)
			}
			o = cli(t, append(remote, "--out", "/sandbox/report.json:"+local, "-e", "pass")...)
			expectCode(t, o, 0)
			expectFile(t, local, seedReport)

			// The same session seen through the HTTP API.
			if ids := srv.sessionIDs(); !reflect.DeepEqual(ids, []string{session}) {
				t.Fatalf("sessions %v after the CLI exited, want [%s]", ids, session)
			}
			status, m := srv.api("GET", "/file?"+url.Values{"sessionId": {session}, "path": {"/sandbox/clean.json"}}.Encode(), nil)
			content, _ := m["content"].(string)
			clean, _ := base64.StdEncoding.DecodeString(content)
			if status != 200 || string(clean) != `[{"id": 1, "value": 10}, {"id": 3, "value": 7}]` {
				t.Fatalf("GET /file clean.json: %d %q", status, clean)
			}
			srv.waitSandboxes(1, 10*time.Second)
			expectCode(t, cli(t, "session", "stop", session, "--host", srv.base, "--key", srv.key), 0)
			srv.waitSandboxes(0, 20*time.Second)

			// --persistent alone: the whole pipeline in one run, in a
			// session made for it and removed when the CLI exits.
			got := filepath.Join(dir, "persistent") + "/"
			o = cli(t, "run", "--host", srv.base, "--key", srv.key, "--persistent", "--files", in,
				"--out", "/sandbox/report.json:"+got, "-e", seedCleanStep+seedReportStep)
			expectCode(t, o, 0)
			if o.stdout != "2\n" {
				t.Fatalf("--persistent: stdout %q, want 2", o.stdout)
			}
			expectFile(t, filepath.Join(got, "report.json"), seedReport)
			if ids := srv.sessionIDs(); len(ids) != 0 {
				t.Errorf("sessions %v left by a --persistent run", ids)
			}
			srv.waitSandboxes(0, 20*time.Second)
		})
	}
}

// The seed's curl call against "isol8 serve --backend NAME" itself (the
// flag selects the backend of the server's sandboxes), and the remote
// pipeline through the raw HTTP API.
func TestPipelineServeHTTP(t *testing.T) {
	for _, backend := range pipelineBackends {
		t.Run(backend, func(t *testing.T) {
			observer := needBackend(t, backend)
			isolate(t)
			srv := startServe(t, backend, observer)
			status, res := srv.api("POST", "/execute", map[string]any{
				"request": map[string]any{"runtime": "python", "code": "import json,sys; d=json.load(sys.stdin); print(len(d))", "stdin": `[{"x":1},{"x":2}]`},
				"options": map[string]any{"network": "none", "timeoutMs": 30000},
			})
			if status != 200 || res["stdout"] != "2\n" || res["exitCode"] != 0.0 {
				t.Fatalf("seed curl: %d %v", status, res)
			}

			const session = "http-job"
			status, res = srv.api("POST", "/file", map[string]any{"sessionId": session, "path": "/sandbox/raw.json",
				"content": base64.StdEncoding.EncodeToString([]byte(seedRaw))})
			if status != 200 || res["ok"] != true {
				t.Fatalf("POST /file: %d %v", status, res)
			}
			for i, code := range []string{seedCleanStep, seedReportStep} {
				status, res = srv.api("POST", "/execute", map[string]any{"sessionId": session,
					"request": map[string]any{"runtime": "python", "code": code}})
				if status != 200 || res["exitCode"] != 0.0 {
					t.Fatalf("step %d: %d %v", i+1, status, res)
				}
			}
			status, res = srv.api("GET", "/file?sessionId="+session+"&path=/sandbox/report.json", nil)
			content, _ := res["content"].(string)
			report, _ := base64.StdEncoding.DecodeString(content)
			if status != 200 || string(report) != seedReport {
				t.Fatalf("GET /file report.json: %d %q", status, report)
			}
			// The sandboxes are the backend's: the observer of that backend
			// sees the session's.
			if n := len(srv.sandboxes()); n < 1 {
				t.Fatalf("no %s sandbox of %s while a session is open", backend, srv.owner)
			}
		})
	}
}

// --persistent alone, locally: the pipeline in one run on each backend.
func TestPipelineCLILocalPersistent(t *testing.T) {
	for _, backend := range pipelineBackends {
		t.Run(backend, func(t *testing.T) {
			needBackend(t, backend)
			dir := isolate(t)
			writeRaw(t, dir)
			o := cli(t, "run", "--backend", backend, "--persistent", "--files", "in",
				"--out", "/sandbox/report.json:got/", "-e", seedCleanStep+seedReportStep)
			expectCode(t, o, 0)
			if o.stdout != "2\n" {
				t.Fatalf("stdout %q, want 2", o.stdout)
			}
			expectFile(t, filepath.Join(dir, "got", "report.json"), seedReport)
		})
	}
}

// Issue 6: the seed's stdin transform on the native backend.
func TestNativeCLIStdinTransform(t *testing.T) {
	needBackend(t, "native")
	isolate(t)
	o := cli(t, "run", "--backend", "native", "-e", "import json,sys; d=json.load(sys.stdin); print(len(d))", "--stdin", `[{"x":1},{"x":2}]`)
	expectCode(t, o, 0)
	if o.stdout != "2\n" {
		t.Fatalf("stdout %q, want \"2\\n\"", o.stdout)
	}
	// The seed's transform with its rows, JSON in and out.
	o = cli(t, "run", "--backend", "native", "--stdin", `[{"item": "Widget", "price": 9.99, "quantity": 100}, {"item": "Gadget", "price": 24.99, "quantity": 50}]`,
		"-e", `
import json, sys
data = json.load(sys.stdin)
result = [
    {**row, "total": row["price"] * row["quantity"]}
    for row in data
]
json.dump(result, sys.stdout)
`)
	expectCode(t, o, 0)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(o.stdout), &rows); err != nil || len(rows) != 2 || rows[1]["total"] != 24.99*50 || rows[0]["item"] != "Widget" {
		t.Fatalf("transformed %q (%v)", o.stdout, err)
	}
}

// Issue 6: files in (--files) and out (--out) on the native backend.
func TestNativeCLIFilesAndOut(t *testing.T) {
	needBackend(t, "native")
	dir := isolate(t)
	in := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(in, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(in, "data.csv"), "category,revenue\na,10\nb,5\na,7\n")
	writeFile(t, filepath.Join(in, "sub", "note.txt"), "nested")
	code := `
import csv, os
totals = {}
for row in csv.DictReader(open("data.csv")):
    totals[row["category"]] = totals.get(row["category"], 0) + int(row["revenue"])
with open("summary.csv", "w") as f:
    f.write("category,revenue\n")
    for k in sorted(totals):
        f.write(f"{k},{totals[k]}\n")
os.makedirs("report", exist_ok=True)
open("report/count.txt", "w").write(str(len(totals)))
print(open("sub/note.txt").read(), "summary ready")
`
	o := cli(t, "run", "--backend", "native", "--files", "data", "--out", "summary.csv", "--out", "/sandbox/report/count.txt:out/", "-e", code)
	expectCode(t, o, 0)
	if o.stdout != "nested summary ready\n" {
		t.Fatalf("stdout %q", o.stdout)
	}
	want := "category,revenue\na,17\nb,5\n"
	expectFile(t, filepath.Join(dir, "summary.csv"), want)
	expectFile(t, filepath.Join(dir, "out", "count.txt"), "2")

	o = cli(t, "run", "--backend", "native", "--out", "missing.csv", "-e", "print(1)")
	expectCode(t, o, 1)
	if !strings.Contains(o.stderr, "/sandbox/missing.csv") {
		t.Fatalf("a missing --out file is not named:\n%s", o.stderr)
	}
}
