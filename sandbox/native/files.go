//go:build linux

package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/isol8/isol8/sandbox"
)

// confined is how every host-side path inside a sandbox is resolved:
// below the starting folder, through no symbolic link at all (user code
// may have planted any), no /proc magic link, and no other mount. The
// kernel enforces it on every component, atomically, so there is no
// check-then-use race with code running in the sandbox.
const confined = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS |
	unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// The sandbox user as the host sees it (through the id mapping).
var hostUID, hostGID = shiftID(sandbox.UID), shiftID(sandbox.GID)

// openDirs opens, once, the sandbox's root, /sandbox and /tmp from the
// host through the init's /proc/<pid>/root, and then checks through its
// pidfd that the pid still named the init.
func (s *Sandbox) openDirs() error {
	s.files.once.Do(func() {
		s.files.root, s.files.sbx, s.files.tm = -1, -1, -1
		root, err := unix.Open("/proc/"+strconv.Itoa(s.pid)+"/root",
			unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			s.files.err = fmt.Errorf("open sandbox root: %w", err)
			return
		}
		s.files.root = root
		if !s.alive() {
			s.files.err = errGone
			return
		}
		// Not RESOLVE_NO_XDEV here: these two are mounts of their own.
		how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		if s.files.sbx, err = unix.Openat2(root, "sandbox", how); err != nil {
			s.files.err = fmt.Errorf("open /sandbox: %w", err)
			return
		}
		if s.files.tm, err = unix.Openat2(root, "tmp", how); err != nil {
			s.files.err = fmt.Errorf("open /tmp: %w", err)
		}
	})
	return s.files.err
}

func (s *Sandbox) closeFiles() {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	never := false
	s.files.once.Do(func() { never = true })
	if !never {
		for _, fd := range []*int{&s.files.root, &s.files.sbx, &s.files.tm} {
			if *fd >= 0 {
				unix.Close(*fd)
			}
			*fd = -1
		}
	}
	s.files.err = errGone
}

// base returns the folder fd a path starts from and the rest of the path.
// anywhere allows paths of the image itself (ReadFile); otherwise only
// /sandbox and /tmp (WriteFiles).
func (s *Sandbox) base(p string, anywhere bool) (int, string, error) {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		return -1, "", fmt.Errorf("path %q: must be absolute and clean", p)
	}
	if err := s.openDirs(); err != nil {
		return -1, "", err
	}
	for _, m := range []struct {
		dir string
		fd  int
	}{{sandbox.SandboxDir, s.files.sbx}, {sandbox.TmpDir, s.files.tm}} {
		if p == m.dir {
			return m.fd, ".", nil
		}
		if rest, ok := strings.CutPrefix(p, m.dir+"/"); ok {
			return m.fd, rest, nil
		}
	}
	if !anywhere {
		return -1, "", fmt.Errorf("path %q: outside %s and %s", p, sandbox.SandboxDir, sandbox.TmpDir)
	}
	if p == "/" {
		return s.files.root, ".", nil
	}
	return s.files.root, p[1:], nil
}

// WriteFiles writes each file from the host side, creating missing
// folders, all owned by the sandbox user. Every path is resolved with
// openat2 confined to /sandbox or /tmp: a symbolic link anywhere in it,
// planted by user code, makes the write fail rather than be followed. An
// existing FIFO, socket or folder is refused without blocking.
func (s *Sandbox) WriteFiles(ctx context.Context, files []sandbox.File) error {
	s.filesMu.RLock()
	defer s.filesMu.RUnlock()
	if s.dead.Load() {
		return errGone
	}
	if err := s.openDirs(); err != nil {
		return err
	}
	return asSandboxUser(func() error {
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := s.writeFile(f); err != nil {
				return fmt.Errorf("write %s: %w", f.Path, err)
			}
		}
		return nil
	})
}

