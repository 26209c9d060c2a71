package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/sandbox"
	_ "github.com/isol8/isol8/sandbox/docker"
)

// dockerOK is false with ISOL8_SKIP_DOCKER=1, the only way to skip the
// tests against the real engine.
var dockerOK = os.Getenv("ISOL8_SKIP_DOCKER") != "1"

// TestMain checks the Docker engine and the runtime images first: an
// unreachable engine fails the package, it never skips silently.
func TestMain(m *testing.M) {
	if dockerOK {
		if err := prepareDocker(); err != nil {
			fmt.Fprintf(os.Stderr, "server tests need the Docker engine and the runtime images: %v\n"+
				"(set ISOL8_SKIP_DOCKER=1 to skip the tests that use Docker)\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func prepareDocker() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b, err := isol8.OpenBackend(ctx, "docker", sandbox.Config{Owner: "serve-test"})
	if err != nil {
		return err
	}
	b.Close()
	builder, err := image.New()
	if err != nil {
		return err
	}
	defer builder.Close()
	return builder.EnsureRuntimeImages(ctx, image.Options{Progress: image.LineWriter(os.Stderr, false)})
}

// dockerHarness is a server on the real engine, whose sandboxes carry an
// owner label of their own; when the test ends, none may be left.
type dockerHarness struct {
	*harness
	owner   string
	backend sandbox.Backend
}

func newDockerHarness(t *testing.T, mutate func(*Config)) *dockerHarness {
	t.Helper()
	if !dockerOK {
		t.Skip("ISOL8_SKIP_DOCKER=1")
	}
	buf := make([]byte, 6)
	rand.Read(buf)
	owner := "serve-test-" + hex.EncodeToString(buf)
	backend, err := isol8.OpenBackend(context.Background(), "docker", sandbox.Config{Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerHarness{owner: owner, backend: backend}
	// Registered before the server's cleanup, so it runs after it.
	t.Cleanup(func() {
		defer backend.Close()
		if left := d.sandboxes(t); len(left) > 0 {
			t.Errorf("%d sandboxes of %s left after the server closed", len(left), owner)
			for _, info := range left {
				backend.Remove(context.Background(), info.ID)
			}
		}
	})
	d.harness = newHarness(t, func(c *Config) {
		c.Backend, c.Owner = backend, owner
		if mutate != nil {
			mutate(c)
		}
	})
	return d
}

// sandboxes lists this server's sandboxes, through the Docker API.
func (d *dockerHarness) sandboxes(t *testing.T) []sandbox.Info {
	t.Helper()
	infos, err := d.backend.List(context.Background(), map[string]string{sandbox.LabelOwner: d.owner})
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

// waitSandboxes waits until the server has n sandboxes.
func (d *dockerHarness) waitSandboxes(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := len(d.sandboxes(t))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sandboxes after %v, want %d", got, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stdout joins the stdout events; any other event but the last is an error.
func stdout(evs []isol8.StreamEvent) string {
	var b strings.Builder
	for i, ev := range evs {
		if ev.Type == isol8.EventStdout {
			b.WriteString(ev.Data)
		} else if i != len(evs)-1 {
			return fmt.Sprintf("unexpected event %+v", ev)
		}
	}
	return b.String()
}

// The seed's curl call, as its users send it.
func TestDockerSeedExecute(t *testing.T) {
	d := newDockerHarness(t, nil)
	r := d.do("POST", "/execute", testMasterKey, `{
  "request": {
    "runtime": "python",
    "code": "import json,sys; d=json.load(sys.stdin); print(len(d))",
    "stdin": "[{\"x\":1},{\"x\":2}]"
  },
  "options": { "network": "none", "timeoutMs": 30000 }
}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	res := r.json(t)
	if res["stdout"] != "2\n" || res["exitCode"] != 0.0 || res["runtime"] != "python" || res["executionId"] == "" || res["timedOut"] != false {
		t.Fatalf("result %s", r.body)
	}
	if r := d.do("GET", "/health", "", nil); r.status != 200 {
		t.Fatalf("health %d", r.status)
	}
}

func TestDockerSSE(t *testing.T) {
	d := newDockerHarness(t, nil)
	r := d.do("POST", "/execute/stream", testMasterKey, execBody("python", "for i in range(3): print(i)", nil))
	if r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	evs := sseEvents(t, r.body)
	if last := evs[len(evs)-1]; stdout(evs) != "0\n1\n2\n" || last.Type != isol8.EventExit || last.Data != "0" {
		t.Fatalf("events %+v", evs)
	}
}

func TestDockerWebSocket(t *testing.T) {
	d := newDockerHarness(t, nil)
	c := d.dialWS(testMasterKey)
	c.send(wsExecute("python", "print(input())", nil))
	c.send(map[string]any{"type": "stdin", "data": "echo me\n"})
	evs := c.until(isol8.EventExit)
	if stdout(evs) != "echo me\n" || evs[len(evs)-1].Data != "0" {
		t.Fatalf("events %+v", evs)
	}
	c.expectClose(1000)

	c = d.dialWS(testMasterKey)
	c.send(wsExecute("python", "import time\nprint('ready', flush=True)\ntime.sleep(60)", nil))
	for got := ""; got != "ready\n"; {
		ev, _ := c.next()
		if got += ev.Data; ev.Type != isol8.EventStdout || len(got) > 6 {
			t.Fatalf("first events %q, last %+v", got, ev)
		}
	}
	start := time.Now()
	c.send(map[string]any{"type": "signal", "signal": "SIGINT"})
	evs = c.until(isol8.EventExit)
	if took := time.Since(start); took > 10*time.Second || evs[len(evs)-1].Data == "0" {
		t.Fatalf("SIGINT: %+v after %v", evs, took)
	}
	c.expectClose(1000)
}

// A second key can neither see, read, write, run in nor delete the first
// key's session.
func TestDockerCrossTenant(t *testing.T) {
	d := newDockerHarness(t, nil)
	a, b := d.newKey("a", "tenant-a"), d.newKey("b", "tenant-b")
	r := d.do("POST", "/execute", a, execBody("python", "open('/sandbox/secret','w').write('A')", map[string]any{"sessionId": "shared-name"}))
	if r.status != 200 || r.json(t)["exitCode"] != 0.0 {
		t.Fatalf("A's run: %d %s", r.status, r.body)
	}
	if r := d.do("GET", "/sessions", b, nil); string(r.body) != `{"sessions":[]}`+"\n" {
		t.Fatalf("B lists %s", r.body)
	}
	if r := d.do("GET", "/file?sessionId=shared-name&path=/sandbox/secret", b, nil); r.status != 404 || r.errorMessage(t) != "Session not found" {
		t.Fatalf("B reads: %d %s", r.status, r.body)
	}
	// B's put under A's id lands in a session of B's own (POST /file
	// creates named sessions); A's file is checked below.
	if r := d.do("POST", "/file", b, map[string]any{"sessionId": "shared-name", "path": "/sandbox/other", "content": "Qg=="}); r.status != 200 {
		t.Fatalf("B writes: %d %s", r.status, r.body)
	}
	if r := d.do("DELETE", "/session/shared-name", b, nil); r.status != 200 {
		t.Fatalf("B deletes: %d %s", r.status, r.body)
	}
	// B's run with the same id is in a sandbox of B's own.
	r = d.do("POST", "/execute", b, execBody("python", "import os; print(os.path.exists('/sandbox/secret'))", map[string]any{"sessionId": "shared-name"}))
	if r.status != 200 || r.json(t)["stdout"] != "False\n" {
		t.Fatalf("B's run in A's session id: %d %s", r.status, r.body)
	}
	r = d.do("GET", "/file?sessionId=shared-name&path=/sandbox/secret", a, nil)
	if r.status != 200 || r.json(t)["content"] != base64.StdEncoding.EncodeToString([]byte("A")) {
		t.Fatalf("A's file after B's attempts: %d %s", r.status, r.body)
	}
	d.waitSandboxes(t, 2, 5*time.Second)
}

// The session routes against real sandboxes.
func TestDockerSessionFilesAndDelete(t *testing.T) {
	d := newDockerHarness(t, nil)
	content := base64.StdEncoding.EncodeToString([]byte("in\n"))
	if r := d.do("POST", "/execute", testMasterKey, execBody("python", "print('made')", map[string]any{"sessionId": "s"})); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := d.do("POST", "/file", testMasterKey, map[string]any{"sessionId": "s", "path": "/sandbox/dir/in.txt", "content": content}); r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	r := d.do("POST", "/execute", testMasterKey, execBody("python", "d=open('/sandbox/dir/in.txt').read(); open('/sandbox/out.txt','w').write(d.upper()); print(d, end='')", map[string]any{"sessionId": "s"}))
	if r.status != 200 || r.json(t)["stdout"] != "in\n" {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	r = d.do("GET", "/file?sessionId=s&path=/sandbox/out.txt", testMasterKey, nil)
	if r.status != 200 || r.json(t)["content"] != base64.StdEncoding.EncodeToString([]byte("IN\n")) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := d.do("GET", "/file?sessionId=s&path=/sandbox/none", testMasterKey, nil); r.status != 404 {
		t.Fatalf("missing file: %d %s", r.status, r.body)
	}
	if r := d.do("GET", "/file?sessionId=s&path=/etc/passwd", testMasterKey, nil); r.status != 400 {
		t.Fatalf("path outside /sandbox: %d %s", r.status, r.body)
	}
	// The session is bound to its runtime.
	if r := d.do("POST", "/execute", testMasterKey, execBody("node", "1", map[string]any{"sessionId": "s"})); r.status != 409 {
		t.Fatalf("another runtime in the session: %d %s", r.status, r.body)
	}
	d.waitSandboxes(t, 1, 5*time.Second)
	m := string(d.do("GET", "/metrics", testMasterKey, nil).body)
	if !strings.Contains(m, "isol8_active_sandboxes 1\n") || !strings.Contains(m, "isol8_sessions 1\n") {
		t.Errorf("metrics of one session:\n%s", m)
	}
	if r := d.do("DELETE", "/session/s", testMasterKey, nil); r.status != 200 {
		t.Fatalf("delete: %d", r.status)
	}
	d.waitSandboxes(t, 0, 10*time.Second)
}

func TestDockerCleanup(t *testing.T) {
	d := newDockerHarness(t, nil)
	for _, id := range []string{"c1", "c2"} {
		if r := d.do("POST", "/execute", testMasterKey, execBody("bash", "echo hi", map[string]any{"sessionId": id})); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	d.waitSandboxes(t, 2, 5*time.Second)
	r := d.do("POST", "/cleanup", testMasterKey, nil)
	res := r.json(t)
	if r.status != 200 || res["ok"] != true || res["sessions"].(map[string]any)["removed"] != 2.0 || res["images"] != nil {
		t.Fatalf("cleanup: %d %s", r.status, r.body)
	}
	d.waitSandboxes(t, 0, 10*time.Second)
}

// A client that goes away mid-run kills the run: its sandbox is gone
// within seconds (checked through the Docker API).
func TestDockerClientDisconnectKillsRun(t *testing.T) {
	// Without a warm pool every sandbox of the server is the run's.
	d := newDockerHarness(t, func(c *Config) {
		c.Config = isol8.DefaultConfig()
		c.Config.PoolSize = isol8.PoolSize{}
	})
	for _, path := range []string{"/execute", "/execute/stream"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", d.ts.URL+path,
			strings.NewReader(`{"request":{"runtime":"python","code":"import time; time.sleep(120)"}}`))
		req.Header.Set("Authorization", "Bearer "+testMasterKey)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := d.ts.Client().Do(req); err == nil {
				io.Copy(io.Discard, resp.Body) // until the client goes
				resp.Body.Close()
			}
		}()
		d.waitSandboxes(t, 1, 30*time.Second)
		cancel()
		<-done
		d.waitSandboxes(t, 0, 10*time.Second)
	}
	if r := d.do("GET", "/metrics", testMasterKey, nil); !strings.Contains(string(r.body), `isol8_runs_total{outcome="canceled"} 2`) {
		t.Errorf("metrics do not count the canceled runs:\n%s", r.body)
	}
}

func TestDockerPolicy(t *testing.T) {
	d := newDockerHarness(t, nil)
	r := d.do("POST", "/execute", testMasterKey, execBody("python", "print(1)", map[string]any{"options": map[string]any{"network": "host"}}))
	if r.status != 403 || !strings.HasPrefix(r.errorMessage(t), "options.network: ") {
		t.Fatalf("network host: %d %s", r.status, r.body)
	}
	r = d.do("POST", "/execute", testMasterKey, `{"request":{"runtime":"python","code":"print(1)"},"options":{"timeoutMs":1000000000000000}}`)
	if r.status != 200 || r.json(t)["stdout"] != "1\n" {
		t.Fatalf("timeoutMs 1e15 (clamped): %d %s", r.status, r.body)
	}
	r = d.do("POST", "/execute", testMasterKey, `{"request":{"runtime":"python","code":"print(1)","timeoutMs":1e15}}`)
	if r.status != 400 {
		t.Fatalf("timeoutMs 1e15 in exponent form: %d %s", r.status, r.body)
	}
	r = d.do("POST", "/execute", testMasterKey, execBody("python", "while True: pass", map[string]any{"timeoutMs": 1500}))
	if res := r.json(t); r.status != 200 || res["timedOut"] != true || res["exitCode"] != 137.0 {
		t.Fatalf("timeout: %d %s", r.status, r.body)
	}
}

// More jobs than maxConcurrent plus the queue: never more sandboxes than
// maxConcurrent at once (warm ones included), the surplus gets 429 with
// Retry-After, every admitted job succeeds.
func TestDockerConcurrencyCap(t *testing.T) {
	d := newDockerHarness(t, func(c *Config) {
		c.Config = isol8.DefaultConfig()
		c.Config.MaxConcurrent = 3
		c.Config.Queue = isol8.QueueConfig{Size: 5, TimeoutMs: 120000}
	})
	stop := make(chan struct{})
	peak := make(chan int)
	go func() {
		most := 0
		for {
			select {
			case <-stop:
				peak <- most
				return
			case <-time.After(50 * time.Millisecond):
				infos, err := d.backend.List(context.Background(), map[string]string{sandbox.LabelOwner: d.owner})
				if err == nil {
					most = max(most, len(infos))
				}
			}
		}
	}()
	statuses := make(chan response, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			statuses <- d.do("POST", "/execute", testMasterKey, execBody("python", "import time; time.sleep(1); print('done')", nil))
		})
	}
	wg.Wait()
	close(stop)
	if most := <-peak; most > 3 {
		t.Errorf("%d sandboxes at once, maxConcurrent is 3", most)
	}
	close(statuses)
	counts := map[int]int{}
	for r := range statuses {
		counts[r.status]++
		switch r.status {
		case 200:
			if r.json(t)["stdout"] != "done\n" {
				t.Errorf("an admitted job: %s", r.body)
			}
		case 429:
			if r.header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		default:
			t.Errorf("status %d: %s", r.status, r.body)
		}
	}
	if counts[200] < 8 || counts[429] == 0 {
		t.Errorf("statuses %v: want at least 8 admitted (3 running, 5 queued) and some refused", counts)
	}
}
