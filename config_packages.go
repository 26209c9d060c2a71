package isol8

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/packages"
)

// PackagesConfig is the config's "packages" section: where installs at
// run time and image builds get packages. Empty registries are read from
// the machine (npm config get registry; PIP_INDEX_URL or pip's config;
// the apt sources, or images.mirror, for Debian).
type PackagesConfig struct {
	// NPMRegistry is the npm registry for node, bun and deno.
	NPMRegistry string `json:"npmRegistry"`
	// PipIndexURL is the Python package index (PEP 503 simple URL).
	PipIndexURL string `json:"pipIndexUrl"`
	// AllowPaths lets installPackages name package files inside /sandbox
	// (a wheel or tarball sent in files); off, every path is refused.
	AllowPaths bool `json:"allowPaths"`
	// ExtraHosts are host patterns (as in network.whitelist) an
	// installing run may reach besides the registry, for an index that
	// serves its files from another host.
	ExtraHosts []string `json:"extraHosts"`
	// RegistryAddresses are addresses or CIDR ranges (such as
	// "10.20.0.0/16") the registries may resolve to although they are not
	// public: a mirror on the company network. An installing run's egress
	// proxy may reach them; every other non-public address stays refused.
	RegistryAddresses []string `json:"registryAddresses"`
	// TimeoutMs bounds the install step of a run (default 300000); the
	// run's own timeoutMs starts after it.
	TimeoutMs int64 `json:"timeoutMs"`
}

// defaultInstallTimeout bounds an install when packages.timeoutMs is 0.
const defaultInstallTimeout = 5 * time.Minute

// Validate checks the section and names the bad key (the config loader's
// Validate calls it).
func (p *PackagesConfig) Validate() error {
	if p.NPMRegistry != "" {
		if _, err := packages.CheckURL("", p.NPMRegistry); err != nil {
			return invalid("packages.npmRegistry", "%v", err)
		}
	}
	if p.PipIndexURL != "" {
		if _, err := packages.CheckURL("", p.PipIndexURL); err != nil {
			return invalid("packages.pipIndexUrl", "%v", err)
		}
	}
	for i, h := range p.ExtraHosts {
		if _, err := regexp.Compile(h); err != nil || h == "" {
			return invalid(fmt.Sprintf("packages.extraHosts[%d]", i), "not a valid host pattern: %q", h)
		}
	}
	if _, err := p.registryPrefixes(); err != nil {
		return err
	}
	if p.TimeoutMs < 0 {
		return invalid("packages.timeoutMs", "must not be negative, got %d", p.TimeoutMs)
	}
	return nil
}

// registryPrefixes parses packages.registryAddresses.
func (p *PackagesConfig) registryPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(p.RegistryAddresses))
	for i, s := range p.RegistryAddresses {
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, invalid(fmt.Sprintf("packages.registryAddresses[%d]", i), "%q is not an address or a CIDR range", s)
			}
			pr = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, pr.Masked())
	}
	return out, nil
}

// installTimeout is the bound on one run's install step.
func (p *PackagesConfig) installTimeout() time.Duration {
	if p.TimeoutMs > 0 {
		return time.Duration(p.TimeoutMs) * time.Millisecond
	}
	return defaultInstallTimeout
}

// ApplyDependencies puts the config's dependencies and packages sections
// into image build options: "system:NAME" entries (and every bash entry)
// become opts.SystemPackages, the rest opts.Packages (pip for python, npm
// for node and bun), baked into the runtime images by isol8 setup; the
// configured registries go to opts.Registries.
func (c *Config) ApplyDependencies(opts *image.Options) error {
	if err := c.Packages.Validate(); err != nil {
		return err
	}
	opts.Registries = packages.Registries{NPM: trimSlash(c.Packages.NPMRegistry), PipIndex: trimSlash(c.Packages.PipIndexURL)}
	for rt, list := range c.Dependencies {
		own, system, err := packages.SplitSystem(rt, "dependencies."+rt, list)
		if err != nil {
			return invalid("dependencies."+rt, "%v", err)
		}
		if len(system) > 0 && opts.SystemPackages == nil {
			opts.SystemPackages = map[string][]string{}
		}
		for _, s := range system {
			opts.SystemPackages[rt] = append(opts.SystemPackages[rt], s.Raw)
		}
		if len(own) > 0 && opts.Packages == nil {
			opts.Packages = map[string][]string{}
		}
		for _, s := range own {
			opts.Packages[rt] = append(opts.Packages[rt], s.Raw)
		}
	}
	return nil
}

// PrebuiltImage returns the custom image of prebuiltImages[i], its
// installPackages split into the runtime's own and "system:" ones.
func (c *Config) PrebuiltImage(i int) (image.Custom, error) {
	p := c.PrebuiltImages[i]
	field := fmt.Sprintf("prebuiltImages[%d].installPackages", i)
	own, system, err := packages.SplitSystem(p.Runtime, field, p.InstallPackages)
	if err != nil {
		return image.Custom{}, invalid(field, "%v", err)
	}
	img := image.Custom{Tag: p.Tag, Runtime: p.Runtime}
	for _, s := range own {
		img.Packages = append(img.Packages, s.Raw)
	}
	for _, s := range system {
		img.System = append(img.System, s.Raw)
	}
	if p.SetupScript != "" {
		img.Setup = []string{p.SetupScript}
	}
	return img, nil
}

func trimSlash(s string) string { return strings.TrimRight(s, "/") }
