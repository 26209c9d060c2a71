package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/isol8/isol8/runtime"
	"github.com/isol8/isol8/sandbox"
)

// dockerBuilder connects to the engine; it fails (never skips) when the
// engine is unreachable, unless ISOL8_SKIP_DOCKER=1 asks to skip.
func dockerBuilder(t *testing.T) *Builder {
	t.Helper()
	if os.Getenv("ISOL8_SKIP_DOCKER") == "1" {
		t.Skip("ISOL8_SKIP_DOCKER=1")
	}
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.ping(context.Background()); err != nil {
		t.Fatalf("this test needs the Docker engine (set ISOL8_SKIP_DOCKER=1 to skip it): %v", err)
	}
	return b
}

// recorder collects progress and logs it.
type recorder struct {
	t  *testing.T
	mu sync.Mutex
	ps []Progress
}

func (r *recorder) sink(p Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ps = append(r.ps, p)
	if p.Stage != StageOutput {
		r.t.Log(p.String())
	}
}

func (r *recorder) stages() map[Stage]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[Stage]int{}
	for _, p := range r.ps {
		m[p.Stage]++
	}
	return m
}

func TestEnsureRuntimeImages(t *testing.T) {
	b := dockerBuilder(t)
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
	}

	first := &recorder{t: t}
	start := time.Now()
	if err := b.EnsureRuntimeImages(ctx, Options{Progress: first.sink}); err != nil {
		t.Fatalf("first EnsureRuntimeImages: %v", err)
	}
	t.Logf("first EnsureRuntimeImages took %s", time.Since(start).Round(time.Millisecond))

	for _, rt := range runtime.Names() {
		a, _ := runtime.Get(rt)
		img, err := b.cli.ImageInspect(ctx, a.Image)
		if err != nil {
			t.Fatalf("%s: %v", a.Image, err)
		}
		labels := img.Config.Labels
		hash := labels[LabelContentHash]
		if labels[sandbox.LabelManaged] != "true" || labels[LabelRuntime] != rt || len(hash) != 64 {
			t.Errorf("%s labels = %v", a.Image, labels)
			continue
		}
		if want := RuntimeRepo + ":" + rt + "-" + short(hash); !contains(img.RepoTags, want) {
			t.Errorf("%s tags = %v, want %s among them", a.Image, img.RepoTags, want)
		}
	}

	for _, tc := range []struct {
		rt   string
		argv []string
		want string
	}{
		{"python", []string{"python3", "-c", "print(1)"}, "1\n"},
		{"node", []string{"node", "-e", "console.log(2)"}, "2\n"},
		{"bash", []string{"bash", "-c", "echo $((1+2)) $(id -u):$(id -g) $HOME; test -w /sandbox && ls /etc/ssl/certs | grep -qc ."}, "3 1000:1000 /sandbox\n"},
		{"bun", []string{"bun", "-e", "const n: number = 3; console.log(n * 3)"}, "9\n"},
		{"deno", []string{"deno", "eval", "const n: number = 4; console.log(n * 4)"}, "16\n"},
		// The installers of run-time installs are in the images.
		{"python", []string{"bash", "-c", "python3 -m pip --version >/dev/null && echo pip"}, "pip\n"},
		{"node", []string{"bash", "-c", "npm --version >/dev/null && echo npm"}, "npm\n"},
	} {
		a, _ := runtime.Get(tc.rt)
		out, code := runIn(t, b, a.Image, tc.argv)
		if code != 0 || out != tc.want {
			t.Errorf("%s %q: exit %d, output %q; want exit 0, %q", a.Image, tc.argv, code, out, tc.want)
		}
	}

	second := &recorder{t: t}
	start = time.Now()
	if err := b.EnsureRuntimeImages(ctx, Options{Progress: second.sink}); err != nil {
		t.Fatalf("second EnsureRuntimeImages: %v", err)
	}
	took := time.Since(start)
	t.Logf("second EnsureRuntimeImages took %s", took.Round(time.Millisecond))
	st := second.stages()
	if st[StageUpToDate] != len(runtime.Names()) || st[StageBuild] != 0 || st[StageDebootstrap] != 0 || st[StagePull] != 0 {
		t.Errorf("second EnsureRuntimeImages was not a no-op: stages %v", st)
	}
	if took > 10*time.Second {
		t.Errorf("second EnsureRuntimeImages took %s", took)
	}

	// Force rebuilds (without the build cache) to the same content hash.
	before, err := b.cli.ImageInspect(ctx, "isol8:bash")
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Build(ctx, "bash", Options{Force: true, Progress: (&recorder{t: t}).sink})
	if err != nil {
		t.Fatalf("forced Build: %v", err)
	}
	if res.UpToDate || res.ID == before.ID || res.Hash != before.Config.Labels[LabelContentHash] {
		t.Errorf("forced Build = %+v; image before %s with hash %s", res, before.ID, before.Config.Labels[LabelContentHash])
	}
	if out, code := runIn(t, b, "isol8:bash", []string{"bash", "-c", "echo ok"}); code != 0 || out != "ok\n" {
		t.Errorf("rebuilt isol8:bash: exit %d, output %q", code, out)
	}
}

