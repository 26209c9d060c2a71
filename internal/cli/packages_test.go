package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/isol8/isol8"
	"github.com/spf13/cobra"
)

// requestFor builds run's request from a command line without running it.
func requestFor(t *testing.T, args ...string) (*isol8.Request, *runOptions, error) {
	t.Helper()
	o := &runOptions{}
	cmd := &cobra.Command{Use: "run"}
	o.addFlags(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := o.applyFlags(cmd); err != nil {
		return nil, o, err
	}
	req, err := o.request(cmd, cmd.Flags().Args())
	return req, o, err
}

// Bad package names are refused with exit 2 and a message naming the
// flag's value, before any engine or sandbox: the Docker host here does
// not exist, and would make any attempt exit 1.
func TestInstallRefusesBadNames(t *testing.T) {
	isolate(t)
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/isol8-test.sock")
	for _, tc := range []struct{ rt, pkg, want string }{
		{"python", "--index-url=http://evil.test", "looks like an option"},
		{"node", "x; rm -rf /", "shell"},
		{"bash", "../../etc", "is a path"},
		{"python", "https://evil.test/x.whl", "URL"},
	} {
		o := cli(t, "run", "-r", tc.rt, "--install="+tc.pkg, "-e", "1")
		expectCode(t, o, 2)
		if !strings.Contains(o.stderr, "--install \""+tc.pkg+"\"") || !strings.Contains(o.stderr, tc.want) {
			t.Errorf("--install %q: stderr %q, want it to name the value and say %q", tc.pkg, o.stderr, tc.want)
		}
	}
}

func TestInstallFlag(t *testing.T) {
	isolate(t)
	req, o, err := requestFor(t, "-r", "node", "--install", "lodash", "--install", "@types/node@^20", "-e", "1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(req.InstallPackages, " ") != "lodash @types/node@^20" {
		t.Errorf("installPackages = %q", req.InstallPackages)
	}
	if o.options.Network != isol8.NetworkFiltered || o.cfg.Defaults.Network != isol8.NetworkFiltered {
		t.Errorf("without --net, network = %q / %q; want filtered", o.options.Network, o.cfg.Defaults.Network)
	}
	_, o, err = requestFor(t, "--install", "requests", "--net", "host", "-e", "1")
	if err != nil {
		t.Fatal(err)
	}
	if o.options.Network != isol8.NetworkHost {
		t.Errorf("with --net host, network = %q", o.options.Network)
	}
	_, o, err = requestFor(t, "-e", "1")
	if err != nil || o.options.Network != "" {
		t.Errorf("without --install: network %q, %v", o.options.Network, err)
	}
}

func TestRemoteFlags(t *testing.T) {
	isolate(t)
	for _, tc := range []struct {
		args    []string
		url, rt string
	}{
		{[]string{"--url", "https://code.example/tools/x.mts"}, "https://code.example/tools/x.mts", "deno"},
		{[]string{"--url", "https://code.example/run?id=1"}, "https://code.example/run?id=1", "python"},
		{[]string{"--github", "octo/demo/scripts/hello.py@v1.2"}, githubRaw + "/octo/demo/v1.2/scripts/hello.py", "python"},
		{[]string{"--github", "octo/demo/app.js"}, githubRaw + "/octo/demo/HEAD/app.js", "node"},
		{[]string{"--gist", "octo/0123abcd/x.sh"}, gistRaw + "/octo/0123abcd/raw/x.sh", "bash"},
		{[]string{"--gist", "0123abcd"}, gistPage + "/0123abcd/raw", "python"},
		{[]string{"-r", "bun", "--url", "https://code.example/x"}, "https://code.example/x", "bun"},
	} {
		req, _, err := requestFor(t, tc.args...)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if req.CodeURL != tc.url || string(req.Runtime) != tc.rt || req.Code != "" {
			t.Errorf("%q: codeUrl %q runtime %q; want %q %q", tc.args, req.CodeURL, req.Runtime, tc.url, tc.rt)
		}
	}
	req, _, err := requestFor(t, "--url", "http://code.example/x.py", "--hash", strings.Repeat("ab", 32), "--allow-insecure-url")
	if err != nil || req.CodeHash != strings.Repeat("ab", 32) || !req.AllowInsecureCodeURL {
		t.Errorf("hash and insecure: %+v, %v", req, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "https://x.example/a.py", "-e", "1"}, "one way only"},
		{[]string{"--url", "https://x.example/a.py", "--github", "a/b/c.py"}, "give one of"},
		{[]string{"--hash", "00", "-e", "1"}, "--hash goes with"},
		{[]string{"--github", "octo/demo"}, "OWNER/REPO/PATH"},
		{[]string{"--github", "octo/demo/../x.py"}, "clean"},
		{[]string{"--gist", "not-hex"}, "hexadecimal"},
		{[]string{"--url", "relative/x.py"}, "absolute"},
		{[]string{"--url", "https://x.example/a.py", "--hash", "xyz"}, "codeHash"},
	} {
		if _, _, err := requestFor(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// isol8 build bakes a custom image; isol8 setup bakes the config's
// prebuiltImages; isol8 images lists both with their packages.
func TestBuildSetupImages(t *testing.T) {
	needDocker(t)
	dir := isolate(t)
	writeFile(t, dir+"/prep.sh", "echo prepared > /etc/isol8-cli-test\n")
	o := cli(t, "build", "--base", "bash", "--tag", "isol8-test-cli:jq", "--install", "jq", "--setup", "prep.sh")
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "isol8-test-cli:jq") {
		t.Fatalf("build output:\n%s", o)
	}
	o = cli(t, "build", "--base", "bash", "--tag", "isol8-test-cli:jq", "--install", "jq", "--setup", "prep.sh")
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "up to date") {
		t.Errorf("second build is not a no-op:\n%s", o)
	}
	writeFile(t, dir+"/isol8.config.json", `{"prebuiltImages": [{"tag": "isol8-test-cli:prebuilt", "runtime": "python", "installPackages": ["system:python3-yaml"], "setupScript": "true"}]}`)
	o = cli(t, "setup")
	expectCode(t, o, 0)
	o = cli(t, "images", "--json")
	expectCode(t, o, 0)
	var list struct {
		Images []imageRow `json:"images"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &list); err != nil {
		t.Fatal(err)
	}
	found := map[string]imageRow{}
	for _, r := range list.Images {
		for _, tag := range r.Tags {
			found[tag] = r
		}
	}
	if r := found["isol8-test-cli:jq"]; r.Runtime != "bash" || strings.Join(r.Packages, ",") != "jq" || !r.Custom {
		t.Errorf("isol8-test-cli:jq listed as %+v", r)
	}
	if r := found["isol8-test-cli:prebuilt"]; r.Runtime != "python" || strings.Join(r.Packages, ",") != "yaml" || strings.Join(r.SystemPackages, ",") != "python3-yaml" {
		t.Errorf("isol8-test-cli:prebuilt listed as %+v", r)
	}
	o = cli(t, "images")
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "isol8-test-cli:jq") || !strings.Contains(o.stdout, "RUNTIME") {
		t.Errorf("images table:\n%s", o.stdout)
	}
	for _, args := range [][]string{
		{"build", "--base", "bash", "--tag", "x-test", "--install=--allow-unauthenticated"},
		{"build", "--base", "python", "--tag", "isol8:python", "--system", "jq"},
		{"build", "--base", "cobol", "--tag", "x-test", "--system", "jq"},
		{"build", "--tag", "x-test"},
	} {
		expectCode(t, cli(t, args...), 2)
	}
}
