package isol8

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/packages"
	"github.com/isol8/isol8/sandbox"
)

// builder connects to the Docker engine for image builds.
func builder(t *testing.T) *image.Builder {
	t.Helper()
	if os.Getenv("ISOL8_SKIP_DOCKER") == "1" {
		t.Skip("ISOL8_SKIP_DOCKER=1: not testing with Docker")
	}
	b, err := image.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBakedPackagesSkipInstall(t *testing.T) {
	sb := dockerBackend(t)
	b := builder(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	progress := func(p image.Progress) {
		if p.Stage != image.StageOutput {
			t.Log(p.String())
		}
	}
	build := func(c image.Custom, opts image.Options) string {
		t.Helper()
		opts.Progress = progress
		res, err := b.BuildCustom(ctx, c, opts)
		if err != nil {
			t.Fatalf("BuildCustom %s: %v", c.Tag, err)
		}
		return res.Tags[0]
	}
	// npm packages from the real registry, baked by the build.
	lodash := build(image.Custom{Tag: "isol8-test-baked:node-lodash", Runtime: "node", Packages: []string{"lodash"}}, image.Options{})
	both := build(image.Custom{Tag: "isol8-test-baked:node-lodash-leftpad", Runtime: "node", Packages: []string{"left-pad", "lodash"}}, image.Options{})
	// A pip package from the test's own index: the build reaches it on the
	// host's loopback.
	ix := startLocalIndex(t)
	hello := build(image.Custom{Tag: "isol8-test-baked:python-hello", Runtime: "python", Packages: []string{"isol8-hello"}},
		image.Options{BuildNetwork: "host", Registries: packages.Registries{PipIndex: ix.srv.URL + "/simple"}})

	cfg := DefaultConfig()
	for _, tc := range []struct {
		rt    Runtime
		pkgs  []string
		want  string
		code  string
		out   string
		exact bool
	}{
		{Node, []string{"lodash"}, lodash, `import _ from "lodash"; console.log(_.kebabCase("Baked In"))`, "baked-in\n", true},
		{Node, []string{"left-pad"}, both, `import leftPad from "left-pad"; console.log(leftPad("7", 3, "0"))`, "007\n", false},
		{Node, []string{"lodash", "left-pad"}, both, `const _ = require("lodash"); console.log(_.sum([1, 2]))`, "3\n", true},
		{Python, []string{"isol8_hello"}, hello, "import isol8_hello; print(isol8_hello.greet('image'))", "hello image from the local index\n", true},
	} {
		specs, err := cfg.checkPackages(&Request{Runtime: tc.rt, Code: tc.code, InstallPackages: tc.pkgs})
		if err != nil {
			t.Fatal(err)
		}
		img, install := packageImage(ctx, nil, tc.rt, "", specs)
		if install || img != tc.want {
			t.Errorf("%s %v: packageImage = %q, install %v; want %q without install", tc.rt, tc.pkgs, img, install, tc.want)
			continue
		}
		if m, ok, _ := b.FindPackages(ctx, string(tc.rt), packages.Keys(specs)); !ok || m.Exact != tc.exact {
			t.Errorf("%s %v: FindPackages = %+v, %v; want exact %v", tc.rt, tc.pkgs, m, ok, tc.exact)
		}
		code := tc.code
		if strings.Contains(code, "require(") {
			code = "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);\n" + code
		}
		// No network and no install step: the packages come from the image.
		_, stderr, out := installRun{cfg: cfg, rt: tc.rt, image: img, code: code}.run(t, sb)
		if out != tc.out {
			t.Errorf("%s in %s: output %q, want %q; stderr:\n%s", tc.rt, img, out, tc.out, stderr)
		}
	}

	// An explicit image keeps being used; it needs an install only when
	// its labels lack a package.
	specs, _ := cfg.checkPackages(&Request{Runtime: Node, Code: "1", InstallPackages: []string{"left-pad"}})
	if img, install := packageImage(ctx, nil, Node, lodash, specs); img != lodash || !install {
		t.Errorf("explicit %s for left-pad: %q, install %v", lodash, img, install)
	}
	if img, install := packageImage(ctx, nil, Node, both, specs); img != both || install {
		t.Errorf("explicit %s for left-pad: %q, install %v", both, img, install)
	}
	// Nothing local has this one.
	specs, _ = cfg.checkPackages(&Request{Runtime: Node, Code: "1", InstallPackages: []string{"lodash@3"}})
	if img, install := packageImage(ctx, nil, Node, "", specs); img != "" || !install {
		t.Errorf("lodash@3: %q, install %v; want the default image and an install", img, install)
	}

	// The engine's step: a baked request needs no network; one that must
	// install is refused without network, and opens the registry when
	// filtered.
	e, err := New(EngineConfig{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	lim := cfg.Resolve(Options{}, nil)
	err = e.preparePackages(ctx, &Request{Runtime: Node, Code: "1", InstallPackages: []string{"lodash"}}, &lim)
	if err != nil || len(lim.Install) != 0 || lim.Image != lodash || lim.Network != NetworkNone {
		t.Errorf("baked lodash: install %v, image %q, network %q, %v", lim.Install, lim.Image, lim.Network, err)
	}
	lim = cfg.Resolve(Options{}, nil)
	if err := e.preparePackages(ctx, &Request{Runtime: Node, Code: "1", InstallPackages: []string{"lodash@3"}}, &lim); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("lodash@3 without network: err = %v", err)
	}
	lim = cfg.Resolve(Options{Network: NetworkFiltered}, nil)
	err = e.preparePackages(ctx, &Request{Runtime: Node, Code: "1", InstallPackages: []string{"lodash@3"}}, &lim)
	if err != nil || len(lim.Install) != 1 || lim.Image != "" || len(lim.Filter.Whitelist) == 0 {
		t.Errorf("lodash@3 filtered: install %v, image %q, allow %v, %v", lim.Install, lim.Image, lim.Filter.Whitelist, err)
	}
	lim = cfg.Resolve(Options{}, nil)
	if err := e.preparePackages(ctx, &Request{Runtime: Node, Code: "1", InstallPackages: []string{"x; rm -rf /"}}, &lim); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad name: err = %v", err)
	}
}

// The seed's pandas group-by and matplotlib chart (examples/pandas-groupby
// and examples/matplotlib-chart), run as the engine will run them: the
// request asks for the package, packageImage finds the image with it baked
// in (Debian's python3-pandas and python3-matplotlib, built as the
// examples say), and the run has no network and installs nothing.
func TestSeedDataPatterns(t *testing.T) {
	sb := dockerBackend(t)
	b := builder(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	res, err := b.BuildCustom(ctx, image.Custom{Tag: "isol8-data", Runtime: "python", System: []string{"python3-pandas", "python3-matplotlib"}},
		image.Options{Progress: func(p image.Progress) {
			if p.Stage != image.StageOutput {
				t.Log(p.String())
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	for _, tc := range []struct {
		pkg, code, out, file string
		check                func([]byte) bool
	}{
		{"pandas", `
import pandas as pd
df = pd.read_csv("/sandbox/data.csv")
out = df.groupby("category")["revenue"].sum().reset_index()
out.to_csv("/sandbox/summary.csv", index=False)
print("summary ready")
`, "summary ready\n", "/sandbox/summary.csv", func(b []byte) bool {
			return string(b) == "category,revenue\nbooks,14.5\ngames,25.5\nmusic,7.0\n"
		}},
		{"matplotlib", `
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.plot([1,2,3],[2,4,8])
plt.savefig("/sandbox/chart.png", dpi=150)
print("chart ready")
`, "chart ready\n", "/sandbox/chart.png", func(b []byte) bool {
			return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) && len(b) > 1000
		}},
	} {
		specs, err := cfg.checkPackages(&Request{Runtime: Python, Code: tc.code, InstallPackages: []string{tc.pkg}})
		if err != nil {
			t.Fatal(err)
		}
		img, install := packageImage(ctx, nil, Python, "", specs)
		if install || img == "" {
			t.Fatalf("%s: packageImage = %q, install %v; want an image with it (built %v)", tc.pkg, img, install, res.Tags)
		}
		box, err := sb.Create(ctx, sandbox.Spec{Image: img, MemoryBytes: 512 << 20, CPUs: 1, Pids: 64,
			SandboxSize: 512 << 20, TmpSize: 256 << 20, Network: sandbox.NetworkNone, ReadonlyRootFS: true})
		if err != nil {
			t.Fatal(err)
		}
		defer box.Destroy(context.Background())
		files := []sandbox.File{{Path: "/sandbox/main.py", Data: []byte(tc.code)},
			{Path: "/sandbox/data.csv", Data: []byte("category,revenue\nbooks,10\ngames,25.5\nbooks,4.5\nmusic,7\n")}}
		if err := box.WriteFiles(ctx, files); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		st, err := box.Exec(ctx, sandbox.ExecSpec{Argv: []string{"python3", "-u", "/sandbox/main.py"}, Env: packageEnv(Python, baseEnv, false),
			Dir: "/sandbox", Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
		if err != nil || st.Code != 0 || stdout.String() != tc.out {
			t.Fatalf("%s in %s: exit %d, %v, stdout %q, stderr:\n%s", tc.pkg, img, st.Code, err, stdout.String(), stderr.String())
		}
		data, err := box.ReadFile(ctx, tc.file, 64<<20)
		if err != nil || !tc.check(data) {
			t.Errorf("%s: %s = %d bytes %q…, %v", tc.pkg, tc.file, len(data), truncate(data, 80), err)
		}
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
