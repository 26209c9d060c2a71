package packages

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct {
		eco  Ecosystem
		in   string
		key  string
		path bool
	}{
		{Pip, "pandas", "pandas", false},
		{Pip, "Django==5.0.1", "django==5.0.1", false},
		{Pip, "zope.interface>=6,<7", "zope-interface>=6,<7", false},
		{Pip, "requests[socks,security]~=2.31", "requests[security,socks]~=2.31", false},
		{Pip, "numpy!=1.25.0", "numpy!=1.25.0", false},
		{Pip, "Typing_Extensions", "typing-extensions", false},
		{NPM, "lodash", "lodash", false},
		{NPM, "lodash@4.17.21", "lodash@4.17.21", false},
		{NPM, "@types/node@^20", "@types/node@^20", false},
		{NPM, "JSONStream", "JSONStream", false},
		{NPM, "left-pad@latest", "left-pad@latest", false},
		{Debian, "jq", "jq", false},
		{Debian, "libc6-dev", "libc6-dev", false},
		{Debian, "g++", "g++", false},
		{Debian, "jq=1.6-2.1+deb12u2", "jq=1.6-2.1+deb12u2", false},
	} {
		s, err := Parse(tc.eco, tc.in, false)
		if err != nil {
			t.Errorf("Parse(%s, %q): %v", tc.eco, tc.in, err)
			continue
		}
		if s.Key() != tc.key || s.Raw != tc.in || s.Path != tc.path {
			t.Errorf("Parse(%s, %q) = key %q raw %q path %v; want key %q", tc.eco, tc.in, s.Key(), s.Raw, s.Path, tc.key)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // part of the error
	}{
		{"--index-url=http://evil.test", "looks like an option"},
		{"-e", "looks like an option"},
		{"x; rm -rf /", "shell"},
		{"../../etc", "is a path"},
		{"/etc/passwd", "is a path"},
		{"./pkg", "is a path"},
		{"~/pkg", "is a path"},
		{"https://evil.test/pkg.tgz", "is a URL"},
		{"git+ssh://git@evil.test/x", "is a URL"},
		{"pkg @ https://evil.test/x.whl", "URL"},
		{"$(touch /tmp/pwn)", "shell"},
		{"a`id`", "shell"},
		{"pkg|cat", "shell"},
		{"pkg\nother", "shell"},
		{"name with space", "spaces"},
		{"", "empty"},
		{strings.Repeat("a", MaxNameLen+1), "longer"},
		{"päckage", "non-ASCII"},
	} {
		for _, eco := range []Ecosystem{Pip, NPM, Debian} {
			if _, err := Parse(eco, tc.in, false); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%s, %q) = %v; want an error about %q", eco, tc.in, err, tc.want)
			}
		}
	}
	for _, tc := range []struct {
		eco Ecosystem
		in  string
	}{
		{Pip, "pandas>"}, {Pip, "pandas=1"}, {Pip, "_private"}, {Pip, "x[a"}, {Pip, "a@b"},
		{NPM, "lodash@"}, {NPM, "npm:lodash"}, {NPM, "user/repo"}, {NPM, "@scope"}, {NPM, "_x"}, {NPM, ".x"},
		{NPM, "x@!1"},
		{Debian, "JQ"}, {Debian, "a"}, {Debian, "jq=x"}, {Debian, "jq:amd64"},
	} {
		if s, err := Parse(tc.eco, tc.in, false); err == nil {
			t.Errorf("Parse(%s, %q) = %+v; want an error", tc.eco, tc.in, s)
		}
	}
}

func TestParsePaths(t *testing.T) {
	s, err := Parse(Pip, "/sandbox/wheels/x-1.0-py3-none-any.whl", true)
	if err != nil || !s.Path || s.Key() != "/sandbox/wheels/x-1.0-py3-none-any.whl" {
		t.Errorf("allowed path: %+v, %v", s, err)
	}
	for _, p := range []string{"../../etc", "/etc/passwd", "/sandbox/../etc/x", "/sandbox/a/../../x", "/sandbox/.hidden", "/sandbox/a//b", "/sandbox/a b"} {
		if _, err := Parse(NPM, p, true); err == nil {
			t.Errorf("Parse(npm, %q, allowPaths) accepted it", p)
		}
	}
}

