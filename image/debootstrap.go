package image

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/isol8/isol8/sandbox"
)

// bootstrap runs debootstrap into a temporary folder and imports the root
// filesystem as plan.ref.
func (b *Builder) bootstrap(ctx context.Context, plan basePlan, opts Options) error {
	p := progressFunc(opts.Progress)
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: debootstrap needs root to build the base image %s (run the setup as root, or set images.baseImage to an image the engine has)",
			ErrPrerequisite, plan.ref)
	}
	bin, err := findDebootstrap()
	if err != nil {
		return err
	}
	tmp := opts.TempDir
	if tmp == "" {
		tmp = DefaultTempDir
	}
	dir, err := os.MkdirTemp(tmp, "isol8-rootfs-")
	if err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	defer func() {
		if err := removeRootfs(dir); err != nil {
			p(Progress{Stage: StageWarning, Message: err.Error()})
		}
	}()
	rootfs := filepath.Join(dir, "rootfs")
	r := plan.recipe
	argv := []string{
		"--variant=" + r.Variant,
		"--include=" + strings.Join(r.Include, ","),
		"--components=" + strings.Join(r.Components, ","),
		r.Suite, rootfs, plan.archive.Mirror,
	}
	start := time.Now()
	p(Progress{Stage: StageDebootstrap, Message: "debootstrap " + strings.Join(argv, " ")})
	if err := runLogged(ctx, bin, argv, p); err != nil {
		return fmt.Errorf("debootstrap %s from %s: %w", r.Suite, plan.archive.Mirror, err)
	}
	p(Progress{Stage: StageDebootstrap, Message: fmt.Sprintf("root filesystem ready in %s", time.Since(start).Round(time.Second))})
	return b.importRootfs(ctx, rootfs, plan, p)
}

// findDebootstrap looks in PATH and in the sbin folders, which a non-login
// PATH may lack.
func findDebootstrap() (string, error) {
	if p, err := exec.LookPath("debootstrap"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/debootstrap", "/sbin/debootstrap"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: debootstrap is not installed and the base image cannot be pulled; run scripts/install-deps.sh or `apt-get install debootstrap`", ErrPrerequisite)
}

// phase matches debootstrap's per-package lines, shown only when verbose
// ("I: Retrieving libc6 2.36-9", "I: Extracting libc6..."), not the phase
// lines ("I: Unpacking required packages...").
var phase = regexp.MustCompile(`^I: (Retrieving|Validating) [^ ]+ [^ ]+$|^I: (Extracting|Unpacking|Configuring) [^ ]+\.\.\.$`)

// runLogged runs argv, reporting debootstrap's "I:" lines as steps and the
// rest as output; on failure the error holds the last lines.
func runLogged(ctx context.Context, bin string, argv []string, p func(Progress)) error {
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Cancelling stops debootstrap and the dpkg it runs, not just the shell.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	last := &tail{max: 15}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			last.add(line)
			stage := StageOutput
			if strings.HasPrefix(line, "I: ") && !phase.MatchString(line) || strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
				stage = StageDebootstrap
			}
			p(Progress{Stage: stage, Message: line})
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%w; last output:\n%s", err, last)
	}
	return nil
}

// importRootfs streams rootfs as a tar archive into the engine.
func (b *Builder) importRootfs(ctx context.Context, rootfs string, plan basePlan, p func(Progress)) error {
	// tar keeps hard links, devices and numeric owners as debootstrap made
	// them; --one-file-system keeps out anything still mounted inside.
	cmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--one-file-system",
		"--exclude=./var/lib/apt/lists/*", "--exclude=./var/cache/apt/*",
		"-C", rootfs, "-cf", "-", ".")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("tar the root filesystem: %w", err)
	}
	counted := &countingReader{r: out}
	p(Progress{Stage: StageImport, Message: "importing the root filesystem as " + plan.ref})
	resp, err := b.cli.ImageImport(ctx, client.ImageImportSource{Source: counted, SourceName: "-"}, plan.ref,
		client.ImageImportOptions{
			Message: "isol8 base: debootstrap " + plan.recipe.Suite + " " + plan.recipe.Variant,
			Changes: []string{
				fmt.Sprintf("LABEL %s=true %s=%s", sandbox.LabelManaged, LabelContentHash, plan.recipe.hash()),
				`CMD ["/bin/bash"]`,
			},
		})
	if err == nil {
		err = readStream(resp, func(jsonstream.Message) {})
		resp.Close()
	}
	io.Copy(io.Discard, out)
	if werr := cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("tar the root filesystem: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", plan.ref, err)
	}
	p(Progress{Stage: StageImport, Message: fmt.Sprintf("imported %s (%d MiB)", plan.ref, counted.n>>20)})
	return nil
}

// readStream decodes a JSON message stream, failing on its first error.
func readStream(r io.Reader, each func(jsonstream.Message)) error {
	dec := json.NewDecoder(r)
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != nil {
			return msg.Error
		}
		each(msg)
	}
}

// removeRootfs unmounts anything debootstrap left mounted under dir (a
// failed run can leave /proc and /sys) and only then deletes dir, so the
// removal never reaches into the machine's own /proc or /sys.
func removeRootfs(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return fmt.Errorf("left %s in place: %w", dir, err)
	}
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("left %s in place: unmount %s: %w", dir, m, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// mountsUnder lists mount points inside dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
