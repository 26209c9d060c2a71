package isol8

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/image"
)

func TestCheckPackagesRefuses(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		rt    Runtime
		pkgs  []string
		field string
	}{
		{Python, []string{"pandas", "--index-url=http://evil.test"}, "installPackages[1]"},
		{Node, []string{"x; rm -rf /"}, "installPackages[0]"},
		{Bash, []string{"jq", "../../etc"}, "installPackages[1]"},
		{Python, []string{"https://evil.test/x.whl"}, "installPackages[0]"},
		{Node, []string{"/sandbox/x.tgz"}, "installPackages[0]"}, // paths are off by default
		{Deno, []string{"-g"}, "installPackages[0]"},
	} {
		_, err := cfg.checkPackages(&Request{Runtime: tc.rt, Code: "1", InstallPackages: tc.pkgs})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s %q: err = %v, want an invalid-argument error naming %s", tc.rt, tc.pkgs, err, tc.field)
		}
	}
	specs, err := cfg.checkPackages(&Request{Runtime: Python, Code: "1", InstallPackages: []string{"pandas==2.1", "NumPy"}})
	if err != nil || len(specs) != 2 || specs[1].Name != "numpy" {
		t.Errorf("good names: %+v, %v", specs, err)
	}
	cfg.Packages.AllowPaths = true
	if _, err := cfg.checkPackages(&Request{Runtime: Node, Code: "1", InstallPackages: []string{"/sandbox/x.tgz"}}); err != nil {
		t.Errorf("a /sandbox path with packages.allowPaths: %v", err)
	}
	if _, err := cfg.checkPackages(&Request{Runtime: Node, Code: "1", InstallPackages: []string{"/etc/x.tgz"}}); err == nil {
		t.Error("a path outside /sandbox accepted with packages.allowPaths")
	}
}

func TestAllowInstall(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Packages.NPMRegistry = "https://npm.registry.test/"
	cfg.Packages.ExtraHosts = []string{`files\.registry\.test`}
	lim := cfg.Resolve(Options{}, nil)
	if err := cfg.allowInstall(&lim, Node); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "filtered") {
		t.Errorf("network none: err = %v", err)
	}
	lim = cfg.Resolve(Options{Network: NetworkFiltered, NetworkFilter: &NetworkFilter{Whitelist: []string{`api\.test`}}}, nil)
	if err := cfg.allowInstall(&lim, Node); err != nil {
		t.Fatal(err)
	}
	want := []string{`npm\.registry\.test`, `files\.registry\.test`}
	if !slices.Equal(lim.Filter.Whitelist, want) || !slices.Equal(lim.OptionFilter.Whitelist, append([]string{`api\.test`}, want...)) {
		t.Errorf("filters = %v and %v", lim.Filter.Whitelist, lim.OptionFilter.Whitelist)
	}
	if cfg.Network.Whitelist == nil || len(cfg.Network.Whitelist) != 0 {
		t.Errorf("allowInstall changed the config: %v", cfg.Network.Whitelist)
	}
	if len(lim.AllowPrivate) != 0 || len(lim.ExtraPorts) != 0 {
		t.Errorf("allowances without registryAddresses: %v %v", lim.AllowPrivate, lim.ExtraPorts)
	}
	lim = cfg.Resolve(Options{Network: NetworkHost}, nil)
	if err := cfg.allowInstall(&lim, Node); err != nil || len(lim.Filter.Whitelist) != 0 {
		t.Errorf("host network: %v, %v", lim.Filter.Whitelist, err)
	}

	// A company mirror: a port of its own, private addresses allowed by
	// the operator.
	cfg.Packages.NPMRegistry = "https://npm.corp.test:8443/repository/npm/"
	cfg.Packages.RegistryAddresses = []string{"10.20.0.0/16", "192.0.2.7"}
	lim = cfg.Resolve(Options{Network: NetworkFiltered}, nil)
	if err := cfg.allowInstall(&lim, Node); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(lim.AllowPrivate) != "[10.20.0.0/16 192.0.2.7/32]" || !slices.Equal(lim.ExtraPorts, []uint16{8443}) || lim.Filter.Whitelist[0] != `npm\.corp\.test` {
		t.Errorf("company mirror: private %v ports %v allow %v", lim.AllowPrivate, lim.ExtraPorts, lim.Filter.Whitelist)
	}
	cfg.Packages.RegistryAddresses = []string{"not-an-address"}
	if err := cfg.Packages.Validate(); err == nil || !strings.Contains(err.Error(), "packages.registryAddresses[0]") {
		t.Errorf("bad registryAddresses: %v", err)
	}
}

func TestPackagesConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"packages": {"npmRegistry": "https://npm.corp.test/", "pipIndexUrl": "http://pypi.corp.test:8080/simple",
		"allowPaths": true, "extraHosts": ["files\\.corp\\.test"], "registryAddresses": ["10.0.0.0/8"], "timeoutMs": 60000},
		"dependencies": {"python": ["requests", "system:python3-pandas"], "bash": ["jq"]}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Packages.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Packages.installTimeout() != 60*time.Second || !cfg.Packages.AllowPaths {
		t.Errorf("packages = %+v", cfg.Packages)
	}
	var opts image.Options
	if err := cfg.ApplyDependencies(&opts); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(opts.Packages) != "map[python:[requests]]" || fmt.Sprint(opts.SystemPackages) != "map[bash:[jq] python:[python3-pandas]]" ||
		opts.Registries.NPM != "https://npm.corp.test" || opts.Registries.PipIndex != "http://pypi.corp.test:8080/simple" {
		t.Errorf("image options: %+v", opts)
	}
	if _, err := ParseConfig([]byte(`{"packages": {"npmRegistery": "x"}}`), "test"); err == nil || !strings.Contains(err.Error(), "packages.npmRegistery") {
		t.Errorf("unknown key: %v", err)
	}
	for _, bad := range []string{
		`{"packages": {"npmRegistry": "ftp://x"}}`,
		`{"packages": {"pipIndexUrl": "https://user:pw@x/simple"}}`,
		`{"packages": {"timeoutMs": -1}}`,
		`{"dependencies": {"python": ["--pre"]}}`,
	} {
		cfg, err := ParseConfig([]byte(bad), "test")
		if err == nil {
			err = cfg.Packages.Validate()
		}
		if err == nil {
			err = cfg.ApplyDependencies(&image.Options{})
		}
		if err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	cfg.PrebuiltImages = []PrebuiltImage{{Tag: "t", Runtime: "node", InstallPackages: []string{"lodash", "system:jq"}, SetupScript: "true"}}
	c, err := cfg.PrebuiltImage(0)
	if err != nil || fmt.Sprint(c.Packages, c.System, c.Setup) != "[lodash] [jq] [true]" {
		t.Errorf("PrebuiltImage = %+v, %v", c, err)
	}
}
