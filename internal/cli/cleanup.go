package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/sandbox/native"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
)

func init() { register(newCleanupCmd) }

func newCleanupCmd() *cobra.Command {
	var force, images bool
	var owner string
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove leftover sandboxes (and, with --images, isol8's images)",
		Long: `Remove the sandboxes isol8 left behind: every container labelled
` + sandbox.LabelManaged + `=true, running or not, whichever engine or server made
it (--owner NAME narrows it to one owner's). With --images, also remove
the images isol8 built (runtime images and their bases; an image still
used by a container is kept and named) and the native backend's root
filesystems that no sandbox uses (exports of images since rebuilt, trees
of an earlier config; the next native run makes what it needs again).

Nothing without the ` + sandbox.LabelManaged + ` label is ever touched.

isol8 lists what it will remove and asks for confirmation. Without a
terminal to ask on, it refuses unless --force is given.`,
		Example: `  isol8 cleanup
  isol8 cleanup --force
  isol8 cleanup --force --images`,
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
			c := &cleaner{cmd: cmd, cfg: cfg, force: force, images: images, owner: owner}
			return c.run()
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove without asking")
	cmd.Flags().BoolVar(&images, "images", false, "also remove the images isol8 built")
	cmd.Flags().StringVar(&owner, "owner", "", "only remove sandboxes of this `OWNER` (label "+sandbox.LabelOwner+")")
	cmd.Flags().String("backend", "", "sandbox backend `NAME`: docker, native or auto (default docker)")
	return cmd
}

// cleaner holds one cleanup's inputs.
type cleaner struct {
	cmd           *cobra.Command
	cfg           *isol8.Config
	force, images bool
	owner         string
}

func (c *cleaner) run() error {
	ctx := c.cmd.Context()
	out, errOut := c.cmd.OutOrStdout(), c.cmd.ErrOrStderr()
	b, err := isol8.OpenBackend(ctx, c.cfg.Defaults.Backend, sandbox.Config{Owner: cliOwner})
	if err != nil {
		return err
	}
	defer b.Close()
	var labels map[string]string
	if c.owner != "" {
		labels = map[string]string{sandbox.LabelOwner: c.owner}
	}
	boxes, err := b.List(ctx, labels)
	if err != nil {
		return err
	}
	var builder *image.Builder
	var imgs []image.Info
	var trees []native.RootfsTree
	if c.images {
		if builder, err = image.New(); err != nil {
			return err
		}
		defer builder.Close()
		if imgs, err = builder.List(ctx, nil); err != nil {
			return err
		}
		if os.Geteuid() == 0 { // the native backend's state is root's
			if trees, err = native.UnusedRootfs(""); err != nil {
				return fmt.Errorf("native root filesystems: %w", err)
			}
		}
	}
	if len(boxes) == 0 && len(imgs) == 0 && len(trees) == 0 {
		fmt.Fprintln(out, "isol8: nothing to remove")
		return nil
	}
	what := plural(len(boxes), "sandbox", "sandboxes")
	if c.images {
		what += ", " + plural(len(imgs), "image", "images") + " and " + plural(len(trees), "native root filesystem", "native root filesystems")
	}
	if !c.force {
		ok, err := confirm(c.cmd.InOrStdin(), errOut, boxes, imgs, trees, what)
		if err != nil || !ok {
			return err
		}
	}

	var errs []error
	removed := 0
	for _, s := range boxes {
		if err := b.Remove(ctx, s.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	fmt.Fprintf(out, "isol8: removed %s\n", plural(removed, "sandbox", "sandboxes"))
	if c.images && len(imgs) > 0 {
		gone, err := builder.Remove(ctx, nil, nil)
		if err != nil {
			errs = append(errs, err)
		}
		fmt.Fprintf(out, "isol8: removed %s\n", plural(len(gone), "image", "images"))
	}
	if len(trees) > 0 {
		names := make([]string, len(trees))
		for i, tr := range trees {
			names[i] = tr.Name
		}
		gone, err := native.RemoveRootfs("", names)
		if err != nil {
			errs = append(errs, err)
		}
		fmt.Fprintf(out, "isol8: removed %s\n", plural(len(gone), "native root filesystem", "native root filesystems"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleanup: %w", errors.Join(errs...))
	}
	return nil
}

// confirm lists what will go and asks on the terminal. Without a terminal
// it refuses: cleanup never removes anything unasked.
func confirm(in io.Reader, w io.Writer, boxes []sandbox.Info, imgs []image.Info, trees []native.RootfsTree, what string) (bool, error) {
	if !isTerminal(in) {
		return false, usageErrorf("cleanup would remove %s, but standard input is not a terminal to confirm on; pass --force to remove without asking", what)
	}
	for _, s := range boxes {
		state := "stopped"
		if s.Running {
			state = "running"
		}
		fmt.Fprintf(w, "  sandbox %.12s  %s  owner=%s  created %s\n", s.ID, state, s.Labels[sandbox.LabelOwner], s.Created.Format("2006-01-02 15:04:05"))
	}
	for _, img := range imgs {
		fmt.Fprintf(w, "  image   %s\n", strings.Join(img.Tags, ", "))
	}
	for _, tr := range trees {
		fmt.Fprintf(w, "  rootfs  %s  %.0f MB\n", tr.Path, float64(tr.Bytes)/(1<<20))
	}
	fmt.Fprintf(w, "Remove %s? [y/N] ", what)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	fmt.Fprintln(w, "isol8: nothing removed")
	return false, nil
}

// isTerminal reports whether r is a terminal (not /dev/null, a pipe or a
// file), so there is a person to ask.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
