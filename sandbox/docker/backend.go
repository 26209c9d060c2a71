// Package docker is the sandbox backend that runs each sandbox as a
// hardened container through the Docker Engine API (never the docker CLI).
//
// A sandbox is a container whose pid 1 is docker-init running an idle
// command; user code runs in it through exec, as uid 1000 with no
// capabilities, no_new_privs, the strict seccomp profile, a read-only root,
// and size-limited nosuid,nodev tmpfs at /sandbox and /tmp. Files move
// through the archive API, which the daemon confines to the container's
// root.
package docker

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/isol8/isol8/sandbox"
	"github.com/moby/moby/client"
)

// Name is the name the backend is registered under.
const Name = "docker"

func init() {
	sandbox.Register(Name, func(ctx context.Context, cfg sandbox.Config) (sandbox.Backend, error) {
		return Open(ctx, cfg)
	})
}

// pingTimeout bounds how long Open waits for an engine that does not answer.
const pingTimeout = 5 * time.Second

// Backend creates sandboxes as containers of one Docker engine.
type Backend struct {
	cli   *client.Client
	owner string
}

// Open connects to the Docker engine at cfg.DockerHost (default: DOCKER_HOST,
// then the local socket), negotiating the API version. It fails with an
// error wrapping sandbox.ErrUnavailable when the engine cannot be reached.
func Open(ctx context.Context, cfg sandbox.Config) (*Backend, error) {
	opts := []client.Opt{client.FromEnv}
	if cfg.DockerHost != "" {
		opts = append(opts, client.WithHost(cfg.DockerHost))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker backend: %w", err)
	}
	host := cli.DaemonHost()
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: the Docker engine cannot be reached at %s (%v); "+
			"start it with `systemctl start docker` (or run `dockerd`), "+
			"or install it with the project's scripts/install-deps.sh", sandbox.ErrUnavailable, host, err)
	}
	return &Backend{
		cli:   cli,
		owner: cfg.Owner,
	}, nil
}

// Name returns "docker".
func (b *Backend) Name() string { return Name }

// Close releases the client's connections; sandboxes keep running.
func (b *Backend) Close() error { return b.cli.Close() }

// List returns the containers carrying LabelManaged and all the given labels,
// running or not.
func (b *Backend) List(ctx context.Context, labels map[string]string) ([]sandbox.Info, error) {
	f := client.Filters{}.Add("label", sandbox.LabelManaged+"=true")
	for k, v := range labels {
		f = f.Add("label", k+"="+v)
	}
	res, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	out := make([]sandbox.Info, 0, len(res.Items))
	for _, c := range res.Items {
		created := time.Unix(c.Created, 0)
		if t, err := time.Parse(time.RFC3339Nano, c.Labels[sandbox.LabelCreated]); err == nil {
			created = t
		}
		out = append(out, sandbox.Info{
			ID:      c.ID,
			Labels:  c.Labels,
			Created: created,
			Running: c.State == "running",
		})
	}
	return out, nil
}

// Remove destroys the sandbox with the given container id. It refuses a
// container that isol8 did not create, and a missing one is not an error.
func (b *Backend) Remove(ctx context.Context, id string) error {
	res, err := b.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove sandbox %s: %w", id, err)
	}
	if res.Container.Config == nil || res.Container.Config.Labels[sandbox.LabelManaged] != "true" {
		return fmt.Errorf("remove sandbox %s: container is not managed by isol8 (no %s label)", id, sandbox.LabelManaged)
	}
	return b.remove(ctx, res.Container.ID)
}

// remove force-removes a container with its anonymous volumes. The daemon
// sends SIGKILL to the whole container, so nothing ignoring SIGTERM can
// delay it.
func (b *Backend) remove(ctx context.Context, id string) error {
	_, err := b.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case strings.Contains(err.Error(), "already in progress"):
		// A concurrent Destroy is removing it; wait until it is gone.
		return b.waitGone(ctx, id)
	}
	return fmt.Errorf("remove sandbox %s: %w", id, err)
}

func (b *Backend) waitGone(ctx context.Context, id string) error {
	for {
		_, err := b.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove sandbox %s: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errGone reports whether err says the container itself no longer exists.
func errGone(err error) bool {
	return cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such container")
}

var _ sandbox.Backend = (*Backend)(nil)
