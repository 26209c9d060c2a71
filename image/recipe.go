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

	"github.com/isol8/isol8/packages"
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
	// LabelKind is "custom" on images built by BuildCustom (isol8 build,
	// prebuiltImages); runtime images lack it.
	LabelKind = "dev.isol8.kind"
	// LabelPackages lists, comma-separated and sorted, the canonical keys
	// (packages.Spec.Key) of the runtime's own packages baked into an
	// image, including those a baked Debian package provides (python3-x
	// gives x). A request's installPackages are matched against it.
	LabelPackages = "dev.isol8.packages"
	// LabelSystemPackages lists the extra Debian packages baked in.
	LabelSystemPackages = "dev.isol8.system-packages"
)

// Repository names of the images the package makes.
const (
	RuntimeRepo = "isol8"      // isol8:python, isol8:python-<shorthash>
	BaseRepo    = "isol8-base" // isol8-base:<shorthash>
)

// runtimePackages are the Debian packages each runtime needs on top of
// commonPackages.
// The installers of run-time installs come with them: pip for python,
// npm for node (bun and deno bring their own).
var runtimePackages = map[string][]string{
	"python": {"python3", "python3-pip"},
	"node":   {"nodejs", "npm"},
	"bash":   {"bash", "coreutils"},
	"bun":    {},
	"deno":   {},
}

// runtimeEnv are ENV lines of a runtime's image (the engine passes the
// same through runtime.Adapter.Env, for backends that ignore image ENV).
var runtimeEnv = map[string][]string{
	"bun":  {"DO_NOT_TRACK=1", "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"},
	"deno": {"DENO_NO_UPDATE_CHECK=1", "DENO_NO_PROMPT=1", "DENO_TLS_CA_STORE=system"},
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

// recipe is what an image is built from: a build context holding a
// Dockerfile and, when the mirror is known, the apt sources, the build
// step's files and the runtime's binary.
type recipe struct {
	Runtime  string
	Base     string // image reference for FROM
	Packages []string
	files    map[string][]byte
	Hash     string
	// binary is fetched into files only when the image is built; its
	// identity is part of Hash.
	binary *npmBinary
	// tags and labels of a custom image (nil for runtime images).
	tags   []string
	labels map[string]string
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
{{- if .LocalCAs}}
COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
{{- end}}
RUN groupadd --gid {{.GID}} sandbox \
 && useradd --uid {{.UID}} --gid {{.GID}} --home-dir {{.Home}} --no-create-home --shell /bin/bash sandbox \
 && install -d -o {{.UID}} -g {{.GID}} -m 0755 {{.Home}}
{{- with .Binary}}
COPY {{.File}} {{.Dest}}
{{- range .Links}}
RUN ["ln", "-s", "{{$.Binary.Dest}}", "{{.}}"]
{{- end}}
{{- end}}
{{- if .Bake}}
COPY build {{.BuildDir}}
RUN ["/bin/bash", "{{.BuildDir}}/install.sh"]
{{- end}}
{{- range .Env}}
ENV {{.}}
{{- end}}
ENV LANG=C.UTF-8
WORKDIR {{.Home}}
`))

// newRecipe makes the build context of a runtime image on base. A nil
// archive keeps the base image's own apt sources.
func newRecipe(runtime, base, baseKey string, a *Archive, extra []string) (*recipe, error) {
	return newRuntimeRecipe(runtime, base, baseKey, a, extra, packages.Bake{}, nil)
}

// newRuntimeRecipe is newRecipe with the runtime's own packages (config
// dependencies) baked in by a build step.
// localCAs (file name to PEM) are the machine's own CA certificates, which
// the image trusts too.
func newRuntimeRecipe(runtime, base, baseKey string, a *Archive, extra []string, bake packages.Bake, localCAs map[string][]byte) (*recipe, error) {
	pkgs, err := packagesFor(runtime, extra)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	if a != nil {
		files["sources.list"] = []byte(fmt.Sprintf("deb %s %s %s\n", a.Mirror, a.Suite, strings.Join(a.Components, " ")))
	}
	for name, pem := range localCAs {
		files["local-ca/"+name] = pem
	}
	bake.Runtime = runtime
	if err := addBake(files, bake); err != nil {
		return nil, err
	}
	bin := runtimeBinaries[runtime]
	var df bytes.Buffer
	err = dockerfileTmpl.Execute(&df, map[string]any{
		"Base": base, "Sources": a != nil, "Packages": strings.Join(pkgs, " "),
		"UID": sandbox.UID, "GID": sandbox.GID, "Home": sandbox.SandboxDir,
		"Binary": bin, "Bake": !bake.Empty(), "BuildDir": packages.BuildDir, "Env": runtimeEnv[runtime],
		"LocalCAs": len(localCAs) > 0,
	})
	if err != nil {
		return nil, err
	}
	files["Dockerfile"] = df.Bytes()
	parts := []string{recipeVersion, "runtime=" + runtime, "base=" + baseKey}
	if bin != nil {
		parts = append(parts, "binary="+bin.id())
	}
	for _, name := range sortedKeys(files) {
		parts = append(parts, name, string(files[name]))
	}
	r := &recipe{Runtime: runtime, Base: base, Packages: pkgs, files: files, Hash: sum(parts...), binary: bin}
	if len(extra) > 0 || !bake.Empty() {
		labelled := bake
		labelled.System = nil
		for _, name := range extra {
			labelled.System = append(labelled.System, packages.Spec{Ecosystem: packages.Debian, Name: name, Raw: name})
		}
		r.labels = bakeLabels(runtime, labelled)
	}
	return r, nil
}

// addBake adds a build step's files under build/ in the context.
func addBake(files map[string][]byte, bake packages.Bake) error {
	if bake.Empty() {
		return nil
	}
	bf, err := bake.Files()
	if err != nil {
		return err
	}
	for name, data := range bf {
		files["build/"+name] = data
	}
	return nil
}

// bakeLabels are the package labels of an image with bake in it.
func bakeLabels(runtime string, bake packages.Bake) map[string]string {
	own := packages.Keys(bake.Packages)
	for _, s := range bake.System {
		if k, ok := packages.Provides(runtime, s); ok {
			own = append(own, k)
		}
	}
	if eco, _ := packages.For(runtime); eco == packages.Debian {
		own = append(own, packages.Keys(bake.System)...)
	}
	sort.Strings(own)
	labels := map[string]string{}
	if len(own) > 0 {
		labels[LabelPackages] = strings.Join(slices.Compact(own), ",")
	}
	if len(bake.System) > 0 {
		labels[LabelSystemPackages] = strings.Join(packages.Keys(bake.System), ",")
	}
	return labels
}

// context returns the build context as a tar stream.
func (r *recipe) context() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedKeys(r.files) {
		data := r.files[name]
		mode := int64(0o644)
		if r.binary != nil && name == r.binary.File {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
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

// Tags are the image's tags: isol8:<rt> and isol8:<rt>-<shorthash> for a
// runtime image, the user's tag and <repo>:<shorthash> for a custom one.
func (r *recipe) Tags() []string {
	if r.tags != nil {
		return r.tags
	}
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
