//go:build linux

package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	isol8image "github.com/isol8/isol8/image"
	"github.com/isol8/isol8/sandbox"
)

// recheckAfter is how long a resolved image name is trusted before the
// Docker engine is asked again (in the background) whether the tag moved.
const recheckAfter = 10 * time.Second

// images resolves a Spec's Image to an unpacked root filesystem: an
// absolute path is used as it is; a name is looked up in the Docker engine
// and exported once per image ID into the cache. Docker is never on the
// hot path: a name resolved once is served from memory.
type images struct {
	cache      string // <state>/rootfs
	dockerHost string
	progress   io.Writer // where a first-use rootfs build reports; nil is stderr

	// build is how a runtime's root filesystem is built from Debian
	// packages without Docker (see Backend.SetImageOptions).
	build isol8image.Options

	mu      sync.Mutex
	cli     *client.Client
	names   map[string]*resolved
	dirs    map[string]bool            // plain folders already checked
	exports map[string]*sync.WaitGroup // image ID → export in progress
}

type resolved struct {
	img      imageRef
	checked  time.Time
	checking bool
}

// imageRef is a resolved image: its root filesystem and the environment
// its config sets (Docker adds it to every exec; so does this backend).
type imageRef struct {
	rootfs string
	env    []string
}

// defaultEnv is the environment of a plain folder image, as Docker gives
// an image that sets none.
var defaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

func newImages(cache, dockerHost string) *images {
	return &images{
		cache: cache, dockerHost: dockerHost,
		names: map[string]*resolved{}, dirs: map[string]bool{},
		exports: map[string]*sync.WaitGroup{},
	}
}

// resolve finds image.
func (im *images) resolve(ctx context.Context, image string) (imageRef, error) {
	if image == "" {
		return imageRef{}, fmt.Errorf("image: empty name: %w", sandbox.ErrImageNotFound)
	}
	if strings.HasPrefix(image, "/") {
		dir, err := im.folder(image)
		return imageRef{rootfs: dir, env: defaultEnv}, err
	}
	im.mu.Lock()
	r, ok := im.names[image]
	if ok && !exists(r.img.rootfs) {
		// Removed from the cache (RemoveRootfs): resolve it again.
		delete(im.names, image)
		ok = false
	}
	var img imageRef
	if ok {
		img = r.img // recheck replaces it under the lock
		if !r.checking && time.Since(r.checked) > recheckAfter {
			r.checking = true
			go im.recheck(image)
		}
	}
	im.mu.Unlock()
	if ok {
		return img, nil
	}
	img, err := im.lookup(ctx, image)
	if err != nil {
		return imageRef{}, err
	}
	im.mu.Lock()
	im.names[image] = &resolved{img: img, checked: time.Now()}
	im.mu.Unlock()
	return img, nil
}

// recheck follows a tag that was rebuilt; until it is done, sandboxes keep
// using the root filesystem resolved before.
func (im *images) recheck(image string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img, err := im.lookup(ctx, image)
	im.mu.Lock()
	defer im.mu.Unlock()
	r := im.names[image]
	if r == nil {
		return // dropped meanwhile (its tree removed, new build options)
	}
	r.checking = false
	if err == nil {
		r.img, r.checked = img, time.Now()
	} else if errors.Is(err, sandbox.ErrImageNotFound) {
		delete(im.names, image)
	}
}

// folder checks a plain root filesystem folder once. The sandbox's mapped
// root must be able to reach it: every parent needs o+x. It must have a
// /sandbox folder to mount on; one is made if missing (as Docker makes a
// WORKDIR).
func (im *images) folder(dir string) (string, error) {
	dir = filepath.Clean(dir)
	im.mu.Lock()
	ok := im.dirs[dir]
	im.mu.Unlock()
	if ok {
		return dir, nil
	}
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return "", fmt.Errorf("image %s: not a folder: %w", dir, sandbox.ErrImageNotFound)
	}
	for p := dir; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("image %s: %w", dir, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return "", fmt.Errorf("image %s: %s is not searchable by others (o+x), which the sandbox's mapped root needs", dir, p)
		}
		if p == "/" {
			break
		}
	}
	for _, sub := range []string{"sandbox", "tmp", "proc", "dev", "sys"} {
		p := filepath.Join(dir, sub)
		if st, err := os.Lstat(p); err == nil && st.IsDir() {
			continue
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", fmt.Errorf("image %s: need a /%s folder: %w", dir, sub, err)
		}
	}
	im.mu.Lock()
	im.dirs[dir] = true
	im.mu.Unlock()
	return dir, nil
}

// client connects lazily: a host without Docker can still run folders.
func (im *images) client() (*client.Client, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.cli != nil {
		return im.cli, nil
	}
	opts := []client.Opt{client.FromEnv}
	if im.dockerHost != "" {
		opts = append(opts, client.WithHost(im.dockerHost))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, err
	}
	im.cli = cli
	return cli, nil
}

// errNoDocker marks a lookup that failed because no Docker engine answered
// (rather than because the engine lacks the image).
var errNoDocker = errors.New("no Docker engine")

// lookup resolves a name: from the Docker engine when it answers; else, for
// a runtime image (isol8:<runtime>), the root filesystem built from Debian
// packages, built on first use.
func (im *images) lookup(ctx context.Context, image string) (imageRef, error) {
	img, err := im.fromDocker(ctx, image)
	if !errors.Is(err, errNoDocker) {
		return img, err
	}
	rt, ok := strings.CutPrefix(image, isol8image.RuntimeRepo+":")
	if !ok || rt == "" || strings.ContainsAny(rt, "/.-") {
		return imageRef{}, err
	}
	return im.fromDebian(ctx, rt, err)
}

