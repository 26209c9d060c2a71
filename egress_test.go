package isol8

import (
	"context"
	"errors"
	"testing"

	"github.com/isol8/isol8/egress"
	"github.com/isol8/isol8/sandbox"
)

// The config's lists and the options' lists combine so that options only
// tighten: both allow lists must match, either deny list blocks, and
// options without an allow list only add denials.
func TestEgressPolicy(t *testing.T) {
	cfg := NetworkFilter{Whitelist: []string{`.*\.example\.com`, `pypi\.org`}, Blacklist: []string{`admin\.example\.com`}}
	cases := []struct {
		name    string
		options *NetworkFilter
		allowed map[string]bool
	}{
		{"config only", nil, map[string]bool{
			"api.example.com": true, "PyPI.org.": true, "admin.example.com": false,
			"pypi.org.evil": false, "example.com": false, "evil.test": false,
		}},
		{"options deny only", &NetworkFilter{Blacklist: []string{`pypi\.org`}}, map[string]bool{
			"api.example.com": true, "pypi.org": false, "admin.example.com": false,
		}},
		{"options allow narrows", &NetworkFilter{Whitelist: []string{`api\.example\.com`, `evil\.test`}, Blacklist: []string{`files\..*`}}, map[string]bool{
			"api.example.com": true, "www.example.com": false, "pypi.org": false,
			"evil.test": false, "admin.example.com": false,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := egress.Compile(egressPolicy(Limits{Filter: cfg, OptionFilter: c.options}))
			if err != nil {
				t.Fatal(err)
			}
			for host, want := range c.allowed {
				_, err := m.MatchHost(host)
				if got := err == nil; got != want {
					t.Errorf("%s: allowed %v, want %v (%v)", host, got, want, err)
				}
			}
		})
	}
	// An empty config allow list allows nothing, whatever the options say.
	m, err := egress.Compile(egressPolicy(Limits{OptionFilter: &NetworkFilter{Whitelist: []string{`.*`}}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.MatchHost("pypi.org"); err == nil {
		t.Error("options widened an empty config allow list")
	}
	// The config's slices are not modified by adding the options' denials.
	base := NetworkFilter{Whitelist: []string{"a"}, Blacklist: make([]string, 1, 10)}
	egressPolicy(Limits{Filter: base, OptionFilter: &NetworkFilter{Blacklist: []string{"b"}}})
	if got := base.Blacklist[:2]; got[1] != "" {
		t.Errorf("egressPolicy wrote into the config's deny list: %q", got)
	}
}

// plainSandbox is a sandbox that cannot listen on its loopback.
type plainSandbox struct{ sandbox.Sandbox }

func TestStartEgressModes(t *testing.T) {
	ctx := context.Background()
	// Not filtered: no proxy, and the nil run is safe to use.
	for _, n := range []NetworkMode{NetworkNone, NetworkHost, ""} {
		eg, err := startEgress(ctx, plainSandbox{}, Limits{Network: n})
		if eg != nil || err != nil {
			t.Fatalf("%q: %v %v", n, eg, err)
		}
		if eg.Env() != nil {
			t.Errorf("%q: a proxy environment without a proxy", n)
		}
		logs, in, out, blocked := eg.Finish()
		if logs != nil || in != 0 || out != 0 || blocked != nil {
			t.Errorf("%q: Finish reported something", n)
		}
		res := &Result{}
		eg.record(res)
		if res.ResourceUsage != nil || res.NetworkLogs != nil {
			t.Errorf("%q: record changed the result", n)
		}
	}
	// Filtered on a backend that cannot reach the sandbox's loopback: the
	// run is refused, never given a looser network.
	lim := Limits{Network: NetworkFiltered, Filter: NetworkFilter{Whitelist: []string{`x\.test`}}}
	if _, err := startEgress(ctx, plainSandbox{}, lim); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no LoopbackListener: %v, want ErrUnavailable", err)
	}
	lim.Filter.Whitelist = []string{"("}
	if _, err := startEgress(ctx, plainSandbox{}, lim); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad pattern: %v, want ErrInvalidArgument", err)
	}
}

func TestEgressEnv(t *testing.T) {
	env := (&egressRun{}).Env()
	want := map[string]string{"HTTP_PROXY": "http://127.0.0.1:3128", "https_proxy": "http://127.0.0.1:3128", "NO_PROXY": ""}
	seen := map[string]bool{}
	for _, kv := range env {
		for k, v := range want {
			if kv == k+"="+v {
				seen[k] = true
			}
		}
	}
	if len(seen) != len(want) {
		t.Errorf("Env() = %q, want %v among it", env, want)
	}
}
