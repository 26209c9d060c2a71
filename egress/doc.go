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
// The proxy listens on a Unix socket (ListenUnix) in a per-sandbox host
// directory, which the backend bind-mounts into the sandbox (a directory,
// not the socket file, so that a new proxy can replace the socket between
// runs of a persistent sandbox; read-only is fine, connect(2) does not
// write). Programs in the sandbox expect HTTP_PROXY=http://127.0.0.1:PORT,
// so a small helper in the sandbox runs Bridge on 127.0.0.1:PORT, piping
// each TCP connection to the socket. The helper needs nothing but this
// package (a static Go binary, such as the isol8 executable itself
// mounted read-only and run with a hidden subcommand). It runs as the
// sandbox user and is not trusted: the Proxy enforces everything.
//
//	m, err := egress.Compile(serverPolicy.Intersect(requestPolicy))
//	logs := &egress.LogBuffer{}
//	p, err := egress.New(runCtx, egress.Config{Matcher: m, OnLog: logs.Add})
//	l, err := egress.ListenUnix(filepath.Join(dir, "egress.sock"))
//	go p.Serve(l)
//	// … run the sandbox with dir mounted and the bridge started …
//	p.Close()
//	entries, dropped := logs.Logs()
//	usage := p.Stats()
package egress
