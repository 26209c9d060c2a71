package egress

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustCompile(t *testing.T, p Policy) *Matcher {
	t.Helper()
	m, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", p, err)
	}
	return m
}

func TestMatchHost(t *testing.T) {
	cases := []struct {
		allow, deny []string
		host        string
		ok          bool
	}{
		{[]string{`allowed\.test`}, nil, "allowed.test", true},
		{[]string{`allowed\.test`}, nil, "ALLOWED.TEST.", true},
		{[]string{`allowed\.test`}, nil, "allowed.test.evil", false},
		{[]string{`allowed\.test`}, nil, "evilallowed.test", false},
		{[]string{`^allowed\.test$`}, nil, "allowed.test", true},
		{[]string{`^allowed\.test$`}, nil, "x.allowed.test", false},
		{[]string{`ALLOWED\.test`}, nil, "allowed.test", true}, // patterns are case-insensitive
		{[]string{`allowed.test`}, nil, "allowedXtest", true},  // an unescaped dot is any character
		{[]string{`a|b`}, nil, "ab", false},                    // alternation stays inside the anchors
		{[]string{`a|b`}, nil, "b", true},                      //
		{[]string{`.*\.example\.com`}, nil, "api.example.com", true},
		{[]string{`.*\.example\.com`}, nil, "example.com.evil.net", false},
		{[]string{`.*`}, []string{`evil\.test`}, "evil.test", false},
		{[]string{`.*`}, []string{`evil\.test`}, "EVIL.test.", false},
		{[]string{`.*`}, []string{`evil`}, "evil.test", true}, // deny is anchored too
		{nil, nil, "allowed.test", false},                     // empty allow list allows nothing
		{[]string{`.*`}, nil, "bad host", false},
		{[]string{`.*`}, nil, "", false},
		{[]string{`.*`}, nil, "café.test", false},
		{[]string{`xn--caf-dma\.test`}, nil, "xn--caf-dma.test", true},
	}
	for _, c := range cases {
		m := mustCompile(t, Policy{Allow: c.allow, Deny: c.deny})
		_, err := m.MatchHost(c.host)
		if (err == nil) != c.ok {
			t.Errorf("allow %q deny %q host %q: err %v, want ok=%v", c.allow, c.deny, c.host, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBlocked) {
			t.Errorf("%q: error %v is not ErrBlocked", c.host, err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		p    Policy
		want string
	}{
		{Policy{Allow: []string{`ok`, `(`}}, "allow[1] `(`"},
		{Policy{Allow: []string{`x)|(.*`}}, `allow[0]`}, // cannot break out of the anchors
		{Policy{Deny: []string{``}}, "deny[0] ``: empty pattern"},
		{Policy{Allow: []string{strings.Repeat("a", 2000)}}, `longer than`},
		{Policy{AllowPrivate: []netip.Prefix{{}}}, `allowPrivate[0]`},
	}
	for _, c := range cases {
		_, err := Compile(c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile(%+v) = %v, want an error with %q", c.p, err, c.want)
		}
	}
}

func TestIntersect(t *testing.T) {
	server := Policy{Allow: []string{`.*\.test`}, Deny: []string{`evil\.test`}}
	request := Policy{Allow: []string{`allowed\.test`, `other\.test`, `outside\.example`}, Deny: []string{`other\.test`}}
	m := mustCompile(t, server.Intersect(request))
	for host, ok := range map[string]bool{
		"allowed.test":     true,
		"other.test":       false, // request's deny
		"evil.test":        false, // server's deny
		"more.test":        false, // not in the request's allow list
		"outside.example":  false, // not in the server's allow list
		"ALLOWED.TEST.":    true,
		"allowed.test.bad": false,
	} {
		if _, err := m.MatchHost(host); (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", host, err, ok)
		}
	}
	// Commutative on hosts, and three-way intersections keep every list.
	m2 := mustCompile(t, request.Intersect(server).Intersect(Policy{Allow: []string{`other\.test|allowed\.test`}}))
	if _, err := m2.MatchHost("allowed.test"); err != nil {
		t.Errorf("three-way: %v", err)
	}
	if _, err := m2.MatchHost("more.test"); err == nil {
		t.Error("three-way: more.test allowed")
	}
	// Intersecting with an empty allow list allows nothing.
	if _, err := mustCompile(t, server.Intersect(Policy{})).MatchHost("allowed.test"); err == nil {
		t.Error("intersection with an empty allow list allowed a host")
	}
	// Inputs are not modified.
	if len(server.Deny) != 1 || len(request.Deny) != 1 {
		t.Error("Intersect modified its inputs")
	}
}

func TestIntersectAllowPrivate(t *testing.T) {
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	a := netip.MustParseAddr
	cases := []struct {
		p, q     []netip.Prefix
		addr     netip.Addr
		wantOK   bool
		thenWide bool // intersect once more with a side allowing 10/8
	}{
		{pfx("10.0.0.0/8"), nil, a("10.1.2.3"), true, false},                    // the request has no opinion
		{nil, pfx("10.0.0.0/8"), a("10.1.2.3"), true, false},                    //
		{pfx("10.0.0.0/8"), pfx("10.1.0.0/16"), a("10.1.2.3"), true, false},     // narrowed
		{pfx("10.0.0.0/8"), pfx("10.1.0.0/16"), a("10.2.0.1"), false, false},    //
		{pfx("10.0.0.0/8"), pfx("192.168.0.0/16"), a("10.1.2.3"), false, false}, // disjoint: nothing
		{pfx("10.0.0.0/8"), pfx("192.168.0.0/16"), a("10.1.2.3"), false, true},  // and stays nothing
		{pfx("::ffff:10.0.0.0/104"), pfx("10.5.0.0/16"), a("10.5.0.1"), true, false},
	}
	for i, c := range cases {
		r := Policy{AllowPrivate: c.p}.Intersect(Policy{AllowPrivate: c.q})
		if c.thenWide {
			// A further intersection with a side that allows the address
			// must not revive a disjoint result.
			r = r.Intersect(Policy{AllowPrivate: pfx("10.0.0.0/8")})
		}
		m := mustCompile(t, r)
		if err := m.CheckAddr(c.addr); (err == nil) != c.wantOK {
			t.Errorf("case %d: %v in %v ∩ %v: %v, want ok=%v", i, c.addr, c.p, c.q, err, c.wantOK)
		}
	}
}

func TestCheckResolves(t *testing.T) {
	res := &fakeResolver{names: map[string][]netip.Addr{
		"public.test": {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("2606:2800:21f:cb07:6820:80da:af6b:8b2c")},
		"mapped.test": {netip.MustParseAddr("::ffff:93.184.215.14")},
		"empty.test":  {},
	}}
	m := mustCompile(t, Policy{Allow: []string{`.*`}, Resolver: res})
	ctx := context.Background()
	tg, err := m.Check(ctx, "Public.Test.")
	if err != nil || tg.Host != "public.test" || len(tg.Addrs) != 2 {
		t.Errorf("Check(public) = %+v, %v", tg, err)
	}
	tg, err = m.Check(ctx, "mapped.test")
	if err != nil || tg.Addrs[0] != netip.MustParseAddr("93.184.215.14") {
		t.Errorf("Check(mapped) = %+v, %v; want the address unmapped", tg, err)
	}
	for _, h := range []string{"empty.test", "missing.test"} {
		if _, err := m.Check(ctx, h); err == nil || errors.Is(err, ErrBlocked) {
			t.Errorf("Check(%s) = %v, want a lookup error", h, err)
		}
	}
	tg, err = m.Check(ctx, "8.8.8.8")
	if err != nil || len(tg.Addrs) != 1 || res.lookups() != 4 {
		t.Errorf("Check(literal) = %+v, %v, lookups %d; want no lookup", tg, err, res.lookups())
	}
}
