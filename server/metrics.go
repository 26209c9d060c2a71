package server

import (
	"context"
	"net/http"
	"time"

	"github.com/isol8/isol8/sandbox"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (several servers can live in one process, as in tests).
type metrics struct {
	runs        *prometheus.CounterVec
	runDuration prometheus.Histogram
	inFlight    prometheus.Gauge
	requests    *prometheus.CounterVec
	handler     http.Handler
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isol8_runs_total", Help: "Executions by outcome (ok, timeout, oom, invalid, denied, canceled, error).",
		}, []string{"outcome"}),
		runDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "isol8_run_duration_seconds", Help: "Time from accepting an execution to its end, queueing included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "isol8_runs_in_flight", Help: "Executions running now.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isol8_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
	}
	reg.MustRegister(m.runs, m.runDuration, m.inFlight, m.requests,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "isol8_queue_depth", Help: "Executions waiting for one of maxConcurrent sandbox slots.",
		}, func() float64 { _, waiting, _ := s.limiter.Stats(); return float64(waiting) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "isol8_slots_held", Help: "Sandbox slots held (running, or kept warm), of maxConcurrent.",
		}, func() float64 { held, _, _ := s.limiter.Stats(); return float64(held) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "isol8_active_sandboxes", Help: "Sandboxes with this server's owner label (runs, sessions, warm pools), -1 when the backend does not answer.",
		}, s.activeSandboxes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "isol8_sessions", Help: "Live persistent sessions, all tenants.",
		}, func() float64 { return float64(s.sessions.count()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

// activeSandboxes counts this server's sandboxes through the backend (one
// List per scrape: the engine's sandboxes expose optional interfaces that a
// counting wrapper would hide).
func (s *Server) activeSandboxes() float64 {
	if s.cfg.Backend == nil || s.cfg.Owner == "" {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	infos, err := s.cfg.Backend.List(ctx, map[string]string{sandbox.LabelOwner: s.cfg.Owner})
	if err != nil {
		return -1
	}
	return float64(len(infos))
}
