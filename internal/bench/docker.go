package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// DockerFloor measures the Docker Engine API's own cost of one run in a
// fresh container of image: create, start, exec argv (attached), remove.
// It uses the same kind of container isol8 makes (no network, read-only
// root, init) but none of isol8's own work, so it is the floor a cold
// isol8 run is compared with.
func DockerFloor(ctx context.Context, cli *client.Client, image string, argv []string) func() error {
	return func() error {
		c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: &container.Config{Image: image, Cmd: []string{"sleep", "infinity"}, User: "1000:1000",
				Labels: map[string]string{"dev.isol8.managed": "true", "dev.isol8.owner": "bench-floor"}},
			HostConfig: &container.HostConfig{NetworkMode: "none", ReadonlyRootfs: true, Init: ptr(true),
				CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"}},
		})
		if err != nil {
			return err
		}
		defer cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, client.ContainerRemoveOptions{Force: true})
		if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
			return err
		}
		ex, err := cli.ExecCreate(ctx, c.ID, client.ExecCreateOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
		if err != nil {
			return err
		}
		att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
		if err != nil {
			return err
		}
		var out bytes.Buffer
		_, err = stdcopy.StdCopy(&out, io.Discard, att.Reader)
		att.Close()
		if err != nil {
			return err
		}
		if out.String() != "1\n" {
			return fmt.Errorf("unexpected output %q", out.String())
		}
		return nil
	}
}

func ptr[T any](v T) *T { return &v }
