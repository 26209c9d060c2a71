//go:build linux

package native

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	isol8image "github.com/isol8/isol8/image"
	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/sandbox/native/internal/nsinit" // also the init, see its doc
)

// Name is the backend's registered name.
const Name = "native"

// The sandboxes' user namespaces map their ids 0..idRange-1 to host ids
// from hostIDBase: no sandbox id is a host id that owns anything else.
const (
	hostIDBase = 1_000_000_000
	idRange    = 65536
)

// Timeouts of the parts of the lifecycle that should never take long.
const (
	killTimeout   = 5 * time.Second
	removeTimeout = 10 * time.Second
)

func init() {
	sandbox.Register(Name, func(ctx context.Context, cfg sandbox.Config) (sandbox.Backend, error) {
		return Open(ctx, cfg)
	})
}

// Backend runs sandboxes as process trees in fresh Linux namespaces, with
// no daemon in between. It needs root (to map a range of ids and manage
// cgroups) on Linux with user namespaces and cgroup v1 or v2.
type Backend struct {
	owner     string
	dir       string // state folder
	cg        cgroups
	images    *images
	cacheLock *cacheLock // see prune.go
	records   records

	mu     sync.Mutex
	live   map[string]*Sandbox // created and not yet cleaned up
	closed bool

	// cleanups counts Destroys whose background part is still running.
	cleanups sync.WaitGroup
}

// stateFolder is the backend's folder under a state dir (as
// sandbox.Config.StateDir; "" is the default).
func stateFolder(stateDir string) string {
	if stateDir == "" {
		return "/var/lib/isol8/native"
	}
	return filepath.Join(stateDir, "native")
}

// Open prepares the state folder and checks that this host can run
// sandboxes, failing with sandbox.ErrUnavailable when it cannot.
func Open(ctx context.Context, cfg sandbox.Config) (*Backend, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("native backend needs root (to map sandbox ids and manage cgroups): %w", sandbox.ErrUnavailable)
	}
	dir := stateFolder(cfg.StateDir)
	// 0711: the sandboxes' mapped root must reach the root filesystems
	// below, but nobody needs to list them.
	for _, d := range []string{dir, filepath.Join(dir, "rootfs")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("native state folder: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("native state folder: %w", err)
		}
	}
	recs := records{dir: filepath.Join(dir, "sandboxes")}
	if err := os.MkdirAll(recs.dir, 0o700); err != nil {
		return nil, fmt.Errorf("native state folder: %w", err)
	}
	cg, err := detectCgroups()
	if err != nil {
		return nil, fmt.Errorf("native backend: %v: %w", err, sandbox.ErrUnavailable)
	}
	if err := probe(); err != nil {
		return nil, fmt.Errorf("native backend: %v: %w", err, sandbox.ErrUnavailable)
	}
	lock, err := openCacheLock(filepath.Join(dir, "rootfs"))
	if err != nil {
		return nil, fmt.Errorf("native state folder: %w", err)
	}
	b := &Backend{
		owner:     cfg.Owner,
		dir:       dir,
		cg:        cg,
		images:    newImages(filepath.Join(dir, "rootfs"), cfg.DockerHost),
		cacheLock: lock,
		records:   recs,
		live:      map[string]*Sandbox{},
	}
	b.images.clean()
	// Finish the cleanups that an engine stopped in the middle of.
	for _, rec := range b.records.gone() {
		b.cleanups.Add(1)
		go func() {
			defer b.cleanups.Done()
			if err := b.removeLeftover(rec); err != nil {
				b.logf("%v", err)
			}
		}()
	}
	return b, nil
}

