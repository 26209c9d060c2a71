//go:build linux

package native

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/sandbox/native/internal/nsinit"
)

// maxShmSize caps /dev/shm, as the docker backend does.
const maxShmSize = 64 << 20

// startTimeout bounds the init's start when ctx has no deadline.
const startTimeout = 30 * time.Second

// Create starts a sandbox: an init in fresh namespaces (see start), which
// builds the file system while the state record and the cgroup are made,
// then joins the cgroup, restricts what it will fork, and reports ready.
func (b *Backend) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("native backend is closed")
	}
	var newNet bool
	switch spec.Network {
	case sandbox.NetworkNone, "", sandbox.NetworkFiltered:
		// Filtered is none plus the engine's proxy, served on a listener
		// in the sandbox's loopback (ListenLoopback).
		newNet = true
	case sandbox.NetworkHost:
	default:
		return nil, fmt.Errorf("network %q: unknown policy", spec.Network)
	}
	// From the resolution until the record names the tree (saved in
	// start), the cache's lock keeps RemoveRootfs from taking it.
	b.cacheLock.shared()
	defer b.cacheLock.unlock()
	img, err := b.images.resolve(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	filter, err := filterFor(spec.SeccompProfile)
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	labels := make(map[string]string, len(spec.Labels)+3)
	maps.Copy(labels, spec.Labels)
	// Set last, so that a Spec cannot mislabel what it creates.
	labels[sandbox.LabelManaged] = "true"
	labels[sandbox.LabelOwner] = b.owner
	now := time.Now().UTC()
	labels[sandbox.LabelCreated] = now.Format(time.RFC3339Nano)

	shm := int64(maxShmSize)
	if spec.TmpSize > 0 && spec.TmpSize < shm {
		shm = spec.TmpSize
	}
	cfg := &nsinit.Config{
		Rootfs:      img.rootfs,
		Readonly:    spec.ReadonlyRootFS,
		SandboxSize: spec.SandboxSize,
		TmpSize:     spec.TmpSize,
		ShmSize:     shm,
		Hostname:    "sbx-" + id[:12],
		NewNet:      newNet,
		Seccomp:     filter,
		UID:         sandbox.UID,
		GID:         sandbox.GID,
	}
	s := &Sandbox{b: b, id: id, newNet: newNet, waiters: map[uint64]chan nsinit.Reply{},
		env: append(slices.Clone(img.env), "HOSTNAME="+cfg.Hostname)}
	rec := &record{ID: id, Labels: labels, Created: now, Cgroups: b.cg.paths(id), Rootfs: img.rootfs}
	l := limits{memory: spec.MemoryBytes, cpus: spec.CPUs, pids: spec.Pids}
	if err := s.start(ctx, cfg, rec, l); err != nil {
		_ = s.teardown()
		return nil, fmt.Errorf("create sandbox from image %q: %w", spec.Image, err)
	}
	b.mu.Lock()
	b.live[id] = s
	b.mu.Unlock()
	return s, nil
}

func newID() (string, error) {
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf), nil
}

// start gets an init in new user, mount, pid, ipc and uts namespaces (and
// network, unless host) from the nursery and sends it cfg. While the init
// builds the file system, it saves the state record and makes the cgroup,
// then sends the cgroup's files, and waits for the init to report ready.
func (s *Sandbox) start(ctx context.Context, cfg *nsinit.Config, rec *record, l limits) error {
	flags := sandboxCloneFlags(cfg.NewNet)
	n, err := getNursery()
	if err != nil {
		return fmt.Errorf("%v: %w", err, sandbox.ErrUnavailable)
	}
	ctl, errR, err := n.spawn(&nsinit.SpawnRequest{Cloneflags: flags, HostID: hostIDBase, IDs: idRange}, s)
	if err != nil {
		return fmt.Errorf("%v: %w", err, sandbox.ErrUnavailable)
	}
	s.stderr = &tail{done: make(chan struct{})}
	go s.stderr.drain(errR)
	conn, err := net.FileConn(ctl)
	ctl.Close()
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	s.conn = conn.(*net.UnixConn)
	// Which fds the join carries is known before the cgroup exists.
	cfg.TaskFDs, cfg.ProcsFD = s.b.cg.initFDs()
	if _, _, err := s.conn.WriteMsgUnix(nsinit.Marshal(cfg), nil, nil); err != nil {
		return fmt.Errorf("send config to init: %w", err)
	}

	// Saved before the cgroup exists: from here on a crash leaves a
	// record that List finds and Remove cleans. (Before, a crash leaves
	// only the init, which exits when its control socket closes.)
	if err := s.b.records.save(rec); err != nil {
		return err
	}
	s.rec = rec
	if s.job, err = s.b.cg.create(s.id, l); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	tasks, procs, err := s.job.initFiles()
	if err != nil {
		return err
	}
	var fds []int
	for _, f := range tasks {
		fds = append(fds, int(f.Fd()))
	}
	if procs != nil {
		fds = append(fds, int(procs.Fd()))
	}
	// A failed send is reported after the init's own reply, which says
	// why it stopped listening (a mount that failed, say).
	sendErr := s.send(&nsinit.Request{Op: nsinit.OpJoin}, unix.UnixRights(fds...))
	for _, f := range tasks {
		f.Close()
	}
	if procs != nil {
		procs.Close()
	}

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(startTimeout)
	}
	_ = s.conn.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Now()) })
	reply, err := s.readReply(make([]byte, maxReply))
	stop()
	_ = s.conn.SetReadDeadline(time.Time{})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil && sendErr != nil:
		return fmt.Errorf("send cgroup to init: %v%s", sendErr, s.stderr.explain())
	case err != nil:
		return fmt.Errorf("init: %v%s", err, s.stderr.explain())
	case reply.Op == nsinit.OpFailed:
		return fmt.Errorf("init: %s", reply.Err)
	case reply.Op != nsinit.OpReady || sendErr != nil:
		return fmt.Errorf("init: unexpected %q (%v)", reply.Op, sendErr)
	}
	s.done = make(chan struct{})
	go s.readLoop()
	return nil
}

// sandboxCloneFlags are the namespaces a sandbox's init is born in. The
// cgroup namespace comes later, from the spawner thread, once it is in
// the sandbox's cgroup.
func sandboxCloneFlags(newNet bool) uintptr {
	flags := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
		unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	if newNet {
		flags |= unix.CLONE_NEWNET
	}
	return flags
}

// tail keeps the end of the init's stderr, to explain a failed start.
type tail struct {
	buf  [2048]byte
	n    int
	done chan struct{}
}

func (t *tail) drain(r *os.File) {
	defer close(t.done)
	defer r.Close()
	var chunk [512]byte
	for {
		n, err := r.Read(chunk[:])
		if n > 0 {
			// Keep the last bytes only.
			all := append(t.buf[:t.n:t.n], chunk[:n]...)
			if len(all) > len(t.buf) {
				all = all[len(all)-len(t.buf):]
			}
			t.n = copy(t.buf[:], all)
		}
		if err != nil {
			return
		}
	}
}

// explain waits briefly for the init's stderr to end and returns it.
func (t *tail) explain() string {
	select {
	case <-t.done:
	case <-time.After(time.Second):
		return ""
	}
	if t.n == 0 {
		return ""
	}
	return ": " + string(t.buf[:t.n])
}
