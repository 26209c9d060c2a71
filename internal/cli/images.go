package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/runtime"
)

// imageOptions are the image builder's options from the config; the
// config's dependencies (pip or npm packages, "system:" Debian ones) are
// baked into the runtime images.
func imageOptions(cfg *isol8.Config, force bool, progress func(image.Progress)) (image.Options, error) {
	if err := cfg.Validate(); err != nil {
		return image.Options{}, usageErrorf("%v", message(err))
	}
	opts := cfg.ImageOptions(nil)
	opts.Force, opts.Progress = force, progress
	return opts, nil
}

// runtimeOfImage returns the runtime whose default image is ref.
func runtimeOfImage(ref string) (string, bool) {
	for _, name := range runtime.Names() {
		if a, err := runtime.Get(name); err == nil && a.Image == ref {
			return name, true
		}
	}
	return "", false
}

// ensureImage is the engine's EnsureImage hook: a missing runtime image is
// built as "isol8 setup" would, with progress on w, so the first run works
// without a separate setup.
func ensureImage(cfg *isol8.Config) func(ctx context.Context, ref string, w io.Writer) error {
	return func(ctx context.Context, ref string, w io.Writer) error {
		rt, ok := runtimeOfImage(ref)
		if !ok {
			return fmt.Errorf("isol8 builds only its runtime images (%s); pull or build %s first", strings.Join(runtimeImages(), ", "), ref)
		}
		fmt.Fprintf(w, "isol8: image %s is missing; building it now (the first build takes a few minutes)\n", ref)
		b, err := image.New()
		if err != nil {
			return err
		}
		defer b.Close()
		opts, err := imageOptions(cfg, false, image.LineWriter(w, false))
		if err != nil {
			return err
		}
		if _, err = b.Build(ctx, rt, opts); err != nil {
			return err
		}
		fmt.Fprintf(w, "isol8: image %s is ready\n", ref)
		return nil
	}
}
