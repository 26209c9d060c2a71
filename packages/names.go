package packages

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Ecosystem is where a package comes from.
type Ecosystem string

// The ecosystems.
const (
	Pip    Ecosystem = "pip"    // python
	NPM    Ecosystem = "npm"    // node, bun, deno
	Debian Ecosystem = "debian" // bash, and system packages of any runtime
)

// MaxNameLen bounds a package argument.
const MaxNameLen = 214

// shellChars appear in no package name or version of any ecosystem ("!"
// only in pip's "!=" and epochs).
const shellChars = ";|&$`'\"\\(){}#%?\n"

// SystemPrefix marks a Debian package in a list of a runtime's packages
// (config dependencies and prebuiltImages): "system:python3-pandas".
const SystemPrefix = "system:"

// For returns the ecosystem of a runtime's own packages.
func For(runtime string) (Ecosystem, error) {
	switch runtime {
	case "python":
		return Pip, nil
	case "node", "bun", "deno":
		return NPM, nil
	case "bash":
		return Debian, nil
	}
	return "", fmt.Errorf("no package ecosystem for runtime %q", runtime)
}

// Spec is one checked package argument.
type Spec struct {
	Ecosystem Ecosystem
	// Name is the package name (pip: normalised as PEP 503 says); for a
	// path, the path.
	Name string
	// Extras are pip extras, sorted ("security" of "requests[security]").
	Extras []string
	// Version is the version constraint as written ("==2.1", "^4.17.0",
	// "1.6-2"), without the separator npm and Debian use; "" for none.
	Version string
	// Path is set when the argument is a file inside /sandbox
	// (packages.allowPaths).
	Path bool
	// Raw is the argument as given; it is what the installer receives.
	Raw string
}

// Key is the canonical form of a spec, used in image labels and to match
// a request's packages against an image's: "pandas", "requests[security]==2.31",
// "lodash@^4", "jq=1.6-2.1".
func (s Spec) Key() string {
	if s.Path {
		return s.Name
	}
	k := s.Name
	if len(s.Extras) > 0 {
		k += "[" + strings.Join(s.Extras, ",") + "]"
	}
	if s.Version == "" {
		return k
	}
	switch s.Ecosystem {
	case NPM:
		return k + "@" + s.Version
	case Debian:
		return k + "=" + s.Version
	}
	return k + s.Version
}