// probe starts (and kills) one init in the namespaces a sandbox gets, so
// that a host where they cannot be made fails at Open, clearly, rather
// than at the first Create. It also starts the nursery and its first
// spare.
func probe() error {
	n, err := getNursery()
	if err != nil {
		return err
	}
	s := &Sandbox{}
	ctl, stderr, err := n.spawn(&nsinit.SpawnRequest{Cloneflags: sandboxCloneFlags(true), HostID: hostIDBase, IDs: idRange}, s)
	if err != nil {
		return fmt.Errorf("cannot make a sandbox's namespaces: %w", err)
	}
	ctl.Close() // the init exits when its control socket closes
	stderr.Close()
	s.pidfd.Close()
	return nil
}

// Name returns "native".
func (b *Backend) Name() string { return Name }

// List returns the sandboxes, alive or left behind by an engine that
// stopped, whose labels include all of labels.
func (b *Backend) List(ctx context.Context, labels map[string]string) ([]sandbox.Info, error) {
	recs, err := b.records.all()
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	want := map[string]string{sandbox.LabelManaged: "true"}
	maps.Copy(want, labels)
	var out []sandbox.Info
	for _, r := range recs {
		if !matches(r.Labels, want) {
			continue
		}
		b.mu.Lock()
		s := b.live[r.ID]
		b.mu.Unlock()
		var running bool
		switch {
		case s != nil && s.destroyed():
			continue // destroyed; its state file goes once cleaned up
		case s != nil:
			running = true
		default:
			running = !b.cg.load(r.Cgroups).empty()
		}
		out = append(out, sandbox.Info{ID: r.ID, Labels: r.Labels, Created: r.Created, Running: running})
	}
	return out, nil
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// Remove destroys a sandbox by ID: one of this backend's, or one a
// previous engine left, found by its state file and killed by its cgroup.
func (b *Backend) Remove(ctx context.Context, id string) error {
	if !validID.MatchString(id) {
		return nil // never made by this backend, so not there
	}
	b.mu.Lock()
	s := b.live[id]
	b.mu.Unlock()
	if s != nil {
		return s.Destroy(ctx)
	}
	rec, err := b.records.load(id)
	if errors.Is(err, os.ErrNotExist) {
		// A destroyed sandbox whose cleanup did not finish is finished
		// here; there is nothing else to remove.
		rec, err = b.records.loadFile(b.records.gonePath(id), id)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	if err != nil {
		return err
	}
	return b.removeLeftover(rec)
}

// removeLeftover kills a sandbox by its cgroup and removes the cgroup and
// its record. Doing it twice, or while its own engine does it, is harmless.
func (b *Backend) removeLeftover(rec *record) error {
	j := b.cg.load(rec.Cgroups)
	if err := j.kill(time.Now().Add(killTimeout)); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", rec.ID, err)
	}
	if err := j.remove(time.Now().Add(removeTimeout)); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", rec.ID, err)
	}
	return b.records.remove(rec.ID)
}

// SetImageOptions sets how a runtime image's root filesystem is built from
// Debian packages when the Docker engine does not answer: the config's
// images and systemPackages keys, as `isol8 setup --backend native` uses
// them (the engine passes Config.ImageOptions). Without it, the machine's
// apt sources and the runtime's own packages only.
func (b *Backend) SetImageOptions(opts isol8image.Options) { b.images.setBuild(opts) }

// Close stops the backend from creating sandboxes and waits (up to a
// bound) for the cleanups of destroyed sandboxes to finish. The sandboxes
// still alive keep running until destroyed, or until the process exits:
// each ends when its control socket closes.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.images.close()
	defer b.cacheLock.close()
	done := make(chan struct{})
	go func() {
		b.cleanups.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(killTimeout + removeTimeout):
		return errors.New("native backend: sandbox cleanups still running")
	}
}

// logf reports what only a log can: a background cleanup that failed
// (its state file stays, and the next engine to open the state folder, or
// Remove, finishes it).
func (b *Backend) logf(format string, args ...any) {
	log.Printf("isol8 native: "+format, args...)
}

// cgroupRoots are the folders under which sandboxes get their cgroups
// (tests check that nothing is left there).
func (b *Backend) cgroupRoots() []string { return b.cg.roots() }
