package sandbox

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Config is what every backend is opened with.
type Config struct {
	// Owner is put in LabelOwner on every sandbox, so an engine (or a
	// server) can find and remove exactly the sandboxes it left behind.
	Owner string
	// StateDir is where a backend may keep host-side state
	// (default /var/lib/isol8, or ~/.isol8 when not root).
	StateDir string
	// DockerHost overrides DOCKER_HOST for the docker backend.
	DockerHost string
}

// Opener opens a backend.
type Opener func(ctx context.Context, cfg Config) (Backend, error)

var (
	mu      sync.Mutex
	openers = map[string]Opener{}
)

// Register makes a backend available by name. Backends call it from init.
func Register(name string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[name]; dup {
		panic("sandbox: backend registered twice: " + name)
	}
	openers[name] = open
}

// Names lists the registered backends.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(openers))
	for n := range openers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open opens the backend registered under name.
func Open(ctx context.Context, name string, cfg Config) (Backend, error) {
	mu.Lock()
	open, ok := openers[name]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("backend %q is not known (have %v)", name, Names())
	}
	return open(ctx, cfg)
}
