package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/packages"
	"github.com/isol8/isol8/runtime"
	"github.com/spf13/cobra"
)

func init() { register(newBuildCmd) }

func newBuildCmd() *cobra.Command {
	var (
		base, tag, network string
		install, system    []string
		setup              []string
		force, verbose     bool
	)
	cmd := &cobra.Command{
		Use:   "build --base RUNTIME --tag TAG",
		Short: "Build a custom image with packages baked in",
		Long: `Build a custom image on a runtime's image (` + strings.Join(runtimeImages(), ", ") + `),
with packages and setup baked in, so runs that need them start at once.

--install adds the runtime's own packages: pip packages for python (from
packages.pipIndexUrl, else PIP_INDEX_URL or pip's config on this machine),
npm packages for node and bun (from packages.npmRegistry, else this
machine's npm config), Debian packages for bash. --system adds Debian
packages to any runtime's image (for python, python3-NAME also counts as
the Python package NAME, so an image with --system python3-pandas serves
installPackages ["pandas"]). --setup runs bash as root after the
installs: an existing FILE is read as a script, anything else is a
command (repeatable, run in order).

The image is labelled with its runtime, its packages and a hash of
everything that shaped it, and tagged TAG and REPO:<hash>. Building the
same thing again is a quick no-op (--force rebuilds). A run whose
installPackages are all baked into a local image (exactly, else a
superset) uses that image and installs nothing. "isol8 images" lists the
custom images.`,
		Example: `  isol8 build --base python --tag isol8-data --system python3-pandas --system python3-matplotlib
  isol8 build --base node --tag web-tools --install lodash --install zod@3
  isol8 build --base bash --tag shell-tools --install jq --install ripgrep
  isol8 build --base python --tag fixtures --setup ./prepare.sh`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if base == "" || tag == "" {
				return usageErrorf("build needs --base RUNTIME and --tag TAG")
			}
			if _, err := runtime.Get(base); err != nil {
				return usageErrorf("--base %q: %v", base, err)
			}
			if _, err := image.NormalizeTag(tag); err != nil {
				return usageErrorf("--tag: %v", err)
			}
			if err := checkBuildNames(base, install, system); err != nil {
				return err
			}
			scripts, err := setupScripts(setup)
			if err != nil {
				return err
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			opts, err := imageOptions(cfg, force, image.LineWriter(out, verbose))
			if err != nil {
				return err
			}
			opts.BuildNetwork = network
			c := image.Custom{Tag: tag, Runtime: base, Packages: install, System: system, Setup: scripts}
			return buildCustom(cmd.Context(), c, opts, out)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&base, "base", "", "the `RUNTIME` whose image to build on: python, node, bun, deno or bash")
	f.StringVar(&tag, "tag", "", "the image's name, a `TAG` such as isol8-data or team/tools:v2")
	f.StringArrayVar(&install, "install", nil, "a `PKG` of the runtime's own (pip, npm; Debian for bash), such as pandas==2.2 or lodash@4 (repeatable)")
	f.StringArrayVar(&system, "system", nil, "a Debian package (`DEBIAN_PKG`) for any runtime (repeatable)")
	f.StringArrayVar(&setup, "setup", nil, "bash run as root after the installs, a `CMD|FILE` (repeatable, run in order)")
	f.BoolVar(&force, "force", false, "rebuild even when an identical image exists")
	f.StringVar(&network, "build-network", "", "Docker network `MODE` of the build, such as host (default: the bridge, then host if a registry is unreachable)")
	f.BoolVarP(&verbose, "verbose", "v", false, "also print the output of each build step")
	return cmd
}

// buildCustom builds one custom image and says what it holds.
func buildCustom(ctx context.Context, c image.Custom, opts image.Options, out io.Writer) error {
	b, err := image.New()
	if err != nil {
		return err
	}
	defer b.Close()
	res, err := b.BuildCustom(ctx, c, opts)
	if err != nil {
		return fmt.Errorf("build %s: %w", c.Tag, err)
	}
	state := "built"
	if res.UpToDate {
		state = "up to date:"
	}
	fmt.Fprintf(out, "isol8: %s %s (%s)\n", state, res.Tags[0], strings.Join(res.Tags[1:], ", "))
	return nil
}

// buildPrebuilt builds the config's prebuiltImages (isol8 setup).
func buildPrebuilt(ctx context.Context, b *image.Builder, cfg *isol8.Config, opts image.Options, out io.Writer) error {
	opts.Force = false // setup --force rebuilds the runtime images; these follow their hashes
	for i := range cfg.PrebuiltImages {
		c, err := cfg.PrebuiltImage(i)
		if err != nil {
			return usageErrorf("%v", message(err))
		}
		res, err := b.BuildCustom(ctx, c, opts)
		if err != nil {
			return fmt.Errorf("prebuiltImages[%d] %s: %w", i, c.Tag, err)
		}
		if !res.UpToDate {
			fmt.Fprintf(out, "isol8: built %s\n", res.Tags[0])
		}
	}
	return nil
}

// checkBuildNames refuses bad --install and --system names before
// anything is built, naming the flag and the value.
func checkBuildNames(rt string, install, system []string) error {
	eco, err := packages.For(rt)
	if err != nil {
		return usageErrorf("--base %q: %v", rt, err)
	}
	for _, p := range install {
		if _, err := packages.Parse(eco, p, false); err != nil {
			return usageErrorf("--install %q: %v", p, err)
		}
	}
	for _, p := range system {
		if _, err := packages.Parse(packages.Debian, p, false); err != nil {
			return usageErrorf("--system %q: %v", p, err)
		}
	}
	return nil
}

// setupScripts reads each --setup: an existing file is a script, anything
// else a command.
func setupScripts(parts []string) ([]string, error) {
	var out []string
	for _, p := range parts {
		body := p
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, usageErrorf("--setup %s: %v", p, unwrapPath(err))
			}
			body = string(data)
		}
		if strings.TrimSpace(body) == "" {
			return nil, usageErrorf("--setup %q: empty", p)
		}
		out = append(out, body)
	}
	return out, nil
}
