package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

// Issue 4: "200 parallel sleep(1) runs with maxConcurrent 10: never more
// than 10 sandboxes at once (checked through the Docker engine, not the
// engine's own counter), each run succeeds or gets 429, and nothing is
// left afterwards." Over real HTTP on loopback, against a real server on
// the docker backend whose config sets maxConcurrent 10.
func TestLoad200ParallelSleepsMaxConcurrent10(t *testing.T) {
	const (
		jobs          = 200
		maxConcurrent = 10
	)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cfg, err := isol8.ParseConfig([]byte(fmt.Sprintf(`{"maxConcurrent": %d}`, maxConcurrent)), "load test")
	if err != nil {
		t.Fatal(err)
	}
	d := newDockerHarness(t, func(c *Config) { c.Config = cfg })

	// The Docker engine's own view: containers carrying the server's
	// owner label, whatever their state (a container that exists is a
	// sandbox, running or not).
	docker, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	if _, err := docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("the Docker engine does not answer: %v", err)
	}
	count := func(ctx context.Context) (all, running int, err error) {
		res, err := docker.ContainerList(ctx, client.ContainerListOptions{
			All:     true,
			Filters: client.Filters{}.Add("label", sandbox.LabelOwner+"="+d.owner),
		})
		if err != nil {
			return 0, 0, err
		}
		for _, c := range res.Items {
			if c.State == "running" {
				running++
			}
		}
		return len(res.Items), running, nil
	}

	type peak struct {
		all, running, polls, errors int
		at                          time.Duration
		lastErr                     error
	}
	stop := make(chan struct{})
	peaks := make(chan peak, 1)
	start := time.Now()
	go func() {
		var p peak
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peaks <- p
				return
			case <-tick.C:
			}
			all, running, err := count(ctx)
			if err != nil {
				p.errors++
				p.lastErr = err
				continue
			}
			p.polls++
			if all > p.all {
				p.all, p.at = all, time.Since(start)
			}
			p.running = max(p.running, running)
		}
	}()

	type answer struct {
		status     int
		retryAfter string
		body       string
		err        error
	}
	answers := make([]answer, jobs)
	body := `{"request":{"runtime":"python","code":"import time; time.sleep(1)"}}`
	hc := d.ts.Client()
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, "POST", d.ts.URL+"/execute", strings.NewReader(body))
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+testMasterKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			answers[i] = answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(data), err: err}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	p := <-peaks
	t.Logf("%d jobs in %v; Docker polled %d times (%d errors): at most %d containers of %s at once (at %v), at most %d running",
		jobs, took.Round(time.Millisecond), p.polls, p.errors, p.all, d.owner, p.at.Round(time.Millisecond), p.running)
	if ctx.Err() != nil {
		t.Fatalf("the jobs did not finish within the test's bound (%v)", took)
	}
	if p.polls < 10 {
		t.Fatalf("only %d successful polls of the Docker engine (last error %v): the peak proves nothing", p.polls, p.lastErr)
	}
	if p.all > maxConcurrent {
		t.Errorf("%d sandboxes at once seen by the Docker engine (%d running), maxConcurrent is %d", p.all, p.running, maxConcurrent)
	}
	if p.all == 0 {
		t.Errorf("the Docker engine never showed a sandbox of %s: the poll watched the wrong label", d.owner)
	}

	counts := map[int]int{}
	for i, a := range answers {
		if a.err != nil {
			t.Errorf("job %d: %v", i, a.err)
			continue
		}
		counts[a.status]++
		switch a.status {
		case http.StatusOK:
			var res isol8.Result
			if err := json.Unmarshal([]byte(a.body), &res); err != nil || res.ExitCode != 0 || res.TimedOut {
				t.Errorf("job %d: admitted but failed: %s", i, a.body)
			}
		case http.StatusTooManyRequests:
			if secs, err := strconv.Atoi(a.retryAfter); err != nil || secs < 1 {
				t.Errorf("job %d: 429 with Retry-After %q, want a number of seconds: %s", i, a.retryAfter, a.body)
			}
		default:
			t.Errorf("job %d: status %d: %s", i, a.status, a.body)
		}
	}
	t.Logf("statuses %v", counts)
	if counts[http.StatusOK] < maxConcurrent {
		t.Errorf("only %d jobs admitted, want at least %d", counts[http.StatusOK], maxConcurrent)
	}

	// A short grace: warm pools may keep idle sandboxes, still within the cap.
	time.Sleep(2 * time.Second)
	all, running, err := count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the grace: %d containers (%d running)", all, running)
	if all > maxConcurrent {
		t.Errorf("%d sandboxes after the jobs ended, more than maxConcurrent %d", all, maxConcurrent)
	}

	// The server's shutdown leaves nothing of its owner.
	if err := d.srv.Close(ctx); err != nil {
		t.Errorf("closing the server: %v", err)
	}
	all, _, err = count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if all != 0 {
		t.Fatalf("%d containers of %s left after the server's shutdown", all, d.owner)
	}
}
