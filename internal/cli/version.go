package cli

import (
	"fmt"
	goruntime "runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is isol8's version, set at build time with
// -ldflags "-X github.com/isol8/isol8/internal/cli.Version=v1.2.3".
var Version = "dev"

func init() { register(newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, Go version and commit",
		Long: `Print isol8's version (set at build time; "dev" otherwise), the Go
version it was built with, its platform, and the commit it was built from
when the build recorded one (go build with VCS stamping).`,
		Example: `  isol8 version
  go build -ldflags "-X github.com/isol8/isol8/internal/cli.Version=v1.0.0" ./cmd/isol8`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "isol8 %s\n", Version)
			fmt.Fprintf(out, "go:       %s %s/%s\n", goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
			if commit := buildCommit(); commit != "" {
				fmt.Fprintf(out, "commit:   %s\n", commit)
			}
			return nil
		},
	}
}

// buildCommit is the VCS revision the binary was built from ("" when the
// build did not record one), with its time and "(modified)" when the tree
// had uncommitted changes.
func buildCommit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, when, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	if rev == "" {
		return ""
	}
	if when != "" {
		rev += " " + when
	}
	return rev + modified
}
