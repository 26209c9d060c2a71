package isol8

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/isol8/isol8/egress"
	"github.com/isol8/isol8/sandbox"
)

// egressAddr is where a filtered sandbox finds its egress proxy: an
// address on the sandbox's own loopback, on which the engine listens from
// outside (sandbox.LoopbackListener). The port is above 1023 only because
// clients expect an ordinary proxy port; user code cannot take it, since
// the engine holds it before any user code runs.
const egressAddr = "127.0.0.1:3128"

// maxBlockedLogs bounds the refused requests kept for the audit log (as
// many as one audit record holds).
const maxBlockedLogs = 100

// egressTestHook, when set, adjusts the policy and the proxy config of
// every filtered run before they are used. Only this package's tests set
// it: they map stand-in host names to loopback addresses (a Resolver),
// allow those addresses (AllowPrivate) and the test servers' ports. No
// config, option or request can reach it.
var egressTestHook func(*egress.Policy, *egress.Config)

// egressRun is the egress proxy of one run of a filtered sandbox. A nil
// *egressRun (a run that is not filtered) has no environment and reports
// nothing, so the run path need not ask.
type egressRun struct {
	proxy   *egress.Proxy
	l       net.Listener
	logs    *egress.LogBuffer // every request, when the run logs the network
	blocked *egress.LogBuffer // refused requests, for the audit log
	served  chan struct{}     // closed when Serve has returned

	once    sync.Once
	netLogs []NetworkLog
	stats   egress.Stats
	refused []egress.Log
}

// egressPolicy is a run's policy: the config's lists, tightened by the
// options' lists. A host must pass both allow lists and is blocked by
// either deny list; options that name no allowed host only add denials
// (an empty allow list in an intersection would allow nothing at all).
func egressPolicy(lim Limits) egress.Policy {
	p := egress.Policy{Allow: lim.Filter.Whitelist, Deny: lim.Filter.Blacklist}
	if f := lim.OptionFilter; f != nil {
		if len(f.Whitelist) > 0 {
			p = p.Intersect(egress.Policy{Allow: f.Whitelist, Deny: f.Blacklist})
		} else {
			p.Deny = append(append([]string{}, p.Deny...), f.Blacklist...)
		}
	}
	// Operator-configured allowances (a registry on the company
	// network); never set from a request.
	p.AllowPrivate = lim.AllowPrivate
	return p
}

// startEgress starts the egress proxy of a run in sb when lim.Network is
// filtered, and returns nil, nil otherwise. The proxy listens on the
// sandbox's loopback (egressAddr), so it must start before the run's code;
// the run passes Env to its processes and calls Finish when its processes
// are done (before or after the sandbox is destroyed). The proxy also
// stops when ctx ends.
func startEgress(ctx context.Context, sb sandbox.Sandbox, lim Limits) (*egressRun, error) {
	if lim.Network != NetworkFiltered {
		return nil, nil
	}
	pol := egressPolicy(lim)
	r := &egressRun{
		blocked: &egress.LogBuffer{Max: maxBlockedLogs},
		served:  make(chan struct{}),
	}
	if lim.LogNetwork {
		r.logs = &egress.LogBuffer{}
	}
	cfg := egress.Config{OnLog: r.onLog}
	if len(lim.ExtraPorts) > 0 {
		cfg.Ports = append(slices.Clone(egress.DefaultPorts), lim.ExtraPorts...)
	}
	if egressTestHook != nil {
		egressTestHook(&pol, &cfg)
	}
	m, err := egress.Compile(pol)
	if err != nil {
		return nil, invalid("networkFilter", "%v", err)
	}
	cfg.Matcher = m
	ll, ok := sb.(sandbox.LoopbackListener)
	if !ok {
		return nil, fmt.Errorf("%w: filtered networking is not supported by this sandbox backend", ErrUnavailable)
	}
	p, err := egress.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	l, err := ll.ListenLoopback(ctx, egressAddr)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: filtered networking: %w", ErrUnavailable, err)
	}
	r.proxy, r.l = p, l
	go func() {
		defer close(r.served)
		_ = p.Serve(l) // nil after Close; a listener error just ends the way out
	}()
	return r, nil
}

func (r *egressRun) onLog(l egress.Log) {
	if r.logs != nil {
		r.logs.Add(l)
	}
	if l.Action == egress.ActionBlock {
		r.blocked.Add(l)
	}
}

// Env is what a filtered run's processes need to find the proxy: the
// usual proxy variables, in both cases (curl reads only http_proxy for
// http), an empty NO_PROXY, and NODE_USE_ENV_PROXY so that Node's http
// and fetch use them too. Nothing else leads out of the sandbox, so a
// program that ignores them gets no network.
func (r *egressRun) Env() []string {
	if r == nil {
		return nil
	}
	u := "http://" + egressAddr
	return []string{
		"HTTP_PROXY=" + u, "HTTPS_PROXY=" + u, "http_proxy=" + u, "https_proxy=" + u,
		"NO_PROXY=", "no_proxy=", "NODE_USE_ENV_PROXY=1",
	}
}

// Finish stops the proxy: it closes the listener (which frees the address
// in the sandbox), ends every open tunnel, and waits until no request is
// in flight. It returns the run's network log (nil unless the run logs
// the network), the bytes moved to and from the sandbox, and the refused
// requests for the audit log (at most maxBlockedLogs, with the Reason,
// which may name internal addresses and is not for the client). It is
// idempotent: later calls return the same.
func (r *egressRun) Finish() (logs []NetworkLog, in, out int64, blocked []egress.Log) {
	if r == nil {
		return nil, 0, 0, nil
	}
	r.once.Do(func() {
		r.proxy.Close()
		_ = r.l.Close() // Serve has closed it already, unless it never ran
		<-r.served
		r.stats = r.proxy.Stats()
		r.refused, _ = r.blocked.Logs()
		if r.logs != nil {
			entries, _ := r.logs.Logs()
			r.netLogs = make([]NetworkLog, 0, len(entries))
			for _, e := range entries {
				r.netLogs = append(r.netLogs, NetworkLog{
					Timestamp: e.Timestamp.UTC().Format(time.RFC3339Nano),
					Method:    e.Method, Host: e.Host, Path: e.Path,
					Action: e.Action, DurationMs: e.DurationMs,
				})
			}
		}
	})
	return r.netLogs, r.stats.BytesIn, r.stats.BytesOut, r.refused
}

// record finishes the proxy and puts what it saw into res: networkLogs
// (when the run logs the network) and the bytes in resourceUsage. A nil
// res (a failed run) only finishes the proxy; a nil run does nothing.
func (r *egressRun) record(res *Result) {
	if r == nil {
		return
	}
	logs, in, out, _ := r.Finish()
	if res == nil {
		return
	}
	if r.logs != nil {
		res.NetworkLogs = logs
	}
	if res.ResourceUsage == nil {
		res.ResourceUsage = &ResourceUsage{}
	}
	res.ResourceUsage.NetworkBytesIn = in
	res.ResourceUsage.NetworkBytesOut = out
}
