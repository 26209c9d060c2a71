package image

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/packages"
	"github.com/isol8/isol8/sandbox"
)

func TestNormalizeTag(t *testing.T) {
	for in, want := range map[string]string{
		"isol8-data":          "isol8-data:latest",
		"team/tools:v2":       "team/tools:v2",
		"isol8:pandas":        "isol8:pandas",
		"my.registry/x_y:1.0": "my.registry/x_y:1.0",
	} {
		if got, err := NormalizeTag(in); err != nil || got != want {
			t.Errorf("NormalizeTag(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Upper", "isol8:python", "isol8:node-0123456789ab", "isol8-base:abc", "a b", "x:-y", "x;rm", "../x"} {
		if got, err := NormalizeTag(bad); err == nil {
			t.Errorf("NormalizeTag(%q) = %q; want an error", bad, got)
		}
	}
}

func TestCustomRecipe(t *testing.T) {
	base := Result{Runtime: "python", Tags: []string{"isol8:python", "isol8:python-0123456789ab"}, Hash: strings.Repeat("a", 64)}
	specs := func(eco packages.Ecosystem, names ...string) []packages.Spec {
		out, err := packages.ParseList(eco, "x", names, false)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	bake := packages.Bake{Runtime: "python", Packages: specs(packages.Pip, "requests", "Django==5.0"),
		System: specs(packages.Debian, "python3-pandas", "jq"), Setup: []string{"echo hi > /etc/motd"},
		Registries: packages.Registries{PipIndex: "https://index.test/simple"}}
	r, err := newCustomRecipe("isol8-data:latest", "python", base, bake)
	if err != nil {
		t.Fatal(err)
	}
	df := string(r.files["Dockerfile"])
	if !strings.HasPrefix(df, "FROM isol8:python-0123456789ab\n") || !strings.Contains(df, `RUN ["/bin/bash", "/isol8-build/install.sh"]`) {
		t.Errorf("Dockerfile:\n%s", df)
	}
	for _, name := range []string{"build/install.sh", "build/system.txt", "build/packages.txt", "build/installer.txt", "build/setup-001.sh"} {
		if _, ok := r.files[name]; !ok {
			t.Errorf("build context lacks %s", name)
		}
	}
	if got := r.labels[LabelPackages]; got != "django==5.0,pandas,requests" {
		t.Errorf("%s = %q", LabelPackages, got)
	}
	if got := r.labels[LabelSystemPackages]; got != "jq,python3-pandas" || r.labels[LabelKind] != KindCustom {
		t.Errorf("labels = %v", r.labels)
	}
	if tags := r.Tags(); tags[0] != "isol8-data:latest" || tags[1] != "isol8-data:"+r.Hash[:12] {
		t.Errorf("tags = %q", tags)
	}
	// The hash follows the packages, the index and the runtime image.
	again, _ := newCustomRecipe("isol8-data:latest", "python", base, bake)
	if again.Hash != r.Hash {
		t.Error("the same recipe hashed differently")
	}
	other := bake
	other.Registries.PipIndex = "https://mirror.test/simple"
	if r2, _ := newCustomRecipe("isol8-data:latest", "python", base, other); r2.Hash == r.Hash {
		t.Error("another index left the hash as it was")
	}
	base2 := base
	base2.Hash = strings.Repeat("b", 64)
	if r2, _ := newCustomRecipe("isol8-data:latest", "python", base2, bake); r2.Hash == r.Hash {
		t.Error("another runtime image left the hash as it was")
	}
}

func TestRuntimeRecipeBinary(t *testing.T) {
	r, err := newRuntimeRecipe("bun", "isol8-base:x", "k", nil, nil, packages.Bake{}, map[string][]byte{"corp.crt": []byte("-----BEGIN CERTIFICATE-----\n")})
	if err != nil {
		t.Fatal(err)
	}
	df := string(r.files["Dockerfile"])
	for _, want := range []string{"COPY bun /usr/local/bin/bun", "COPY local-ca/ /usr/local/share/ca-certificates/", "RUN update-ca-certificates", "ENV DO_NOT_TRACK=1"} {
		if !strings.Contains(df, want) {
			t.Errorf("bun Dockerfile lacks %q:\n%s", want, df)
		}
	}
	if r.binary == nil || !strings.Contains(r.binary.id(), "@oven/bun-linux-x64") {
		t.Errorf("binary = %+v", r.binary)
	}
	// The binary's identity, not its bytes, is in the hash: changing the
	// pinned version changes it.
	saved := *runtimeBinaries["bun"]
	defer func() { *runtimeBinaries["bun"] = saved }()
	runtimeBinaries["bun"].Version = "0.0.1"
	r2, _ := newRuntimeRecipe("bun", "isol8-base:x", "k", nil, nil, packages.Bake{}, nil)
	r3, _ := newRuntimeRecipe("bun", "isol8-base:x", "k", nil, nil, packages.Bake{}, nil)
	if r2.Hash == r.Hash || r2.Hash != r3.Hash {
		t.Error("the binary's version does not decide the hash")
	}
}

func TestBuildCustomImage(t *testing.T) {
	b := dockerBuilder(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	rec := &recorder{t: t}
	c := Custom{Tag: "isol8-test-custom:bash-jq", Runtime: "bash", Packages: []string{"jq"},
		Setup: []string{"echo baked > /etc/isol8-test-setup"}}
	res, err := b.BuildCustom(ctx, c, Options{Progress: rec.sink})
	if err != nil {
		t.Fatal(err)
	}
	img, err := b.cli.ImageInspect(ctx, res.Tags[0])
	if err != nil {
		t.Fatal(err)
	}
	l := img.Config.Labels
	if l[sandbox.LabelManaged] != "true" || l[LabelKind] != KindCustom || l[LabelRuntime] != "bash" || l[LabelPackages] != "jq" || l[LabelContentHash] != res.Hash {
		t.Errorf("labels = %v", l)
	}
	out, code := runIn(t, b, res.Tags[0], []string{"bash", "-c", "jq -n '1+1'; cat /etc/isol8-test-setup; test -e /isol8-build || echo clean"})
	if code != 0 || out != "2\nbaked\nclean\n" {
		t.Errorf("custom image: exit %d, output %q", code, out)
	}
	// A second build is a no-op.
	again, err := b.BuildCustom(ctx, c, Options{Progress: rec.sink})
	if err != nil || !again.UpToDate || again.ID != res.ID {
		t.Errorf("second build = %+v, %v; want up to date", again, err)
	}
	m, ok, err := b.FindPackages(ctx, "bash", []string{"jq"})
	if err != nil || !ok || m.Ref == "" {
		t.Errorf("FindPackages(bash, jq) = %+v, %v, %v", m, ok, err)
	}
	if _, ok, _ := b.FindPackages(ctx, "python", []string{"jq"}); ok {
		t.Error("a bash image matched a python request")
	}
	// Bad inputs are refused before anything is built.
	for _, bad := range []Custom{
		{Tag: "isol8:bash", Runtime: "bash", Packages: []string{"jq"}},
		{Tag: "x-test", Runtime: "bash", Packages: []string{"jq; rm -rf /"}},
		{Tag: "x-test", Runtime: "python", System: []string{"--allow-unauthenticated"}},
		{Tag: "x-test", Runtime: "cobol", Packages: []string{"x"}},
		{Tag: "x-test", Runtime: "bash"},
	} {
		if _, err := b.BuildCustom(ctx, bad, Options{}); err == nil {
			t.Errorf("BuildCustom(%+v) accepted", bad)
		}
	}
}
