package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/isol8/isol8/image"
	"github.com/spf13/cobra"
)

func init() { register(newImagesCmd) }

func newImagesCmd() *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:     "images",
		Aliases: []string{"list-custom"},
		Short:   "List the custom images (built by isol8 build or setup)",
		Long: `List the custom images built by "isol8 build" and by "isol8 setup" from
the config's prebuiltImages, newest first, with the runtime and the
packages baked into each. --all adds the runtime images.

A run whose installPackages are all in one of these images (for its
runtime) runs in it without installing anything.`,
		Example: `  isol8 images
  isol8 images --all
  isol8 images --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := image.New()
			if err != nil {
				return err
			}
			defer b.Close()
			filter := map[string]string{image.LabelKind: image.KindCustom}
			if all {
				filter = nil
			}
			imgs, err := b.List(cmd.Context(), filter)
			if err != nil {
				return err
			}
			var rows []imageRow
			for _, img := range imgs {
				if img.Runtime == "" { // a base image
					continue
				}
				rows = append(rows, imageRow{
					Tags: img.Refs(), Runtime: img.Runtime, Packages: orEmptyList(img.Packages()),
					SystemPackages: orEmptyList(img.SystemPackages()), Custom: img.Kind() == image.KindCustom,
					Hash: img.Hash, Size: img.Size, Created: img.Created.UTC(),
				})
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"images": orEmptyRows(rows)})
			}
			if len(rows) == 0 {
				fmt.Fprintln(out, `isol8: no custom images (build one with "isol8 build")`)
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tRUNTIME\tPACKAGES\tSYSTEM PACKAGES\tSIZE\tCREATED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", strings.Join(r.Tags, " "), r.Runtime, dash(r.Packages),
					dash(r.SystemPackages), megabytes(r.Size), r.Created.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also list the runtime images")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// imageRow is one image of the listing (and of its JSON).
type imageRow struct {
	Tags           []string  `json:"tags"`
	Runtime        string    `json:"runtime"`
	Packages       []string  `json:"packages"`
	SystemPackages []string  `json:"systemPackages"`
	Custom         bool      `json:"custom"`
	Hash           string    `json:"contentHash"`
	Size           int64     `json:"size"`
	Created        time.Time `json:"created"`
}

func megabytes(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/(1<<20)) }

func dash(list []string) string {
	if len(list) == 0 {
		return "-"
	}
	return strings.Join(list, ",")
}

func orEmptyList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func orEmptyRows(r []imageRow) []imageRow {
	if r == nil {
		return []imageRow{}
	}
	return r
}
