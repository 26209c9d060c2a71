package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/isol8/isol8/sandbox"
)

// TestCleanup makes a leftover sandbox (labelled) and a stranger's
// container (unlabelled) through the Docker API. cleanup --force must
// remove the first and leave the second. The run is scoped with --owner
// so that it cannot touch sandboxes of other tests sharing the engine.
func TestCleanup(t *testing.T) {
	needDocker(t)
	isolate(t)
	ctx := context.Background()
	dc, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	owner := fmt.Sprintf("isol8-cli-test-%d", time.Now().UnixNano())
	labelled := startContainer(t, dc, map[string]string{sandbox.LabelManaged: "true", sandbox.LabelOwner: owner})
	stranger := startContainer(t, dc, map[string]string{"dev.isol8.test": owner})
	t.Cleanup(func() {
		for _, id := range []string{labelled, stranger} {
			_, _ = dc.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
		}
	})

	// No terminal to confirm on: refuse without --force, remove nothing.
	o := cli(t, "cleanup", "--owner", owner)
	expectCode(t, o, 2)
	if !strings.Contains(o.stderr, "--force") || !exists(t, dc, labelled) {
		t.Fatalf("cleanup without --force did not refuse:\n%s", o)
	}

	// --images also counts the native backend's unused root filesystems
	// (refused here too: nothing is removed).
	o = cli(t, "cleanup", "--images", "--owner", owner)
	expectCode(t, o, 2)
	if !strings.Contains(o.stderr, "native root filesystem") {
		t.Fatalf("cleanup --images does not count native root filesystems:\n%s", o)
	}

	o = cli(t, "cleanup", "--force", "--owner", owner)
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "removed 1 sandbox") {
		t.Errorf("stdout %q", o.stdout)
	}
	if exists(t, dc, labelled) {
		t.Error("the labelled container is still there")
	}
	if !exists(t, dc, stranger) {
		t.Error("the unlabelled container was removed")
	}

	o = cli(t, "cleanup", "--force", "--owner", owner)
	expectCode(t, o, 0)
	if !strings.Contains(o.stdout, "nothing to remove") {
		t.Errorf("second cleanup: stdout %q", o.stdout)
	}
}

func startContainer(t *testing.T, dc *client.Client, labels map[string]string) string {
	t.Helper()
	ctx := context.Background()
	res, err := dc.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: "isol8:bash", Entrypoint: []string{"sleep"}, Cmd: []string{"300"}, Labels: labels},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	if _, err := dc.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	return res.ID
}

func exists(t *testing.T, dc *client.Client, id string) bool {
	t.Helper()
	_, err := dc.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return true
}
