package securitytest

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

// Case is one attack. A simple case is one run (Runtime with Code or Cmd,
// Options, Tweak) judged by Check; a case that needs several runs,
// streaming, a persistent engine or host-side listeners sets Attack.
type Case struct {
	Name    string
	Runtime isol8.Runtime
	Code    string
	Cmd     string
	// Options are the engine options; the suite fills Image and TimeoutMs
	// when they are unset.
	Options isol8.Options
	// Tweak edits the request before it runs (files, env, outputPaths…).
	Tweak func(r *isol8.Request)
	// Budget bounds the whole case, sandbox creation included (default 60 s).
	Budget time.Duration
	// Serial cases run alone, before the others: they measure time or
	// memory, or load the machine enough to upset a measurement.
	Serial bool
	// Check judges the single run's outcome.
	Check func(t *testing.T, res *isol8.Result, err error)
	// Attack replaces the single run.
	Attack func(t *testing.T, h *H)
}

const (
	defaultBudget    = 60 * time.Second
	defaultTimeoutMs = 20000
	devImage         = "isol8-dev:all"
)

// Run runs every case over the named backend ("docker", "native"). It
// sets an environment canary, so it must not be called from a parallel
// test. A backend that cannot be opened fails the suite; only
// ISOL8_SKIP_DOCKER=1 skips the docker backend.
func Run(t *testing.T, backend string) {
	if backend == "docker" && os.Getenv("ISOL8_SKIP_DOCKER") == "1" {
		t.Skip("ISOL8_SKIP_DOCKER=1: docker security suite skipped on request")
	}
	// A canary in the test process's environment: no sandbox may see it.
	t.Setenv(canaryVar, "canary-"+randHex(8))
	s := newSuite(t, backend)
	s.warmUp(t)
	cases := Cases()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.Name] {
			t.Fatalf("two cases are named %q", c.Name)
		}
		seen[c.Name] = true
	}
	// Serial cases first, one at a time.
	for _, c := range cases {
		if c.Serial {
			t.Run(c.Name, func(t *testing.T) { s.run(t, c) })
		}
	}
	// The rest on a few workers. t.Run is called from the workers
	// (allowed), so the concurrency is ours and not -test.parallel's,
	// which defaults to the number of cores.
	work := make(chan Case)
	var wg sync.WaitGroup
	for range s.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				t.Run(c.Name, func(t *testing.T) { s.run(t, c) })
			}
		}()
	}
	for _, c := range cases {
		if !c.Serial {
			work <- c
		}
	}
	close(work)
	wg.Wait()
}

// suite is what all cases of one Run share.
type suite struct {
	backend  string
	runID    string
	probe    probe
	docker   *dockerProbe // nil when the Docker engine is not reachable
	images   map[isol8.Runtime]string
	parallel int
	cases    atomic.Int64
}

func newSuite(t *testing.T, backend string) *suite {
	s := &suite{backend: backend, runID: "sectest-" + randHex(6), parallel: 3}
	if n, err := strconv.Atoi(os.Getenv("ISOL8_SECURITY_PARALLEL")); err == nil && n > 0 {
		s.parallel = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The backend must open: an unreachable engine fails the suite.
	b, err := isol8.OpenBackend(ctx, backend, sandbox.Config{Owner: s.runID})
	if err != nil {
		t.Fatalf("backend %q cannot be opened, so no security case can run: %v\n"+
			"(the docker backend is skipped only with ISOL8_SKIP_DOCKER=1)", backend, err)
	}
	dp, derr := newDockerProbe(ctx)
	switch {
	case derr == nil:
		s.docker = dp
		t.Cleanup(func() { dp.close() })
	case backend == "docker":
		b.Close()
		t.Fatalf("the Docker engine is not reachable for the suite's own checks: %v", derr)
	}
	if backend == "docker" {
		// The Docker API itself, not the backend under test, says what exists.
		s.probe = dp
		b.Close()
	} else {
		s.probe = &backendProbe{b: b}
		t.Cleanup(func() { b.Close() })
	}
	s.images = s.pickImages(ctx, t)
	t.Cleanup(func() { s.finalSweep(t) })
	return s
}

// pickImages chooses each runtime's image: ISOL8_TEST_IMAGE, else the
// runtime's own image when it exists, else the dev image.
func (s *suite) pickImages(ctx context.Context, t *testing.T) map[isol8.Runtime]string {
	imgs := map[isol8.Runtime]string{}
	for _, rt := range []isol8.Runtime{isol8.Python, isol8.Node, isol8.Bash} {
		switch {
		case os.Getenv("ISOL8_TEST_IMAGE") != "":
			imgs[rt] = os.Getenv("ISOL8_TEST_IMAGE")
		case s.docker == nil || s.docker.hasImage(ctx, "isol8:"+string(rt)):
			imgs[rt] = "" // the runtime's default image
		default:
			imgs[rt] = devImage
		}
		t.Logf("image for %s: %q", rt, imgs[rt])
	}
	return imgs
}

// warmUp runs one trivial job per runtime, so that preparing an image
// (a first build, or a backend unpacking it) is not charged to a case's
// budget, and a backend that cannot run anything fails once, clearly.
func (s *suite) warmUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h := &H{Backend: s.backend, s: s, t: t, Owner: s.runID + "-warmup", Ctx: ctx}
	defer h.closeAll(t)
	for _, c := range []struct {
		rt   isol8.Runtime
		code string
	}{{isol8.Python, "print('ok')"}, {isol8.Node, "console.log('ok')"}, {isol8.Bash, "echo ok"}} {
		res, err := h.Engine(c.rt, isol8.Options{TimeoutMs: 60000}).Execute(ctx, h.Request(c.rt, c.code))
		if err != nil || res.ExitCode != 0 || res.Stdout != "ok\n" {
			logResult(t, "warm-up "+string(c.rt), res, err)
			t.Fatalf("the %s backend cannot run a trivial %s job, so no security case can run", s.backend, c.rt)
		}
	}
}

