package image

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/isol8/isol8/packages"
	"github.com/isol8/isol8/runtime"
)

// DefaultBaseImage is the base image used when the engine has it or can
// pull it.
const DefaultBaseImage = "debian:bookworm-slim"

// DefaultPullTimeout bounds the attempt to pull the base image, so a
// machine without a registry falls back to debootstrap quickly.
const DefaultPullTimeout = 20 * time.Second

// DefaultTempDir is where debootstrap's root filesystem is made.
const DefaultTempDir = "/var/tmp"

// ErrPrerequisite is wrapped by errors about what the machine lacks
// (debootstrap, root, an apt archive to install from).
var ErrPrerequisite = errors.New("missing prerequisite")

// Options say how to build the images. The zero value builds the runtime
// images on DefaultBaseImage, else on a debootstrapped base, with the
// machine's apt archive.
type Options struct {
	// BaseImage is used when the engine has it or can pull it
	// (config images.baseImage). "" means DefaultBaseImage; "-" never
	// tries an image and always debootstraps.
	BaseImage string
	// Mirror and Suite override the archive found in the machine's apt
	// sources (config images.mirror, images.suite).
	Mirror string
	Suite  string
	// SystemPackages are extra Debian packages per runtime name.
	SystemPackages map[string][]string
	// Packages are the runtime's own packages (pip for python, npm for
	// node and bun) baked into its image, per runtime name (config
	// dependencies without the "system:" ones).
	Packages map[string][]string
	// Registries are where Packages and the bun and deno binaries come
	// from; empty fields are read from the machine (npm config, pip
	// config) when needed.
	Registries packages.Registries
	// Force rebuilds the runtime images even when up to date, without the
	// build cache. The debootstrapped base is still reused: it is keyed by
	// its recipe (Remove it to bootstrap it afresh).
	Force bool
	// PullTimeout bounds the pull of BaseImage (DefaultPullTimeout if 0).
	PullTimeout time.Duration
	// TempDir holds the debootstrap root filesystem (DefaultTempDir if
	// ""); it must allow exec and device files, which a hardened /tmp may
	// not.
	TempDir string
	// BuildNetwork is the network of build containers, which need the
	// archive. "" is Docker's default bridge, retried once with "host"
	// when apt cannot reach the archive from the bridge.
	BuildNetwork string
	// CADir holds the machine's own CA certificates (*.crt), which the
	// images trust as well, so that installs work behind a TLS-inspecting
	// proxy or with a registry under a private CA. "" means
	// DefaultCADir; "-" adds none.
	CADir string
	// Progress receives each step; nil discards them.
	Progress func(Progress)
}

// Builder builds isol8's runtime images with a Docker engine.
type Builder struct {
	cli *client.Client
}

// New connects to the Docker engine named by the environment (DOCKER_HOST,
// else the local socket). The connection is checked on first use.
func New() (*Builder, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Builder{cli: cli}, nil
}

// NewWithClient uses an existing Docker client; Close then closes it.
func NewWithClient(cli *client.Client) *Builder { return &Builder{cli: cli} }

// Close releases the connection to the engine.
func (b *Builder) Close() error { return b.cli.Close() }

// Result describes one runtime image after Build.
type Result struct {
	Runtime  string
	Tags     []string // isol8:<rt>, isol8:<rt>-<shorthash>
	ID       string
	Hash     string
	UpToDate bool // nothing had to be built
}

// EnsureRuntimeImages builds every runtime's image that is missing or
// stale; with images already up to date it only reads labels.
func (b *Builder) EnsureRuntimeImages(ctx context.Context, opts Options) error {
	_, err := b.ensure(ctx, runtime.Names(), opts)
	return err
}

