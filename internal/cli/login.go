package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/client"
)

func init() {
	register(newLoginCmd)
	register(newLogoutCmd)
}

// credentials are what "isol8 login" saves: a server and a token for it.
type credentials struct {
	Host      string     `json:"host"`
	Token     string     `json:"token"`
	KeyID     string     `json:"keyId,omitempty"`
	TenantID  string     `json:"tenantId,omitempty"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// credentialsPath is ~/.isol8/credentials.json.
func credentialsPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home directory for the saved login: %w", err)
	}
	return filepath.Join(home, ".isol8", "credentials.json"), nil
}

// loadCredentials returns the saved login, or nil when there is none.
func loadCredentials() (*credentials, error) {
	path, err := credentialsPath()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the saved login: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(data, &c); err != nil || c.Host == "" || c.Token == "" {
		return nil, usageErrorf("%s is not a saved login (run isol8 logout, then isol8 login)", path)
	}
	return &c, nil
}

// saveCredentials writes the login readable by the user only, replacing
// any earlier one whole (a crash leaves the old file or the new one).
func saveCredentials(c *credentials) (string, error) {
	path, err := credentialsPath()
	if err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("saving the login: %w", err)
	}
	f, err := os.CreateTemp(dir, ".credentials-*.json") // mode 0600
	if err != nil {
		return "", fmt.Errorf("saving the login: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("saving the login: %w", err)
	}
	return path, nil
}

type loginOptions struct {
	host, key, name, tenant string
	ttl                     int64
}

func newLoginCmd() *cobra.Command {
	o := &loginOptions{}
	cmd := &cobra.Command{
		Use:   "login --host URL",
		Short: "Get a token from an isol8 server and save it",
		Long: `Ask the isol8 server at --host for a short-lived API key (POST
/auth/login, which needs the server's master key and a key store) and save
the server and the token in ~/.isol8/credentials.json, readable by you only.

Later "isol8 run --host URL" and "isol8 session" use the saved token for that
server when neither --key nor $ISOL8_API_KEY is given; "isol8 session" also
uses the saved server when --host is not given. The token stays valid until
it expires (--ttl, default the server's: one hour), also after "isol8 logout".`,
		Example: `  isol8 login --host https://isol8.example.com --key "$MASTER_KEY" --tenant acme
  isol8 run --host https://isol8.example.com -e 'print(1)'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.host, "host", "", "the server's `URL`, such as https://isol8.example.com (required)")
	f.StringVar(&o.key, "key", "", "the server's master `KEY` (default $ISOL8_API_KEY)")
	f.StringVar(&o.name, "name", "", "`NAME` of the token's key on the server (default login)")
	f.StringVar(&o.tenant, "tenant", "", "`TENANT` the token belongs to; its sessions are the tenant's")
	f.Int64Var(&o.ttl, "ttl", 0, "life of the token in `MS` (default the server's: one hour; at most a day)")
	return cmd
}

func (o *loginOptions) run(cmd *cobra.Command) error {
	if o.host == "" {
		return usageErrorf("isol8 login needs --host URL")
	}
	if o.ttl < 0 {
		return usageErrorf("--ttl %d: must be a positive number of milliseconds", o.ttl)
	}
	key := o.key
	if key == "" {
		key = os.Getenv("ISOL8_API_KEY")
	}
	if key == "" {
		return usageErrorf("isol8 login needs the server's master key: --key KEY or $ISOL8_API_KEY")
	}
	r, err := client.New(client.Options{Host: o.host, APIKey: key}, isol8.Options{})
	if err != nil {
		return usageErrorf("--%v", err)
	}
	tok, err := r.Login(cmd.Context(), client.KeyRequest{Name: o.name, TenantID: o.tenant, TTLMs: o.ttl})
	if err != nil {
		return fmt.Errorf("login to %s: %w", r.Host(), err)
	}
	path, err := saveCredentials(&credentials{Host: r.Host(), Token: tok.Token, KeyID: tok.KeyID, TenantID: o.tenant, ExpiresAt: tok.ExpiresAt})
	if err != nil {
		return err
	}
	until := "does not expire"
	if tok.ExpiresAt != nil {
		until = "valid until " + tok.ExpiresAt.Local().Format(time.RFC1123)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s (key %s, %s); saved to %s\n", r.Host(), tok.KeyID, until, path)
	return nil
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the login saved by isol8 login",
		Long: `Remove ~/.isol8/credentials.json. The token itself stays valid on the
server until it expires; revoke it there (DELETE /auth/keys/ID with the
master key) to end it at once.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := credentialsPath()
			if err != nil {
				return err
			}
			err = os.Remove(path)
			switch {
			case errors.Is(err, os.ErrNotExist):
				fmt.Fprintln(cmd.OutOrStdout(), "Not logged in")
				return nil
			case err != nil:
				return fmt.Errorf("logout: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged out (removed %s)\n", path)
			return nil
		},
	}
}
