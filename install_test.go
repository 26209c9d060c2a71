package isol8

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/egress"
	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/packages"
	"github.com/isol8/isol8/runtime"
	"github.com/isol8/isol8/sandbox"
	_ "github.com/isol8/isol8/sandbox/docker"
)

// The install tests below run the engine's install step in a real Docker
// sandbox with network "filtered": no interface but loopback, and the
// engine's egress proxy (startEgress) on the sandbox's 127.0.0.1, with
// exactly the allow list allowInstall gives. The proxy's logs show the
// traffic went through it.

func dockerBackend(t *testing.T) sandbox.Backend {
	t.Helper()
	if os.Getenv("ISOL8_SKIP_DOCKER") == "1" {
		t.Skip("ISOL8_SKIP_DOCKER=1: not testing with Docker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := sandbox.Open(ctx, "docker", sandbox.Config{Owner: "isol8-test-packages"})
	if err != nil {
		t.Fatalf("docker backend: %v\n(set ISOL8_SKIP_DOCKER=1 to skip these tests deliberately)", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// installRun is one request's install step and program in a fresh
// sandbox of image (the runtime's own when "").
type installRun struct {
	cfg   *Config
	rt    Runtime
	image string
	pkgs  []string
	code  string
	// resolver and private are test-only allowances of the proxy (a
	// local index's name, resolving to loopback).
	resolver egress.Resolver
	private  []netip.Prefix
	// logs receives the proxy's logs.
	logs *egress.LogBuffer
}

// run returns the install's status, its stderr, and the program's stdout
// (empty when the install failed). With packages the sandbox's network is
// filtered, else none.
func (r installRun) run(t *testing.T, b sandbox.Backend) (sandbox.ExitStatus, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	a, err := runtime.Get(string(r.rt))
	if err != nil {
		t.Fatal(err)
	}
	img := r.image
	if img == "" {
		img = a.Image
	}
	lim := r.cfg.Resolve(Options{}, nil)
	if len(r.pkgs) > 0 {
		lim = r.cfg.Resolve(Options{Network: NetworkFiltered}, nil)
		if err := r.cfg.allowInstall(&lim, r.rt); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := b.Create(ctx, sandbox.Spec{Image: img, MemoryBytes: lim.MemoryBytes, CPUs: lim.CPUs, Pids: lim.Pids,
		SandboxSize: lim.SandboxBytes, TmpSize: lim.TmpBytes, Network: sandbox.Network(lim.Network), ReadonlyRootFS: true})
	if err != nil {
		t.Fatalf("create sandbox of %s: %v", img, err)
	}
	defer sb.Destroy(context.Background())
	var st sandbox.ExitStatus
	var stderr bytes.Buffer
	if len(r.pkgs) > 0 {
		specs, err := r.cfg.checkPackages(&Request{Runtime: r.rt, Code: r.code, InstallPackages: r.pkgs})
		if err != nil {
			t.Fatal(err)
		}
		// What the engine does with lim.AllowPrivate and lim.ExtraPorts
		// (and the test's own allowances) goes in through the hook.
		egressTestHook = func(p *egress.Policy, c *egress.Config) {
			p.AllowPrivate = slices.Concat(p.AllowPrivate, lim.AllowPrivate, r.private)
			if r.resolver != nil {
				p.Resolver = r.resolver
			}
			c.Ports = append(slices.Clone(egress.DefaultPorts), lim.ExtraPorts...)
			if r.logs != nil {
				next := c.OnLog
				c.OnLog = func(l egress.Log) { r.logs.Add(l); next(l) }
			}
		}
		er, err := startEgress(ctx, sb, lim)
		egressTestHook = nil
		if err != nil {
			t.Fatalf("startEgress: %v", err)
		}
		defer er.Finish()
		start := time.Now()
		st, _, err = r.cfg.installPackages(ctx, sb, r.rt, specs, er.Env(), &stderr)
		if err != nil {
			t.Fatalf("installPackages: %v", err)
		}
		t.Logf("install of %v in %s: exit %d after %s", r.pkgs, img, st.Code, time.Since(start).Round(time.Millisecond))
		if st.Code != 0 {
			return st, stderr.String(), ""
		}
	}
	file := runtime.CodeFile + a.Extension
	if err := sb.WriteFiles(ctx, []sandbox.File{{Path: file, Data: []byte(r.code)}}); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	pst, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: a.Run(file), Env: packageEnv(r.rt, baseEnv, len(r.pkgs) > 0), Dir: "/sandbox",
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if pst.Code != 0 {
		t.Errorf("program exited %d; stderr:\n%s", pst.Code, stderr.String())
	}
	return st, stderr.String(), stdout.String()
}

// allowedThrough reports whether the proxy let a request to host through.
func allowedThrough(logs *egress.LogBuffer, host string) bool {
	entries, _ := logs.Logs()
	return slices.ContainsFunc(entries, func(l egress.Log) bool { return l.Host == host && l.Action == egress.ActionAllow })
}

// machineConfig is the default config as an operator of this machine
// would set it: where the machine's resolver answers for rt's registry
// with an address that is not public (an intercepting egress gateway, or
// a mirror on a private network), packages.registryAddresses lists
// exactly those addresses.
func machineConfig(t *testing.T, rt Runtime) *Config {
	t.Helper()
	cfg := DefaultConfig()
	u, err := cfg.registryURL(rt)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(t.Context(), "ip", u.Hostname())
	if err != nil {
		t.Fatalf("resolve %s: %v", u.Hostname(), err)
	}
	m, _ := egress.Compile(egress.Policy{})
	for _, a := range addrs {
		if m.CheckAddr(a) != nil {
			cfg.Packages.RegistryAddresses = append(cfg.Packages.RegistryAddresses, a.Unmap().String())
		}
	}
	if len(cfg.Packages.RegistryAddresses) > 0 {
		t.Logf("this machine resolves %s to non-public %v; packages.registryAddresses lists them", u.Hostname(), cfg.Packages.RegistryAddresses)
	}
	return cfg
}

func TestInstallFromNPMRegistry(t *testing.T) {
	b := dockerBackend(t)
	code := map[Runtime]string{
		Node: `import _ from "lodash"; console.log(_.chunk(["a", "b", "c", "d"], 2).map(p => p.join("")).join(","))`,
		Bun:  `import _ from "lodash"; const xs: string[] = ["a", "b", "c", "d"]; console.log(_.chunk(xs, 2).map(p => p.join("")).join(","))`,
		Deno: `import _ from "lodash"; const xs: string[] = ["a", "b", "c", "d"]; console.log(_.chunk(xs, 2).map(p => p.join("")).join(","))`,
	}
	for _, rt := range []Runtime{Node, Bun, Deno} {
		t.Run(string(rt), func(t *testing.T) {
			cfg := machineConfig(t, rt)
			reg, err := cfg.packageRegistries(rt)
			if err != nil {
				t.Fatal(err)
			}
			logs := &egress.LogBuffer{}
			st, stderr, out := installRun{cfg: cfg, rt: rt, pkgs: []string{"lodash"}, code: code[rt], logs: logs}.run(t, b)
			if st.Code != 0 || out != "ab,cd\n" {
				t.Fatalf("install exit %d, output %q; stderr:\n%s", st.Code, out, stderr)
			}
			if !allowedThrough(logs, packages.Host(reg.NPM)) {
				t.Errorf("no request to %s went through the proxy: %v", packages.Host(reg.NPM), logs)
			}
		})
	}
}

func TestInstallFromLocalPythonIndex(t *testing.T) {
	b := dockerBackend(t)
	ix := startLocalIndex(t)
	const indexHost = "pypi-local.test"
	cfg := DefaultConfig()
	cfg.Packages.PipIndexURL = ix.URL(indexHost)
	// Test-only allowances: the index's name resolves to loopback, which
	// the proxy then may reach (on the index's port, from the URL).
	local := installRun{cfg: cfg, rt: Python, resolver: fakeResolver{indexHost: {loopback}},
		private: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, logs: &egress.LogBuffer{}}

	ok := local
	ok.pkgs = []string{"isol8-hello==1.0"}
	ok.code = "import isol8_hello, sys\nprint(isol8_hello.greet('sandbox'))\nprint(isol8_hello.__file__.startswith('/sandbox/'))\n"
	st, stderr, out := ok.run(t, b)
	if st.Code != 0 || out != "hello sandbox from the local index\nTrue\n" {
		t.Fatalf("install exit %d, output %q; stderr:\n%s", st.Code, out, stderr)
	}
	if !allowedThrough(ok.logs, indexHost) {
		t.Errorf("the index was not reached through the proxy: %v", ok.logs)
	}

	// Another sandbox (another tenant's run) does not see it.
	other := installRun{cfg: cfg, rt: Python, code: "try:\n    import isol8_hello\n    print('visible')\nexcept ImportError:\n    print('not installed')\n"}
	if _, _, out := other.run(t, b); out != "not installed\n" {
		t.Errorf("a fresh sandbox sees the package: %q", out)
	}

	// A package the index does not have fails the install with pip's own
	// explanation, and the program does not run.
	missing := local
	missing.pkgs, missing.code = []string{"no-such-package"}, "print('ran')"
	st, stderr, out = missing.run(t, b)
	if st.Code == 0 || out != "" || !strings.Contains(stderr, "no-such-package") || !strings.Contains(stderr, "isol8: installing") {
		t.Errorf("missing package: exit %d, output %q, stderr:\n%s", st.Code, out, stderr)
	}

	// A deny pattern for the index wins over the registry's allowance.
	denied := local
	denied.cfg = DefaultConfig()
	denied.cfg.Packages.PipIndexURL = cfg.Packages.PipIndexURL
	denied.cfg.Network.Blacklist = []string{`pypi-local\.test`}
	denied.pkgs, denied.code, denied.logs = []string{"isol8-hello"}, "print('ran')", &egress.LogBuffer{}
	st, _, _ = denied.run(t, b)
	entries, _ := denied.logs.Logs()
	if st.Code == 0 || !slices.ContainsFunc(entries, func(l egress.Log) bool { return l.Action == egress.ActionBlock && l.Host == indexHost }) {
		t.Errorf("install with the index denied: exit %d, logs %v", st.Code, entries)
	}
}

func TestInstallDebianForBash(t *testing.T) {
	b := dockerBackend(t)
	cfg := machineConfig(t, Bash)
	logs := &egress.LogBuffer{}
	code := `echo '{"a":{"b":[1,2,3]}}' | jq -c '.a.b | map(. * 2)'; command -v jq`
	st, stderr, out := installRun{cfg: cfg, rt: Bash, pkgs: []string{"jq"}, code: code, logs: logs}.run(t, b)
	if st.Code != 0 || out != "[2,4,6]\n"+packages.DebianRoot+"/usr/bin/jq\n" {
		t.Fatalf("install exit %d, output %q; stderr:\n%s", st.Code, out, stderr)
	}
	mirror, _ := image.DebianMirror(image.Options{})
	if !allowedThrough(logs, packages.Host(mirror)) {
		t.Errorf("the mirror was not reached through the proxy: %v", logs)
	}
}