// runIn runs argv in a fresh container of image as the sandbox user,
// without network, and returns its stdout and exit code.
func runIn(t *testing.T, b *Builder, image string, argv []string) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image: image, Cmd: argv, User: "1000:1000",
			Labels: map[string]string{sandbox.LabelManaged: "true", sandbox.LabelOwner: "image-test"},
		},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatalf("create container of %s: %v", image, err)
	}
	defer b.cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
	if _, err := b.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container of %s: %v", image, err)
	}
	wait := b.cli.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
	case err := <-wait.Error:
		t.Fatalf("wait for container of %s: %v", image, err)
	}
	logs, err := b.cli.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs of container of %s: %v", image, err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		t.Fatalf("logs of container of %s: %v", image, err)
	}
	if stderr.Len() > 0 {
		t.Logf("%s %q stderr: %s", image, argv, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), code
}

func TestListRemove(t *testing.T) {
	b := dockerBuilder(t)
	ctx := t.Context()
	mark := map[string]string{"dev.isol8.test": fmt.Sprintf("list-remove-%d", time.Now().UnixNano())}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	ref := "isol8-test-image:" + mark["dev.isol8.test"]
	resp, err := b.cli.ImageImport(ctx, client.ImageImportSource{Source: &tarball, SourceName: "-"}, ref, client.ImageImportOptions{
		Changes: []string{fmt.Sprintf("LABEL %s=true dev.isol8.test=%s", sandbox.LabelManaged, mark["dev.isol8.test"])},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = readStream(resp, func(jsonstream.Message) {})
	resp.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli.ImageTag(ctx, client.ImageTagOptions{Source: ref, Target: ref + "-second"}); err != nil {
		t.Fatal(err)
	}

	imgs, err := b.List(ctx, mark)
	if err != nil || len(imgs) != 1 || len(imgs[0].Tags) != 2 {
		t.Fatalf("List = %+v, %v; want the one test image with two tags", imgs, err)
	}
	rec := &recorder{t: t}
	removed, err := b.Remove(ctx, mark, rec.sink)
	if err != nil || len(removed) != 1 || rec.stages()[StageRemoved] != 1 {
		t.Fatalf("Remove = %+v, %v", removed, err)
	}
	if imgs, err := b.List(ctx, mark); err != nil || len(imgs) != 0 {
		t.Errorf("after Remove, List = %+v, %v", imgs, err)
	}
	if all, err := b.List(ctx, nil); err != nil {
		t.Error(err)
	} else {
		for _, img := range all {
			if img.Runtime != "" && img.Hash == "" {
				t.Errorf("runtime image %v lacks %s", img.Tags, LabelContentHash)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
