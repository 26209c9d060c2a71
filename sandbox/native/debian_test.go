//go:build linux

package native

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	isol8image "github.com/isol8/isol8/image"
	"github.com/isol8/isol8/sandbox"
)

// TestDebianRootfs runs isol8:python with no Docker engine: the backend
// builds the root filesystem from Debian packages with debootstrap (once;
// later runs find it in the shared test state folder by its hash).
func TestDebianRootfs(t *testing.T) {
	requireNative(t)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	b, err := Open(context.Background(), sandbox.Config{
		Owner:      "native-test-" + hex.EncodeToString(suffix),
		StateDir:   testStateDir(t),
		DockerHost: "unix:///nonexistent/docker.sock",
	})
	if err != nil {
		t.Fatalf("the native backend cannot run here (ISOL8_SKIP_NATIVE=1 skips these tests): %v", err)
	}
	t.Cleanup(func() { b.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	// As `isol8 setup --backend native` does: (re)build it for the current
	// recipe, which the backend then finds on its own.
	dir, built, err := EnsureRootfs(ctx, testStateDir(t), "python", isol8image.Options{Progress: isol8image.LineWriter(os.Stderr, false)})
	if err != nil {
		t.Fatalf("EnsureRootfs: %v", err)
	}
	t.Logf("EnsureRootfs: %s, built %v (%s)", dir, built, time.Since(start).Round(time.Millisecond))
	img, err := b.images.resolve(ctx, "isol8:python")
	if err != nil {
		t.Fatalf("resolve isol8:python without Docker: %v", err)
	}
	t.Logf("isol8:python is %s (%s)", img.rootfs, time.Since(start).Round(time.Millisecond))
	if img.rootfs != dir {
		t.Errorf("rootfs %s is not a Debian-built tree", img.rootfs)
	}
	if !strings.Contains(strings.Join(img.env, " "), "LANG=C.UTF-8") {
		t.Errorf("env %q lacks LANG", img.env)
	}

	sb := create(t, b, testSpec("isol8:python"))
	out, errs, code := execOut(t, sb, "python3", "-c", "import os; print(1, os.getuid(), os.getgid(), os.getcwd())")
	if code != 0 || out != "1 1000 1000 /sandbox\n" {
		t.Errorf("python3: code %d, stdout %q, stderr %q", code, out, errs)
	}
	out, errs, code = execOut(t, sb, "sh", "-c", "id -un; echo hi > /sandbox/f && cat /sandbox/f; ls -ld /usr/bin/python3 | cut -d' ' -f3")
	if code != 0 || out != "sandbox\nhi\nroot\n" {
		t.Errorf("sh: code %d, stdout %q, stderr %q", code, out, errs)
	}

	// The config's images keys reach a first-use build: with an extra
	// system package the recipe is another, built on first use (once per
	// recipe: the tree is kept by its hash), and the package is there.
	b.SetImageOptions(isol8image.Options{SystemPackages: map[string][]string{"python": {"jq"}}})
	img2, err := b.images.resolve(ctx, "isol8:python")
	if err != nil {
		t.Fatalf("resolve isol8:python with systemPackages jq, without Docker: %v", err)
	}
	if img2.rootfs == dir {
		t.Fatalf("the config's systemPackages did not change the tree (%s)", dir)
	}
	sb2 := create(t, b, testSpec("isol8:python"))
	out, errs, code = execOut(t, sb2, "sh", "-c", "echo '{\"a\": 7}' | jq .a")
	if code != 0 || out != "7\n" {
		t.Errorf("jq from systemPackages: code %d, stdout %q, stderr %q", code, out, errs)
	}
	if again, err := b.images.resolve(ctx, "isol8:python"); err != nil || again.rootfs != img2.rootfs {
		t.Errorf("resolving again: %v, %s (want %s)", err, again.rootfs, img2.rootfs)
	}

	// Runtimes whose binary is not a Debian package say what they need.
	_, err = b.images.resolve(ctx, "isol8:bun")
	if !errors.Is(err, isol8image.ErrNoDebianRootfs) || !strings.Contains(err.Error(), "needs the Docker image") {
		t.Errorf("isol8:bun without Docker: %v", err)
	}
}
