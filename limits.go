package isol8

import (
	"maps"
	"net/netip"
	"time"

	"github.com/isol8/isol8/packages"
)

// Limits are the effective settings of one run, after layering and
// clamping. Resolve is the one place they are computed.
type Limits struct {
	Mode           Mode
	Network        NetworkMode
	Filter         NetworkFilter  // the config's network.whitelist/blacklist
	OptionFilter   *NetworkFilter // the options' networkFilter, intersected with Filter
	LogNetwork     bool
	Timeout        time.Duration
	MemoryBytes    int64
	CPUs           float64
	Pids           int64
	SandboxBytes   int64
	TmpBytes       int64
	MaxOutput      int64
	ReadonlyRootFS bool
	Secrets        map[string]string
	Image          string
	Seccomp        SecurityOptions
	Backend        string
	// AllowPrivate are non-public address ranges the run's egress proxy
	// may reach, and ExtraPorts ports besides 80 and 443: set only from
	// the operator's config (a package registry on the company network,
	// packages.registryAddresses, for a run that installs packages),
	// never from a request.
	AllowPrivate []netip.Prefix
	ExtraPorts   []uint16
	// Install are the packages the run installs in its sandbox before its
	// setupScript: its installPackages, unless an image has them baked in
	// (preparePackages).
	Install []packages.Spec
}

// Resolve computes the effective limits of a run: the request's timeout
// over the engine options over the config's defaults over the built-in
// defaults, each clamped to the config's maxima. Values are assumed
// validated (validateOptions); a bad size falls back to the default.
func (c *Config) Resolve(engine Options, req *Request) Limits {
	base := DefaultConfig().Defaults
	layers := []*Options{&base, &c.Defaults, &engine}
	var o Options
	for _, l := range layers {
		overlay(&o, l)
	}
	if req != nil && req.TimeoutMs > 0 {
		o.TimeoutMs = req.TimeoutMs
	}
	max := c.Maxima
	lim := Limits{
		Mode:           o.Mode,
		Network:        o.Network,
		LogNetwork:     o.LogNetwork != nil && *o.LogNetwork,
		Timeout:        time.Duration(min(o.TimeoutMs, max.TimeoutMs)) * time.Millisecond,
		CPUs:           min(o.CPULimit, max.CPULimit),
		Pids:           min(o.PidsLimit, max.PidsLimit),
		MaxOutput:      min(o.MaxOutputSize, max.MaxOutputSize),
		ReadonlyRootFS: o.ReadonlyRootFs == nil || *o.ReadonlyRootFs,
		Secrets:        o.Secrets,
		Image:          o.Image,
		Backend:        o.Backend,
	}
	lim.MemoryBytes = clampSize(o.MemoryLimit, base.MemoryLimit, max.MemoryLimit)
	lim.SandboxBytes = clampSize(o.SandboxSize, base.SandboxSize, max.SandboxSize)
	lim.TmpBytes = clampSize(o.TmpSize, base.TmpSize, max.TmpSize)
	if o.Security != nil {
		lim.Seccomp = *o.Security
	}
	if lim.Seccomp.Seccomp == "" {
		lim.Seccomp = c.Security
	}
	// The config's lists and the options' lists stay apart: a host must
	// pass both allow lists, and either deny list blocks it, so options
	// can only tighten what the config allows.
	lim.Filter = c.Network
	if o.NetworkFilter != nil {
		lim.OptionFilter = o.NetworkFilter
	}
	return lim
}

func clampSize(v, fallback, max string) int64 {
	n, err := ParseSize(v)
	if err != nil {
		n, _ = ParseSize(fallback)
	}
	if m, err := ParseSize(max); err == nil && n > m {
		n = m
	}
	return n
}

// overlay copies the fields set in src over dst.
func overlay(dst, src *Options) {
	if src.Mode != "" {
		dst.Mode = src.Mode
	}
	if src.Network != "" {
		dst.Network = src.Network
	}
	if src.NetworkFilter != nil {
		dst.NetworkFilter = src.NetworkFilter
	}
	if src.LogNetwork != nil {
		dst.LogNetwork = src.LogNetwork
	}
	if src.TimeoutMs > 0 {
		dst.TimeoutMs = src.TimeoutMs
	}
	if src.MemoryLimit != "" {
		dst.MemoryLimit = src.MemoryLimit
	}
	if src.CPULimit > 0 {
		dst.CPULimit = src.CPULimit
	}
	if src.PidsLimit > 0 {
		dst.PidsLimit = src.PidsLimit
	}
	if src.SandboxSize != "" {
		dst.SandboxSize = src.SandboxSize
	}
	if src.TmpSize != "" {
		dst.TmpSize = src.TmpSize
	}
	if src.MaxOutputSize > 0 {
		dst.MaxOutputSize = src.MaxOutputSize
	}
	if src.ReadonlyRootFs != nil {
		dst.ReadonlyRootFs = src.ReadonlyRootFs
	}
	if len(src.Secrets) > 0 {
		m := maps.Clone(dst.Secrets)
		if m == nil {
			m = map[string]string{}
		}
		maps.Copy(m, src.Secrets)
		dst.Secrets = m
	}
	if src.Image != "" {
		dst.Image = src.Image
	}
	if src.Security != nil {
		dst.Security = src.Security
	}
	if src.PoolStrategy != "" {
		dst.PoolStrategy = src.PoolStrategy
	}
	if src.PoolSize != nil {
		dst.PoolSize = src.PoolSize
	}
	if src.MaxConcurrent > 0 {
		dst.MaxConcurrent = src.MaxConcurrent
	}
	if src.Backend != "" {
		dst.Backend = src.Backend
	}
}
