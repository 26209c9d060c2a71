package cli

import (
	"errors"
	"fmt"

	"github.com/isol8/isol8"
	"github.com/spf13/cobra"
)

func init() {
	runFlagHooks = append(runFlagHooks, func(cmd *cobra.Command) {
		cmd.Flags().StringArray("install", nil, "install a package for this run, a `PKG`: pip for python, npm for node, bun and deno, Debian for bash, such as pandas==2.2 or lodash@4 (repeatable; without --net, the network becomes filtered with the package registry allowed)")
	})
	requestHooks = append(requestHooks, applyInstall)
}

// applyInstall puts --install into the request. Without an explicit --net
// the run's network becomes "filtered" (unless the config asks for
// "host"): the engine then allows the runtime's package registry, and
// nothing else the config does not allow. Names are checked by the
// engine, before any sandbox exists.
func applyInstall(cmd *cobra.Command, o *runOptions, req *isol8.Request) error {
	pkgs, err := cmd.Flags().GetStringArray("install")
	if err != nil || len(pkgs) == 0 {
		return err
	}
	req.InstallPackages = append(req.InstallPackages, pkgs...)
	if err := o.cfg.CheckPackages(req); err != nil {
		var fe *isol8.FieldError
		if errors.As(err, &fe) {
			var i int
			if _, scanErr := fmt.Sscanf(fe.Field, "installPackages[%d]", &i); scanErr == nil && i < len(pkgs) {
				return usageErrorf("--install %q: %s", pkgs[i], fe.Reason)
			}
		}
		return usageErrorf("--install: %v", message(err))
	}
	if cmd.Flags().Changed("net") || o.cfg.Defaults.Network == isol8.NetworkHost {
		return nil
	}
	if err := o.cfg.Set("defaults.network", string(isol8.NetworkFiltered), "flag"); err != nil {
		return usageErrorf("--install: %v", err)
	}
	o.options.Network = isol8.NetworkFiltered
	return nil
}
