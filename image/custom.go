package image

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/moby/moby/client"

	"github.com/isol8/isol8/packages"
	"github.com/isol8/isol8/sandbox"
)

// KindCustom is LabelKind of images built by BuildCustom.
const KindCustom = "custom"

// Custom describes a custom image: a runtime image with packages and
// setup scripts baked in (isol8 build, config prebuiltImages).
type Custom struct {
	// Tag names the image ("isol8-data", "my/tools:v2"); ":latest" is
	// added when it has no tag. The runtime images' names are refused.
	Tag string
	// Runtime is the runtime image it is built on.
	Runtime string
	// Packages are the runtime's own packages (pip, npm; Debian for bash).
	Packages []string
	// System are Debian packages, for any runtime.
	System []string
	// Setup are bash scripts run as root, in order, after the installs.
	Setup []string
}

// refPattern is a Docker image reference without a registry port or
// digest: lower-case path components, then an optional tag.
var refPattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`)

// NormalizeTag checks a custom image's tag and adds ":latest" when it has
// none. The names of runtime and base images are refused, so a custom
// build never replaces what isol8 runs by default.
func NormalizeTag(tag string) (string, error) {
	if !refPattern.MatchString(tag) || len(tag) > 255 {
		return "", fmt.Errorf("tag %q: not an image name such as my-image or team/tools:v2", tag)
	}
	repo, t, ok := strings.Cut(tag, ":")
	if !ok {
		t = "latest"
	}
	if repo == BaseRepo {
		return "", fmt.Errorf("tag %q: %s is the repository of isol8's base images", tag, BaseRepo)
	}
	if repo == RuntimeRepo {
		for rt := range runtimePackages {
			if t == rt || strings.HasPrefix(t, rt+"-") {
				return "", fmt.Errorf("tag %q: the name of a runtime image; pick another tag", tag)
			}
		}
	}
	return repo + ":" + t, nil
}

var customDockerfile = template.Must(template.New("Dockerfile").Parse(`FROM {{.Base}}
COPY build {{.BuildDir}}
RUN ["/bin/bash", "{{.BuildDir}}/install.sh"]
WORKDIR {{.Home}}
`))

// BuildCustom builds a custom image on the runtime's image (building that
// first when it is missing or stale), unless an image with the same tag
// and content hash exists (opts.Force rebuilds it). Its labels record the
// runtime, the packages (LabelPackages, which a request's installPackages
// are matched against) and LabelKind=custom.
func (b *Builder) BuildCustom(ctx context.Context, c Custom, opts Options) (Result, error) {
	tag, err := NormalizeTag(c.Tag)
	if err != nil {
		return Result{}, err
	}
	eco, err := packages.For(c.Runtime)
	if err != nil {
		return Result{}, err
	}
	bake := packages.Bake{Runtime: c.Runtime, Setup: c.Setup}
	if bake.Packages, err = packages.ParseList(eco, "packages", c.Packages, false); err != nil {
		return Result{}, err
	}
	if bake.System, err = packages.ParseList(packages.Debian, "system", c.System, false); err != nil {
		return Result{}, err
	}
	if bake.Empty() {
		return Result{}, fmt.Errorf("image %s: nothing to build: give packages, system packages or a setup script", tag)
	}
	if len(bake.Packages) > 0 && eco != packages.Debian {
		if err := resolveRegistries(eco, &opts.Registries); err != nil {
			return Result{}, err
		}
		bake.Registries = opts.Registries
	}
	// The runtime image first, as setup would make it (not forced).
	rtOpts := opts
	rtOpts.Force = false
	base, err := b.Build(ctx, c.Runtime, rtOpts)
	if err != nil {
		return Result{}, err
	}
	r, err := newCustomRecipe(tag, c.Runtime, base, bake)
	if err != nil {
		return Result{}, err
	}
	unlock, err := lock(ctx)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	p := progressFunc(opts.Progress)
	img, err := b.cli.ImageInspect(ctx, tag)
	if err == nil && img.Config != nil && img.Config.Labels[LabelContentHash] == r.Hash && !opts.Force {
		p(Progress{Runtime: c.Runtime, Stage: StageUpToDate, Message: tag + " is up to date (" + short(r.Hash) + ")"})
		return Result{Runtime: c.Runtime, Tags: r.Tags(), ID: img.ID, Hash: r.Hash, UpToDate: true}, nil
	}
	if err != nil && !isNotFound(err) {
		return Result{}, fmt.Errorf("inspect image %s: %w", tag, err)
	}
	var previous []string // the hash tags of the image tag named before
	if err == nil && img.Config != nil && img.Config.Labels[sandbox.LabelManaged] == "true" {
		repo, _, _ := strings.Cut(tag, ":")
		for _, t := range img.RepoTags {
			if h, ok := strings.CutPrefix(t, repo+":"); ok && hashTag.MatchString(":"+h) && t != r.Tags()[1] {
				previous = append(previous, t)
			}
		}
	}
	res, err := b.buildCustom(ctx, r, opts)
	if err == nil {
		b.untag(ctx, previous, p, r.Runtime)
	}
	return res, err
}

// newCustomRecipe makes the build context of a custom image on base.
func newCustomRecipe(tag, runtime string, base Result, bake packages.Bake) (*recipe, error) {
	files := map[string][]byte{}
	if err := addBake(files, bake); err != nil {
		return nil, err
	}
	from := base.Tags[len(base.Tags)-1] // the content-hash tag pins the runtime image
	var df bytes.Buffer
	if err := customDockerfile.Execute(&df, map[string]any{"Base": from, "BuildDir": packages.BuildDir, "Home": sandbox.SandboxDir}); err != nil {
		return nil, err
	}
	files["Dockerfile"] = df.Bytes()
	parts := []string{recipeVersion, "custom", "runtime=" + runtime, "base=" + base.Hash}
	for _, name := range sortedKeys(files) {
		parts = append(parts, name, string(files[name]))
	}
	r := &recipe{Runtime: runtime, Base: from, files: files, Hash: sum(parts...), labels: bakeLabels(runtime, bake)}
	repo, _, _ := strings.Cut(tag, ":")
	r.tags = []string{tag, repo + ":" + short(r.Hash)}
	r.labels[LabelKind] = KindCustom
	return r, nil
}

// buildCustom builds r, retrying on the host network when the bridge
// cannot reach a registry, and drops the hash tags of earlier builds.
func (b *Builder) buildCustom(ctx context.Context, r *recipe, opts Options) (Result, error) {
	p := progressFunc(opts.Progress)
	tags := r.Tags()
	p(Progress{Runtime: r.Runtime, Stage: StageBuild, Message: fmt.Sprintf("building %s on %s (packages: %s; system: %s)",
		tags[0], r.Base, orNone(r.labels[LabelPackages]), orNone(r.labels[LabelSystemPackages]))})
	out, err := b.imageBuild(ctx, r, r.Base, opts.BuildNetwork, opts.Force, p)
	if err != nil && opts.BuildNetwork == "" && unreachable.MatchString(out) {
		p(Progress{Runtime: r.Runtime, Stage: StageWarning, Message: "the build cannot reach the archive or registry from Docker's bridge network; retrying with the host network"})
		out, err = b.imageBuild(ctx, r, r.Base, "host", opts.Force, p)
	}
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w; last output:\n%s", tags[0], err, out)
	}
	img, err := b.cli.ImageInspect(ctx, tags[0])
	if err != nil || img.Config == nil || img.Config.Labels[LabelContentHash] != r.Hash {
		return Result{}, fmt.Errorf("build %s: the image is missing or mislabelled afterwards (%v)", tags[0], err)
	}
	p(Progress{Runtime: r.Runtime, Stage: StageDone, Message: fmt.Sprintf("built %s (%s)", tags[0], tags[1])})
	return Result{Runtime: r.Runtime, Tags: tags, ID: img.ID, Hash: r.Hash}, nil
}

// untag removes the tags refs, left on an image a new build replaced; an
// image still used by a container keeps them.
func (b *Builder) untag(ctx context.Context, refs []string, p func(Progress), rt string) {
	for _, t := range refs {
		if _, err := b.cli.ImageRemove(ctx, t, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
			p(Progress{Runtime: rt, Stage: StageWarning, Message: fmt.Sprintf("keeping old %s: %s", t, firstLine(err.Error()))})
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