// asSandboxUser runs fn on a fresh OS thread whose file-system ids are the
// sandbox user's: files are created as that user, and every permission
// check is the one user code would face (the host's root privileges are
// not used). The tmpfs mounts belong to the sandbox's user namespace, in
// which the host's root does not even exist. The thread is never handed
// back to the Go scheduler: it ends with the goroutine.
func asSandboxUser(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, see above
		if _, _, e := unix.RawSyscall(unix.SYS_SETFSGID, uintptr(hostGID), 0, 0); e != 0 {
			done <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETFSUID, uintptr(hostUID), 0, 0); e != 0 {
			done <- e
			return
		}
		done <- fn()
	}()
	return <-done
}

func (s *Sandbox) writeFile(f sandbox.File) error {
	dirfd, rel, err := s.base(f.Path, false)
	if err != nil {
		return err
	}
	if rel == "." {
		return errors.New("is a folder")
	}
	parts := strings.Split(rel, "/")
	parent := dirfd
	for _, name := range parts[:len(parts)-1] {
		fd, err := openDir(parent, name)
		if parent != dirfd {
			unix.Close(parent)
		}
		if err != nil {
			return err
		}
		parent = fd
	}
	if parent != dirfd {
		defer unix.Close(parent)
	}
	mode := uint32(f.Mode) & 0o777
	if mode == 0 {
		mode = 0o644
	}
	fd, err := unix.Openat2(parent, parts[len(parts)-1], &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC,
		Mode:    0o600,
		Resolve: confined,
	})
	if err != nil {
		return pathError(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return sandbox.ErrNotRegular
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	for data := f.Data; len(data) > 0; {
		n, err := unix.Write(fd, data)
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// openDir opens (making it if missing) one folder below parent.
func openDir(parent int, name string) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW, Resolve: confined}
	fd, err := unix.Openat2(parent, name, how)
	if err == unix.ENOENT {
		// 0755 less the engine's umask, at worst 0700: the owner is all
		// that matters.
		if err := unix.Mkdirat(parent, name, 0o755); err != nil && err != unix.EEXIST {
			return -1, err
		}
		fd, err = unix.Openat2(parent, name, how)
	}
	if err != nil {
		return -1, pathError(err)
	}
	return fd, nil
}

// pathError names what a refused resolution means.
func pathError(err error) error {
	switch err {
	case unix.ELOOP:
		return fmt.Errorf("%w: a symbolic link is in the way", sandbox.ErrNotRegular)
	case unix.EXDEV:
		return fmt.Errorf("%w: the path leaves its mount", sandbox.ErrNotRegular)
	case unix.ENOTDIR:
		return fmt.Errorf("%w: a path component is not a folder", sandbox.ErrNotRegular)
	case unix.ENXIO, unix.EISDIR:
		return sandbox.ErrNotRegular
	case unix.ENOENT:
		return sandbox.ErrNotFound
	}
	return err
}

// ReadFile reads a regular file of at most max bytes, resolved like
// WriteFiles (a path outside /sandbox and /tmp is read from the image,
// never crossing into /proc or /dev). A link, FIFO, device or folder is
// ErrNotRegular; opening never blocks (O_NONBLOCK), and at most max+1
// bytes are read, whatever the file claims or grows to.
func (s *Sandbox) ReadFile(ctx context.Context, p string, max int64) ([]byte, error) {
	s.filesMu.RLock()
	defer s.filesMu.RUnlock()
	if s.dead.Load() {
		return nil, errGone
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.openDirs(); err != nil {
		return nil, err
	}
	var data []byte
	err := asSandboxUser(func() error {
		var err error
		data, err = s.readFile(p, max)
		return err
	})
	return data, err
}

func (s *Sandbox) readFile(p string, max int64) ([]byte, error) {
	dirfd, rel, err := s.base(p, true)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: confined,
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, pathError(err))
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: %w", p, sandbox.ErrNotRegular)
	}
	if max < 0 || st.Size() > max {
		return nil, fmt.Errorf("read %s: %d bytes, over %d: %w", p, st.Size(), max, sandbox.ErrTooLarge)
	}
	// The file may grow while it is read: never read more than max+1.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("read %s: grew over %d bytes: %w", p, max, sandbox.ErrTooLarge)
	}
	return data, nil
}
