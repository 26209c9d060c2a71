//go:build linux

package native

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/sandbox/conformance"
)

// The tests need root, user namespaces and cgroups; they fail (never
// skip) when those are missing, unless ISOL8_SKIP_NATIVE=1.
func requireNative(t testing.TB) {
	t.Helper()
	if os.Getenv("ISOL8_SKIP_NATIVE") == "1" {
		t.Skip("ISOL8_SKIP_NATIVE=1")
	}
}

// testStateDir is shared by test runs, so that an image is exported once.
func testStateDir(t testing.TB) string {
	d := filepath.Join(os.TempDir(), "isol8-native-test")
	if err := os.MkdirAll(d, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}

func openBackend(t testing.TB) *Backend {
	t.Helper()
	requireNative(t)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	b, err := Open(context.Background(), sandbox.Config{
		Owner:    "native-test-" + hex.EncodeToString(suffix),
		StateDir: testStateDir(t),
	})
	if err != nil {
		t.Fatalf("the native backend cannot run here (ISOL8_SKIP_NATIVE=1 skips these tests): %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testImage is ISOL8_NATIVE_IMAGE, else the isol8:python Docker image when
// a Docker engine has it, else the development root filesystem.
func testImage(t testing.TB, b *Backend) string {
	t.Helper()
	if img := os.Getenv("ISOL8_NATIVE_IMAGE"); img != "" {
		return img
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const docker = "isol8:python"
	if _, err := b.images.resolve(ctx, docker); err == nil {
		return docker
	} else {
		t.Logf("image %s: %v", docker, err)
	}
	const dev = "/tmp/devimg/rootfs"
	if _, err := os.Stat(dev); err == nil {
		return dev
	}
	t.Fatal("no image: set ISOL8_NATIVE_IMAGE to a root filesystem folder or an image name, or build isol8:python")
	return ""
}

func testSpec(image string) sandbox.Spec {
	return sandbox.Spec{
		Image:          image,
		MemoryBytes:    256 << 20,
		CPUs:           1,
		Pids:           64,
		SandboxSize:    16 << 20,
		TmpSize:        8 << 20,
		Network:        sandbox.NetworkNone,
		ReadonlyRootFS: true,
		Labels:         map[string]string{"dev.isol8.test": "native"},
	}
}

func create(t testing.TB, b *Backend, spec sandbox.Spec) sandbox.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Destroy(context.Background()); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return sb
}

// execOut runs argv and returns stdout, stderr and the exit code.
func execOut(t testing.TB, sb sandbox.Sandbox, argv ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: argv, Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("Exec %q: %v", argv, err)
	}
	return out.String(), errb.String(), st.Code
}

func TestConformance(t *testing.T) {
	b := openBackend(t)
	conformance.Run(t, func(t *testing.T) sandbox.Backend { return b }, testImage(t, b))
}

// TestWritableRoot: a trusted config may ask for a writable root, which
// gets a tmpfs overlay; the shared image never changes.
func TestWritableRoot(t *testing.T) {
	b := openBackend(t)
	spec := testSpec(testImage(t, b))
	spec.ReadonlyRootFS = false
	sb := create(t, b, spec)
	out, errOut, code := execOut(t, sb, "bash", "-c", "echo hi > /var/tmp/isol8-probe && cat /var/tmp/isol8-probe && grep -c ' / .*\\bro\\b' /proc/self/mountinfo || true")
	if code != 0 || !strings.HasPrefix(out, "hi\n") {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
	img, err := b.images.resolve(context.Background(), spec.Image)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(img.rootfs, "var/tmp/isol8-probe")); !os.IsNotExist(err) {
		t.Errorf("the write reached the shared image: %v", err)
	}
	if out, _, _ := execOut(t, create(t, b, testSpec(spec.Image)), "ls", "/var/tmp"); strings.Contains(out, "isol8-probe") {
		t.Error("another sandbox sees the write")
	}
}

// TestHostNetwork: NetworkHost shares the host's network namespace.
func TestHostNetwork(t *testing.T) {
	b := openBackend(t)
	spec := testSpec(testImage(t, b))
	spec.Network = sandbox.NetworkHost
	out, _, code := execOut(t, create(t, b, spec), "cat", "/proc/net/dev")
	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || strings.Count(out, "\n") != strings.Count(string(host), "\n") {
		t.Errorf("exit %d; sandbox interfaces:\n%s\nhost:\n%s", code, out, host)
	}
}

// TestFilteredListener: a filtered sandbox has only loopback, and the
// engine's listener in it is the one way out.
func TestFilteredListener(t *testing.T) {
	b := openBackend(t)
	spec := testSpec(testImage(t, b))
	spec.Network = sandbox.NetworkFiltered
	sb := create(t, b, spec)
	ll, ok := sb.(sandbox.LoopbackListener)
	if !ok {
		t.Fatal("the native sandbox is not a LoopbackListener")
	}
	l, err := ll.ListenLoopback(context.Background(), "127.0.0.1:3128")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
	}()
	out, errOut, code := execOut(t, sb, "python3", "-c", `import socket
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(b"through the proxy")
s.close()
ifs = [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]]
print(",".join(sorted(ifs)))`)
	if code != 0 || out != "lo\n" {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
	select {
	case s := <-got:
		if s != "through the proxy" {
			t.Errorf("the listener got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener got nothing")
	}
}
