//go:build linux

package native

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Root filesystem trees stay in the cache (<state>/native/rootfs) once made:
// an export per Docker image ID, a Debian-built tree per recipe. When a
// tag is rebuilt or the config changes, the old tree is left behind;
// UnusedRootfs and RemoveRootfs (`isol8 cleanup --images`) collect them.
//
// A tree is in use from the moment a Create resolves an image to it until
// the sandbox's record is gone (its processes, and so its mounts, are gone
// before that). A Create holds the cache's lock shared throughout
// (its resolution, then its record); a removal holds it exclusively while it
// reads the records and moves trees out of the cache, so a tree is never
// removed between a Create's resolution and its record.

// lockName is the cache's lock file.
const lockName = ".lock"

// cacheLock is the cache's lock, opened once per backend.
type cacheLock struct{ f *os.File }

func openCacheLock(cache string) (*cacheLock, error) {
	f, err := os.OpenFile(filepath.Join(cache, lockName), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("root filesystem cache lock: %w", err)
	}
	return &cacheLock{f: f}, nil
}

func (l *cacheLock) lock(how int) error {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return err
	}
	// Control keeps the file open for the call: a backend closing meanwhile
	// cannot hand the fd's number to another file.
	cerr := rc.Control(func(fd uintptr) {
		for {
			if err = unix.Flock(int(fd), how); !errors.Is(err, unix.EINTR) {
				return
			}
		}
	})
	return errors.Join(cerr, err)
}

func (l *cacheLock) shared()    { _ = l.lock(unix.LOCK_SH) }
func (l *cacheLock) exclusive() { _ = l.lock(unix.LOCK_EX) }
func (l *cacheLock) unlock()    { _ = l.lock(unix.LOCK_UN) }
func (l *cacheLock) close()     { l.f.Close() }

// RootfsTree is one tree in the cache.
type RootfsTree struct {
	Name  string // the folder's name: an image ID, or debian-<runtime>-<hash>
	Path  string
	Bytes int64 // apparent size of its regular files
}

// stateFolders returns the cache and the records' folder of a state dir.
func stateFolders(stateDir string) (cache, recs string) {
	dir := stateFolder(stateDir)
	return filepath.Join(dir, "rootfs"), filepath.Join(dir, "sandboxes")
}

// UnusedRootfs lists the trees in the cache of stateDir that no sandbox of
// any engine uses now (a tree may be used again later; removing it then
// costs a new export or build). It fails when a sandbox record does not
// say which tree it uses (one made by an older isol8): remove those
// sandboxes first.
func UnusedRootfs(stateDir string) ([]RootfsTree, error) {
	cache, recs := stateFolders(stateDir)
	names, err := unusedTrees(cache, recs)
	if err != nil {
		return nil, err
	}
	out := make([]RootfsTree, 0, len(names))
	for _, n := range names {
		p := filepath.Join(cache, n)
		out = append(out, RootfsTree{Name: n, Path: p, Bytes: treeBytes(p)})
	}
	return out, nil
}

// RemoveRootfs removes the named trees of stateDir's cache that are still
// unused, and returns those it removed. A tree that came into use since it
// was listed is kept.
func RemoveRootfs(stateDir string, names []string) ([]string, error) {
	cache, recs := stateFolders(stateDir)
	if _, err := os.Stat(cache); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	l, err := openCacheLock(cache)
	if err != nil {
		return nil, err
	}
	defer l.close()
	l.exclusive()
	unused, err := unusedTrees(cache, recs)
	if err != nil {
		l.unlock()
		return nil, err
	}
	var moved, removed []string
	var errs []error
	for _, n := range names {
		if !slices.Contains(unused, n) {
			continue
		}
		// Out of the cache first, atomically: a resolution after this
		// finds nothing and makes the tree again.
		trash := filepath.Join(cache, n+".tmp-gc")
		if err := os.Rename(filepath.Join(cache, n), trash); err != nil {
			errs = append(errs, err)
			continue
		}
		moved = append(moved, n)
	}
	l.unlock()
	for _, n := range moved {
		if err := os.RemoveAll(filepath.Join(cache, n+".tmp-gc")); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, n)
	}
	// Links (debian-<runtime>) to a removed tree go too.
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		p := filepath.Join(cache, e.Name())
		if target, err := os.Readlink(p); err == nil && slices.Contains(removed, target) {
			_ = os.Remove(p)
		}
	}
	return removed, errors.Join(errs...)
}

// unusedTrees names the cache's trees that no record names.
func unusedTrees(cache, recDir string) ([]string, error) {
	ents, err := os.ReadDir(cache)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	recs := records{dir: recDir}
	all, err := recs.all()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, rec := range append(all, recs.gone()...) {
		if rec.Rootfs == "" {
			return nil, fmt.Errorf("sandbox %s does not record its root filesystem (made by an older isol8): remove it first (isol8 cleanup)", rec.ID)
		}
		used[filepath.Clean(rec.Rootfs)] = true
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || strings.Contains(name, ".tmp-") {
			continue // links, the lock, work in progress (clean() takes stale ones)
		}
		if !used[filepath.Join(cache, name)] {
			out = append(out, name)
		}
	}
	return out, nil
}

// treeBytes adds up the sizes of a tree's regular files.
func treeBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
