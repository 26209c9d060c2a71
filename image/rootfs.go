package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// rootfsVersion is part of every root filesystem hash: bump it when the
// way BuildRootfs makes a tree changes in a way its inputs do not show.
const rootfsVersion = "isol8-rootfs/2"

// ErrNoDebianRootfs is returned for a runtime whose image needs more than
// Debian packages (bun and deno bring their own binary).
var ErrNoDebianRootfs = errors.New("no Debian-only root filesystem for this runtime")

// RootfsPlan is what BuildRootfs makes for a runtime: a debootstrapped
// minbase tree with the runtime image's Debian packages and its sandbox
// user, made without a Docker engine.
type RootfsPlan struct {
	Runtime  string
	Archive  Archive
	Packages []string
	Env      []string // the environment the runtime image's config sets
	Hash     string   // identity of everything that shapes the tree
	localCAs map[string][]byte
}

// Key names the tree in a cache: "debian-<runtime>-<shorthash>".
func (p *RootfsPlan) Key() string { return "debian-" + p.Runtime + "-" + short(p.Hash) }

// PlanRootfs works out, without building anything, the root filesystem of
// runtime: its packages come from the same recipe as the runtime image,
// installed from the machine's apt sources (or opts.Mirror and
// opts.Suite). Baked runtime packages (opts.Packages) are not part of it.
func PlanRootfs(runtime string, opts Options) (*RootfsPlan, error) {
	if runtimeBinaries[runtime] != nil {
		return nil, fmt.Errorf("runtime %s needs the Docker image (its binary is not a Debian package): run `isol8 setup` with a Docker engine, or give the native backend an unpacked root filesystem folder: %w", runtime, ErrNoDebianRootfs)
	}
	pkgs, err := packagesFor(runtime, opts.SystemPackages[runtime])
	if err != nil {
		return nil, err
	}
	arch, err := archive(opts)
	if err != nil {
		return nil, err
	}
	cas, err := localCAs(opts.CADir)
	if err != nil {
		return nil, err
	}
	parts := []string{rootfsVersion, "runtime=" + runtime, "suite=" + arch.Suite, "variant=minbase",
		"components=" + strings.Join(arch.Components, ","), "packages=" + strings.Join(pkgs, ","),
		"uid=" + strconv.Itoa(sandbox.UID), "gid=" + strconv.Itoa(sandbox.GID), "home=" + sandbox.SandboxDir}
	for _, name := range sortedKeys(cas) {
		parts = append(parts, "ca/"+name, string(cas[name]))
	}
	return &RootfsPlan{Runtime: runtime, Archive: *arch, Packages: pkgs, Env: RootfsEnv(runtime), Hash: sum(parts...), localCAs: cas}, nil
}

// RootfsEnv is the environment the runtime image's config sets, which a
// root filesystem built by BuildRootfs should run with.
func RootfsEnv(runtime string) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	env = append(env, runtimeEnv[runtime]...)
	return append(env, "LANG=C.UTF-8")
}

