package isol8

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/isol8/isol8/egress"
)

// Bounds on fetching remote code that no policy can raise.
const (
	maxCodeURLLen     = 2048
	maxCodeRedirects  = 5
	defaultFetchLimit = 30 * time.Second
)

// CodeFetcher fetches a request's codeUrl under a remoteCode policy:
// off unless enabled; https only unless the policy allows http and the
// request sets allowInsecureCodeUrl; the host must pass allowedHosts
// (empty allows any) and no blockedHosts pattern (patterns as in
// network.whitelist: whole, case-insensitive); every address the host
// resolves to must be public unless AllowPrivate covers it, and the
// connection goes to exactly an address that was checked (no DNS
// rebinding); each redirect is checked again; the body is capped at
// maxCodeSize and the whole fetch at fetchTimeoutMs; codeHash (sha256
// hex), required by requireHash, must match.
type CodeFetcher struct {
	Policy RemoteCodeConfig
	// AllowPrivate lists address ranges that may be fetched although they
	// are not public. Only an operator or a test sets it.
	AllowPrivate []netip.Prefix
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver egress.Resolver
	// TLSConfig, when set, configures TLS (a test's own CA); nil means
	// the system's roots.
	TLSConfig *tls.Config
}

// testCodeFetcher, when set by a test, adjusts the fetcher the engine
// uses (to allow a loopback test server).
var testCodeFetcher func(*CodeFetcher)

// ResolveRemoteCode returns req with its code fetched from codeUrl under
// the config's remoteCode policy: a copy with Code set and CodeURL
// cleared (the caller keeps the original for the audit record). A request
// without codeUrl is returned as it is. Refusals by policy are
// ErrPermission (403); a bad URL, a failed fetch or a wrong hash is
// ErrInvalidArgument (400); each names codeUrl or codeHash.
func (c *Config) ResolveRemoteCode(ctx context.Context, req *Request) (*Request, error) {
	if req == nil || req.CodeURL == "" {
		return req, nil
	}
	f := &CodeFetcher{Policy: c.RemoteCode}
	if testCodeFetcher != nil {
		testCodeFetcher(f)
	}
	code, err := f.Fetch(ctx, req.CodeURL, req.CodeHash, req.AllowInsecureCodeURL)
	if err != nil {
		return nil, err
	}
	out := *req
	out.Code, out.CodeURL = code, ""
	return &out, nil
}

// Fetch returns the code at rawURL under the policy.
func (f *CodeFetcher) Fetch(ctx context.Context, rawURL, codeHash string, allowInsecure bool) (string, error) {
	p := f.Policy
	if !p.Enabled {
		return "", forbidden("codeUrl", "remote code is disabled (remoteCode.enabled is false)")
	}
	codeHash = strings.ToLower(codeHash)
	if codeHash == "" && p.RequireHash {
		return "", invalid("codeHash", "required with codeUrl (remoteCode.requireHash is true)")
	}
	if codeHash != "" && (len(codeHash) != 64 || strings.Trim(codeHash, "0123456789abcdef") != "") {
		return "", invalid("codeHash", "must be a sha256 hex digest")
	}
	m, err := egress.Compile(egress.Policy{Allow: orAny(p.AllowedHosts), Deny: p.BlockedHosts,
		AllowPrivate: f.AllowPrivate, Resolver: f.Resolver})
	if err != nil {
		return "", invalid("remoteCode", "bad host pattern: %v", err)
	}
	u, err := f.checkURL(m, rawURL, allowInsecure)
	if err != nil {
		return "", err
	}
	timeout := defaultFetchLimit
	if p.FetchTimeoutMs > 0 {
		timeout = time.Duration(p.FetchTimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // the checks below are the policy; no proxy of the host's
			DialContext:            checkedDialer(m),
			TLSHandshakeTimeout:    10 * time.Second,
			ResponseHeaderTimeout:  timeout,
			MaxResponseHeaderBytes: 64 << 10,
			DisableKeepAlives:      true,
			ForceAttemptHTTP2:      true,
			TLSClientConfig:        f.TLSConfig,
		},
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) > maxCodeRedirects {
				return invalid("codeUrl", "more than %d redirects", maxCodeRedirects)
			}
			_, err := f.checkURL(m, r.URL.String(), allowInsecure)
			return err
		},
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", invalid("codeUrl", "%v", err)
	}
	req.Header.Set("User-Agent", "isol8 (remote code)")
	resp, err := client.Do(req)
	if err != nil {
		return "", fetchError(ctx, err, timeout)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", invalid("codeUrl", "fetching %s: %s", redact(resp.Request.URL), resp.Status)
	}
	max := p.MaxCodeSize
	if max <= 0 || max > maxCodeBytes {
		max = maxCodeBytes
	}
	if resp.ContentLength > max {
		return "", invalid("codeUrl", "the code is %d bytes, more than remoteCode.maxCodeSize (%d)", resp.ContentLength, max)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return "", fetchError(ctx, err, timeout)
	}
	if int64(len(data)) > max {
		return "", invalid("codeUrl", "the code is more than remoteCode.maxCodeSize (%d bytes)", max)
	}
	if codeHash != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != codeHash {
			return "", invalid("codeHash", "the fetched code's sha256 is %s, not %s", got, codeHash)
		}
	}
	if len(data) == 0 {
		return "", invalid("codeUrl", "the fetched code is empty")
	}
	return string(data), nil
}

