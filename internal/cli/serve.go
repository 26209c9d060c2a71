package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/audit"
	"github.com/isol8/isol8/image"
	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/server"
	"github.com/isol8/isol8/store"
)

func init() { register(newServeCmd) }

// defaultPort is where isol8 serve listens without -p, ISOL8_PORT or PORT.
const defaultPort = 3000

// openKeyStore opens the API key store named by a connection string; the
// store packages set it (nil: this build has no key store).
var openKeyStore func(ctx context.Context, conn string) (store.Store, error)

type serveOptions struct {
	port      int
	key       string
	authDB    string
	bind      string
	owner     string
	logFormat string
}

func newServeCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API (execute, stream, sessions, files, keys)",
		Long: `Serve isol8's HTTP API. Every route but GET /health needs
"Authorization: Bearer KEY": the master key (-k, else $ISOL8_API_KEY), or a
key of the key store (--auth-db, else auth.connectionString), made with
POST /auth/keys. A request's options can only tighten this server's config
(defaults, maxima, images); sessions belong to the key's tenant.

The port is -p, else $ISOL8_PORT, else $PORT, else 3000. The server's
sandboxes carry the owner label "serve-PORT" (--owner to change it): on
start it removes the ones a previous run left behind, and SIGINT or
SIGTERM stop it gracefully, cancelling runs and removing its sandboxes.
Images, and sandboxes of other owners, are never touched.`,
		Example: `  isol8 serve -k "$(openssl rand -hex 32)"
  ISOL8_API_KEY=secret isol8 serve -p 8080
  isol8 serve -k secret --auth-db ~/.isol8/keys.db`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.IntVarP(&o.port, "port", "p", 0, "`PORT` to listen on (default $ISOL8_PORT, $PORT or 3000)")
	f.StringVarP(&o.key, "key", "k", "", "master API `KEY` (default $ISOL8_API_KEY)")
	f.StringVar(&o.authDB, "auth-db", "", "API key store `CONN`: a SQLite path or a postgres:// URL (config auth.connectionString)")
	f.StringVar(&o.bind, "bind", "", "`ADDR` to listen on (default: every interface)")
	f.StringVar(&o.owner, "owner", "", "owner label of this server's sandboxes (default serve-PORT)")
	f.StringVar(&o.logFormat, "log-format", "text", "log `FORMAT` on stderr: text or json")
	f.String("backend", "", "sandbox backend `NAME`: docker, native or auto (default docker)")
	return cmd
}

// resolvePort applies -p, then $ISOL8_PORT, then $PORT.
func (o *serveOptions) resolvePort(cmd *cobra.Command) (int, error) {
	if cmd.Flags().Changed("port") {
		if o.port < 1 || o.port > 65535 {
			return 0, usageErrorf("--port %d: must be 1 to 65535", o.port)
		}
		return o.port, nil
	}
	for _, env := range []string{"ISOL8_PORT", "PORT"} {
		if v := os.Getenv(env); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return 0, usageErrorf("$%s %q: must be a port number (1 to 65535)", env, v)
			}
			return p, nil
		}
	}
	return defaultPort, nil
}

func (o *serveOptions) run(cmd *cobra.Command) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if err := applyConfigFlags(cmd, cfg, []configFlag{
		{flag: "backend", key: "defaults.backend", normalize: oneOf("docker", "native", "auto")},
		{flag: "auth-db", key: "auth.connectionString"},
	}); err != nil {
		return err
	}
	port, err := o.resolvePort(cmd)
	if err != nil {
		return err
	}
	if o.key == "" {
		o.key = os.Getenv("ISOL8_API_KEY")
	}
	owner := o.owner
	if owner == "" {
		owner = "serve-" + strconv.Itoa(port)
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	switch o.logFormat {
	case "text":
	case "json":
		handler = slog.NewJSONHandler(stderr, nil)
	default:
		return usageErrorf("--log-format %q: must be text or json", o.logFormat)
	}
	log := slog.New(handler)

	keys, err := o.keyStore(ctx, cfg)
	if err != nil {
		return err
	}
	if keys != nil {
		defer keys.Close()
	}
	if o.key == "" && keys == nil {
		return usageErrorf("isol8 serve needs an API key: -k KEY or $ISOL8_API_KEY (or a key store with --auth-db)")
	}
	auditLog, err := audit.New(cfg.Audit)
	if err != nil {
		return err
	}
	defer auditLog.Close()
	backend, err := isol8.OpenBackend(ctx, cfg.Defaults.Backend, sandbox.Config{Owner: owner})
	if err != nil {
		return err
	}
	defer backend.Close()

	srv, err := server.New(server.Config{
		Config: cfg, MasterKey: o.key, Store: keys, Backend: backend, Owner: owner,
		Logger: log, Audit: auditLog, Version: Version,
		EnsureImage: ensureImage(cfg), Progress: stderr,
		RemoveImages: removeImages,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.bind, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("isol8 serve: %w", err)
	}
	fmt.Fprintf(stderr, "isol8 serve: listening on %s (sandbox owner %s)\n", ln.Addr(), owner)
	return srv.Serve(ctx, ln)
}

// keyStore opens the API key store when the config names one.
func (o *serveOptions) keyStore(ctx context.Context, cfg *isol8.Config) (store.Store, error) {
	conn := cfg.Auth.ConnectionString
	if conn == "" {
		if cfg.Auth.Enabled {
			return nil, usageErrorf("auth.enabled is true but no key store is named: set --auth-db or auth.connectionString")
		}
		return nil, nil
	}
	if openKeyStore == nil {
		return nil, errors.New("isol8 serve: this build has no API key store (--auth-db)")
	}
	return openKeyStore(ctx, conn)
}

// removeImages is POST /cleanup {"images":true}: isol8's images only.
func removeImages(ctx context.Context) (int, error) {
	b, err := image.New()
	if err != nil {
		return 0, err
	}
	defer b.Close()
	removed, err := b.Remove(ctx, nil, nil)
	return len(removed), err
}