// finalSweep fails the suite if anything of this run is left, and removes it.
func (s *suite) finalSweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	left, err := s.probe.ownedPrefix(ctx, s.runID)
	if err != nil {
		t.Errorf("final sweep: %v", err)
		return
	}
	if len(left) > 0 {
		t.Errorf("final sweep: %d sandboxes of this run are left behind: %v", len(left), left)
		for _, id := range left {
			_ = s.probe.remove(ctx, id)
		}
	}
}

// run runs one case under its budget and checks the baseline after it.
func (s *suite) run(t *testing.T, c Case) {
	budget := c.Budget
	if budget == 0 {
		budget = defaultBudget
	}
	h := &H{Backend: s.backend, s: s, t: t,
		Owner: fmt.Sprintf("%s-%d", s.runID, s.cases.Add(1))}
	// Registered first, so it runs last: after the case's engines stopped.
	t.Cleanup(func() { s.baseline(t, h) })
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	t.Cleanup(cancel)
	h.Ctx = ctx
	// A case that ignores its context must not hang the suite.
	watchdog := time.AfterFunc(budget+2*time.Minute, func() {
		debug.SetTraceback("all") // show where every goroutine is stuck
		panic(fmt.Sprintf("security case %s hung: still running %v after its budget of %v", c.Name, 2*time.Minute, budget))
	})
	defer watchdog.Stop()
	start := time.Now()
	if c.Attack != nil {
		c.Attack(t, h)
	} else {
		h.single(t, c)
	}
	if el := time.Since(start); el > budget+10*time.Second {
		t.Errorf("case took %v, over its budget of %v", el.Round(time.Millisecond), budget)
	}
}

// baseline: nothing of the case is left, and a fresh job runs normally.
func (s *suite) baseline(t *testing.T, h *H) {
	h.closeAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	left, err := s.probe.owned(ctx, h.Owner)
	if err != nil {
		t.Errorf("baseline: listing sandboxes of %s: %v", h.Owner, err)
	}
	if len(left) > 0 {
		t.Errorf("baseline: sandboxes of owner %s left behind after the case: %v", h.Owner, left)
		for _, id := range left {
			_ = s.probe.remove(ctx, id)
		}
	}
	next := &H{Backend: s.backend, s: s, t: t, Owner: h.Owner + "-next", Ctx: ctx}
	e := next.Engine(isol8.Python, isol8.Options{TimeoutMs: 30000})
	res, err := e.Execute(ctx, next.Request(isol8.Python, `print("next job ok")`))
	switch {
	case err != nil:
		t.Errorf("baseline: the next job failed: %v", err)
	case res.ExitCode != 0 || res.Stdout != "next job ok\n":
		t.Errorf("baseline: the next job did not run normally: exit %d, stdout %q, stderr %q",
			res.ExitCode, res.Stdout, clip(res.Stderr, 500))
	}
	next.closeAll(t)
	if left, _ := s.probe.owned(ctx, next.Owner); len(left) > 0 {
		t.Errorf("baseline: the next job left sandboxes behind: %v", left)
		for _, id := range left {
			_ = s.probe.remove(ctx, id)
		}
	}
}
