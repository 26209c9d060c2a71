package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/client"
)

// Remote mode: "isol8 run --host URL" runs on an isol8 server through the
// Go client instead of a local backend. This file adds run's remote flags
// and an engine provider (see runFlagHooks and engineProviders).

func init() {
	runFlagHooks = append(runFlagHooks, addRemoteFlags)
	engineProviders = append(engineProviders, remoteEngine)
}

func addRemoteFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("host", "", "run on the isol8 server at `URL` instead of locally")
	f.String("key", "", "API `KEY` for --host (default $ISOL8_API_KEY, else the token saved by isol8 login for that server)")
	f.String("session-id", "", "with --host, run in the server's persistent session `ID`: made on first use, kept after the run (files persist between runs; isol8 session stop ID removes it)")
}

// remoteEngine is run's engine when --host is given: a client of the
// server. --persistent alone makes a session for this run only (removed at
// the end, as upstream's CLI does); --session-id names one that is kept.
func remoteEngine(cmd *cobra.Command, o *runOptions) (isol8.Engine, error) {
	f := cmd.Flags()
	host, _ := f.GetString("host")
	key, _ := f.GetString("key")
	session, _ := f.GetString("session-id")
	if host == "" {
		for _, name := range []string{"key", "session-id"} {
			if f.Changed(name) {
				return nil, usageErrorf("--%s needs --host (it applies to runs on a server)", name)
			}
		}
		return nil, nil
	}
	if f.Changed("backend") {
		return nil, usageErrorf("--backend applies to local runs; with --host the server uses its own backend")
	}
	host, key, err := remoteTarget(host, key)
	if err != nil {
		return nil, err
	}
	opts := o.options
	opts.Backend = "" // from the config file: the server picks its own
	r, err := client.New(client.Options{Host: host, APIKey: key, SessionID: session, KeepSession: session != ""}, opts)
	if err != nil {
		return nil, usageErrorf("--%v", err)
	}
	logNet := opts.LogNetwork != nil && *opts.LogNetwork
	return fullResultEngine{Remote: r, always: logNet}, nil
}

// remoteTarget settles the server and the key: --host, else the saved
// login's server; --key, else $ISOL8_API_KEY, else the saved token, but
// only for the server it was issued by.
func remoteTarget(host, key string) (string, string, error) {
	saved, err := loadCredentials()
	if err != nil {
		return "", "", err
	}
	if host == "" {
		if saved == nil {
			return "", "", usageErrorf("no server: pass --host URL, or log in with isol8 login --host URL")
		}
		host = saved.Host
	}
	base, err := client.New(client.Options{Host: host}, isol8.Options{})
	if err != nil {
		return "", "", usageErrorf("--%v", err)
	}
	host = base.Host()
	if key == "" {
		key = os.Getenv("ISOL8_API_KEY")
	}
	if key == "" && saved != nil && saved.Host == host {
		if saved.ExpiresAt != nil && time.Now().After(*saved.ExpiresAt) {
			return "", "", usageErrorf("the saved login for %s expired at %s; run isol8 login again",
				host, saved.ExpiresAt.Local().Format(time.RFC1123))
		}
		key = saved.Token
	}
	if key == "" {
		return "", "", usageErrorf("no API key for %s: pass --key KEY, set $ISOL8_API_KEY, or run isol8 login --host %s", host, host)
	}
	return host, key, nil
}

// fullResultEngine streams like the client, except for a run whose
// result must be complete: a streamed result carries neither files (for
// --out) nor the network log (for --log-network), so such a run is a
// plain POST /execute whose output is replayed as events at its end.
type fullResultEngine struct {
	*client.Remote
	always bool // every run needs the full result (--log-network)
}

func (e fullResultEngine) ExecuteStream(ctx context.Context, req *isol8.Request, sink isol8.EventSink) (*isol8.Result, error) {
	if !e.always && len(req.OutputPaths) == 0 {
		return e.Remote.ExecuteStream(ctx, req, sink)
	}
	res, err := e.Execute(ctx, req)
	if sink == nil {
		return res, err
	}
	if err != nil {
		sink(isol8.StreamEvent{Type: isol8.EventError, Data: err.Error()})
		return nil, err
	}
	if res.Stdout != "" {
		sink(isol8.StreamEvent{Type: isol8.EventStdout, Data: res.Stdout})
	}
	if res.Stderr != "" {
		sink(isol8.StreamEvent{Type: isol8.EventStderr, Data: res.Stderr})
	}
	sink(isol8.StreamEvent{Type: isol8.EventExit, Data: fmt.Sprint(res.ExitCode)})
	return res, nil
}
