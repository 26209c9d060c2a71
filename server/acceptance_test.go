package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

// Acceptance of the seed's data-processing examples over real HTTP on
// loopback, against a real server on the docker and on the native backend
// (issues 3, 4 and 6). ISOL8_SKIP_DOCKER=1 and ISOL8_SKIP_NATIVE=1 are the
// only opt-outs; a backend that cannot run fails the test.

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

// The seed's curl call, byte for byte.
const seedCurlBody = `{
  "request": {
    "runtime": "python",
    "code": "import json,sys; d=json.load(sys.stdin); print(len(d))",
    "stdin": "[{\"x\":1},{\"x\":2}]"
  },
  "options": { "network": "none", "timeoutMs": 30000 }
}`

var skipNative = os.Getenv("ISOL8_SKIP_NATIVE") == "1"

// backendHarness is a server over real HTTP on a named backend, whose
// sandboxes carry an owner label of their own; none may be left when the
// test ends.
type backendHarness struct {
	*harness
	name    string
	owner   string
	backend sandbox.Backend
}

func newBackendHarness(t *testing.T, name string, mutate func(*Config)) *backendHarness {
	t.Helper()
	switch {
	case name == "docker" && !dockerOK:
		t.Skip("ISOL8_SKIP_DOCKER=1")
	case name == "native" && skipNative:
		t.Skip("ISOL8_SKIP_NATIVE=1")
	}
	owner := "accept-" + name + "-" + randomHex(6)
	backend, err := isol8.OpenBackend(context.Background(), name, sandbox.Config{Owner: owner})
	if err != nil {
		t.Fatalf("the %s backend cannot run here: %v\n(ISOL8_SKIP_DOCKER=1 / ISOL8_SKIP_NATIVE=1 skip deliberately)", name, err)
	}
	b := &backendHarness{name: name, owner: owner, backend: backend}
	// Registered before the server's cleanup, so it runs after it.
	t.Cleanup(func() {
		defer backend.Close()
		if left := b.sandboxes(t); len(left) > 0 {
			t.Errorf("%d sandboxes of %s left after the server closed", len(left), owner)
			for _, info := range left {
				backend.Remove(context.Background(), info.ID)
			}
		}
	})
	b.harness = newHarness(t, func(c *Config) {
		// As "isol8 serve --backend NAME" does: the backend is opened
		// with the server's owner and named in the config's defaults.
		c.Config = isol8.DefaultConfig()
		c.Config.Defaults.Backend = name
		c.Backend, c.Owner = backend, owner
		if mutate != nil {
			mutate(c)
		}
	})
	return b
}

func randomHex(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(err)
	}
	return hex.EncodeToString(buf)
}

