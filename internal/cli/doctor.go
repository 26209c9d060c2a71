package cli

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
)

func init() { register(newDoctorCmd) }

func newDoctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Say which sandbox backends this host supports, and why not",
		Long: `Check this host for each sandbox backend and say which can run, and what
is missing for the others:

  docker   needs a reachable Docker engine (DOCKER_HOST or the local socket)
  native   needs Linux user, pid, mount, network, ipc and uts namespaces,
           cgroups (v1 or v2) and the runtime images' root filesystems

The "auto" backend picks docker when its engine answers, else native: the
Docker backend is the reference, and native is the fallback for hosts (CI
runners, small VMs) where no Docker engine runs. Also checks the tools
"isol8 setup" needs to build images without a registry (debootstrap).`,
		Example: `  isol8 doctor`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			usable := 0
			for _, name := range sandbox.Names() {
				ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
				b, err := sandbox.Open(ctx, name, sandbox.Config{Owner: "isol8-doctor"})
				cancel()
				if err != nil {
					fmt.Fprintf(out, "%-8s no: %s\n", name, oneLine(err.Error()))
					continue
				}
				usable++
				_ = b.Close()
				fmt.Fprintf(out, "%-8s yes\n", name)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			if b, err := isol8.OpenBackend(ctx, "auto", sandbox.Config{Owner: "isol8-doctor"}); err == nil {
				fmt.Fprintf(out, "auto     picks %s\n", b.Name())
				_ = b.Close()
			}
			if _, err := exec.LookPath("debootstrap"); err != nil {
				fmt.Fprintln(out, "setup    debootstrap is missing: without a pullable base image, `isol8 setup` needs it (scripts/install-deps.sh installs it)")
			} else {
				fmt.Fprintln(out, "setup    debootstrap found: images can be built from Debian packages")
			}
			if usable == 0 {
				return fmt.Errorf("no sandbox backend can run on this host")
			}
			return nil
		},
	}
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