// BuildRootfs debootstraps plan into dir, which must not exist yet. Files
// are owned by the ids debootstrap gave them (root is 0); the caller maps
// them as it needs. It needs root and debootstrap, not Docker.
func BuildRootfs(ctx context.Context, plan *RootfsPlan, dir string, opts Options) (err error) {
	p := progressFunc(opts.Progress)
	report := func(stage Stage, msg string) { p(Progress{Runtime: plan.Runtime, Stage: stage, Message: msg}) }
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: debootstrap needs root to build the %s root filesystem", ErrPrerequisite, plan.Runtime)
	}
	bin, err := findDebootstrap()
	if err != nil {
		return err
	}
	unlock, err := lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("root filesystem %s: already exists", dir)
	}
	defer func() {
		if err != nil {
			if rerr := removeRootfs(dir); rerr != nil {
				report(StageWarning, rerr.Error())
			}
		}
	}()
	a := plan.Archive
	argv := []string{
		"--variant=minbase",
		"--include=" + strings.Join(commonPackages, ","),
		"--components=" + strings.Join(a.Components, ","),
		a.Suite, dir, a.Mirror,
	}
	start := time.Now()
	report(StageDebootstrap, "debootstrap "+strings.Join(argv, " "))
	p2 := func(pr Progress) { pr.Runtime = plan.Runtime; p(pr) }
	if err := runLogged(ctx, bin, argv, p2); err != nil {
		return fmt.Errorf("debootstrap %s from %s: %w", a.Suite, a.Mirror, err)
	}
	report(StageDebootstrap, fmt.Sprintf("root filesystem ready in %s", time.Since(start).Round(time.Second)))
	// apt resolves dependencies that debootstrap's --include cannot (npm's).
	install := "apt-get update && apt-get install -y --no-install-recommends " + strings.Join(plan.Packages, " ") + " && apt-get clean"
	report(StageBuild, "chroot "+dir+" apt-get install "+strings.Join(plan.Packages, " "))
	if err := runLogged(ctx, "chroot", []string{dir, "/bin/sh", "-c", install}, p2); err != nil {
		return fmt.Errorf("apt-get install in %s: %w", dir, err)
	}
	if err := finishRootfs(ctx, plan, dir); err != nil {
		return fmt.Errorf("root filesystem %s: %w", dir, err)
	}
	report(StageDone, fmt.Sprintf("built %s in %s", plan.Key(), time.Since(start).Round(time.Second)))
	return nil
}

// finishRootfs does what the runtime image's Dockerfile does after apt:
// the machine's CAs, the sandbox user and its home; and drops apt's caches.
func finishRootfs(ctx context.Context, plan *RootfsPlan, dir string) error {
	for _, sub := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(dir, sub, e.Name()))
			}
		}
	}
	if len(plan.localCAs) > 0 {
		caDir := filepath.Join(dir, "usr/local/share/ca-certificates")
		if err := os.MkdirAll(caDir, 0o755); err != nil {
			return err
		}
		for name, pem := range plan.localCAs {
			if err := os.WriteFile(filepath.Join(caDir, filepath.Base(name)), pem, 0o644); err != nil {
				return err
			}
		}
		cmd := exec.CommandContext(ctx, "chroot", dir, "/usr/sbin/update-ca-certificates")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("update-ca-certificates: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	if err := addSandboxUser(dir); err != nil {
		return err
	}
	home := filepath.Join(dir, sandbox.SandboxDir)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	if err := os.Chown(home, sandbox.UID, sandbox.GID); err != nil {
		return err
	}
	return os.Chmod(home, 0o755)
}

// addSandboxUser adds the sandbox user and group to the tree's passwd,
// group and shadow files, as groupadd and useradd would.
func addSandboxUser(dir string) error {
	uid, gid := strconv.Itoa(sandbox.UID), strconv.Itoa(sandbox.GID)
	for _, f := range []struct {
		name, line string
		mode       os.FileMode
	}{
		{"etc/group", "sandbox:x:" + gid + ":", 0o644},
		{"etc/gshadow", "sandbox:!::", 0o640},
		{"etc/passwd", "sandbox:x:" + uid + ":" + gid + "::" + sandbox.SandboxDir + ":/bin/bash", 0o644},
		{"etc/shadow", "sandbox:!:" + strconv.FormatInt(time.Now().Unix()/86400, 10) + ":0:99999:7:::", 0o640},
	} {
		path := filepath.Join(dir, f.name)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) && (f.name == "etc/gshadow" || f.name == "etc/shadow") {
			continue
		}
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "sandbox:") }) {
			continue
		}
		lines = append(lines, f.line)
		st, err := os.Stat(path)
		if err == nil {
			f.mode = st.Mode().Perm()
		}
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// Ping checks that the Docker engine answers, saying how to start it if
// not (the error wraps sandbox.ErrUnavailable).
func (b *Builder) Ping(ctx context.Context) error { return b.ping(ctx) }

// DebianRootfsRuntimes are the runtimes PlanRootfs can make a root
// filesystem for, sorted.
func DebianRootfsRuntimes() []string {
	var out []string
	for rt := range runtimePackages {
		if runtimeBinaries[rt] == nil {
			out = append(out, rt)
		}
	}
	slices.Sort(out)
	return out
}
