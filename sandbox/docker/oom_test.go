package docker

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// TestOOMFile checks that the OOM counter is read from the cgroup, not
// from the sticky State.OOMKilled fallback, on a local engine.
func TestOOMFile(t *testing.T) {
	if os.Getenv("ISOL8_SKIP_DOCKER") == "1" {
		t.Skip("ISOL8_SKIP_DOCKER=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Open(ctx, sandbox.Config{Owner: "isol8-test-oomfile"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	image := os.Getenv("ISOL8_TEST_IMAGE")
	if image == "" {
		image = "isol8-dev:all"
		if _, err := b.cli.ImageInspect(ctx, "isol8:python"); err == nil {
			image = "isol8:python"
		}
	}
	sbx, err := b.Create(ctx, sandbox.Spec{Image: image, MemoryBytes: 64 << 20, Pids: 16,
		SandboxSize: 1 << 20, TmpSize: 1 << 20, ReadonlyRootFS: true,
		Labels: map[string]string{"dev.isol8.case": "oomfile"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sbx.Destroy(ctx)
	s := sbx.(*Sandbox)
	path := s.findOOMFile(ctx)
	if !strings.Contains(path, s.id) {
		t.Fatalf("OOM counter file %q does not name the container", path)
	}
	if _, ok := readOOMKills(path); !ok {
		t.Errorf("cannot read oom_kill from %s", path)
	}
	t.Logf("OOM counter: %s", path)
}
