package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/client"
)

func init() { register(newSessionCmd) }

func newSessionCmd() *cobra.Command {
	var host, key string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "session",
		Short: "List or stop your persistent sessions on an isol8 server",
		Long: `Manage the persistent sessions of your key on an isol8 server (the ones
"isol8 run --host URL --session-id ID" makes). The server is --host, else
the one of "isol8 login"; the key is --key, else $ISOL8_API_KEY, else the
saved token for that server. A key sees only its own (its tenant's) sessions.`,
		Example: `  isol8 session list --host http://localhost:3000 --key "$KEY"
  isol8 session stop my-session`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&host, "host", "", "the server's `URL` (default: the saved login's)")
	cmd.PersistentFlags().StringVar(&key, "key", "", "API `KEY` (default $ISOL8_API_KEY, else the saved token)")
	connect := func() (*client.Remote, error) {
		h, k, err := remoteTarget(host, key)
		if err != nil {
			return nil, err
		}
		return client.New(client.Options{Host: h, APIKey: k}, isol8.Options{})
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List your sessions",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := connect()
			if err != nil {
				return err
			}
			sessions, err := r.ListSessions(cmd.Context())
			if err != nil {
				return fmt.Errorf("listing sessions on %s: %w", r.Host(), err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sessions)
			}
			if len(sessions) == 0 {
				fmt.Fprintln(out, "No sessions")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tACTIVE\tLAST USED")
			for _, s := range sessions {
				active := "no"
				if s.IsActive {
					active = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, active, s.LastAccessed().Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the sessions as JSON")

	stop := &cobra.Command{
		Use:   "stop ID",
		Short: "End a session and remove its sandbox",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("session stop takes one session ID, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := connect()
			if err != nil {
				return err
			}
			if err := r.DeleteSession(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("stopping session %s on %s: %w", args[0], r.Host(), err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Stopped session %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, stop)
	return cmd
}
