package docker_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/sandbox/conformance"
	"github.com/isol8/isol8/sandbox/docker"
	"github.com/moby/moby/client"
	mobyseccomp "github.com/moby/profiles/seccomp"
)

// The test image: ISOL8_TEST_IMAGE, else isol8:python (built by
// `isol8 setup`), else the development image isol8-dev:all.
const (
	defaultImage  = "isol8:python"
	fallbackImage = "isol8-dev:all"
)

// open connects to the local engine. The engine being down fails the test
// (CI must not pass by skipping); ISOL8_SKIP_DOCKER=1 opts out explicitly.
func open(t *testing.T) *docker.Backend {
	t.Helper()
	if os.Getenv("ISOL8_SKIP_DOCKER") == "1" {
		t.Skip("ISOL8_SKIP_DOCKER=1: not testing the docker backend")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := docker.Open(ctx, sandbox.Config{Owner: "isol8-test-" + strings.ReplaceAll(t.Name(), "/", "-")})
	if err != nil {
		t.Fatalf("docker backend: %v\n(set ISOL8_SKIP_DOCKER=1 to skip these tests deliberately)", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testImage picks the image and fails when none of the candidates exists:
// no registry can be reached, so nothing is ever pulled.
func testImage(t *testing.T) string {
	t.Helper()
	if img := os.Getenv("ISOL8_TEST_IMAGE"); img != "" {
		return img
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, img := range []string{defaultImage, fallbackImage} {
		if _, err := cli.ImageInspect(context.Background(), img); err == nil {
			return img
		}
	}
	t.Fatalf("no test image: neither %s nor %s exists (run `isol8 setup`, or set ISOL8_TEST_IMAGE)", defaultImage, fallbackImage)
	return ""
}

func TestConformance(t *testing.T) {
	b := open(t)
	conformance.Run(t, func(*testing.T) sandbox.Backend { return b }, testImage(t))
}

func TestRegistered(t *testing.T) {
	found := false
	for _, n := range sandbox.Names() {
		found = found || n == docker.Name
	}
	if !found {
		t.Fatalf("docker is not registered: %v", sandbox.Names())
	}
}

func TestUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host := "unix:///nonexistent/isol8/docker.sock"
	_, err := sandbox.Open(ctx, docker.Name, sandbox.Config{DockerHost: host})
	if !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	for _, want := range []string{host, "systemctl start docker", "dockerd", "scripts/install-deps.sh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestTimings logs what a sandbox's life costs here, and checks that its
// volumes go with it.
func TestTimings(t *testing.T) {
	b := open(t)
	image := testImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := time.Now().Format("150405.000000")
	spec := sandbox.Spec{
		Image: image, MemoryBytes: 256 << 20, CPUs: 1, Pids: 64,
		SandboxSize: 16 << 20, TmpSize: 8 << 20, Network: sandbox.NetworkNone,
		ReadonlyRootFS: true, Labels: map[string]string{"dev.isol8.timing": run},
	}
	start := time.Now()
	sb, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Create: %v", time.Since(start).Round(time.Millisecond))
	for i := range 5 {
		start = time.Now()
		st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"true"}})
		if err != nil || st.Code != 0 {
			t.Fatalf("Exec: %v %+v", err, st)
		}
		t.Logf("Exec true #%d: %v", i, time.Since(start).Round(time.Millisecond))
	}
	start = time.Now()
	if err := sb.WriteFiles(ctx, []sandbox.File{{Path: "/sandbox/a/b.txt", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("WriteFiles: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if _, err := sb.ReadFile(ctx, "/sandbox/a/b.txt", 10); err != nil {
		t.Fatal(err)
	}
	t.Logf("ReadFile: %v", time.Since(start).Round(time.Millisecond))

	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	volumes := func() int {
		res, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: client.Filters{}.Add("label", "dev.isol8.timing="+run)})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Items)
	}
	if n := volumes(); n != 2 {
		t.Errorf("%d labelled volumes while running, want 2 (/sandbox and /tmp)", n)
	}
	start = time.Now()
	if err := sb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Destroy: %v", time.Since(start).Round(time.Millisecond))
	if n := volumes(); n != 0 {
		t.Errorf("%d volumes left after Destroy", n)
	}
}

func baseSpec(image string, labels map[string]string) sandbox.Spec {
	return sandbox.Spec{
		Image: image, MemoryBytes: 128 << 20, CPUs: 0.5, Pids: 32,
		SandboxSize: 4 << 20, TmpSize: 2 << 20, Network: sandbox.NetworkNone,
		ReadonlyRootFS: true, Labels: labels,
	}
}

// TestContainerConfig checks the hardening as the engine recorded it.
func TestContainerConfig(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spec := baseSpec(testImage(t), map[string]string{"dev.isol8.case": "config", sandbox.LabelManaged: "false"})
	sb, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Destroy(ctx)
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	res, err := cli.ContainerInspect(ctx, sb.ID(), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, hc := res.Container.Config, res.Container.HostConfig
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	// The idle process runs as root without capabilities; execs as 1000
	// (the conformance suite checks the uid of what runs).
	check("User", c.User, "0:0")
	check("Init", hc.Init != nil && *hc.Init, true)
	check("Privileged", hc.Privileged, false)
	check("ReadonlyRootfs", hc.ReadonlyRootfs, true)
	check("NetworkMode", string(hc.NetworkMode), "none")
	check("Memory", hc.Memory, spec.MemoryBytes)
	check("MemorySwap", hc.MemorySwap, spec.MemoryBytes)
	check("NanoCPUs", hc.NanoCPUs, int64(5e8))
	check("PidsLimit", hc.PidsLimit != nil && *hc.PidsLimit == spec.Pids, true)
	check("CapDrop", strings.Join(hc.CapDrop, ","), "ALL")
	check("CapAdd", len(hc.CapAdd), 0)
	check("Binds", len(hc.Binds), 0)
	check("ShmSize", hc.ShmSize, spec.TmpSize)
	check("managed label", c.Labels[sandbox.LabelManaged], "true")
	check("case label", c.Labels["dev.isol8.case"], "config")
	check("owner label", c.Labels[sandbox.LabelOwner] != "", true)
	if !strings.HasPrefix(c.Hostname, "sbx-") {
		t.Errorf("Hostname %q", c.Hostname)
	}
	var nnp, sec bool
	for _, o := range hc.SecurityOpt {
		nnp = nnp || o == "no-new-privileges"
		sec = sec || strings.HasPrefix(o, "seccomp=") && strings.Contains(o, "defaultAction")
	}
	check("no-new-privileges", nnp, true)
	check("seccomp profile", sec, true)
	for _, m := range res.Container.Mounts {
		if m.Type != "volume" || m.Driver != "local" || (m.Destination != "/sandbox" && m.Destination != "/tmp") {
			t.Errorf("unexpected mount %+v", m)
		}
	}
	check("mounts", len(res.Container.Mounts), 2)
}

func TestNetworkModes(t *testing.T) {
	b := open(t)
	image := testImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	spec := baseSpec(image, map[string]string{"dev.isol8.case": "network"})
	// Filtered is "none" at the Docker level: only loopback, on which the
	// engine listens from outside (netns_test.go).
	spec.Network = sandbox.NetworkFiltered
	fsb, ferr := b.Create(ctx, spec)
	if ferr != nil {
		t.Fatalf("NetworkFiltered: %v", ferr)
	}
	var fout strings.Builder
	fst, ferr := fsb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"cat", "/proc/net/dev"}, Stdout: &fout})
	fsb.Destroy(ctx)
	if ferr != nil || fst.Code != 0 {
		t.Fatal(ferr, fst)
	}
	if n := strings.Count(fout.String(), ":"); n != 1 || !strings.Contains(fout.String(), "lo:") {
		t.Errorf("NetworkFiltered: interfaces other than lo:\n%s", fout.String())
	}

	spec.Network = sandbox.NetworkHost
	sb, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatalf("NetworkHost: %v", err)
	}
	defer sb.Destroy(ctx)
	var out strings.Builder
	st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"cat", "/proc/net/dev"}, Stdout: &out})
	if err != nil || st.Code != 0 {
		t.Fatal(err, st)
	}
	if n := strings.Count(out.String(), ":"); n < 2 {
		t.Errorf("host network shows %d interfaces:\n%s", n, out.String())
	}
}

// TestCustomSeccomp passes Docker's own default profile, which allows
// name_to_handle_at: the call must then get past the filter.
func TestCustomSeccomp(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile, err := json.Marshal(mobyseccomp.DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	spec := baseSpec(testImage(t), map[string]string{"dev.isol8.case": "seccomp"})
	spec.SeccompProfile = profile
	sb, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Destroy(ctx)
	var out strings.Builder
	prog := `import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(303, -100, b"/", ctypes.create_string_buffer(128), ctypes.byref(ctypes.c_int()), 0)
print(ctypes.get_errno() if r < 0 else 0)`
	if _, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"python3", "-c", prog}, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) == "1" {
		t.Errorf("name_to_handle_at still EPERM: the custom profile was not applied")
	}
}
