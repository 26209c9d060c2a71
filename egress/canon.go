package egress

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Limits of a DNS name (RFC 1035).
const (
	maxHostLen  = 253
	maxLabelLen = 63
)

// CanonicalHost returns the form of host that policies are matched
// against and that is resolved: ASCII lower case, one trailing dot
// removed, no port. An IP literal becomes its standard text form (an IPv6
// literal loses its brackets). IDNA labels are left as they are: a
// non-ASCII host is refused, its punycode (xn--) form is what clients send.
//
// Anything that is neither a DNS name nor a plain IP literal is refused,
// in particular the legacy numeric forms that some resolvers read as IPv4
// ("127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"), so that a name
// can never mean an address the policy did not see.
func CanonicalHost(host string) (string, error) {
	if host == "" {
		return "", fmt.Errorf("empty host")
	}
	if len(host) > maxHostLen+2 {
		return "", fmt.Errorf("host longer than %d bytes", maxHostLen)
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", fmt.Errorf("host %s: unbalanced bracket", quoteHost(host))
		}
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("host %s: not an IPv6 address", quoteHost(host))
		}
		return a.String(), nil
	}
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("host %s: not an IPv6 address", quoteHost(host))
		}
		return a.String(), nil
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		case 'A' <= c && c <= 'Z':
		case c >= 0x80:
			return "", fmt.Errorf("host %s: not ASCII; use its punycode (xn--) form", quoteHost(host))
		default:
			return "", fmt.Errorf("host %s: invalid character %q", quoteHost(host), c)
		}
	}
	h := strings.ToLower(host)
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > maxHostLen {
		return "", fmt.Errorf("host %s: invalid length", quoteHost(host))
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return "", fmt.Errorf("host %s: empty label", quoteHost(host))
		}
		if len(l) > maxLabelLen {
			return "", fmt.Errorf("host %s: label longer than %d bytes", quoteHost(host), maxLabelLen)
		}
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String(), nil
	}
	if numericLabel(labels[len(labels)-1]) {
		return "", fmt.Errorf("host %s: numeric host is not a dotted-quad IPv4 address", quoteHost(host))
	}
	return h, nil
}

// numericLabel reports whether a final label makes a URL parser (WHATWG)
// or inet_aton read the whole host as an IPv4 number: decimal, octal or
// 0x-hex digits. No top-level domain looks like that.
func numericLabel(l string) bool {
	if strings.HasPrefix(l, "0x") {
		l = l[2:]
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

// splitHostPort splits an authority ("host:port", "[v6]:port") and parses
// the port. The host is returned as written, for CanonicalHost.
func splitHostPort(hostport string) (string, uint16, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("authority %s: %v", quoteHost(hostport), err)
	}
	p, err := parsePort(port)
	if err != nil {
		return "", 0, err
	}
	return host, p, nil
}

// parsePort parses a decimal TCP port in 1..65535.
func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %s: not a number in 1..65535", quoteHost(s))
	}
	return uint16(n), nil
}

// quoteHost makes untrusted text safe for a log line or an error: quoted,
// control and non-ASCII bytes escaped, and cut to a bounded length.
func quoteHost(s string) string {
	const max = 260
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strconv.QuoteToASCII(s)
}

// logHost is the host as a log records it: the canonical form when there
// is one, else the raw text made safe.
func logHost(raw string) string {
	if c, err := CanonicalHost(raw); err == nil {
		return c
	}
	q := quoteHost(raw)
	return q[1 : len(q)-1]
}