// checkURL checks a URL (the first or a redirect's) against the scheme
// and host rules; addresses are checked when it is dialled.
func (f *CodeFetcher) checkURL(m *egress.Matcher, raw string, allowInsecure bool) (*url.URL, error) {
	if len(raw) > maxCodeURLLen {
		return nil, invalid("codeUrl", "longer than %d bytes", maxCodeURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, invalid("codeUrl", "%q is not an absolute URL", raw)
	}
	if u.User != nil {
		return nil, invalid("codeUrl", "credentials in the URL are not accepted")
	}
	scheme := strings.ToLower(u.Scheme)
	schemes := f.Policy.AllowedSchemes
	if len(schemes) == 0 {
		schemes = []string{"https"}
	}
	switch {
	case scheme != "https" && scheme != "http":
		return nil, invalid("codeUrl", "scheme %q is not supported (https, or http where allowed)", u.Scheme)
	case !slices.ContainsFunc(schemes, func(s string) bool { return strings.EqualFold(s, scheme) }):
		return nil, forbidden("codeUrl", "scheme %q is not allowed (remoteCode.allowedSchemes: %s)", scheme, strings.Join(schemes, ", "))
	case scheme == "http" && !allowInsecure:
		return nil, forbidden("codeUrl", "http is insecure: set allowInsecureCodeUrl to fetch %s", redact(u))
	}
	if _, err := m.MatchHost(u.Hostname()); err != nil {
		return nil, forbidden("codeUrl", "%s", policyReason(err))
	}
	return u, nil
}

// checkedDialer resolves and checks the host at connect time and dials
// only an address that passed, never resolving the name again.
func checkedDialer(m *egress.Matcher) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		t, err := m.Check(ctx, host)
		if err != nil {
			return nil, err
		}
		var errs []error
		for _, a := range t.Addrs {
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
}

// fetchError turns a failed fetch into the request's error: a policy
// refusal (a redirect, an address) keeps its class; anything else is the
// URL's fault.
func fetchError(ctx context.Context, err error, timeout time.Duration) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	var be *egress.BlockedError
	if errors.As(err, &be) {
		return forbidden("codeUrl", "%s", policyReason(be))
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return invalid("codeUrl", "fetching took longer than %s (remoteCode.fetchTimeoutMs)", timeout)
	}
	return invalid("codeUrl", "fetching failed: %v", err)
}

// policyReason explains a refusal by the host rules.
func policyReason(err error) string {
	var be *egress.BlockedError
	if errors.As(err, &be) {
		switch be.Class {
		case "address":
			return fmt.Sprintf("host %s resolves to an address that may not be fetched: %s", be.Host, be.Reason)
		default:
			return fmt.Sprintf("host %s is not allowed: %s (remoteCode.allowedHosts, remoteCode.blockedHosts)", be.Host, be.Reason)
		}
	}
	return err.Error()
}

// redact drops a URL's query, which may carry tokens, from messages.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.User = "", "", nil
	return c.String()
}

// orAny is an allow list where an empty one allows every host.
func orAny(hosts []string) []string {
	if len(hosts) == 0 {
		return []string{".*"}
	}
	return hosts
}
