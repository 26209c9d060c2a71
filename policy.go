package isol8

import (
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/isol8/isol8/runtime"
)

// Limits on a client's network filter, so a request cannot make the egress
// proxy compile thousands of huge patterns.
const (
	maxFilterPatterns   = 100
	maxFilterPatternLen = 1024
)

// Tighten turns a client's options (the "options" of an HTTP request) into
// the engine options the server runs that request with, under the server's
// config c. The result is meant for EngineConfig.Options with
// EngineConfig.Config = c, so that fields the client left unset fall back to
// c.Defaults. A client can only tighten the server's policy, never loosen
// it. The rule for each field:
//
//   - timeoutMs, memoryLimit, cpuLimit, pidsLimit, sandboxSize, tmpSize,
//     maxOutputSize: any value up to c.Maxima is kept; a larger one is
//     clamped to the maximum (the same rule Resolve applies to a request's
//     timeoutMs), never refused. Negative, NaN or malformed values are
//     invalid (HTTP 400).
//   - network: none < filtered < host; the server's defaults.network is the
//     loosest a request may ask for. Anything looser is refused (403).
//   - networkFilter: a host must pass the server's allow lists and the
//     request's, and any deny list blocks it. The config's network lists
//     stay apart from the options' (Resolve), so the request's lists are
//     combined only with defaults.networkFilter, which they would replace:
//     deny lists are joined, and an allow list is kept from whichever side
//     has one; when both have one, the request is refused (403), as one
//     list cannot hold the intersection of two. Patterns must compile (400).
//   - readonlyRootFs: false is refused (403) unless the server's default is
//     already false.
//   - image: only the runtimes' default images, the server's
//     defaults.image and the prebuiltImages tags are allowed (403).
//   - security: a request cannot change seccomp; a value equal to the
//     server's setting is accepted (and dropped), any other is refused (403).
//   - backend: a request cannot switch backends; the server's own backend
//     is accepted (and dropped), any other is refused (403).
//   - poolStrategy: "secure" is kept (it only tightens); "fast" leaves the
//     server's strategy in place.
//   - poolSize, maxConcurrent: server-wide resources; a request's values
//     are ignored.
//   - mode, logNetwork, secrets: kept as given (validated).
//
// Errors are *FieldError naming the field as "options.<name>", of class
// ErrInvalidArgument or ErrPermission.
func (c *Config) Tighten(client Options) (Options, error) {
	if err := validateOptions(&client, "options."); err != nil {
		return Options{}, err
	}
	server := c.Resolve(Options{}, nil)
	out := Options{
		Mode:       client.Mode,
		LogNetwork: client.LogNetwork,
		Secrets:    maps.Clone(client.Secrets),
	}

	if client.Network != "" {
		if networkRank(client.Network) > networkRank(server.Network) {
			return Options{}, forbidden("options.network", "%q is looser than this server allows (at most %q)", client.Network, server.Network)
		}
		out.Network = client.Network
	}
	if f := client.NetworkFilter; f != nil {
		if err := checkPatterns("options.networkFilter.whitelist", f.Whitelist); err != nil {
			return Options{}, err
		}
		if err := checkPatterns("options.networkFilter.blacklist", f.Blacklist); err != nil {
			return Options{}, err
		}
		combined := &NetworkFilter{Whitelist: slices.Clone(f.Whitelist), Blacklist: slices.Clone(f.Blacklist)}
		if d := c.Defaults.NetworkFilter; d != nil {
			if len(d.Whitelist) > 0 && len(f.Whitelist) > 0 {
				return Options{}, forbidden("options.networkFilter.whitelist", "this server's defaults.networkFilter has an allow list; a request cannot add another")
			}
			if len(combined.Whitelist) == 0 {
				combined.Whitelist = slices.Clone(d.Whitelist)
			}
			combined.Blacklist = append(slices.Clone(d.Blacklist), combined.Blacklist...)
		}
		out.NetworkFilter = combined
	}

	m := c.Maxima
	out.TimeoutMs = min(client.TimeoutMs, m.TimeoutMs)
	out.CPULimit = min(client.CPULimit, m.CPULimit)
	out.PidsLimit = min(client.PidsLimit, m.PidsLimit)
	out.MaxOutputSize = min(client.MaxOutputSize, m.MaxOutputSize)
	out.MemoryLimit = clampSizeString(client.MemoryLimit, m.MemoryLimit)
	out.SandboxSize = clampSizeString(client.SandboxSize, m.SandboxSize)
	out.TmpSize = clampSizeString(client.TmpSize, m.TmpSize)

	if r := client.ReadonlyRootFs; r != nil {
		if !*r && server.ReadonlyRootFS {
			return Options{}, forbidden("options.readonlyRootFs", "a request cannot make the root filesystem writable")
		}
		out.ReadonlyRootFs = ptr(*r)
	}
	if client.Image != "" {
		if !c.imageAllowed(client.Image) {
			return Options{}, forbidden("options.image", "%q is not one of this server's images (the runtime images and prebuiltImages)", client.Image)
		}
		out.Image = client.Image
	}
	if s := client.Security; s != nil && *s != (SecurityOptions{}) && *s != server.Seccomp {
		return Options{}, forbidden("options.security", "a request cannot change the seccomp profile")
	}
	if client.Backend != "" && client.Backend != server.Backend {
		return Options{}, forbidden("options.backend", "a request cannot switch the backend (this server uses %q)", server.Backend)
	}
	if client.PoolStrategy == "secure" {
		out.PoolStrategy = "secure"
	}
	return out, nil
}

// networkRank orders network modes from tightest to loosest.
func networkRank(n NetworkMode) int {
	switch n {
	case NetworkNone:
		return 0
	case NetworkFiltered:
		return 1
	}
	return 2
}

func checkPatterns(field string, patterns []string) error {
	if len(patterns) > maxFilterPatterns {
		return invalid(field, "more than %d patterns", maxFilterPatterns)
	}
	for i, p := range patterns {
		f := fmt.Sprintf("%s[%d]", field, i)
		if p == "" || len(p) > maxFilterPatternLen {
			return invalid(f, "a pattern must be 1 to %d bytes long", maxFilterPatternLen)
		}
		if _, err := regexp.Compile(p); err != nil {
			return invalid(f, "not a valid regular expression: %v", err)
		}
	}
	return nil
}

// clampSizeString returns v, or max when v is larger; v is already
// validated, and "" stays "".
func clampSizeString(v, max string) string {
	if v == "" {
		return ""
	}
	n, _ := ParseSize(v)
	if m, err := ParseSize(max); err == nil && n > m {
		return max
	}
	return v
}

// imageAllowed reports whether a request may name image: the runtimes'
// default images, the configured default image and the prebuilt images.
func (c *Config) imageAllowed(image string) bool {
	if image == c.Defaults.Image {
		return true
	}
	for _, name := range runtime.Names() {
		if rt, err := runtime.Get(name); err == nil && rt.Image == image {
			return true
		}
	}
	for _, p := range c.PrebuiltImages {
		if p.Tag == image {
			return true
		}
	}
	return false
}
