//go:build linux

package native

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// TestRemoveRootfs: trees no sandbox uses are listed and removed; the tree
// of a live sandbox is kept (and the sandbox keeps working) until the
// sandbox is gone; a name resolved before its tree was removed is resolved
// (exported) again.
func TestRemoveRootfs(t *testing.T) {
	shared := openBackend(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src, err := shared.images.resolve(ctx, "isol8:python")
	if err != nil {
		t.Fatal(err)
	}

	state, err := os.MkdirTemp(testStateDir(t), "prune-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	if err := os.Chmod(state, 0o711); err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, sandbox.Config{Owner: "native-test-prune", StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cache := filepath.Join(state, "native", "rootfs")
	// Two trees as hard-linked copies of a real one (cheap, and removing
	// them leaves the original alone).
	const old, inUse = "debian-python-000000000001", "debian-python-000000000002"
	for _, n := range []string{old, inUse} {
		if out, err := exec.Command("cp", "-al", src.rootfs, filepath.Join(cache, n)).CombinedOutput(); err != nil {
			t.Fatalf("cp -al: %v: %s", err, out)
		}
	}
	if err := os.Symlink(old, filepath.Join(cache, "debian-python")); err != nil {
		t.Fatal(err)
	}
	sb := create(t, b, testSpec(filepath.Join(cache, inUse)))

	unused, err := UnusedRootfs(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(unused) != 1 || unused[0].Name != old || unused[0].Bytes < 1<<20 {
		t.Fatalf("unused trees: %+v, want only %s", unused, old)
	}
	removed, err := RemoveRootfs(state, []string{old, inUse})
	if err != nil || !slices.Equal(removed, []string{old}) {
		t.Fatalf("RemoveRootfs: %v %v, want only %s", removed, err, old)
	}
	if _, err := os.Lstat(filepath.Join(cache, "debian-python")); !os.IsNotExist(err) {
		t.Errorf("the link to a removed tree is still there: %v", err)
	}
	if out, errs, code := execOut(t, sb, "python3", "-c", "print(1)"); out != "1\n" || code != 0 {
		t.Fatalf("the sandbox on the kept tree: %q %q %d", out, errs, code)
	}
	if _, err := os.Stat(src.rootfs); err != nil {
		t.Fatalf("the original tree: %v", err)
	}

	if err := sb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if removed, err = RemoveRootfs(state, []string{inUse}); err != nil {
			t.Fatal(err)
		}
		if len(removed) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tree of a destroyed sandbox stayed in use")
		}
	}

	// A resolved name whose tree goes is resolved again.
	img, err := b.images.resolve(ctx, "isol8:python")
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := RemoveRootfs(state, []string{filepath.Base(img.rootfs)}); err != nil || len(removed) != 1 {
		t.Fatalf("removing %s: %v %v", img.rootfs, removed, err)
	}
	sb2 := create(t, b, testSpec("isol8:python"))
	if out, errs, code := execOut(t, sb2, "python3", "-c", "print(2)"); out != "2\n" || code != 0 {
		t.Fatalf("after its tree was removed, isol8:python: %q %q %d", out, errs, code)
	}
}
