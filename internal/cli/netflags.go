package cli

import (
	"encoding/json"
	"slices"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/egress"
	"github.com/spf13/cobra"
)

// The filtered network's flags of "isol8 run": --allow and --deny (host
// patterns for the egress proxy) and --log-network.
//
// On the command line the user is the operator, so --allow replaces the
// config's network.whitelist (flags win over the file) and --deny adds to
// network.blacklist (a denial only ever tightens). Both are also the
// run's options.networkFilter, which is what a server (--host) receives
// and may only tighten its own policy with.

func init() {
	runFlagHooks = append(runFlagHooks, addNetFlags)
	runApplyHooks = append(runApplyHooks, applyNetFlags)
	runResultHooks = append(runResultHooks, printNetworkLog)
}

func addNetFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArray("allow", nil, "with --net filtered, let the program reach hosts matching `RE`, a regular expression matched against the whole host name, case-insensitively, such as '^pypi\\.org$' (repeatable; replaces the config's network.whitelist)")
	f.StringArray("deny", nil, "with --net filtered, refuse hosts matching `RE`, whatever --allow says (repeatable; added to the config's network.blacklist)")
	f.Bool("log-network", false, "with --net filtered, print the run's requests through the egress proxy after its output, one JSON object per line on stderr")
}

// applyNetFlags puts --allow, --deny and --log-network into the config and
// the explicit options.
func applyNetFlags(cmd *cobra.Command, o *runOptions) error {
	f := cmd.Flags()
	allow, _ := f.GetStringArray("allow")
	deny, _ := f.GetStringArray("deny")
	for _, fl := range []struct {
		name string
		list []string
	}{{"allow", allow}, {"deny", deny}} {
		for _, re := range fl.list {
			if _, err := egress.Compile(egress.Policy{Allow: []string{re}}); err != nil {
				return usageErrorf("--%s %q: not a valid pattern: %v", fl.name, re, err)
			}
		}
	}
	if f.Changed("allow") || f.Changed("deny") {
		if o.cfg.Defaults.Network != isol8.NetworkFiltered {
			return usageErrorf("--allow and --deny apply to --net filtered (the network is %q)", o.cfg.Defaults.Network)
		}
		nf := &isol8.NetworkFilter{Whitelist: slices.Clone(allow), Blacklist: slices.Clone(deny)}
		if f.Changed("allow") {
			o.cfg.Network.Whitelist = slices.Clone(allow)
			o.setSource("network.whitelist")
		}
		if f.Changed("deny") {
			o.cfg.Network.Blacklist = slices.Concat(o.cfg.Network.Blacklist, deny)
			o.setSource("network.blacklist")
		}
		o.options.NetworkFilter = nf
	}
	if f.Changed("log-network") {
		v, _ := f.GetBool("log-network")
		o.cfg.Defaults.LogNetwork = &v
		o.setSource("defaults.logNetwork")
		o.options.LogNetwork = &v
	}
	if err := o.cfg.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	return nil
}

// setSource records that a config key came from a flag.
func (o *runOptions) setSource(key string) {
	if o.cfg.Sources == nil {
		o.cfg.Sources = map[string]string{}
	}
	o.cfg.Sources[key] = "flag"
}

// printNetworkLog prints the run's network log, when it has one, after
// the program's output: one JSON object per line on standard error, so
// that standard output stays the program's.
func printNetworkLog(cmd *cobra.Command, _ *runOptions, res *isol8.Result) {
	if res == nil || len(res.NetworkLogs) == 0 {
		return
	}
	enc := json.NewEncoder(cmd.ErrOrStderr())
	enc.SetEscapeHTML(false)
	for _, l := range res.NetworkLogs {
		enc.Encode(l)
	}
}