func TestSplitSystem(t *testing.T) {
	own, sys, err := SplitSystem("python", "dependencies.python", []string{"requests", "system:python3-pandas"})
	if err != nil || len(own) != 1 || own[0].Name != "requests" || len(sys) != 1 || sys[0].Name != "python3-pandas" {
		t.Errorf("SplitSystem = %+v, %+v, %v", own, sys, err)
	}
	_, sys, err = SplitSystem("bash", "dependencies.bash", []string{"jq"})
	if err != nil || len(sys) != 1 {
		t.Errorf("bash packages are Debian ones: %+v, %v", sys, err)
	}
	if _, _, err := SplitSystem("python", "dependencies.python", []string{"ok", "system:x; y"}); err == nil || !strings.Contains(err.Error(), "dependencies.python[1]") {
		t.Errorf("err = %v, want one naming dependencies.python[1]", err)
	}
}

func TestProvides(t *testing.T) {
	for in, want := range map[string]string{"python3-pandas": "pandas", "python3-ruamel.yaml": "ruamel-yaml", "python3": "", "libpython3-dev": ""} {
		got, ok := Provides("python", Spec{Ecosystem: Debian, Name: in})
		if got != want || ok != (want != "") {
			t.Errorf("Provides(python, %s) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := Provides("node", Spec{Ecosystem: Debian, Name: "python3-pandas"}); ok {
		t.Error("a python3- package provides nothing to node")
	}
}

func TestRuntimeCommand(t *testing.T) {
	reg := Registries{NPM: "https://npm.registry.test", PipIndex: "http://index.test:8080/simple"}
	specs := func(eco Ecosystem, names ...string) []Spec {
		out, err := ParseList(eco, "installPackages", names, false)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for rt, list := range map[string][]Spec{
		"python": specs(Pip, "pandas", "numpy==2.0"),
		"node":   specs(NPM, "lodash", "@types/node"),
		"bun":    specs(NPM, "lodash"),
		"deno":   specs(NPM, "lodash"),
		"bash":   specs(Debian, "jq"),
	} {
		cmd, err := RuntimeCommand(rt, list, reg)
		if err != nil {
			t.Fatalf("%s: %v", rt, err)
		}
		tail := cmd.Argv[len(cmd.Argv)-len(list):]
		for i, s := range list {
			want := s.Raw
			if rt == "deno" {
				want = "npm:" + s.Raw
			}
			if tail[i] != want {
				t.Errorf("%s: argv %q does not end with the names as separate elements", rt, cmd.Argv)
			}
		}
		if rt != "deno" && cmd.Argv[len(cmd.Argv)-len(list)-1] != "--" {
			t.Errorf("%s: argv %q has no -- before the names", rt, cmd.Argv)
		}
		if rt == "python" && !slices.Contains(cmd.Argv, "--trusted-host") {
			t.Errorf("python with an http index: argv %q lacks --trusted-host", cmd.Argv)
		}
	}
	if _, err := RuntimeCommand("python", specs(Pip, "x"), Registries{}); err == nil {
		t.Error("pip without an index accepted")
	}
}

func TestEnvBash(t *testing.T) {
	env := Env("bash", []string{"PATH=/usr/bin:/bin", "HOME=/sandbox"})
	joined := strings.Join(env, "\n")
	if !strings.Contains(joined, "PATH="+DebianRoot+"/usr/local/bin:") || !strings.Contains(joined, ":/usr/bin:/bin") ||
		!strings.Contains(joined, "LD_LIBRARY_PATH="+DebianRoot+"/usr/lib/") || strings.Count(joined, "PATH=") != 2 {
		t.Errorf("Env(bash) = %q", env)
	}
	if got := Env("python", []string{"A=1"}); len(got) != 1 {
		t.Errorf("Env(python) = %q", got)
	}
}

func TestBakeFiles(t *testing.T) {
	b := Bake{Runtime: "node", Packages: mustSpecs(t, NPM, "lodash"), System: mustSpecs(t, Debian, "jq"),
		Setup: []string{"echo hi"}, Registries: Registries{NPM: "https://npm.registry.test"}}
	files, err := b.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"install.sh", "system.txt", "packages.txt", "installer.txt", "setup-001.sh", "link-node-modules"} {
		if _, ok := files[name]; !ok {
			t.Errorf("Files() lacks %s: %v", name, slices.Sorted(maps.Keys(files)))
		}
	}
	if string(files["packages.txt"]) != "lodash\n" || string(files["system.txt"]) != "jq\n" {
		t.Errorf("lists: %q %q", files["packages.txt"], files["system.txt"])
	}
	if strings.Contains(string(files["install.sh"]), "lodash") {
		t.Error("a package name is in the script text")
	}
	if _, err := (Bake{Runtime: "deno", Packages: mustSpecs(t, NPM, "x"), Registries: Registries{NPM: "https://r.test"}}).Files(); err == nil {
		t.Error("baking deno packages accepted")
	}
}

func mustSpecs(t *testing.T, eco Ecosystem, names ...string) []Spec {
	t.Helper()
	out, err := ParseList(eco, "x", names, false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
