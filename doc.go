// Package isol8 runs code nobody has reviewed — data transformations,
// analysis scripts, code written by AI agents — in a fresh, locked-down
// sandbox with hard limits, and returns its stdout, stderr, exit code and
// the files it produced.
//
// The local engine (New) runs sandboxes on a backend: "docker" (the Docker
// Engine API) or "native" (Linux namespaces, no Docker engine). The remote
// engine in package client talks to an `isol8 serve` server and implements
// the same Engine interface.
//
//	engine, _ := isol8.New(isol8.EngineConfig{})
//	res, err := engine.Execute(ctx, &isol8.Request{
//		Runtime: isol8.Python,
//		Code:    "import json,sys; print(len(json.load(sys.stdin)))",
//		Stdin:   `[{"x":1},{"x":2}]`,
//	})
//
// Every sandbox is hardened whatever the request says: user code runs as
// an unprivileged uid with no capabilities, no_new_privs and a seccomp
// allowlist, on a read-only root with size-limited nosuid,nodev /sandbox and
// /tmp, with memory, pids and CPU limits and no network unless asked. The
// limits of a run come from one function (Config.Resolve): the request over
// the engine options over the config file over the defaults, clamped to
// the configured maxima.
package isol8
