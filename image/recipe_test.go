package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/isol8/isol8/sandbox"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var testArchive = &Archive{Distro: "debian", Mirror: "http://mirror.example/debian", Suite: "bookworm", Components: []string{"main"}}

func TestDockerfileGolden(t *testing.T) {
	r, err := newRecipe("python", "isol8-base:0123456789ab", "debootstrap 0123", testArchive, []string{"python3-numpy", "curl"})
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/python.Dockerfile.golden"
	if *update {
		if err := os.WriteFile(golden, r.files["Dockerfile"], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.files["Dockerfile"]); got != string(want) {
		t.Errorf("Dockerfile differs from %s (run go test -update):\n%s", golden, got)
	}
	if got := string(r.files["sources.list"]); got != "deb http://mirror.example/debian bookworm main\n" {
		t.Errorf("sources.list = %q", got)
	}
	if tags := r.Tags(); tags[0] != "isol8:python" || tags[1] != "isol8:python-"+r.Hash[:12] {
		t.Errorf("tags = %q", tags)
	}

	names := tarNames(t, r)
	if strings.Join(names, ",") != "Dockerfile,sources.list" {
		t.Errorf("build context holds %q", names)
	}

	// Without a known archive the base keeps its own apt sources.
	r, err = newRecipe("bash", "debian:bookworm-slim", "image sha256:1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.files["sources.list"]; ok || strings.Contains(string(r.files["Dockerfile"]), "COPY") {
		t.Errorf("recipe without archive writes apt sources:\n%s", r.files["Dockerfile"])
	}
}

func TestContentHash(t *testing.T) {
	hash := func(base string, a *Archive, extra ...string) string {
		t.Helper()
		r, err := newRecipe("python", "isol8-base:x", base, a, extra)
		if err != nil {
			t.Fatal(err)
		}
		return r.Hash
	}
	h := hash("debootstrap 1", testArchive, "pa", "pb")
	if hash("debootstrap 1", testArchive, "pb", "pa", "pa") != h {
		t.Error("the order or repetition of extra packages changed the hash")
	}
	if hash("debootstrap 1", testArchive, "pa", "pb", "python3") != h {
		t.Error("an extra package the runtime already has changed the hash")
	}
	other := *testArchive
	other.Mirror = "http://other.example/debian"
	for name, h2 := range map[string]string{
		"extra packages": hash("debootstrap 1", testArchive, "pa"),
		"base":           hash("debootstrap 2", testArchive, "pa", "pb"),
		"mirror":         hash("debootstrap 1", &other, "pa", "pb"),
	} {
		if h2 == h {
			t.Errorf("changing the %s left the hash as it was", name)
		}
	}
	// The base recipe (and so debootstrap's cache) ignores the mirror, the
	// packages and the Dockerfile, but not the suite.
	b1, b2 := newBaseRecipe(*testArchive).hash(), newBaseRecipe(other).hash()
	if b1 != b2 {
		t.Error("changing the mirror changed the base hash")
	}
	trixie := *testArchive
	trixie.Suite = "trixie"
	if newBaseRecipe(trixie).hash() == b1 {
		t.Error("changing the suite left the base hash as it was")
	}
}

func TestPackageNames(t *testing.T) {
	_, err := newRecipe("python", "b", "k", nil, []string{"ok-pkg", "x; rm -rf /"})
	if err == nil || !strings.Contains(err.Error(), `systemPackages["python"][1]`) {
		t.Errorf("err = %v, want one naming systemPackages[\"python\"][1]", err)
	}
	if _, err := newRecipe("cobol", "b", "k", nil, nil); err == nil {
		t.Error("unknown runtime accepted")
	}
}

func TestDockerUnreachable(t *testing.T) {
	cli, err := client.New(client.WithHost("unix:///nonexistent/isol8-test/docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	b := NewWithClient(cli)
	defer b.Close()
	err = b.EnsureRuntimeImages(t.Context(), Options{})
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "start it") {
		t.Errorf("err = %v, want ErrUnavailable saying how to start the engine", err)
	}
}

func tarNames(t *testing.T, r *recipe) []string {
	t.Helper()
	data, err := r.context()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}
