package egress

import (
	"net/netip"
	"strings"
	"testing"
)

func TestCanonicalHost(t *testing.T) {
	good := map[string]string{
		"allowed.test":       "allowed.test",
		"ALLOWED.TEST.":      "allowed.test",
		"Api.Example.COM":    "api.example.com",
		"xn--caf-dma.test":   "xn--caf-dma.test",
		"_dmarc.example.com": "_dmarc.example.com",
		"localhost":          "localhost",
		"127.0.0.1":          "127.0.0.1",
		"[::1]":              "::1",
		"::1":                "::1",
		"[0:0::1]":           "::1",
		"[2001:DB8::1]":      "2001:db8::1",
		"[::ffff:127.0.0.1]": "::ffff:127.0.0.1",
		"1.example":          "1.example",
	}
	for in, want := range good {
		got, err := CanonicalHost(in)
		if err != nil || got != want {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", ".", "..", "a..b", ".a", "allowed.test..", "bad host", "a/b", "a@b", "a%2eb",
		"a\x00b", "café.test", "[::1", "[127.0.0.1]", "[fe80::1%eth0]", "fe80::1%eth0",
		"2130706433", "127.1", "0x7f.0.0.1", "0177.0.0.1", "127.000.0.1", "1.2.3.4.5",
		"example.0x1f", "example.0x", "example.123", strings.Repeat("a", 64) + ".test",
		strings.Repeat("a.", 127) + "ab",
	}
	for _, in := range bad {
		if got, err := CanonicalHost(in); err == nil {
			t.Errorf("CanonicalHost(%q) = %q, want an error", in, got)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	blocked := []string{
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.255.0.9",
		"169.254.169.254", "169.254.0.1", "172.16.0.1", "172.31.255.255", "192.0.0.1", "192.0.2.1",
		"192.168.1.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250",
		"240.0.0.1", "255.255.255.255",
		"::", "::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1",
		"64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b:1::1", "100::1", "2001::1", "2001:db8::1",
		"2002:7f00:1::1", "3fff::1", "5f00::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1",
		"ff02::1", "4000::1",
	}
	for _, s := range blocked {
		if why := checkAddr(netip.MustParseAddr(s), nil); why == "" {
			t.Errorf("%s allowed, want blocked", s)
		}
	}
	public := []string{
		"1.1.1.1", "8.8.8.8", "93.184.215.14", "100.63.255.255", "100.128.0.1", "172.32.0.1",
		"::ffff:8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001::1", "64:ff9b::808:808",
	}
	for _, s := range public {
		if why := checkAddr(netip.MustParseAddr(s), nil); why != "" {
			t.Errorf("%s blocked: %s", s, why)
		}
	}
	zoned := netip.MustParseAddr("fe80::1%eth0")
	if checkAddr(zoned, []netip.Prefix{netip.MustParsePrefix("fe80::/10")}) == "" {
		t.Error("zoned address allowed")
	}
	// Explicit allowances, including through the IPv4-mapped form.
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("fd00::/8")}
	for _, s := range []string{"127.0.0.2", "::ffff:127.0.0.2", "fd00::5"} {
		if why := checkAddr(netip.MustParseAddr(s), allow); why != "" {
			t.Errorf("%s with allowance: %s", s, why)
		}
	}
	if checkAddr(netip.MustParseAddr("127.0.0.1"), allow) == "" {
		t.Error("127.0.0.1 allowed by 127.0.0.2/32")
	}
	if !strings.Contains(checkAddr(netip.MustParseAddr("169.254.169.254"), nil), "metadata") {
		t.Error("the metadata address is not named as such")
	}
}

// FuzzCanonicalHost checks the invariants of canonicalisation and of
// anchored matching. `go test` runs the seeds; `go test -fuzz
// FuzzCanonicalHost ./egress/` explores.
func FuzzCanonicalHost(f *testing.F) {
	for _, s := range []string{
		"allowed.test", "ALLOWED.TEST.", "allowed.test.evil", "evil.allowed.test", "allowed.test..",
		"[::1]", "::ffff:127.0.0.1", "127.0.0.1", "127.1", "0x7f.1", "xn--caf-dma.test", "café.test",
		"allowed\u212atest", "a\x00.test", "allowed.test:80", "", ".",
	} {
		f.Add(s)
	}
	m, err := Compile(Policy{Allow: []string{`allowed\.test`}, Deny: []string{`evil\..*`}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host string) {
		c, err := CanonicalHost(host)
		mc, merr := m.MatchHost(host)
		if err != nil {
			if merr == nil {
				t.Fatalf("%q: no canonical form, yet matched", host)
			}
			return
		}
		if again, err := CanonicalHost(c); err != nil || again != c {
			t.Fatalf("%q → %q → %q, %v: not idempotent", host, c, again, err)
		}
		for i := 0; i < len(c); i++ {
			b := c[i]
			if b >= 0x80 || 'A' <= b && b <= 'Z' || b == '/' || b == '@' || b == '%' || b <= ' ' {
				t.Fatalf("%q → %q: byte %q in canonical host", host, c, b)
			}
		}
		if strings.HasSuffix(c, ".") || strings.HasPrefix(c, "[") {
			t.Fatalf("%q → %q", host, c)
		}
		if strings.Contains(c, ":") {
			if a, err := netip.ParseAddr(c); err != nil || !a.Is6() {
				t.Fatalf("%q → %q: a colon outside an IPv6 literal", host, c)
			}
		}
		if mc != c {
			t.Fatalf("MatchHost(%q) canonical %q, CanonicalHost %q", host, mc, c)
		}
		if (merr == nil) != (c == "allowed.test") {
			t.Fatalf("%q → %q: match %v; only allowed.test may match", host, c, merr)
		}
	})
}
