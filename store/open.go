package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// ErrExists is returned by Create when a key with the same id or the same
// hash is already stored.
var ErrExists = errors.New("key already exists")

// Opener opens a store from a connection string.
type Opener func(ctx context.Context, conn string) (Store, error)

var (
	mu      sync.Mutex
	drivers = map[string]Opener{}
)

// Register makes a store driver available to Open. The implementations
// call it from init ("sqlite", "postgres"), so Open works in any program
// that imports them, and this package imports neither.
func Register(driver string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := drivers[driver]; dup {
		panic("store: driver registered twice: " + driver)
	}
	drivers[driver] = open
}

// Drivers lists the registered drivers.
func Drivers() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Driver names the driver a connection string selects: "postgres" for a
// postgres:// or postgresql:// URL, "sqlite" for anything else (a file
// path, "sqlite:PATH", or "" for the default ~/.isol8/keys.db).
func Driver(conn string) string {
	c := strings.ToLower(strings.TrimSpace(conn))
	if strings.HasPrefix(c, "postgres://") || strings.HasPrefix(c, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

// Open opens the store a connection string names (see Driver). The
// driver's package must be imported, usually for its side effect:
//
//	import _ "github.com/isol8/isol8/store/sqlite"
func Open(ctx context.Context, conn string) (Store, error) {
	name := Driver(conn)
	mu.Lock()
	open, ok := drivers[name]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("key store: the %s driver is not in this program (import github.com/isol8/isol8/store/%s)", name, name)
	}
	return open(ctx, conn)
}
