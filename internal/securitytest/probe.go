package securitytest

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/isol8/isol8/sandbox"
	"github.com/moby/moby/client"
)

// probe is the suite's own view of which sandboxes exist. For the docker
// backend it is the Docker API itself, so the backend under test does not
// judge its own cleanup.
type probe interface {
	// exists reports whether the sandbox with this id still exists.
	exists(ctx context.Context, id string) (bool, error)
	// owned lists the sandboxes labelled with exactly this owner.
	owned(ctx context.Context, owner string) ([]string, error)
	// ownedPrefix lists the sandboxes whose owner label starts with prefix.
	ownedPrefix(ctx context.Context, prefix string) ([]string, error)
	// remove force-removes a sandbox a failed case left behind.
	remove(ctx context.Context, id string) error
}

// dockerProbe asks the Docker engine directly.
type dockerProbe struct{ cli *client.Client }

func newDockerProbe(ctx context.Context) (*dockerProbe, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker engine at %s: %w", cli.DaemonHost(), err)
	}
	return &dockerProbe{cli: cli}, nil
}

func (d *dockerProbe) close() { d.cli.Close() }

func (d *dockerProbe) exists(ctx context.Context, id string) (bool, error) {
	_, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	}
	return false, err
}

func (d *dockerProbe) list(ctx context.Context, label string, keep func(string) bool) ([]string, error) {
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: client.Filters{}.Add("label", label),
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range res.Items {
		if keep(c.Labels[sandbox.LabelOwner]) {
			ids = append(ids, c.ID[:12]+"("+string(c.State)+")")
		}
	}
	return ids, nil
}

func (d *dockerProbe) owned(ctx context.Context, owner string) ([]string, error) {
	return d.list(ctx, sandbox.LabelOwner+"="+owner, func(string) bool { return true })
}

func (d *dockerProbe) ownedPrefix(ctx context.Context, prefix string) ([]string, error) {
	return d.list(ctx, sandbox.LabelOwner, func(o string) bool { return strings.HasPrefix(o, prefix) })
}

func (d *dockerProbe) remove(ctx context.Context, id string) error {
	id, _, _ = strings.Cut(id, "(")
	_, err := d.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	return err
}

func (d *dockerProbe) hasImage(ctx context.Context, ref string) bool {
	_, err := d.cli.ImageInspect(ctx, ref)
	return err == nil
}

// backendProbe asks the backend (for backends the suite has no
// independent view of).
type backendProbe struct{ b sandbox.Backend }

func (p *backendProbe) exists(ctx context.Context, id string) (bool, error) {
	infos, err := p.b.List(ctx, nil)
	if err != nil {
		return false, err
	}
	for _, i := range infos {
		if i.ID == id {
			return true, nil
		}
	}
	return false, nil
}

func (p *backendProbe) owned(ctx context.Context, owner string) ([]string, error) {
	return p.ownedBy(ctx, func(o string) bool { return o == owner })
}

func (p *backendProbe) ownedPrefix(ctx context.Context, prefix string) ([]string, error) {
	return p.ownedBy(ctx, func(o string) bool { return strings.HasPrefix(o, prefix) })
}

func (p *backendProbe) ownedBy(ctx context.Context, keep func(string) bool) ([]string, error) {
	infos, err := p.b.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, i := range infos {
		if keep(i.Labels[sandbox.LabelOwner]) {
			ids = append(ids, i.ID)
		}
	}
	return ids, nil
}

func (p *backendProbe) remove(ctx context.Context, id string) error { return p.b.Remove(ctx, id) }

// inspectHolding says which of owner's containers show s in what the
// Docker API returns about them (docker inspect).
func (d *dockerProbe) inspectHolding(ctx context.Context, owner, s string) []string {
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: client.Filters{}.Add("label", sandbox.LabelOwner+"="+owner),
	})
	if err != nil {
		return nil
	}
	var found []string
	for _, c := range res.Items {
		if ins, err := d.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{}); err == nil && strings.Contains(string(ins.Raw), s) {
			found = append(found, "docker inspect "+c.ID[:12])
		}
	}
	return found
}
