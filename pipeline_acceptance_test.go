package isol8_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

// Acceptance of the seed's persistent pipeline through the library
// (issues 4 and 6): put raw.json, a cleaning step writes clean.json, a
// report step writes report.json, get report.json, on each backend. The
// backends fail the test when they cannot run here; ISOL8_SKIP_DOCKER=1 and
// ISOL8_SKIP_NATIVE=1 are the only opt-outs.

// The seed's data and steps, verbatim.
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

// acceptBackend fails the test when backend cannot be used here, unless
// its opt-out variable is set; it returns an observer of the backend.
func acceptBackend(t *testing.T, backend string) sandbox.Backend {
	t.Helper()
	skip := map[string]string{"docker": "ISOL8_SKIP_DOCKER", "native": "ISOL8_SKIP_NATIVE"}[backend]
	if os.Getenv(skip) == "1" {
		t.Skipf("%s=1", skip)
	}
	b, err := isol8.OpenBackend(context.Background(), backend, sandbox.Config{Owner: "accept-observer"})
	if err != nil {
		t.Fatalf("the %s backend cannot run here: %v\n(set %s=1 to skip these tests deliberately)", backend, err, skip)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func randomOwner(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func TestAcceptSeedPersistentPipelineLibrary(t *testing.T) {
	for _, backend := range []string{"docker", "native"} {
		t.Run(backend, func(t *testing.T) {
			observer := acceptBackend(t, backend)
			owner := randomOwner("accept-lib-")
			sandboxes := func() []sandbox.Info {
				t.Helper()
				infos, err := observer.List(context.Background(), map[string]string{sandbox.LabelOwner: owner})
				if err != nil {
					t.Fatal(err)
				}
				return infos
			}
			t.Cleanup(func() {
				for _, info := range sandboxes() {
					observer.Remove(context.Background(), info.ID)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()

			engine, err := isol8.New(isol8.EngineConfig{
				Options: isol8.Options{Mode: isol8.Persistent, Network: isol8.NetworkNone, TimeoutMs: 60000, Backend: backend},
				Owner:   owner,
			})
			if err != nil {
				t.Fatal(err)
			}
			stopped := false
			defer func() {
				if !stopped {
					engine.Stop(context.Background())
				}
			}()
			if err := engine.Start(ctx); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := engine.PutFile(ctx, "/sandbox/raw.json", []byte(seedRaw)); err != nil {
				t.Fatalf("PutFile raw.json: %v", err)
			}
			clean, err := engine.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: seedCleanStep})
			if err != nil {
				t.Fatalf("clean step: %v", err)
			}
			if clean.ExitCode != 0 || clean.Stdout != "2\n" {
				t.Fatalf("clean step: exit %d, stdout %q, stderr %q", clean.ExitCode, clean.Stdout, clean.Stderr)
			}
			report, err := engine.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: seedReportStep})
			if err != nil {
				t.Fatalf("report step: %v", err)
			}
			if report.ExitCode != 0 {
				t.Fatalf("report step: exit %d, stderr %q", report.ExitCode, report.Stderr)
			}
			if clean.ContainerID != "" && report.ContainerID != "" && clean.ContainerID != report.ContainerID {
				t.Errorf("the two steps ran in different sandboxes: %s, %s", clean.ContainerID, report.ContainerID)
			}
			t.Logf("clean step: %+v", clean)
			t.Logf("report step: %+v", report)
			got, err := engine.GetFile(ctx, "/sandbox/report.json")
			if err != nil {
				t.Fatalf("GetFile report.json: %v", err)
			}
			if string(got) != seedReport {
				t.Fatalf("report.json %q, want %q", got, seedReport)
			}
			cleanJSON, err := engine.GetFile(ctx, "/sandbox/clean.json")
			if err != nil {
				t.Fatalf("GetFile clean.json: %v", err)
			}
			var rows []map[string]any
			if err := json.Unmarshal(cleanJSON, &rows); err != nil {
				t.Fatalf("clean.json %q: %v", cleanJSON, err)
			}
			want := []map[string]any{{"id": 1.0, "value": 10.0}, {"id": 3.0, "value": 7.0}}
			if !reflect.DeepEqual(rows, want) {
				t.Fatalf("clean.json %s, want the rows with a value", cleanJSON)
			}
			if n := len(sandboxes()); n != 1 {
				t.Errorf("%d sandboxes of the persistent engine, want 1", n)
			}
			stopped = true
			if err := engine.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if left := sandboxes(); len(left) != 0 {
				t.Fatalf("%d sandboxes left after Stop: %+v", len(left), left)
			}
		})
	}
}
