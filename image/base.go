package image

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/isol8/isol8/sandbox"
)

// basePlan is the image runtime images are built FROM.
type basePlan struct {
	ref     string      // image reference for FROM
	key     string      // identity of its content, part of runtime hashes
	sources *Archive    // apt sources written into runtime images; nil keeps the base's
	recipe  *baseRecipe // set when the base is bootstrapped by debootstrap
	archive *Archive    // where debootstrap installs from
	pull    string      // image to try pulling before bootstrapping
}

// planBase picks the base without building anything: the configured base
// image when the engine has it, else a debootstrapped one.
func (b *Builder) planBase(ctx context.Context, opts Options) (basePlan, error) {
	arch, archErr := archive(opts)
	want := baseImageName(opts)
	if want != "-" {
		if plan, ok, err := b.imagePlan(ctx, want, arch); err != nil || ok {
			return plan, err
		}
	}
	if archErr != nil {
		if want != "-" {
			if plan, ok, _ := b.pullPlan(ctx, want, arch, opts); ok {
				return plan, nil
			}
		}
		return basePlan{}, archErr
	}
	r := newBaseRecipe(*arch)
	h := r.hash()
	plan := basePlan{ref: BaseRepo + ":" + short(h), key: "debootstrap " + h, sources: arch, recipe: &r, archive: arch}
	if want != "-" {
		plan.pull = want
	}
	return plan, nil
}

// baseImageName is the base image the options ask for ("-" for none).
func baseImageName(opts Options) string {
	if opts.BaseImage == "" {
		return DefaultBaseImage
	}
	return opts.BaseImage
}

// imagePlan uses ref as the base if the engine has it.
func (b *Builder) imagePlan(ctx context.Context, ref string, arch *Archive) (basePlan, bool, error) {
	img, err := b.cli.ImageInspect(ctx, ref)
	if isNotFound(err) {
		return basePlan{}, false, nil
	}
	if err != nil {
		return basePlan{}, false, fmt.Errorf("inspect base image %s: %w", ref, err)
	}
	return basePlan{ref: ref, key: "image " + img.ID, sources: sourcesForImage(ref, arch)}, true, nil
}

// ensureBase makes sure the planned base exists: it tries to pull the
// configured image, else bootstraps one unless it is cached. The returned
// plan may differ from plan when the pull worked.
func (b *Builder) ensureBase(ctx context.Context, plan basePlan, opts Options) (basePlan, error) {
	p := progressFunc(opts.Progress)
	if plan.recipe == nil {
		p(Progress{Stage: StageBase, Message: "using " + plan.ref})
		return plan, nil
	}
	if plan.pull != "" {
		if pulled, ok, err := b.pullPlan(ctx, plan.pull, plan.archive, opts); ok {
			p(Progress{Stage: StageBase, Message: "using " + pulled.ref})
			return pulled, nil
		} else if ctx.Err() != nil {
			return plan, err
		}
	}
	img, err := b.cli.ImageInspect(ctx, plan.ref)
	if err == nil && img.Config != nil && img.Config.Labels[LabelContentHash] == plan.recipe.hash() {
		p(Progress{Stage: StageBase, Message: "using cached " + plan.ref + " (debootstrap " + plan.recipe.Suite + " " + plan.recipe.Variant + ")"})
		return plan, nil
	}
	if err != nil && !isNotFound(err) {
		return plan, fmt.Errorf("inspect base image %s: %w", plan.ref, err)
	}
	p(Progress{Stage: StageBase, Message: "bootstrapping " + plan.ref + " with debootstrap (takes a few minutes)"})
	return plan, b.bootstrap(ctx, plan, opts)
}

// pullPlan tries to pull ref within the pull timeout.
func (b *Builder) pullPlan(ctx context.Context, ref string, arch *Archive, opts Options) (basePlan, bool, error) {
	p := progressFunc(opts.Progress)
	timeout := opts.PullTimeout
	if timeout == 0 {
		timeout = DefaultPullTimeout
	}
	p(Progress{Stage: StagePull, Message: fmt.Sprintf("pulling %s (timeout %s)", ref, timeout)})
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := b.pull(pctx, ref)
	if err == nil {
		return b.imagePlan(ctx, ref, arch)
	}
	if errors.Is(pctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("no answer in %s", timeout)
	}
	p(Progress{Stage: StagePull, Message: fmt.Sprintf("cannot pull %s: %v; bootstrapping a base instead", ref, firstLine(err.Error()))})
	return basePlan{}, false, err
}

func (b *Builder) pull(ctx context.Context, ref string) error {
	resp, err := b.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if msg.Error != nil {
			return msg.Error
		}
	}
	return nil
}

// sourcesForImage returns the archive with the suite of a "debian:SUITE…"
// style reference, so a local base image also installs from the machine's
// mirror; nil (keep the image's own sources) when the suite is unknown.
func sourcesForImage(ref string, a *Archive) *Archive {
	if a == nil {
		return nil
	}
	repo, tag, _ := strings.Cut(ref, ":")
	suite, _, _ := strings.Cut(tag, "-")
	if path.Base(repo) != a.Distro || !releaseSuite(suite) {
		return nil
	}
	c := *a
	c.Suite = suite
	return &c
}

// ping checks that the engine answers, saying how to start it if not.
func (b *Builder) ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := b.cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("cannot reach the Docker engine at %s: %v; start it (scripts/install-deps.sh, or `systemctl start docker`): %w",
			b.cli.DaemonHost(), err, sandbox.ErrUnavailable)
	}
	return nil
}

func isNotFound(err error) bool { return err != nil && cerrdefs.IsNotFound(err) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
