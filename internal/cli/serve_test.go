package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

func TestServeFlags(t *testing.T) {
	isolate(t)
	o := cli(t, "serve", "-p", "0", "-k", "k")
	if o.code != 2 || !strings.Contains(o.stderr, "--port") {
		t.Fatalf("-p 0: %s", o)
	}
	t.Setenv("ISOL8_PORT", "not-a-port")
	o = cli(t, "serve", "-k", "k")
	if o.code != 2 || !strings.Contains(o.stderr, "ISOL8_PORT") {
		t.Fatalf("bad $ISOL8_PORT: %s", o)
	}
	t.Setenv("ISOL8_PORT", "")
	t.Setenv("ISOL8_API_KEY", "")
	o = cli(t, "serve", "-p", "1")
	if o.code != 2 || !strings.Contains(o.stderr, "API key") {
		t.Fatalf("no key: %s", o)
	}
}

// A SIGKILLed server leaves its sandboxes behind; started again (same
// port, so the same owner label), it removes them before it answers, and
// SIGTERM then stops it cleanly.
func TestServeRemovesWhatAKilledRunLeft(t *testing.T) {
	needDocker(t)
	bin := filepath.Join(t.TempDir(), "isol8")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/isol8/isol8/cmd/isol8").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := isolate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	base := "http://127.0.0.1:" + port
	const key = "serve-test-master-key"
	owner := map[string]string{sandbox.LabelOwner: "serve-" + port}

	backend, err := isol8.OpenBackend(context.Background(), "docker", sandbox.Config{Owner: "serve-test-observer"})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	sandboxes := func() []sandbox.Info {
		infos, err := backend.List(context.Background(), owner)
		if err != nil {
			t.Fatal(err)
		}
		return infos
	}
	t.Cleanup(func() { // whatever happens, leave nothing
		for _, info := range sandboxes() {
			backend.Remove(context.Background(), info.ID)
		}
	})

	start := func() (*exec.Cmd, *bytes.Buffer) {
		t.Helper()
		var logs bytes.Buffer
		cmd := exec.Command(bin, "serve", "--bind", "127.0.0.1", "-p", port, "-k", key)
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get(base + "/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd, &logs
				}
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("isol8 serve did not answer /health: %v\n%s", err, &logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	first, logs := start()
	var jobs sync.WaitGroup
	for i := range 5 {
		jobs.Go(func() {
			body := fmt.Sprintf(`{"request":{"runtime":"python","code":"import time; time.sleep(120) # %d"}}`, i)
			req, _ := http.NewRequest("POST", base+"/execute", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(sandboxes()) < 5 {
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatalf("%d sandboxes after 60s, want 5\n%s", len(sandboxes()), logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	jobs.Wait()
	left := len(sandboxes())
	if left < 5 {
		t.Fatalf("only %d sandboxes survived the SIGKILL; the test proves nothing", left)
	}

	second, logs := start()
	if n := len(sandboxes()); n != 0 {
		second.Process.Kill()
		t.Fatalf("%d of the %d sandboxes the killed server left remain after the restart\n%s", n, left, logs)
	}
	if !strings.Contains(logs.String(), "removed sandboxes left by a previous run") {
		t.Errorf("the restart does not say what it removed:\n%s", logs)
	}
	// Graceful stop: SIGTERM, exit 0, nothing left.
	req, _ := http.NewRequest("POST", base+"/execute", strings.NewReader(`{"request":{"runtime":"bash","code":"echo hi"}}`))
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a run on the restarted server: %v %v\n%s", resp, err, logs)
	}
	second.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("isol8 serve after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(60 * time.Second):
		second.Process.Kill()
		t.Fatalf("isol8 serve did not stop within 60s of SIGTERM\n%s", logs)
	}
	if n := len(sandboxes()); n != 0 {
		t.Fatalf("%d sandboxes left after a graceful stop\n%s", n, logs)
	}
}
