package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/isol8/isol8/sandbox"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// writableRoots are the folders WriteFiles may write into: the two tmpfs
// volumes, the only places the archive API can write on a read-only root.
var writableRoots = []string{sandbox.SandboxDir, sandbox.TmpDir}

// WriteFiles writes files through the archive API: one tar per writable
// root, built here with every parent folder as its own entry (owned by the
// sandbox user) and extracted by the daemon confined to the container's
// root. A folder entry never replaces a symbolic link user code planted
// (the daemon refuses to overwrite a non-folder with a folder), and the
// file itself replaces a link rather than writing through it.
func (s *Sandbox) WriteFiles(ctx context.Context, files []sandbox.File) error {
	groups := map[string][]sandbox.File{}
	for _, f := range files {
		root, err := rootOf(f.Path)
		if err != nil {
			return err
		}
		groups[root] = append(groups[root], f)
	}
	return s.frozen(ctx, func() error {
		for _, root := range writableRoots {
			if fs := groups[root]; len(fs) > 0 {
				if err := s.copyTo(ctx, root, fs); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// rootOf returns the writable root p lies strictly inside.
func rootOf(p string) (string, error) {
	if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("write %q: path must be absolute and clean", p)
	}
	for _, r := range writableRoots {
		if strings.HasPrefix(p, r+"/") {
			return r, nil
		}
	}
	return "", fmt.Errorf("write %q: path is outside %s", p, strings.Join(writableRoots, " and "))
}

func (s *Sandbox) copyTo(ctx context.Context, root string, files []sandbox.File) error {
	pr, pw := io.Pipe()
	// Stream the tar: files may be large, and the daemon reads as we write.
	go func() { pw.CloseWithError(writeTar(pw, root, files)) }()
	_, err := s.b.cli.CopyToContainer(ctx, s.id, client.CopyToContainerOptions{
		DestinationPath: root,
		Content:         pr,
	})
	pr.CloseWithError(errors.New("copy finished")) // unblocks the writer on early failure
	if err != nil {
		if errGone(err) {
			return fmt.Errorf("write files: sandbox %s no longer exists", s.id)
		}
		return fmt.Errorf("write files into %s: %w", root, err)
	}
	return nil
}

// writeTar writes files (all inside root) as a tar relative to root.
func writeTar(w io.Writer, root string, files []sandbox.File) error {
	now := time.Now()
	isFile := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range files {
		rel := strings.TrimPrefix(f.Path, root+"/")
		isFile[rel] = true
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		if isFile[d] {
			return fmt.Errorf("write %s/%s: path is both a file and a folder", root, d)
		}
		sorted = append(sorted, d)
	}
	slices.Sort(sorted) // parents sort before their children
	tw := tar.NewWriter(w)
	for _, d := range sorted {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755,
			Uid: sandbox.UID, Gid: sandbox.GID, ModTime: now,
		}); err != nil {
			return err
		}
	}
	for _, f := range files {
		mode := f.Mode & 0o777 // no setuid, setgid or sticky bits
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, root+"/"), Mode: mode,
			Size: int64(len(f.Data)), Uid: sandbox.UID, Gid: sandbox.GID, ModTime: now,
		}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// ReadFile reads a regular file of at most max bytes. Every component of
// the path is stat'ed first without following links (the daemon resolves
// the parent folders of a path through links, so a symlinked folder is
// only visible by checking each one), then the archive's own header is
// checked again before reading at most max bytes of it.
func (s *Sandbox) ReadFile(ctx context.Context, p string, max int64) ([]byte, error) {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.ContainsRune(p, 0) {
		return nil, fmt.Errorf("read %q: path must be absolute and clean", p)
	}
	var data []byte
	err := s.frozen(ctx, func() (err error) {
		data, err = s.readFile(ctx, p, max)
		return err
	})
	return data, err
}

// readFile is ReadFile with the sandbox frozen.
func (s *Sandbox) readFile(ctx context.Context, p string, max int64) ([]byte, error) {
	st, err := s.stat(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(p, st, max); err != nil {
		return nil, err
	}
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		st, err := s.stat(ctx, d)
		if err != nil {
			return nil, err
		}
		if st.Mode&os.ModeSymlink != 0 || st.LinkTarget != "" || !st.Mode.IsDir() {
			return nil, fmt.Errorf("read %s: %s is a link or not a folder: %w", p, d, sandbox.ErrNotRegular)
		}
	}

	res, err := s.b.cli.CopyFromContainer(ctx, s.id, client.CopyFromContainerOptions{SourcePath: p})
	if err != nil {
		return nil, s.statErr(p, err)
	}
	defer res.Content.Close() // closing early never drains a large archive
	if err := checkRegular(p, res.Stat, max); err != nil {
		return nil, err
	}
	tr := tar.NewReader(res.Content)
	hdr, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("read %s: archive: %w", p, err)
	}
	if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA { //nolint:staticcheck // old daemons may write TypeRegA
		return nil, fmt.Errorf("read %s: %w", p, sandbox.ErrNotRegular)
	}
	if hdr.Size > max {
		return nil, fmt.Errorf("read %s: %d bytes, limit %d: %w", p, hdr.Size, max, sandbox.ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

func (s *Sandbox) stat(ctx context.Context, p string) (container.PathStat, error) {
	res, err := s.b.cli.ContainerStatPath(ctx, s.id, client.ContainerStatPathOptions{Path: p})
	if err != nil {
		return container.PathStat{}, s.statErr(p, err)
	}
	return res.Stat, nil
}

func (s *Sandbox) statErr(p string, err error) error {
	switch {
	case errGone(err):
		return fmt.Errorf("read %s: sandbox %s no longer exists", p, s.id)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("read %s: %w", p, sandbox.ErrNotFound)
	}
	return fmt.Errorf("read %s: %w", p, err)
}

// checkRegular refuses links, anything but a regular file, and files
// larger than max.
func checkRegular(p string, st container.PathStat, max int64) error {
	if st.Mode&os.ModeSymlink != 0 || st.LinkTarget != "" {
		return fmt.Errorf("read %s: symbolic link: %w", p, sandbox.ErrNotRegular)
	}
	if !st.Mode.IsRegular() {
		return fmt.Errorf("read %s: %s: %w", p, kind(st.Mode), sandbox.ErrNotRegular)
	}
	if st.Size > max {
		return fmt.Errorf("read %s: %d bytes, limit %d: %w", p, st.Size, max, sandbox.ErrTooLarge)
	}
	return nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "folder"
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeDevice != 0, m&os.ModeCharDevice != 0:
		return "device"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "not a regular file"
}