// fromDebian returns the Debian-built root filesystem of runtime rt, as
// the build options (the config's images keys) make it: the tree of that
// recipe when it was built before (by `isol8 setup` or an earlier first
// use), else one built now. dockerErr says why Docker was not asked.
func (im *images) fromDebian(ctx context.Context, rt string, dockerErr error) (imageRef, error) {
	env := isol8image.RootfsEnv(rt)
	w := im.progress
	if w == nil {
		w = os.Stderr
	}
	im.mu.Lock()
	opts := im.build
	im.mu.Unlock()
	opts.Progress = isol8image.LineWriter(w, false)
	plan, err := isol8image.PlanRootfs(rt, opts)
	if errors.Is(err, isol8image.ErrNoDebianRootfs) {
		return imageRef{}, fmt.Errorf("image %s:%s: %w; %w", isol8image.RuntimeRepo, rt, err, sandbox.ErrUnavailable)
	}
	if err != nil {
		return imageRef{}, fmt.Errorf("image %s:%s: no Docker engine, and its Debian root filesystem cannot be planned: %w; %w", isol8image.RuntimeRepo, rt, err, sandbox.ErrUnavailable)
	}
	key := plan.Key()
	dir := filepath.Join(im.cache, key)
	for {
		if exists(dir) {
			return imageRef{rootfs: dir, env: env}, nil
		}
		im.mu.Lock()
		wg, busy := im.exports[key]
		if !busy {
			wg = &sync.WaitGroup{}
			wg.Add(1)
			im.exports[key] = wg
		}
		im.mu.Unlock()
		if !busy {
			break
		}
		wg.Wait()
	}
	defer func() {
		im.mu.Lock()
		wg := im.exports[key]
		delete(im.exports, key)
		im.mu.Unlock()
		wg.Done()
	}()
	fmt.Fprintf(w, "isol8: %v; building the %s root filesystem from Debian packages (first time: a minute or two)\n", firstLine(dockerErr), rt)
	dir, _, err = ensureRootfs(ctx, im.cache, rt, opts)
	if err != nil {
		return imageRef{}, fmt.Errorf("image %s:%s: no Docker engine, and building it from Debian packages failed: %w; %w", isol8image.RuntimeRepo, rt, err, sandbox.ErrUnavailable)
	}
	return imageRef{rootfs: dir, env: env}, nil
}

// setBuild sets the Debian build options; names resolved before are
// resolved again on their next use.
func (im *images) setBuild(opts isol8image.Options) {
	opts.Progress = nil
	im.mu.Lock()
	defer im.mu.Unlock()
	if reflect.DeepEqual(opts, im.build) {
		return
	}
	im.build = opts
	for name, r := range im.names {
		if !strings.HasPrefix(r.img.rootfs, im.cache+"/debian-") {
			continue
		}
		delete(im.names, name)
	}
}

func exists(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}

func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// fromDocker finds the image's ID and returns its unpacked copy, exporting
// it first if this ID was never seen.
func (im *images) fromDocker(ctx context.Context, image string) (imageRef, error) {
	rootfs, env, err := im.exported(ctx, image)
	return imageRef{rootfs: rootfs, env: env}, err
}

func (im *images) exported(ctx context.Context, image string) (string, []string, error) {
	cli, err := im.client()
	if err != nil {
		return "", nil, fmt.Errorf("image %q: %w to export it from (%v): %w", image, errNoDocker, err, sandbox.ErrImageNotFound)
	}
	res, err := cli.ImageInspect(ctx, image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", nil, fmt.Errorf("image %q: %w", image, sandbox.ErrImageNotFound)
		}
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		return "", nil, fmt.Errorf("image %q: %w reachable (%v): %w", image, errNoDocker, err, sandbox.ErrImageNotFound)
	}
	key := strings.TrimPrefix(res.ID, "sha256:")
	if key == "" || strings.ContainsAny(key, "/.") {
		return "", nil, fmt.Errorf("image %q: unexpected ID %q", image, res.ID)
	}
	env := defaultEnv
	if res.Config != nil && len(res.Config.Env) > 0 {
		env = res.Config.Env
	}
	rootfs := filepath.Join(im.cache, key)
	for {
		if _, err := os.Stat(rootfs); err == nil {
			return rootfs, env, nil
		}
		im.mu.Lock()
		wg, busy := im.exports[key]
		if !busy {
			wg = &sync.WaitGroup{}
			wg.Add(1)
			im.exports[key] = wg
		}
		im.mu.Unlock()
		if busy {
			wg.Wait()
			continue
		}
		err := exportImage(ctx, cli, res.ID, rootfs)
		im.mu.Lock()
		delete(im.exports, key)
		im.mu.Unlock()
		wg.Done()
		if err != nil {
			return "", nil, fmt.Errorf("image %q: %w", image, err)
		}
		return rootfs, env, nil
	}
}

// clean removes exports that a crash interrupted; a recent one may be
// another engine's, still working.
func (im *images) clean() {
	ents, _ := os.ReadDir(im.cache)
	for _, e := range ents {
		if !strings.Contains(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
			_ = os.RemoveAll(filepath.Join(im.cache, e.Name()))
		}
	}
}

func (im *images) close() {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.cli != nil {
		im.cli.Close()
		im.cli = nil
	}
}
