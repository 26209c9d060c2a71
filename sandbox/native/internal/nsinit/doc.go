// Package nsinit is the native backend's processes: the init of each
// sandbox (process 1 of its namespaces) and the nursery that starts
// inits. The engine re-executes its own binary (from a sealed copy) with
// EnvMarker set; this package's init function sees the marker, runs the
// process and never returns.
//
// It is a separate package that imports only a few standard packages
// (not even golang.org/x/sys/unix or encoding/json), because Go
// initialises packages in import-path order as soon as their dependencies
// are ready: this one then runs before most of a large binary's packages
// (the Docker client, telemetry, regular expressions compiled at init…),
// which never initialise in an init process. That saves about 2 ms of CPU
// on every sandbox.
package nsinit
