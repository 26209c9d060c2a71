package isol8

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/runtime"
)

// ImageOptions turns the config's images and dependencies keys into the
// image builder's options (used by `isol8 setup` and by the engine when a
// runtime image is missing).
func (c *Config) ImageOptions(progress io.Writer) image.Options {
	opts := image.Options{BaseImage: c.Images.BaseImage, Mirror: c.Images.Mirror, Suite: c.Images.Suite}
	if progress != nil {
		opts.Progress = image.LineWriter(progress, false)
	}
	// The runtime images bake the config's dependencies: the engine's
	// first-use build must hash exactly as `isol8 setup` does.
	_ = c.ApplyDependencies(&opts) // Validate (at load) has checked them
	return opts
}

// ensureRuntimeImage builds a missing runtime image (isol8:python and so
// on) with progress to w; other images are the caller's to provide.
func (e *LocalEngine) ensureRuntimeImage(ctx context.Context, ref string, w io.Writer) error {
	rt, ok := strings.CutPrefix(ref, image.RuntimeRepo+":")
	if _, err := runtime.Get(rt); !ok || err != nil {
		return fmt.Errorf("image %s does not exist and is not a runtime image isol8 can build", ref)
	}
	b, err := image.New()
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(w, "isol8: image %s is missing; building it (first time: a few minutes)\n", ref)
	_, err = b.Build(ctx, rt, e.cfg.ImageOptions(w))
	return err
}
