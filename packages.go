package isol8

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/packages"
	"github.com/isol8/isol8/runtime"
	"github.com/isol8/isol8/sandbox"
)

// maxInstallLog is how much of an installer's output is kept, to explain
// a failed install.
const maxInstallLog = 64 << 10

// checkPackages checks a request's installPackages for its runtime under
// the packages policy, before any sandbox exists: options, URLs, shell
// syntax and paths (unless packages.allowPaths) are refused with an
// invalid-argument error naming the entry, such as
// `installPackages[0]: "--index-url=http://evil.test" looks like an option`.
func (c *Config) checkPackages(req *Request) ([]packages.Spec, error) {
	if len(req.InstallPackages) == 0 {
		return nil, nil
	}
	if err := c.Packages.Validate(); err != nil {
		return nil, err
	}
	eco, err := packages.For(string(req.Runtime))
	if err != nil {
		return nil, invalid("installPackages", "%v", err)
	}
	specs := make([]packages.Spec, 0, len(req.InstallPackages))
	for i, s := range req.InstallPackages {
		spec, err := packages.Parse(eco, s, c.Packages.AllowPaths)
		if err != nil {
			return nil, invalid(fmt.Sprintf("installPackages[%d]", i), "%v", err)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// preparePackages is the package step of a run before its sandbox
// exists: it checks req.InstallPackages (nothing runs when a name is bad),
// picks the image (lim.Image: an image with the packages baked in, unless
// the run names one), and when they must be installed sets lim.Install
// and opens the network to the registry (lim's filters, allowances and
// ports) or refuses a run without network. For a persistent session
// whose sandbox exists, pass its image as lim.Image.
func (e *LocalEngine) preparePackages(ctx context.Context, req *Request, lim *Limits) error {
	specs, err := e.cfg.checkPackages(req)
	if err != nil || len(specs) == 0 {
		return err
	}
	img, install := packageImage(ctx, e.log, req.Runtime, lim.Image, specs)
	lim.Image = img
	if !install {
		return nil
	}
	if err := e.cfg.allowInstall(lim, req.Runtime); err != nil {
		return err
	}
	lim.Install = specs
	return nil
}

// packageRegistries resolves the registry an install for rt uses:
// packages.npmRegistry / packages.pipIndexUrl, else the machine's own
// settings. Debian installs use the image's apt sources and need none.
func (c *Config) packageRegistries(rt Runtime) (packages.Registries, error) {
	var reg packages.Registries
	var err error
	switch eco, _ := packages.For(string(rt)); eco {
	case packages.Pip:
		reg.PipIndex, err = packages.PipIndexURL(c.Packages.PipIndexURL)
	case packages.NPM:
		reg.NPM, err = packages.NPMRegistry(c.Packages.NPMRegistry)
	}
	if err != nil {
		return reg, fmt.Errorf("installPackages: %w: %w", ErrUnavailable, err)
	}
	return reg, nil
}

// PackageHosts returns the host patterns (anchored and escaped, as in
// network.whitelist) a run installing rt's packages must reach: the
// registry's host (the Debian mirror's for bash) and packages.extraHosts.
func (c *Config) PackageHosts(rt Runtime) ([]string, error) {
	u, err := c.registryURL(rt)
	if err != nil {
		return nil, err
	}
	return append([]string{regexp.QuoteMeta(strings.ToLower(u.Hostname()))}, c.Packages.ExtraHosts...), nil
}

// registryURL is where installs for rt go: the npm registry, the Python
// index or (bash) the Debian mirror of the images.
func (c *Config) registryURL(rt Runtime) (*url.URL, error) {
	eco, err := packages.For(string(rt))
	if err != nil {
		return nil, err
	}
	var registry string
	if eco == packages.Debian {
		registry, err = image.DebianMirror(image.Options{Mirror: c.Images.Mirror, Suite: c.Images.Suite})
		if err != nil {
			return nil, fmt.Errorf("installPackages: the Debian mirror: %w", err)
		}
	} else {
		reg, err := c.packageRegistries(rt)
		if err != nil {
			return nil, err
		}
		registry = reg.NPM + reg.PipIndex
	}
	return url.Parse(registry)
}

// allowInstall adjusts the limits of a run that installs packages, so
// that the installer can reach the registry: in filtered mode the
// registry's hosts join the allow lists (the config's and, when it has
// one, the request's), its port joins the proxy's, and the operator's
// packages.registryAddresses may be reached; host mode needs nothing;
// with no network nothing could be fetched, so the request is refused.
// Deny lists still apply.
func (c *Config) allowInstall(lim *Limits, rt Runtime) error {
	switch lim.Network {
	case NetworkHost:
		return nil
	case NetworkFiltered:
	default:
		return invalid("installPackages", "installing packages needs network \"filtered\" (the package registry is then allowed) or \"host\"; this run's network is %q (or bake the packages into an image with isol8 build)", lim.Network)
	}
	hosts, err := c.PackageHosts(rt)
	if err != nil {
		return err
	}
	private, err := c.Packages.registryPrefixes()
	if err != nil {
		return err
	}
	u, err := c.registryURL(rt)
	if err != nil {
		return err
	}
	lim.Filter.Whitelist = slices.Concat(lim.Filter.Whitelist, hosts)
	if f := lim.OptionFilter; f != nil && len(f.Whitelist) > 0 {
		lim.OptionFilter = &NetworkFilter{Whitelist: slices.Concat(f.Whitelist, hosts), Blacklist: f.Blacklist}
	}
	lim.AllowPrivate = slices.Concat(lim.AllowPrivate, private)
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil && p != 80 && p != 443 {
		lim.ExtraPorts = append(slices.Clone(lim.ExtraPorts), uint16(p))
	}
	return nil
}

// packageImage picks the image of a run that asks for packages. An image
// the run names itself (explicit, from options.image) is kept; it needs
// no install when its labels list every package. Otherwise a local image
// of the runtime with exactly these packages baked in, else the smallest
// superset, replaces the runtime's default image. It returns the image to
// use ("" keeps the default) and whether the packages must still be
// installed. When the image store cannot be asked, the packages are
// installed.
func packageImage(ctx context.Context, log *slog.Logger, rt Runtime, explicit string, specs []packages.Spec) (string, bool) {
	if len(specs) == 0 {
		return explicit, false
	}
	b, err := image.New()
	if err != nil {
		return explicit, true
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	keys := packages.Keys(specs)
	if explicit != "" {
		ok, err := b.ImageHasPackages(ctx, explicit, string(rt), keys)
		if err != nil && log != nil {
			log.Info("image package labels unreadable", "image", explicit, "err", err)
		}
		return explicit, !ok
	}
	m, ok, err := b.FindPackages(ctx, string(rt), keys)
	if err != nil || !ok {
		if err != nil && log != nil {
			log.Info("no image lookup for packages", "err", err)
		}
		return "", true
	}
	if log != nil {
		log.Debug("packages baked into an image", "image", m.Ref, "exact", m.Exact, "packages", keys)
	}
	return m.Ref, false
}

// installPackages installs specs into sb as the sandbox user, under
// /sandbox, through the sandbox's own network (the egress proxy in
// filtered mode), within packages.timeoutMs. proxyEnv carries the proxy
// settings (HTTP_PROXY=…); the request's env and secrets are not given to
// installers. The installer's output is kept (bounded) and written to
// stderr only when the install fails. A non-zero status (137 with
// timedOut after the timeout, when the sandbox should be destroyed) means
// the run must stop there, as after a failed setupScript.
func (c *Config) installPackages(ctx context.Context, sb sandbox.Sandbox, rt Runtime, specs []packages.Spec, proxyEnv []string, stderr io.Writer) (st sandbox.ExitStatus, timedOut bool, err error) {
	reg, err := c.packageRegistries(rt)
	if err != nil {
		return st, false, err
	}
	cmd, err := packages.RuntimeCommand(string(rt), specs, reg)
	if err != nil {
		return st, false, invalid("installPackages", "%v", err)
	}
	env := slices.Concat(baseEnv, adapterEnv(rt), proxyEnv, cmd.Env)
	ictx, cancel := context.WithTimeout(ctx, c.Packages.installTimeout())
	defer cancel()
	log := &tailBuffer{max: maxInstallLog}
	start := time.Now()
	st, err = sb.Exec(ictx, sandbox.ExecSpec{Argv: cmd.Argv, Env: env, Dir: sandbox.SandboxDir,
		Stdin: eofReader{}, Stdout: log, Stderr: log})
	switch {
	case ctx.Err() != nil:
		return st, false, ctx.Err()
	case ictx.Err() != nil:
		fmt.Fprintf(stderr, "%s\nisol8: installing packages timed out after %s (packages.timeoutMs)\n", log.String(), c.Packages.installTimeout())
		return sandbox.ExitStatus{Code: 137}, true, nil
	case err != nil:
		return st, false, fmt.Errorf("installing packages: %w", classify(err))
	case st.Code != 0:
		fmt.Fprintf(stderr, "%s\nisol8: installing %v failed (exit code %d after %s)\n", log.String(), packages.Keys(specs), st.Code, time.Since(start).Round(time.Millisecond))
	}
	return st, false, nil
}

// packageEnv adds the runtime's own variables (runtime.Adapter.Env) to a
// run's environment and, when packages were installed in the sandbox,
// lets the program find them (PATH and LD_LIBRARY_PATH for bash; the
// other runtimes find theirs without help).
func packageEnv(rt Runtime, env []string, installed bool) []string {
	env = slices.Concat(env, adapterEnv(rt))
	if !installed {
		return env
	}
	return packages.Env(string(rt), env)
}

func adapterEnv(rt Runtime) []string {
	if a, err := runtime.Get(string(rt)); err == nil {
		return a.Env
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it; stdout and stderr
// may write at once.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// eofReader is an empty standard input.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// CheckPackages checks a request's installPackages as the engine will
// (checkPackages), so a front end can refuse bad names before anything
// runs.
func (c *Config) CheckPackages(req *Request) error {
	_, err := c.checkPackages(req)
	return err
}
