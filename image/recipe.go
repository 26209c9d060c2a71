package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"

	"github.com/isol8/isol8/sandbox"
)

// recipeVersion is part of every hash: bump it when the way images are made
// changes in a way their inputs do not show.
const recipeVersion = "isol8-image/1"

// Labels put on every image the package makes, besides sandbox.LabelManaged.
const (
	// LabelContentHash is the hash of everything that shaped the image.
	LabelContentHash = "dev.isol8.content-hash"
	// LabelRuntime names the runtime of a runtime image; base images lack it.
	LabelRuntime = "dev.isol8.runtime"
	// LabelBase is the base image a runtime image was built on.
	LabelBase = "dev.isol8.base"
)

// Repository names of the images the package makes.
const (
	RuntimeRepo = "isol8"      // isol8:python, isol8:python-<shorthash>
	BaseRepo    = "isol8-base" // isol8-base:<shorthash>
)

// runtimePackages are the Debian packages each runtime needs on top of
// commonPackages.
var runtimePackages = map[string][]string{
	"python": {"python3"},
	"node":   {"nodejs"},
	"bash":   {"bash", "coreutils"},
}

// commonPackages are in every runtime image.
var commonPackages = []string{"ca-certificates", "coreutils", "tar"}

// baseInclude are the packages debootstrap adds to the minbase variant.
var baseInclude = []string{"ca-certificates"}

// debPackage is Debian policy's package-name syntax; it also keeps names
// safe inside the Dockerfile's RUN line.
var debPackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// baseRecipe is everything that shapes a debootstrapped base root
// filesystem. The mirror is left out on purpose: any mirror of the archive
// gives the same system.
type baseRecipe struct {
	Suite      string
	Variant    string
	Components []string
	Include    []string
}

func newBaseRecipe(a Archive) baseRecipe {
	return baseRecipe{Suite: a.Suite, Variant: "minbase", Components: a.Components, Include: baseInclude}
}

// hash identifies the recipe.
func (r baseRecipe) hash() string {
	return sum(recipeVersion, "debootstrap", "suite="+r.Suite, "variant="+r.Variant,
		"components="+strings.Join(r.Components, ","), "include="+strings.Join(r.Include, ","))
}

// recipe is what a runtime image is built from: a build context holding a
// Dockerfile and, when the mirror is known, the apt sources.
type recipe struct {
	Runtime  string
	Base     string // image reference for FROM
	Packages []string
	files    map[string][]byte
	Hash     string
}

// packagesFor returns the sorted, deduplicated package list of runtime with
// extra, checking every extra name.
func packagesFor(runtime string, extra []string) ([]string, error) {
	own, ok := runtimePackages[runtime]
	if !ok {
		return nil, fmt.Errorf("no image recipe for runtime %q", runtime)
	}
	for i, p := range extra {
		if !debPackage.MatchString(p) {
			return nil, fmt.Errorf("systemPackages[%q][%d]: %q is not a Debian package name", runtime, i, p)
		}
	}
	pkgs := slices.Concat(commonPackages, own, extra)
	sort.Strings(pkgs)
	return slices.Compact(pkgs), nil
}

var dockerfileTmpl = template.Must(template.New("Dockerfile").Parse(`FROM {{.Base}}
{{- if .Sources}}
RUN rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
COPY sources.list /etc/apt/sources.list
{{- end}}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {{.Packages}} \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid {{.GID}} sandbox \
 && useradd --uid {{.UID}} --gid {{.GID}} --home-dir {{.Home}} --no-create-home --shell /bin/bash sandbox \
 && install -d -o {{.UID}} -g {{.GID}} -m 0755 {{.Home}}
ENV LANG=C.UTF-8
WORKDIR {{.Home}}
`))

// newRecipe makes the build context of a runtime image on base. A nil
// archive keeps the base image's own apt sources.
func newRecipe(runtime, base, baseKey string, a *Archive, extra []string) (*recipe, error) {
	pkgs, err := packagesFor(runtime, extra)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	if a != nil {
		files["sources.list"] = []byte(fmt.Sprintf("deb %s %s %s\n", a.Mirror, a.Suite, strings.Join(a.Components, " ")))
	}
	var df bytes.Buffer
	err = dockerfileTmpl.Execute(&df, map[string]any{
		"Base": base, "Sources": a != nil, "Packages": strings.Join(pkgs, " "),
		"UID": sandbox.UID, "GID": sandbox.GID, "Home": sandbox.SandboxDir,
	})
	if err != nil {
		return nil, err
	}
	files["Dockerfile"] = df.Bytes()
	parts := []string{recipeVersion, "runtime=" + runtime, "base=" + baseKey}
	for _, name := range sortedKeys(files) {
		parts = append(parts, name, string(files[name]))
	}
	return &recipe{Runtime: runtime, Base: base, Packages: pkgs, files: files, Hash: sum(parts...)}, nil
}

// context returns the build context as a tar stream.
func (r *recipe) context() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedKeys(r.files) {
		data := r.files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Tags are the runtime image's tags: isol8:<rt> and isol8:<rt>-<shorthash>.
func (r *recipe) Tags() []string {
	return []string{RuntimeRepo + ":" + r.Runtime, RuntimeRepo + ":" + r.Runtime + "-" + short(r.Hash)}
}

// sum hashes parts unambiguously (each is length-prefixed).
func sum(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// short is the part of a hash used in tags.
func short(hash string) string { return hash[:12] }

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
