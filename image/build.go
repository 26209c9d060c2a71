package image

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/isol8/isol8/sandbox"
)

// buildRuntime builds r with the engine's classic builder and tags it.
func (b *Builder) buildRuntime(ctx context.Context, r *recipe, plan basePlan, opts Options) (Result, error) {
	p := progressFunc(opts.Progress)
	start := time.Now()
	tags := r.Tags()
	p(Progress{Runtime: r.Runtime, Stage: StageBuild, Message: fmt.Sprintf("building %s on %s with %s", tags[0], plan.ref, strings.Join(r.Packages, " "))})
	if r.binary != nil {
		exe, err := fetchBinary(ctx, opts.Registries.NPM, r.binary, p, r.Runtime)
		if err != nil {
			return Result{}, fmt.Errorf("build %s: %w", tags[0], err)
		}
		r.files[r.binary.File] = exe
	}
	out, err := b.imageBuild(ctx, r, plan.ref, opts.BuildNetwork, opts.Force, p)
	if err != nil && opts.BuildNetwork == "" && unreachable.MatchString(out) {
		// The bridge may lack a route or DNS (a host resolver on
		// 127.0.0.53, say) where the machine itself reaches the archive.
		p(Progress{Runtime: r.Runtime, Stage: StageWarning, Message: "apt cannot reach the archive from Docker's bridge network; retrying with the host network"})
		out, err = b.imageBuild(ctx, r, plan.ref, "host", opts.Force, p)
	}
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w; last output:\n%s", tags[0], err, out)
	}
	img, err := b.cli.ImageInspect(ctx, tags[0])
	if err != nil {
		return Result{}, fmt.Errorf("build %s: the image is missing afterwards: %w", tags[0], err)
	}
	if img.Config == nil || img.Config.Labels[LabelContentHash] != r.Hash {
		return Result{}, fmt.Errorf("build %s: the image lacks label %s=%s", tags[0], LabelContentHash, r.Hash)
	}
	b.untagStale(ctx, r, img.ID, p)
	p(Progress{Runtime: r.Runtime, Stage: StageDone, Message: fmt.Sprintf("built %s (%s) in %s", tags[0], tags[1], time.Since(start).Round(time.Second))})
	return Result{Runtime: r.Runtime, Tags: tags, ID: img.ID, Hash: r.Hash}, nil
}

// unreachable matches apt's, pip's and npm's messages when they cannot
// reach their archive or registry.
var unreachable = regexp.MustCompile(`Temporary failure resolving|Could not resolve|Could not connect|Unable to connect|Network is unreachable|Connection timed out|NewConnectionError|EAI_AGAIN|ENOTFOUND|ECONNREFUSED|ETIMEDOUT`)

// imageBuild runs one build, reporting each line; it returns the last
// lines of output for error messages.
func (b *Builder) imageBuild(ctx context.Context, r *recipe, base, network string, noCache bool, p func(Progress)) (string, error) {
	buildCtx, err := r.context()
	if err != nil {
		return "", err
	}
	labels := map[string]string{}
	maps.Copy(labels, r.labels)
	labels[sandbox.LabelManaged] = "true"
	labels[LabelContentHash] = r.Hash
	labels[LabelRuntime] = r.Runtime
	labels[LabelBase] = base
	resp, err := b.cli.ImageBuild(ctx, bytes.NewReader(buildCtx), client.ImageBuildOptions{
		Tags:        r.Tags(),
		Remove:      true,
		ForceRemove: true,
		NoCache:     noCache,
		NetworkMode: network,
		Version:     build.BuilderV1,
		Dockerfile:  "Dockerfile",
		Labels:      labels,
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	last := &tail{max: 20}
	lines := &lineSplitter{each: func(line string) {
		last.add(line)
		stage := StageOutput
		if strings.HasPrefix(line, "Step ") {
			stage = StageBuild
		}
		p(Progress{Runtime: r.Runtime, Stage: stage, Message: line})
	}}
	err = readStream(resp.Body, func(m jsonstream.Message) { lines.write(m.Stream) })
	lines.flush()
	return last.String(), err
}

// untagStale removes the hash tags of earlier builds of the runtime, and
// earlier builds left without any tag (after Force), so old images do not
// pile up. An image still used by a container or by a child image stays.
func (b *Builder) untagStale(ctx context.Context, r *recipe, id string, p func(Progress)) {
	res, err := b.cli.ImageList(ctx, client.ImageListOptions{
		Filters: make(client.Filters).Add("label", sandbox.LabelManaged+"=true", LabelRuntime+"="+r.Runtime),
	})
	if err != nil {
		return
	}
	prefix := RuntimeRepo + ":" + r.Runtime + "-"
	for _, img := range res.Items {
		if img.ID == id {
			continue
		}
		var refs []string
		for _, tag := range img.RepoTags {
			if strings.HasPrefix(tag, prefix) {
				refs = append(refs, tag)
			}
		}
		if len(img.RepoTags) == 0 || len(img.RepoTags) == 1 && img.RepoTags[0] == "<none>:<none>" {
			refs = []string{img.ID}
		}
		for _, ref := range refs {
			if _, err := b.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
				p(Progress{Runtime: r.Runtime, Stage: StageWarning, Message: fmt.Sprintf("keeping old %s: %s", ref, firstLine(err.Error()))})
			}
		}
	}
}

// lineSplitter turns the build stream's chunks into whole lines.
type lineSplitter struct {
	buf  string
	each func(string)
}

func (l *lineSplitter) write(s string) {
	l.buf += s
	for {
		i := strings.IndexByte(l.buf, '\n')
		if i < 0 {
			return
		}
		if line := strings.TrimRight(l.buf[:i], "\r "); line != "" {
			l.each(line)
		}
		l.buf = l.buf[i+1:]
	}
}

func (l *lineSplitter) flush() {
	if strings.TrimSpace(l.buf) != "" {
		l.each(strings.TrimSpace(l.buf))
	}
	l.buf = ""
}
