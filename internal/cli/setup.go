package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/runtime"
	"github.com/isol8/isol8/sandbox/native"
	"github.com/spf13/cobra"
)

func init() { register(newSetupCmd) }

func newSetupCmd() *cobra.Command {
	var force, verbose bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Build the runtime images",
		Long: `Build the images code runs in (` + strings.Join(runtimeImages(), ", ") + `), showing each step.

Each image is built on a Debian base: the config's images.baseImage (default
debian:bookworm-slim) when the Docker engine has it or can pull it, else a
minimal root filesystem made with debootstrap from images.mirror and
images.suite (default: the archive in this machine's apt sources; the
ISOL8_DEBIAN_MIRROR environment variable overrides the mirror). Packages
listed in the config's dependencies.<runtime> are baked into that
runtime's image: pip packages for python, npm packages for node and bun,
Debian packages for bash, and Debian packages for any runtime when
written "system:NAME". The images in the config's prebuiltImages are
built next (as "isol8 build" would), so runs asking for their packages
use them without installing anything.

Images carry a hash of everything that shaped them, so running setup again
is a quick no-op that says the images are up to date; --force rebuilds
them. "isol8 run" also builds a missing image on first use.`,
		Example: `  isol8 setup
  isol8 setup --verbose      # also show apt's and debootstrap's output
  isol8 setup --force        # rebuild even when up to date`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if err := applyConfigFlags(cmd, cfg, []configFlag{
				{flag: "backend", key: "defaults.backend", normalize: oneOf("docker", "native", "auto")},
			}); err != nil {
				return err
			}
			// The runtime images are Docker images; with no Docker engine,
			// the native backend's root filesystems are built from Debian
			// packages instead.
			out := cmd.OutOrStdout()
			b, err := image.New()
			if err != nil {
				return err
			}
			defer b.Close()
			if cfg.Defaults.Backend == "native" || cfg.Defaults.Backend == "auto" {
				if perr := b.Ping(cmd.Context()); perr != nil {
					opts, err := imageOptions(cfg, force, image.LineWriter(out, verbose))
					if err != nil {
						return err
					}
					return setupNativeRootfs(cmd, opts, out)
				}
			}
			var built, upToDate int
			lines := image.LineWriter(out, verbose)
			progress := func(p image.Progress) {
				switch p.Stage {
				case image.StageDone:
					built++
				case image.StageUpToDate:
					upToDate++
				}
				lines(p)
			}
			opts, err := imageOptions(cfg, force, progress)
			if err != nil {
				return err
			}
			if err := b.EnsureRuntimeImages(cmd.Context(), opts); err != nil {
				return fmt.Errorf("setup: %w", err)
			}
			opts.Progress = lines
			if err := buildPrebuilt(cmd.Context(), b, cfg, opts, out); err != nil {
				return fmt.Errorf("setup: %w", err)
			}
			if built == 0 && upToDate > 0 {
				fmt.Fprintln(out, "isol8: the runtime images are up to date")
			} else {
				fmt.Fprintf(out, "isol8: built %d runtime image(s); %d already up to date\n", built, upToDate)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "rebuild the images even when they are up to date")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also print the output of each build step")
	cmd.Flags().String("backend", "", "sandbox backend (`NAME`) the images are for: docker, native or auto (default docker)")
	return cmd
}

// setupNativeRootfs builds the native backend's root filesystems from
// Debian packages, for a host with no Docker engine.
func setupNativeRootfs(cmd *cobra.Command, opts image.Options, out io.Writer) error {
	fmt.Fprintln(out, "isol8: no Docker engine; building the native backend's root filesystems from Debian packages")
	var built, upToDate int
	for _, rt := range image.DebianRootfsRuntimes() {
		dir, fresh, err := native.EnsureRootfs(cmd.Context(), "", rt, opts)
		if err != nil {
			return fmt.Errorf("setup: %s: %w", rt, err)
		}
		if fresh {
			built++
		} else {
			upToDate++
			opts.Progress(image.Progress{Runtime: rt, Stage: image.StageUpToDate, Message: dir})
		}
	}
	var skipped []string
	for _, name := range runtime.Names() {
		if !slices.Contains(image.DebianRootfsRuntimes(), name) {
			skipped = append(skipped, name)
		}
	}
	fmt.Fprintf(out, "isol8: built %d root filesystem(s); %d already up to date", built, upToDate)
	if len(skipped) > 0 {
		fmt.Fprintf(out, "; %s need the Docker images", strings.Join(skipped, ", "))
	}
	fmt.Fprintln(out)
	return nil
}

// runtimeImages lists the images setup builds.
func runtimeImages() []string {
	var refs []string
	for _, name := range runtime.Names() {
		if a, err := runtime.Get(name); err == nil {
			refs = append(refs, a.Image)
		}
	}
	return refs
}

// noArgs refuses positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
