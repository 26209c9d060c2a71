package image

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPlanRootfs(t *testing.T) {
	opts := Options{Mirror: "http://archive.example/debian", Suite: "bookworm", CADir: "-"}
	p, err := PlanRootfs("python", opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.Packages, "python3") || !slices.Contains(p.Packages, "ca-certificates") {
		t.Errorf("packages %q", p.Packages)
	}
	if !strings.HasPrefix(p.Key(), "debian-python-") || !slices.Contains(p.Env, "LANG=C.UTF-8") {
		t.Errorf("key %s, env %q", p.Key(), p.Env)
	}
	// The mirror does not shape the tree; the suite and packages do.
	other := opts
	other.Mirror = "http://other.example/debian"
	if q, _ := PlanRootfs("python", other); q.Hash != p.Hash {
		t.Error("the mirror changed the hash")
	}
	other = opts
	other.SystemPackages = map[string][]string{"python": {"git"}}
	if q, _ := PlanRootfs("python", other); q.Hash == p.Hash {
		t.Error("an extra package left the hash unchanged")
	}
	for _, rt := range []string{"bun", "deno"} {
		if _, err := PlanRootfs(rt, opts); !errors.Is(err, ErrNoDebianRootfs) {
			t.Errorf("%s: %v", rt, err)
		}
	}
	if got := DebianRootfsRuntimes(); !slices.Equal(got, []string{"bash", "node", "python"}) {
		t.Errorf("DebianRootfsRuntimes = %q", got)
	}
}

func TestAddSandboxUser(t *testing.T) {
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(etc, "passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "group"), []byte("root:x:0:\n"), 0o644)
	for range 2 { // a second run adds nothing
		if err := addSandboxUser(dir); err != nil {
			t.Fatal(err)
		}
	}
	passwd, _ := os.ReadFile(filepath.Join(etc, "passwd"))
	group, _ := os.ReadFile(filepath.Join(etc, "group"))
	if string(passwd) != "root:x:0:0:root:/root:/bin/bash\nsandbox:x:1000:1000::/sandbox:/bin/bash\n" {
		t.Errorf("passwd %q", passwd)
	}
	if string(group) != "root:x:0:\nsandbox:x:1000:\n" {
		t.Errorf("group %q", group)
	}
}