func (b *backendHarness) sandboxes(t *testing.T) []sandbox.Info {
	t.Helper()
	infos, err := b.backend.List(context.Background(), map[string]string{sandbox.LabelOwner: b.owner})
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func (b *backendHarness) waitSandboxes(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := len(b.sandboxes(t))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s sandboxes after %v, want %d", got, b.name, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var acceptBackends = []string{"docker", "native"}

// Issue 4 (docker) and issue 6 (native): POST /file raw.json, POST
// /execute twice with one sessionId (clean, then report), GET /file
// report.json.
func TestAcceptSeedPipelineHTTP(t *testing.T) {
	for _, name := range acceptBackends {
		t.Run(name, func(t *testing.T) {
			b := newBackendHarness(t, name, nil)
			const session = "data-job-123"
			r := b.do("POST", "/file", testMasterKey, map[string]any{
				"sessionId": session, "path": "/sandbox/raw.json",
				"content": base64.StdEncoding.EncodeToString([]byte(seedRaw)),
			})
			if r.status != 200 || string(r.body) != `{"ok":true}`+"\n" {
				t.Fatalf("POST /file raw.json: %d %s", r.status, r.body)
			}
			opts := map[string]any{"network": "none", "timeoutMs": 120000}
			r = b.do("POST", "/execute", testMasterKey, execBody("python", seedCleanStep, map[string]any{"sessionId": session, "options": opts}))
			if res := r.json(t); r.status != 200 || res["exitCode"] != 0.0 || res["stdout"] != "2\n" {
				t.Fatalf("clean step: %d %s", r.status, r.body)
			}
			first := r.json(t)["containerId"]
			r = b.do("POST", "/execute", testMasterKey, execBody("python", seedReportStep, map[string]any{"sessionId": session, "options": opts}))
			if res := r.json(t); r.status != 200 || res["exitCode"] != 0.0 {
				t.Fatalf("report step: %d %s", r.status, r.body)
			}
			if second := r.json(t)["containerId"]; first != nil && second != nil && first != second {
				t.Errorf("the steps ran in different sandboxes: %v, %v", first, second)
			}
			r = b.do("GET", "/file?"+url.Values{"sessionId": {session}, "path": {"/sandbox/report.json"}}.Encode(), testMasterKey, nil)
			if r.status != 200 {
				t.Fatalf("GET /file report.json: %d %s", r.status, r.body)
			}
			content, _ := r.json(t)["content"].(string)
			report, err := base64.StdEncoding.DecodeString(content)
			if err != nil || string(report) != seedReport {
				t.Fatalf("report.json %q (%v), want %q", report, err, seedReport)
			}
			r = b.do("GET", "/file?sessionId="+session+"&path=/sandbox/clean.json", testMasterKey, nil)
			content, _ = r.json(t)["content"].(string)
			cleanJSON, _ := base64.StdEncoding.DecodeString(content)
			var rows []map[string]any
			json.Unmarshal(cleanJSON, &rows)
			if want := []map[string]any{{"id": 1.0, "value": 10.0}, {"id": 3.0, "value": 7.0}}; r.status != 200 || !reflect.DeepEqual(rows, want) {
				t.Fatalf("clean.json: %d %q", r.status, cleanJSON)
			}
			// One session, one sandbox; deleting the session removes it.
			b.waitSandboxes(t, 1, 10*time.Second)
			if r := b.do("DELETE", "/session/"+session, testMasterKey, nil); r.status != 200 {
				t.Fatalf("DELETE /session: %d %s", r.status, r.body)
			}
			b.waitSandboxes(t, 0, 20*time.Second)
		})
	}
}

// Issue 6: the seed's curl call (the stdin transform) answers stdout "2"
// on the native backend too (docker: TestDockerSeedExecute).
func TestAcceptNativeSeedCurlHTTP(t *testing.T) {
	b := newBackendHarness(t, "native", nil)
	r := b.do("POST", "/execute", testMasterKey, seedCurlBody)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if res := r.json(t); res["stdout"] != "2\n" || res["exitCode"] != 0.0 || res["timedOut"] != false || res["runtime"] != "python" {
		t.Fatalf("result %s", r.body)
	}
}

// Issue 6: the seed's file-based pattern (files in, outputPaths back) over
// the HTTP API. The seed's pandas step is done with the csv module: the
// runtime images carry no pandas.
func TestAcceptSeedFilesAndOutputPathsHTTP(t *testing.T) {
	for _, name := range acceptBackends {
		t.Run(name, func(t *testing.T) {
			b := newBackendHarness(t, name, nil)
			csv := "category,revenue\na,10\nb,5\na,7\n"
			code := `
import csv
totals = {}
for row in csv.DictReader(open("/sandbox/data.csv")):
    totals[row["category"]] = totals.get(row["category"], 0) + int(row["revenue"])
with open("/sandbox/summary.csv", "w") as f:
    f.write("category,revenue\n")
    for k in sorted(totals):
        f.write(f"{k},{totals[k]}\n")
print("summary ready")
`
			body := map[string]any{
				"request": map[string]any{
					"runtime":     "python",
					"code":        code,
					"files":       map[string]string{"/sandbox/data.csv": base64.StdEncoding.EncodeToString([]byte(csv))},
					"outputPaths": []string{"/sandbox/summary.csv"},
				},
				"options": map[string]any{"network": "none", "timeoutMs": 60000},
			}
			r := b.do("POST", "/execute", testMasterKey, body)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			var res isol8.Result
			if err := json.Unmarshal(r.body, &res); err != nil {
				t.Fatalf("result %s: %v", r.body, err)
			}
			if res.ExitCode != 0 || res.Stdout != "summary ready\n" {
				t.Fatalf("result %s", r.body)
			}
			if got, want := string(res.Files["/sandbox/summary.csv"]), "category,revenue\na,17\nb,5\n"; got != want {
				t.Fatalf("summary.csv %q, want %q (files %v)", got, want, res.Files)
			}
		})
	}
}
