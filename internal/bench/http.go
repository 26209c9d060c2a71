package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/client"
	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/server"
)

// warm measures the Docker warm row (a fast pool; the first runs fill it)
// and, with the http group, the same run through the real server on
// loopback, interleaved with it, and the difference of their p50s.
func (r *runner) warm(rt, bare string, req *isol8.Request) error {
	name := "isol8 docker warm, pool on (" + rt + ")"
	if !r.want("warm") && r.want("http") {
		name = "isol8 docker warm, library (" + rt + ")"
	}
	lib := &Row{Name: name, Floor: bare, MaxRatio: warmRatio}
	e, _, err := r.engine("docker", warmOptions())
	if err != nil {
		lib.fail(err)
		r.add(lib)
		return nil
	}
	defer stop(e)
	rows, fns := []*Row{lib}, []func() error{execute(r.ctx, e, req)}
	var hs *httpServer
	if r.want("http") {
		hrow := &Row{Name: "isol8 docker warm over HTTP, POST /execute (" + rt + ")", Floor: bare}
		hs, err = r.startServer()
		if err != nil {
			hrow.fail(err)
			r.add(hrow)
		} else {
			defer hs.close()
			rows, fns = append(rows, hrow), append(fns, execute(r.ctx, hs.remote, req))
		}
	}
	// The first run of each fills its pool; then let the pools settle.
	for i := 0; i < max(r.cfg.Warmup, 1); i++ {
		for _, fn := range fns {
			_ = fn()
		}
	}
	waitIdle(r.ctx, e, 30*time.Second)
	var se *isol8.LocalEngine
	var sBefore isol8.PoolStats
	if hs != nil {
		if se = hs.engine(); se != nil {
			waitIdle(r.ctx, se, 30*time.Second)
			sBefore = se.PoolStats()
		}
	}
	before := e.PoolStats()
	// Each run starts with both pools idle: a reset still running in the
	// background (a Node agent's new stub takes a core for tens of ms)
	// would otherwise land on whichever run comes next.
	settle := func() {
		waitIdle(r.ctx, e, 5*time.Second)
		if se != nil {
			waitIdle(r.ctx, se, 5*time.Second)
		}
	}
	MeasureInterleaved(0, r.cfg.Runs, rows, fns, settle)
	notePool(lib, e, before)
	if se != nil {
		notePool(rows[1], se, sBefore)
	}
	for _, row := range rows {
		r.add(row)
	}
	if len(rows) == 2 {
		r.add(&Row{Name: "HTTP minus library, p50 of paired runs (" + rt + ")", Derived: true,
			P50: PairedDiff(rows[0], rows[1]), MaxP50: httpOverhead})
	}
	return r.ctx.Err()
}

// httpServer is the real isol8 server on a loopback port, and a client of
// it authenticated with the master key.
type httpServer struct {
	remote  *client.Remote
	backend sandbox.Backend
	// engines are the server's engines, made through Config.NewEngine as
	// the server would make them, kept to read their pools' counters.
	mu      sync.Mutex
	engines []*isol8.LocalEngine
	cancel  context.CancelFunc
	done    chan error
}

func (r *runner) startServer() (*httpServer, error) {
	r.n++
	owner := fmt.Sprintf("%s-%s-%d-server", r.cfg.Owner, r.suffix, r.n)
	r.owners["docker"] = append(r.owners["docker"], owner)
	b, err := isol8.OpenBackend(r.ctx, "docker", sandbox.Config{Owner: owner})
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	master := hex.EncodeToString(key)
	hs := &httpServer{backend: b, done: make(chan error, 1)}
	newEngine := func(ec isol8.EngineConfig) (isol8.Engine, error) {
		e, err := isol8.New(ec)
		if err == nil {
			hs.mu.Lock()
			hs.engines = append(hs.engines, e)
			hs.mu.Unlock()
		}
		return e, err
	}
	srv, err := server.New(server.Config{MasterKey: master, Backend: b, Owner: owner, Version: "bench", NewEngine: newEngine})
	if err != nil {
		b.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close(context.Background())
		b.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.ctx))
	hs.cancel = cancel
	go func() { hs.done <- srv.Serve(ctx, ln) }()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute}}
	hs.remote, err = client.New(client.Options{Host: "http://" + ln.Addr().String(), APIKey: master, HTTPClient: hc}, isol8.Options{})
	if err == nil {
		_, err = hs.remote.Health(r.ctx)
	}
	if err != nil {
		hs.close()
		return nil, err
	}
	return hs, nil
}

// engine is the server's one engine for ephemeral runs (nil before the
// first run).
func (hs *httpServer) engine() *isol8.LocalEngine {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if len(hs.engines) == 0 {
		return nil
	}
	return hs.engines[len(hs.engines)-1]
}

// close shuts the server down (it stops its engines and removes its
// sandboxes) and waits for it, at most a minute.
func (hs *httpServer) close() {
	hs.cancel()
	select {
	case <-hs.done:
	case <-time.After(time.Minute):
	}
	hs.backend.Close()
}
