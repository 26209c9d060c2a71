package egress

import (
	"fmt"
	"net/netip"
)

// blockedRange is address space a sandbox may not reach unless an
// operator allows it explicitly (Policy.AllowPrivate).
type blockedRange struct {
	prefix netip.Prefix
	what   string
}

func mustRanges(pairs ...string) []blockedRange {
	out := make([]blockedRange, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, blockedRange{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

// blocked4 is every IPv4 range that is not ordinary public unicast
// (IANA special-purpose registry, RFC 6890 and successors).
var blocked4 = mustRanges(
	"0.0.0.0/8", "this-network (0.0.0.0/8)",
	"10.0.0.0/8", "private (RFC 1918)",
	"100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)",
	"127.0.0.0/8", "loopback",
	"169.254.0.0/16", "link-local (169.254.0.0/16, cloud metadata)",
	"172.16.0.0/12", "private (RFC 1918)",
	"192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)",
	"192.0.2.0/24", "documentation (TEST-NET-1)",
	"192.88.99.0/24", "6to4 relay anycast",
	"192.168.0.0/16", "private (RFC 1918)",
	"198.18.0.0/15", "benchmarking (198.18.0.0/15)",
	"198.51.100.0/24", "documentation (TEST-NET-2)",
	"203.0.113.0/24", "documentation (TEST-NET-3)",
	"224.0.0.0/4", "multicast",
	"240.0.0.0/4", "reserved or broadcast (240.0.0.0/4)",
)

// blocked6 names the non-public IPv6 ranges for a clear reason. Anything
// outside 2000::/3 (global unicast) is refused in any case, except NAT64
// addresses whose embedded IPv4 address is itself allowed.
var blocked6 = mustRanges(
	"::/128", "unspecified",
	"::1/128", "loopback",
	"::/96", "IPv4-compatible (deprecated)",
	"::ffff:0:0:0/96", "IPv4-translated (SIIT)",
	"64:ff9b:1::/48", "local-use NAT64 (RFC 8215)",
	"100::/64", "discard-only (RFC 6666)",
	"2001::/23", "IETF protocol assignments (2001::/23, incl. Teredo)",
	"2001:db8::/32", "documentation (2001:db8::/32)",
	"2002::/16", "6to4 (2002::/16)",
	"3fff::/20", "documentation (3fff::/20)",
	"5f00::/16", "SRv6 SIDs (5f00::/16)",
	"fc00::/7", "unique local (fc00::/7)",
	"fe80::/10", "link-local (fe80::/10)",
	"fec0::/10", "site-local (deprecated)",
	"ff00::/8", "multicast",
)

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
)

// checkAddr decides whether a sandbox may connect to a. allow holds the
// operator's explicit allowances (already normalised by normPrefix). It
// returns "" when a may be dialled, else why not.
func checkAddr(a netip.Addr, allow []netip.Prefix) string {
	if !a.IsValid() {
		return "invalid address"
	}
	if a.Zone() != "" {
		return fmt.Sprintf("address %s has a zone", a)
	}
	a = a.Unmap()
	for _, p := range allow {
		if p.Contains(a) {
			return ""
		}
	}
	return specialUse(a)
}

// specialUse returns why a (unmapped) is not ordinary public unicast, or
// "" when it is.
func specialUse(a netip.Addr) string {
	if a.Is4() {
		for _, r := range blocked4 {
			if r.prefix.Contains(a) {
				return fmt.Sprintf("address %s is %s", a, r.what)
			}
		}
		return ""
	}
	if nat64.Contains(a) {
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if why := specialUse(v4); why != "" {
			return fmt.Sprintf("NAT64 address %s embeds %s", a, why)
		}
		return ""
	}
	for _, r := range blocked6 {
		if r.prefix.Contains(a) {
			return fmt.Sprintf("address %s is %s", a, r.what)
		}
	}
	if !globalUnicast6.Contains(a) {
		return fmt.Sprintf("address %s is not global unicast", a)
	}
	return ""
}

// normPrefix masks p and turns an IPv4-mapped IPv6 prefix into the IPv4
// prefix it means, since addresses are unmapped before they are checked.
func normPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %v", p)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("prefix %v has a zone", p)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// intersectPrefixes returns the address space inside both a and b. Two
// prefixes overlap only when one contains the other; then the longer one
// is their intersection.
func intersectPrefixes(a, b []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range a {
		for _, y := range b {
			if !x.Overlaps(y) {
				continue
			}
			if x.Bits() >= y.Bits() {
				out = append(out, x)
			} else {
				out = append(out, y)
			}
		}
	}
	return out
}
