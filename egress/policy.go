package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
)

// Bounds on a policy, so that a request cannot make matching expensive.
const (
	maxPatterns   = 1000
	maxPatternLen = 1024
	maxAddrs      = 64
)

// Resolver looks up the addresses of a host. *net.Resolver implements it;
// tests use a stand-in that maps names such as allowed.test to 127.0.0.x.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Policy says where a sandbox may connect. Allow and Deny are regular
// expressions (Go syntax) matched, case-insensitively and as a whole,
// against the canonical host (see CanonicalHost): "allowed\.test" behaves
// as "^(?:allowed\.test)$", and a pattern written with ^ and $ works too.
// A host must match Allow and no Deny pattern; deny wins, and an empty
// Allow allows nothing.
//
// Whatever the patterns say, a host is refused when any of its addresses
// is loopback, private, link-local (cloud metadata), CGNAT, multicast,
// reserved or otherwise not public unicast, unless that address is inside
// AllowPrivate. An IP literal as host must match Allow like a name and
// passes the same address check.
type Policy struct {
	Allow []string
	Deny  []string
	// AllowPrivate lists address ranges that may be reached although they
	// are not public. Only operators (and tests) set it; a request never can.
	AllowPrivate []netip.Prefix
	// Resolver resolves names; nil means net.DefaultResolver.
	Resolver Resolver

	// also holds the allow lists of the policies this one was intersected
	// with: a host must match one pattern of every list.
	also [][]string
	// noPrivate records that an intersection left no private allowance
	// although both sides had one, so that a later Intersect cannot
	// mistake the empty AllowPrivate for "no opinion".
	noPrivate bool
}

// Intersect returns the policy that allows only what both p and q allow:
// a host must pass both allow lists and is blocked by either deny list.
// It is how a request's filter tightens the server's (contract §2).
//
// AllowPrivate of the result is the address space inside both when both
// have some, else that of the side that has some: a request-derived
// policy never carries private allowances, and it still controls which
// hosts are reached through its allow list. The Resolver is p's, or q's
// when p has none. Note that intersecting with an empty allow list
// allows nothing; a request that names no allowed hosts should not be
// intersected at all.
func (p Policy) Intersect(q Policy) Policy {
	r := Policy{
		Allow:    slices.Clone(p.Allow),
		Deny:     slices.Concat(p.Deny, q.Deny),
		Resolver: p.Resolver,
		also:     slices.Concat(p.also, [][]string{slices.Clone(q.Allow)}, q.also),
	}
	if r.Resolver == nil {
		r.Resolver = q.Resolver
	}
	pa, qa := normPrefixes(p.AllowPrivate), normPrefixes(q.AllowPrivate)
	switch {
	case p.noPrivate || q.noPrivate:
		r.noPrivate = true
	case len(pa) > 0 && len(qa) > 0:
		r.AllowPrivate = intersectPrefixes(pa, qa)
		r.noPrivate = len(r.AllowPrivate) == 0
	case len(pa) > 0:
		r.AllowPrivate = pa
	default:
		r.AllowPrivate = qa
	}
	return r
}

func normPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if n, err := normPrefix(p); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// Matcher is a compiled Policy. It is safe for concurrent use.
type Matcher struct {
	allow        [][]pattern // every group must have a match
	deny         []pattern
	allowPrivate []netip.Prefix
	resolver     Resolver
}

type pattern struct {
	src string
	re  *regexp.Regexp
}

// Compile checks and compiles a policy. An error names the bad pattern by
// list and index, such as `allow[2] "(": missing closing )`.
func Compile(p Policy) (*Matcher, error) {
	m := &Matcher{resolver: p.Resolver}
	if m.resolver == nil {
		m.resolver = net.DefaultResolver
	}
	groups := append([][]string{p.Allow}, p.also...)
	for gi, g := range groups {
		name := "allow"
		if gi > 0 {
			name = fmt.Sprintf("allow(%d)", gi)
		}
		ps, err := compileList(name, g)
		if err != nil {
			return nil, err
		}
		m.allow = append(m.allow, ps)
	}
	var err error
	if m.deny, err = compileList("deny", p.Deny); err != nil {
		return nil, err
	}
	for i, pr := range p.AllowPrivate {
		n, err := normPrefix(pr)
		if err != nil {
			return nil, fmt.Errorf("allowPrivate[%d]: %v", i, err)
		}
		m.allowPrivate = append(m.allowPrivate, n)
	}
	return m, nil
}

