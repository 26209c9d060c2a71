package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/sandbox/seccomp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// maxShmSize caps /dev/shm: POSIX shared memory and semaphores need a
// little, and it is one more place user code could fill.
const maxShmSize = 64 << 20

// cleanupTimeout bounds removing a half-created container once the
// caller's context is gone.
const cleanupTimeout = 10 * time.Second

var (
	strictOnce sync.Once
	strictJSON string
	strictErr  error
)

// strictProfile is the seccomp profile's JSON, computed once.
func strictProfile() (string, error) {
	strictOnce.Do(func() {
		b, err := seccomp.JSON()
		strictJSON, strictErr = string(b), err
	})
	return strictJSON, strictErr
}

// Create starts a container for spec and returns it ready for Exec.
func (b *Backend) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	cfg, hc, err := b.configs(spec)
	if err != nil {
		return nil, err
	}
	// The create is not cancelled with ctx: a daemon that has already made
	// the container when the client stops waiting would leave it behind
	// with no id to remove it by. It is short; ctx is checked right after.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	res, err := b.cli.ContainerCreate(cctx, client.ContainerCreateOptions{
		Config:     cfg,
		HostConfig: hc,
		Name:       "isol8-" + cfg.Hostname,
	})
	cancel()
	if err == nil && ctx.Err() != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = b.remove(rctx, res.ID)
		return nil, ctx.Err()
	}
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("create sandbox: image %q: %w (build or load it first)", spec.Image, sandbox.ErrImageNotFound)
		}
		return nil, fmt.Errorf("create sandbox from image %q: %w", spec.Image, err)
	}
	if _, err := b.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		// The caller's ctx may be what failed; clean up regardless.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = b.remove(cctx, res.ID)
		return nil, fmt.Errorf("start sandbox from image %q: %w", spec.Image, err)
	}
	return &Sandbox{b: b, id: res.ID}, nil
}

// configs turns a Spec into the container's configuration. The hardening
// here is not negotiable by the Spec: only sizes, image, network and the
// seccomp profile come from it.
func (b *Backend) configs(spec sandbox.Spec) (*container.Config, *container.HostConfig, error) {
	var network container.NetworkMode
	switch spec.Network {
	case sandbox.NetworkNone, "", sandbox.NetworkFiltered:
		// Filtered is "none" here: the engine reaches the sandbox's
		// loopback through ListenLoopback (netns.go).
		network = "none"
	case sandbox.NetworkHost:
		network = "host"
	default:
		return nil, nil, fmt.Errorf("network %q: unknown policy", spec.Network)
	}
	profile := string(spec.SeccompProfile)
	if profile == "" {
		var err error
		if profile, err = strictProfile(); err != nil {
			return nil, nil, fmt.Errorf("seccomp profile: %w", err)
		}
	}
	suffix, err := randomHex(6)
	if err != nil {
		return nil, nil, err
	}

	labels := make(map[string]string, len(spec.Labels)+3)
	maps.Copy(labels, spec.Labels)
	// Set last, so that a Spec cannot mislabel what it creates.
	labels[sandbox.LabelManaged] = "true"
	labels[sandbox.LabelOwner] = b.owner
	labels[sandbox.LabelCreated] = time.Now().UTC().Format(time.RFC3339Nano)

	// The init and the idle process run as root (with no capabilities,
	// no_new_privs and the seccomp filter, like everything here); every exec
	// runs as the sandbox user. So a kill(-1) by the sandbox user ends every
	// process a run left behind without ending the sandbox.
	cfg := &container.Config{
		Image:    spec.Image,
		Hostname: "sbx-" + suffix,
		User:     "0:0",
		// docker-init (HostConfig.Init) is pid 1 and reaps orphans; this
		// only keeps the container alive between execs.
		Entrypoint: []string{"sleep"},
		Cmd:        []string{"infinity"},
		WorkingDir: sandbox.SandboxDir,
		Labels:     labels,
	}
	if network == "host" {
		// The host's UTS namespace is shared in host mode; Docker refuses
		// a hostname there on some versions.
		cfg.Hostname = ""
	}

	shm := int64(maxShmSize)
	if spec.TmpSize > 0 && spec.TmpSize < shm {
		shm = spec.TmpSize
	}
	init := true
	hc := &container.HostConfig{
		NetworkMode:    network,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges", "seccomp=" + profile},
		ReadonlyRootfs: spec.ReadonlyRootFS,
		Init:           &init,
		IpcMode:        "private",
		ShmSize:        shm,
		LogConfig:      container.LogConfig{Type: "none"},
		// Both writable folders are tmpfs volumes rather than HostConfig.Tmpfs:
		// the archive API (WriteFiles, ReadFile) cannot see a HostConfig.Tmpfs
		// mount, and an anonymous volume goes away with the container.
		Mounts: []mount.Mount{
			tmpfsVolume(sandbox.SandboxDir, spec.SandboxSize,
				fmt.Sprintf("uid=%d,gid=%d,mode=0755", sandbox.UID, sandbox.GID), labels),
			tmpfsVolume(sandbox.TmpDir, spec.TmpSize, "mode=1777", labels),
		},
	}
	r := &hc.Resources
	if spec.MemoryBytes > 0 {
		// Equal memory and memory+swap: no swap beyond the limit.
		r.Memory, r.MemorySwap = spec.MemoryBytes, spec.MemoryBytes
	}
	if spec.CPUs > 0 {
		r.NanoCPUs = int64(spec.CPUs * 1e9)
	}
	if spec.Pids > 0 {
		r.PidsLimit = &spec.Pids
	}
	// No core files: they would fill /sandbox and leak memory contents.
	r.Ulimits = []*container.Ulimit{{Name: "core", Soft: 0, Hard: 0}}
	return cfg, hc, nil
}

// tmpfsVolume is an anonymous volume of the local driver backed by a
// nosuid,nodev tmpfs of the given size. NoCopy keeps the image's content
// out of it; having no Source makes ContainerRemove(RemoveVolumes) delete it.
func tmpfsVolume(target string, size int64, extra string, labels map[string]string) mount.Mount {
	o := "nosuid,nodev," + extra
	if size > 0 {
		o = "size=" + strconv.FormatInt(size, 10) + "," + o
	}
	return mount.Mount{
		Type:   mount.TypeVolume,
		Target: target,
		VolumeOptions: &mount.VolumeOptions{
			NoCopy: true,
			Labels: labels,
			DriverConfig: &mount.Driver{
				Name:    "local",
				Options: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": o},
			},
		},
	}
}

func randomHex(n int) (string, error) {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return hex.EncodeToString(buf), nil
}

// Sandbox is one container.
type Sandbox struct {
	b  *Backend
	id string

	oomOnce sync.Once
	oomPath string // the cgroup file with the OOM-kill counter, "" if unreadable

	// execd is set once the first exec starts: until then only the
	// sandbox's own init and idle process exist, so nothing can race the
	// archive API and freezing is skipped (a cold run's first WriteFiles).
	execd atomic.Bool
	// starting is held shared by each Exec until its process runs, and
	// exclusively while the sandbox is frozen (see freeze.go).
	starting sync.RWMutex
}

// ID is the container's id.
func (s *Sandbox) ID() string { return s.id }

// Destroy force-removes the container and its volumes. It is idempotent.
func (s *Sandbox) Destroy(ctx context.Context) error {
	return s.b.remove(ctx, s.id)
}

var _ sandbox.Sandbox = (*Sandbox)(nil)