var (
	// PEP 508 names, case-insensitive.
	pipName = regexp.MustCompile(`^(?i:[a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9])$`)
	// One PEP 440 clause: an operator and a version (with wildcards for
	// == and !=); several are separated by commas.
	pipClause   = regexp.MustCompile(`^(===|==|!=|~=|>=|<=|>|<)[A-Za-z0-9][A-Za-z0-9.*+!_-]*$`)
	pipNormRE   = regexp.MustCompile(`[-_.]+`)
	npmName     = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._~-]*/)?[A-Za-z0-9][A-Za-z0-9._~-]*$`)
	npmVersion  = regexp.MustCompile(`^[A-Za-z0-9^~<>=*.][A-Za-z0-9^~<>=*.+_-]*$`)
	debName     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debVersion  = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~:-]*$`)
	pathElement = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+@-]*$`)
)

// Parse checks one package argument of an ecosystem. Options ("-x",
// "--index-url=…"), URLs, shell syntax and paths are refused; with
// allowPaths, an absolute clean path inside /sandbox is accepted as a
// local package file. The error says what is wrong, without the field
// name (the caller adds it).
func Parse(eco Ecosystem, s string, allowPaths bool) (Spec, error) {
	switch {
	case s == "":
		return Spec{}, fmt.Errorf("empty package name")
	case len(s) > MaxNameLen:
		return Spec{}, fmt.Errorf("longer than %d bytes", MaxNameLen)
	case strings.HasPrefix(s, "-"):
		return Spec{}, fmt.Errorf("%q looks like an option; only package names are accepted", s)
	case strings.Contains(s, "://") || strings.HasPrefix(strings.ToLower(s), "git+") || strings.Contains(s, " @ "):
		return Spec{}, fmt.Errorf("%q is a URL; only package names from the configured registry are accepted", s)
	case strings.ContainsAny(s, shellChars) || (eco != Pip && strings.Contains(s, "!")):
		return Spec{}, fmt.Errorf("%q contains shell or URL syntax, which no package name has", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r > '~' }):
		return Spec{}, fmt.Errorf("%q contains spaces, control or non-ASCII characters", s)
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "~") || strings.Contains(s, "..") ||
		(strings.Contains(s, "/") && !(eco == NPM && strings.HasPrefix(s, "@"))) {
		if !allowPaths {
			return Spec{}, fmt.Errorf("%q is a path; paths are refused (an operator can allow files inside /sandbox with packages.allowPaths)", s)
		}
		return parsePath(eco, s)
	}
	switch eco {
	case Pip:
		return parsePip(s)
	case NPM:
		return parseNPM(s)
	case Debian:
		return parseDebian(s)
	}
	return Spec{}, fmt.Errorf("unknown ecosystem %q", eco)
}

func parsePath(eco Ecosystem, s string) (Spec, error) {
	if !strings.HasPrefix(s, "/sandbox/") || path.Clean(s) != s {
		return Spec{}, fmt.Errorf("%q: a package path must be absolute, clean and inside /sandbox", s)
	}
	for _, el := range strings.Split(strings.TrimPrefix(s, "/sandbox/"), "/") {
		if !pathElement.MatchString(el) {
			return Spec{}, fmt.Errorf("%q: path element %q is not allowed in a package path", s, el)
		}
	}
	return Spec{Ecosystem: eco, Name: s, Path: true, Raw: s}, nil
}

func parsePip(s string) (Spec, error) {
	name, rest := s, ""
	if i := strings.IndexAny(s, "[=!~<>"); i >= 0 {
		name, rest = s[:i], s[i:]
	}
	if !pipName.MatchString(name) {
		return Spec{}, fmt.Errorf("%q is not a Python package name (letters, digits, '.', '_' and '-', starting and ending with a letter or digit)", s)
	}
	spec := Spec{Ecosystem: Pip, Name: NormalizePip(name), Raw: s}
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return Spec{}, fmt.Errorf("%q: unclosed extras bracket", s)
		}
		for _, e := range strings.Split(rest[1:end], ",") {
			if !pipName.MatchString(e) {
				return Spec{}, fmt.Errorf("%q: %q is not an extra's name", s, e)
			}
			spec.Extras = append(spec.Extras, NormalizePip(e))
		}
		sort.Strings(spec.Extras)
		spec.Extras = slices.Compact(spec.Extras)
		rest = rest[end+1:]
	}
	if rest != "" {
		for _, c := range strings.Split(rest, ",") {
			if !pipClause.MatchString(c) {
				return Spec{}, fmt.Errorf("%q: %q is not a version constraint such as ==2.1 or >=1,<2", s, c)
			}
		}
		spec.Version = rest
	}
	return spec, nil
}

func parseNPM(s string) (Spec, error) {
	name, version := s, ""
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		name, version = s[:i], s[i+1:]
		if version == "" {
			return Spec{}, fmt.Errorf("%q: empty version after '@'", s)
		}
	}
	if !npmName.MatchString(name) || len(name) > MaxNameLen {
		return Spec{}, fmt.Errorf("%q is not an npm package name (optionally @scope/name, then @version)", s)
	}
	if version != "" && !npmVersion.MatchString(version) {
		return Spec{}, fmt.Errorf("%q: %q is not a version, range or tag", s, version)
	}
	return Spec{Ecosystem: NPM, Name: name, Version: version, Raw: s}, nil
}

func parseDebian(s string) (Spec, error) {
	name, version, _ := strings.Cut(s, "=")
	if !debName.MatchString(name) {
		return Spec{}, fmt.Errorf("%q is not a Debian package name (lower-case letters, digits, '+', '-' and '.')", s)
	}
	if strings.Contains(s, "=") && !debVersion.MatchString(version) {
		return Spec{}, fmt.Errorf("%q: %q is not a Debian version", s, version)
	}
	return Spec{Ecosystem: Debian, Name: name, Version: version, Raw: s}, nil
}

// NormalizePip is a Python package name as PEP 503 compares them.
func NormalizePip(name string) string {
	return pipNormRE.ReplaceAllString(strings.ToLower(name), "-")
}

// ParseList checks a list of package arguments. field names the list in
// errors: `installPackages[1]: "x; rm -rf /" contains shell …`.
func ParseList(eco Ecosystem, field string, list []string, allowPaths bool) ([]Spec, error) {
	out := make([]Spec, 0, len(list))
	for i, s := range list {
		spec, err := Parse(eco, s, allowPaths)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, spec)
	}
	return out, nil
}

// SplitSystem separates "system:NAME" entries (Debian packages) from a
// runtime's own packages in a config list, checking both.
func SplitSystem(runtime, field string, list []string) (own, system []Spec, err error) {
	eco, err := For(runtime)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", field, err)
	}
	for i, s := range list {
		e, raw := eco, s
		if rest, ok := strings.CutPrefix(s, SystemPrefix); ok {
			e, raw = Debian, rest
		}
		spec, err := Parse(e, raw, false)
		if err != nil {
			return nil, nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		if e == Debian {
			system = append(system, spec)
		} else {
			own = append(own, spec)
		}
	}
	return own, system, nil
}

// Keys returns the sorted, deduplicated keys of specs.
func Keys(specs []Spec) []string {
	keys := make([]string, 0, len(specs))
	for _, s := range specs {
		keys = append(keys, s.Key())
	}
	sort.Strings(keys)
	return slices.Compact(keys)
}

// Provides returns what a Debian package baked into a runtime's image
// provides to that runtime's own ecosystem: python3-NAME gives the Python
// package NAME, so an image with python3-pandas satisfies
// installPackages ["pandas"]. ok is false when it provides nothing known.
func Provides(runtime string, debian Spec) (string, bool) {
	if runtime != "python" || debian.Version != "" {
		return "", false
	}
	name, ok := strings.CutPrefix(debian.Name, "python3-")
	if !ok || name == "" || !pipName.MatchString(name) {
		return "", false
	}
	return NormalizePip(name), true
}
