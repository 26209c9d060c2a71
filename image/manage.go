package image

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/isol8/isol8/sandbox"
)

// Info describes one image the project made.
type Info struct {
	ID      string
	Tags    []string
	Runtime string // "" for a base image
	Hash    string // the content-hash label
	Size    int64  // bytes
	Created time.Time
	Labels  map[string]string
}

// Kind is LabelKind: "custom" for BuildCustom's images, "" otherwise.
func (i Info) Kind() string { return i.Labels[LabelKind] }

// Packages are the keys in LabelPackages.
func (i Info) Packages() []string { return splitList(i.Labels[LabelPackages]) }

// SystemPackages are the names in LabelSystemPackages.
func (i Info) SystemPackages() []string { return splitList(i.Labels[LabelSystemPackages]) }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// List returns the project's images (label dev.isol8.managed=true) that
// also carry all of labels (nil for all of them), newest first.
func (b *Builder) List(ctx context.Context, labels map[string]string) ([]Info, error) {
	if err := b.ping(ctx); err != nil {
		return nil, err
	}
	f := make(client.Filters).Add("label", sandbox.LabelManaged+"=true")
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	res, err := b.cli.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]Info, 0, len(res.Items))
	for _, img := range res.Items {
		out = append(out, Info{
			ID: img.ID, Tags: img.RepoTags, Runtime: img.Labels[LabelRuntime], Hash: img.Labels[LabelContentHash],
			Size: img.Size, Created: time.Unix(img.Created, 0), Labels: img.Labels,
		})
	}
	// Newest first also puts images before the bases they were built on.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Remove removes the images List(ctx, labels) finds (nil labels: every
// image the project made, as `isol8 cleanup --images` does), children
// before the bases they were built on, reporting each removal to progress.
// Images still used by a container are left and named in the error;
// nothing but images labelled dev.isol8.managed=true is touched.
func (b *Builder) Remove(ctx context.Context, labels map[string]string, progress func(Progress)) ([]Info, error) {
	p := progressFunc(progress)
	imgs, err := b.List(ctx, labels)
	if err != nil {
		return nil, err
	}
	var removed []Info
	var errs []error
	for _, img := range imgs {
		refs := img.Tags
		if len(refs) == 0 {
			refs = []string{img.ID}
		}
		var failed error
		// Removing each tag (rather than forcing by ID) never deletes an
		// image a container still uses.
		for _, ref := range refs {
			if _, err := b.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
				failed = fmt.Errorf("remove image %s: %w", ref, err)
				break
			}
		}
		if failed != nil {
			errs = append(errs, failed)
			continue
		}
		p(Progress{Runtime: img.Runtime, Stage: StageRemoved, Message: fmt.Sprintf("removed %v (%s)", refs, shortID(img.ID))})
		removed = append(removed, img)
	}
	return removed, errors.Join(errs...)
}

func shortID(id string) string {
	if len(id) > 19 && id[:7] == "sha256:" {
		return id[7:19]
	}
	return id
}