func compileList(name string, srcs []string) ([]pattern, error) {
	if len(srcs) > maxPatterns {
		return nil, fmt.Errorf("%s: more than %d patterns", name, maxPatterns)
	}
	out := make([]pattern, 0, len(srcs))
	for i, s := range srcs {
		re, err := compilePattern(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] %s: %v", name, i, quotePattern(s), err)
		}
		out = append(out, pattern{src: s, re: re})
	}
	return out, nil
}

// compilePattern anchors a pattern as a whole. The pattern is parsed on
// its own first: only a well-formed expression is wrapped, so that text
// such as `x)|(.*` cannot close the anchoring group and match anywhere.
func compilePattern(s string) (*regexp.Regexp, error) {
	if s == "" {
		return nil, errors.New("empty pattern")
	}
	if len(s) > maxPatternLen {
		return nil, fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
	}
	if _, err := syntax.Parse(s, syntax.Perl); err != nil {
		return nil, err
	}
	return regexp.Compile(`(?i)^(?:` + s + `)$`)
}

// quotePattern shows a pattern in a message: between backquotes, which
// keep a regex readable, unless it holds bytes that need escaping.
func quotePattern(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' || s[i] == '`' {
			return quoteHost(s)
		}
	}
	if len(s) > 260 {
		s = s[:260] + "..."
	}
	return "`" + s + "`"
}

// BlockedError is a refusal by the policy.
type BlockedError struct {
	// Host is the canonical host, or the request's text made safe when it
	// has no canonical form.
	Host string
	// Class is what was refused: "host", "port" or "address". It is safe
	// to show to the sandbox; Reason may name internal addresses.
	Class string
	// Reason says why, for logs.
	Reason string
}

// ErrBlocked is the class of every BlockedError.
var ErrBlocked = errors.New("blocked by egress policy")

func (e *BlockedError) Error() string {
	return fmt.Sprintf("egress: %s %s blocked: %s", e.Class, e.Host, e.Reason)
}

// Unwrap returns ErrBlocked.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

// MatchHost canonicalises host and matches it against the patterns only
// (no resolution). It returns the canonical host, and a *BlockedError
// when the patterns refuse it.
func (m *Matcher) MatchHost(host string) (string, error) {
	c, err := CanonicalHost(host)
	if err != nil {
		return "", &BlockedError{Host: logHost(host), Class: "host", Reason: err.Error()}
	}
	for _, d := range m.deny {
		if d.re.MatchString(c) {
			return c, &BlockedError{Host: c, Class: "host", Reason: "matches deny pattern " + quotePattern(d.src)}
		}
	}
	for gi, g := range m.allow {
		if !slices.ContainsFunc(g, func(p pattern) bool { return p.re.MatchString(c) }) {
			why := "matches no allow pattern"
			if gi > 0 {
				why = fmt.Sprintf("matches no pattern of allow list %d", gi)
			}
			return c, &BlockedError{Host: c, Class: "host", Reason: why}
		}
	}
	return c, nil
}

// CheckAddr returns a *BlockedError when a sandbox may not connect to a
// under this policy, nil when it may.
func (m *Matcher) CheckAddr(a netip.Addr) error {
	if why := checkAddr(a, m.allowPrivate); why != "" {
		return &BlockedError{Host: a.String(), Class: "address", Reason: why}
	}
	return nil
}

// Target is a host that passed the policy, with the addresses it resolved
// to, every one of them checked. Connect to these addresses only; never
// resolve the name again.
type Target struct {
	Host  string       // canonical host
	Addrs []netip.Addr // unmapped; in the resolver's order
}

// Check decides a connection to host: it matches the canonical host
// against the patterns, resolves it (an IP literal is its own address),
// and refuses the host when ANY of its addresses may not be reached. A
// refusal is a *BlockedError; a failed lookup is an ordinary error.
func (m *Matcher) Check(ctx context.Context, host string) (Target, error) {
	c, err := m.MatchHost(host)
	if err != nil {
		return Target{}, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(c); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = m.resolver.LookupNetIP(ctx, "ip", c)
		if err != nil {
			return Target{}, fmt.Errorf("lookup %s: %w", c, err)
		}
		if len(addrs) == 0 {
			return Target{}, fmt.Errorf("lookup %s: no addresses", c)
		}
		if len(addrs) > maxAddrs {
			addrs = addrs[:maxAddrs]
		}
	}
	t := Target{Host: c, Addrs: make([]netip.Addr, 0, len(addrs))}
	for _, a := range addrs {
		if why := checkAddr(a, m.allowPrivate); why != "" {
			return Target{}, &BlockedError{Host: c, Class: "address", Reason: why}
		}
		t.Addrs = append(t.Addrs, a.Unmap())
	}
	return t, nil
}