// Build makes the image of one runtime when it is missing or stale (or
// opts.Force is set) and reports what it holds.
func (b *Builder) Build(ctx context.Context, rt string, opts Options) (Result, error) {
	res, err := b.ensure(ctx, []string{rt}, opts)
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// ensure builds the stale images among runtimes, sharing one base.
func (b *Builder) ensure(ctx context.Context, runtimes []string, opts Options) ([]Result, error) {
	for _, rt := range runtimes {
		if _, ok := runtimePackages[rt]; !ok {
			return nil, fmt.Errorf("runtime %q: no image recipe (have %s)", rt, strings.Join(slices.Sorted(maps.Keys(runtimePackages)), ", "))
		}
	}
	p := progressFunc(opts.Progress)
	if err := b.ping(ctx); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	plan, err := b.planBase(ctx, opts)
	if err != nil {
		return nil, err
	}
	recipes, results, todo, err := b.check(ctx, runtimes, plan, opts)
	if err != nil {
		return nil, err
	}
	if len(todo) > 0 {
		// Only now is the base needed: pull or bootstrap it. A pulled base
		// changes every hash, so check again.
		if plan, err = b.ensureBase(ctx, plan, opts); err != nil {
			return nil, err
		}
		if recipes, results, todo, err = b.check(ctx, runtimes, plan, opts); err != nil {
			return nil, err
		}
	}
	for _, i := range todo {
		if results[i], err = b.buildRuntime(ctx, recipes[i], plan, opts); err != nil {
			return nil, err
		}
	}
	for _, r := range results {
		if r.UpToDate {
			p(Progress{Runtime: r.Runtime, Stage: StageUpToDate, Message: r.Tags[0] + " is up to date (" + short(r.Hash) + ")"})
		}
	}
	return results, nil
}

// check computes each runtime's recipe and reports which need a build.
func (b *Builder) check(ctx context.Context, runtimes []string, plan basePlan, opts Options) ([]*recipe, []Result, []int, error) {
	recipes := make([]*recipe, len(runtimes))
	results := make([]Result, len(runtimes))
	var todo []int
	cas, err := localCAs(opts.CADir)
	if err != nil {
		return nil, nil, nil, err
	}
	for i, rt := range runtimes {
		bake, err := runtimeBake(rt, &opts)
		if err != nil {
			return nil, nil, nil, err
		}
		r, err := newRuntimeRecipe(rt, plan.ref, plan.key, plan.sources, opts.SystemPackages[rt], bake, cas)
		if err != nil {
			return nil, nil, nil, err
		}
		recipes[i] = r
		results[i] = Result{Runtime: rt, Tags: r.Tags(), Hash: r.Hash}
		img, err := b.cli.ImageInspect(ctx, r.Tags()[0])
		if err == nil && img.Config != nil && img.Config.Labels[LabelContentHash] == r.Hash && !opts.Force {
			results[i].ID, results[i].UpToDate = img.ID, true
			continue
		}
		if err != nil && !isNotFound(err) {
			return nil, nil, nil, fmt.Errorf("inspect image %s: %w", r.Tags()[0], err)
		}
		todo = append(todo, i)
	}
	return recipes, results, todo, nil
}

// DefaultCADir is where Debian keeps a machine's own CA certificates.
const DefaultCADir = "/usr/local/share/ca-certificates"

// caName is a certificate file update-ca-certificates picks up.
var caName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*\.crt$`)

// localCAs reads the *.crt files of dir (DefaultCADir for ""; none for
// "-"). A missing folder holds none.
func localCAs(dir string) (map[string][]byte, error) {
	if dir == "-" {
		return nil, nil
	}
	if dir == "" {
		dir = DefaultCADir
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local CA certificates: %w", err)
	}
	cas := map[string][]byte{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !caName.MatchString(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("local CA certificates: %w", err)
		}
		if !strings.Contains(string(data), "-----BEGIN CERTIFICATE-----") || strings.Contains(string(data), "PRIVATE KEY") {
			continue
		}
		cas[e.Name()] = data
	}
	return cas, nil
}

// runtimeBake is the build step baking opts.Packages into rt's image,
// with the registries it needs resolved (and kept in opts).
func runtimeBake(rt string, opts *Options) (packages.Bake, error) {
	list := opts.Packages[rt]
	if len(list) == 0 {
		return packages.Bake{}, nil
	}
	eco, err := packages.For(rt)
	if err != nil {
		return packages.Bake{}, err
	}
	specs, err := packages.ParseList(eco, "dependencies."+rt, list, false)
	if err != nil {
		return packages.Bake{}, err
	}
	if err := resolveRegistries(eco, &opts.Registries); err != nil {
		return packages.Bake{}, fmt.Errorf("dependencies.%s: %w", rt, err)
	}
	return packages.Bake{Packages: specs, Registries: opts.Registries}, nil
}

// resolveRegistries fills in the registry an ecosystem needs from the
// machine's settings when the options leave it empty.
func resolveRegistries(eco packages.Ecosystem, reg *packages.Registries) error {
	var err error
	switch {
	case eco == packages.Pip && reg.PipIndex == "":
		reg.PipIndex, err = packages.PipIndexURL("")
	case eco == packages.NPM && reg.NPM == "":
		reg.NPM, err = packages.NPMRegistry("")
	}
	return err
}

// archive returns the archive to install from: the options' override,
// else the one in the machine's apt sources.
func archive(opts Options) (*Archive, error) { return archiveFrom("/", opts) }

// archiveFrom is archive with the apt configuration under root.
func archiveFrom(root string, opts Options) (*Archive, error) {
	srcs, err := ReadAptSources(root)
	if err != nil {
		return nil, fmt.Errorf("read apt sources: %w", err)
	}
	a, err := PickArchive(srcs, releaseSuite)
	if err != nil && (opts.Mirror == "" || opts.Suite == "") {
		return nil, fmt.Errorf("%w: %w", ErrPrerequisite, err)
	}
	if opts.Mirror != "" {
		a.Mirror = strings.TrimRight(opts.Mirror, "/")
		a.Distro, a.Components = "debian", []string{"main"}
		if hasPathSegment(a.Mirror, "ubuntu") {
			a.Distro, a.Components = "ubuntu", []string{"main", "universe"}
		}
	}
	if opts.Suite != "" {
		a.Suite = opts.Suite
	}
	if !httpURL(a.Mirror) {
		return nil, fmt.Errorf("images.mirror: %q is not an http or https URL", a.Mirror)
	}
	if !releaseSuite(a.Suite) {
		return nil, fmt.Errorf("images.suite: %q is not a release debootstrap knows", a.Suite)
	}
	return &a, nil
}

// lock serialises builds on this machine, so two setups do not both run
// debootstrap.
func lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "isol8-image-build.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("build lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another image build: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// httpURL reports whether s is an absolute http or https URL (which also
// rules out spaces and newlines that would break sources.list).
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && !strings.ContainsAny(s, " \t")
}
