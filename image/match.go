package image

import (
	"context"
	"fmt"
	"regexp"
	"slices"
)

// Match is a local image whose baked packages cover a request's.
type Match struct {
	Ref      string   // a tag of the image (its ID when it has none)
	Packages []string // its LabelPackages
	Exact    bool     // it holds exactly the packages asked for
}

// hashTag matches the content-hash tags, which are not shown as a match's
// name when the image has another.
var hashTag = regexp.MustCompile(`:(?:[a-z]+-)?[0-9a-f]{12}$`)

// FindPackages looks for a local image of runtime whose LabelPackages
// holds every key in want: one with exactly that set first, else the
// smallest superset (the newest among equals). ok is false when none has
// them all.
func (b *Builder) FindPackages(ctx context.Context, runtime string, want []string) (m Match, ok bool, err error) {
	if len(want) == 0 {
		return Match{}, false, nil
	}
	imgs, err := b.List(ctx, map[string]string{LabelRuntime: runtime})
	if err != nil {
		return Match{}, false, err
	}
	best := -1
	for i, img := range imgs { // newest first
		have := img.Packages()
		if len(img.Refs()) == 0 || !covers(have, want) {
			continue
		}
		if best < 0 || len(have) < len(imgs[best].Packages()) {
			best = i
		}
	}
	if best < 0 {
		return Match{}, false, nil
	}
	img := imgs[best]
	have := img.Packages()
	return Match{Ref: img.Refs()[0], Packages: have, Exact: len(have) == len(dedupe(want))}, true, nil
}

// ImageHasPackages reports whether the image ref (of runtime) has every
// key in want baked in, so that a request naming that image needs no
// install.
func (b *Builder) ImageHasPackages(ctx context.Context, ref, runtime string, want []string) (bool, error) {
	img, err := b.cli.ImageInspect(ctx, ref)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if img.Config == nil || img.Config.Labels[LabelRuntime] != runtime {
		return false, nil
	}
	return covers(splitList(img.Config.Labels[LabelPackages]), want), nil
}

// Refs are an image's tags, sorted, names before content-hash tags.
func (img Info) Refs() []string {
	var named, hashed []string
	for _, t := range img.Tags {
		switch {
		case t == "" || t == "<none>:<none>":
		case hashTag.MatchString(t):
			hashed = append(hashed, t)
		default:
			named = append(named, t)
		}
	}
	slices.Sort(named)
	slices.Sort(hashed)
	return append(named, hashed...)
}

func covers(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func dedupe(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}

// DebianMirror is the Debian archive the runtime images install from (and
// so the one a bash run's apt reaches): opts.Mirror, else the machine's
// apt sources.
func DebianMirror(opts Options) (string, error) {
	a, err := archive(opts)
	if err != nil {
		return "", err
	}
	return a.Mirror, nil
}
