// Package egress is the filtering proxy of isol8's `network: filtered`
// mode: the only way out of a sandbox that has no network interface but
// loopback.
//
// A Policy (allow and deny host regexes, explicit private-address
// allowances, a resolver) is compiled into a Matcher. Patterns match the
// canonical host (CanonicalHost: lower case, no trailing dot, no port) as
// a whole and case-insensitively; deny wins; an empty allow list allows
// nothing. A server policy and a request policy combine with
// Policy.Intersect: a host must pass both allow lists and is blocked by
// either deny list.
//
// A Proxy serves one sandbox. It forwards plain-HTTP requests
// (absolute-form URIs) and tunnels CONNECT host:port without decrypting
// it. For each request it matches the host, checks the port, resolves the
// name and refuses it when any address is loopback, private, link-local
// (cloud metadata), CGNAT, multicast, reserved or otherwise not public,
// unless Policy.AllowPrivate covers it; then it dials exactly an address
// it checked, never resolving again (no DNS rebinding). Redirects are
// passed back, never followed. Each request yields a Log for the run's
// networkLogs and the audit log; Stats counts the sandbox's bytes.
//
// # Reaching the proxy from a sandbox
//
// A filtered sandbox keeps no network interface but loopback. The engine
// serves the proxy, from its own process, on a listener that lives in the
// sandbox's network namespace at 127.0.0.1:3128 (sandbox.LoopbackListener;
// the Docker backend creates it with setns(2), see sandbox.ListenInNetNS),
// and gives the sandbox's processes HTTP_PROXY and HTTPS_PROXY pointing
// there. Nothing of the proxy runs in the sandbox, and the listener exists
// before any user code does, so that code cannot take its port.
//
//	m, err := egress.Compile(serverPolicy.Intersect(requestPolicy))
//	logs := &egress.LogBuffer{}
//	p, err := egress.New(runCtx, egress.Config{Matcher: m, OnLog: logs.Add})
//	l, err := sb.(sandbox.LoopbackListener).ListenLoopback(ctx, "127.0.0.1:3128")
//	go p.Serve(l)
//	// … run the sandbox's processes with HTTP_PROXY=http://127.0.0.1:3128 …
//	p.Close()
//	entries, dropped := logs.Logs()
//	usage := p.Stats()
package egress
