//go:build linux

package native

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	isol8image "github.com/isol8/isol8/image"
	"github.com/isol8/isol8/sandbox"
)

// exportImage unpacks an image into rootfs through a container that is
// created (never started), exported and removed. Files are owned by the
// image's uids shifted into the sandboxes' id range, so that inside a
// sandbox they belong to the users the image says.
func exportImage(ctx context.Context, cli *client.Client, imageID, rootfs string) (err error) {
	cr, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:      imageID,
			Entrypoint: []string{"/nonexistent"},
			Labels:     map[string]string{sandbox.LabelManaged: "true"},
		},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return fmt.Errorf("create container to export: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = cli.ContainerRemove(rctx, cr.ID, client.ContainerRemoveOptions{Force: true})
	}()
	rc, err := cli.ContainerExport(ctx, cr.ID, client.ContainerExportOptions{})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer rc.Close()

	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	tmp := rootfs + ".tmp-" + hex.EncodeToString(suffix)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := untar(rc, tmp); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	if err := os.Rename(tmp, rootfs); err != nil {
		// Another engine sharing the cache may have won the race.
		if _, serr := os.Stat(rootfs); serr == nil {
			_ = os.RemoveAll(tmp)
			return nil
		}
		return err
	}
	return nil
}

// shiftID maps an id of the image to the host id the sandboxes see as it.
func shiftID(id int) int {
	if id < 0 || id >= idRange {
		id = idRange - 2 // nobody
	}
	return hostIDBase + id
}

// untar unpacks a container export into dir through an os.Root, which
// keeps every path (and link) inside dir. Devices and FIFOs are skipped:
// sandboxes get their own /dev. Modification times are kept, or Python
// would find its bytecode stale and recompile on every start.
func untar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	type dirTime struct {
		name  string
		mtime time.Time
	}
	var dirs []dirTime
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if name == "" {
			name = "."
		}
		mode := hdr.FileInfo().Mode()
		uid, gid := shiftID(hdr.Uid), shiftID(hdr.Gid)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name != "." {
				if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if err == nil {
				err = f.Chown(uid, gid)
			}
			if err == nil {
				err = f.Chmod(mode) // after chown, which clears set-id bits
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return err
			}
			continue
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return err
			}
			if err := root.Lchown(name, uid, gid); err != nil {
				return err
			}
			continue
		case tar.TypeLink:
			target := strings.TrimPrefix(path.Clean("/"+hdr.Linkname), "/")
			if err := root.Link(target, name); err != nil {
				return err
			}
			continue
		default:
			continue
		}
		if err := root.Lchown(name, uid, gid); err != nil {
			return err
		}
		if err := root.Chmod(name, mode); err != nil {
			return err
		}
	}
	// The folders every sandbox mounts on, whatever the image has.
	for _, sub := range []string{"sandbox", "tmp", "proc", "dev", "sys"} {
		if err := root.Mkdir(sub, 0o755); err == nil {
			_ = root.Lchown(sub, shiftID(0), shiftID(0))
		} else if !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	// Folder times last: writing inside a folder changes its mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = root.Chtimes(dirs[i].name, dirs[i].mtime, dirs[i].mtime)
	}
	// The cache folder must be searchable by the sandboxes' mapped root.
	return root.Chmod(".", 0o755)
}

// EnsureRootfs makes sure the native backend opened with stateDir (as
// sandbox.Config.StateDir; "" is the default) has the root filesystem of
// runtime built from Debian packages (image.PlanRootfs and BuildRootfs),
// for a host with no Docker engine, and makes it the one isol8:<runtime>
// resolves to when Docker does not answer. It returns the folder and
// whether it had to be built; a tree of the same recipe is reused.
func EnsureRootfs(ctx context.Context, stateDir, runtime string, opts isol8image.Options) (dir string, built bool, err error) {
	cache := filepath.Join(stateFolder(stateDir), "rootfs")
	if err := os.MkdirAll(cache, 0o711); err != nil {
		return "", false, fmt.Errorf("native state folder: %w", err)
	}
	// The sandboxes' mapped root must reach the trees.
	for p := cache; p != "/"; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(p, st.Mode().Perm()|0o001)
		}
	}
	return ensureRootfs(ctx, cache, runtime, opts)
}

// ensureRootfs is EnsureRootfs with the cache folder.
func ensureRootfs(ctx context.Context, cache, runtime string, opts isol8image.Options) (string, bool, error) {
	plan, err := isol8image.PlanRootfs(runtime, opts)
	if err != nil {
		return "", false, err
	}
	rootfs := filepath.Join(cache, plan.Key())
	built := false
	if _, err := os.Stat(rootfs); err != nil {
		suffix := make([]byte, 6)
		_, _ = rand.Read(suffix)
		tmp := rootfs + ".tmp-" + hex.EncodeToString(suffix)
		if err := isol8image.BuildRootfs(ctx, plan, tmp, opts); err != nil {
			return "", false, err
		}
		if err := adoptRootfs(tmp, rootfs); err != nil {
			_ = os.RemoveAll(tmp)
			return "", false, err
		}
		built = true
	}
	// debian-<runtime> points at the tree isol8:<runtime> resolves to.
	link := filepath.Join(cache, "debian-"+runtime)
	tmpLink := link + ".tmp-link"
	_ = os.Remove(tmpLink)
	if err := os.Symlink(plan.Key(), tmpLink); err != nil {
		return "", built, err
	}
	if err := os.Rename(tmpLink, link); err != nil {
		return "", built, err
	}
	return rootfs, built, nil
}

// adoptRootfs shifts the owners of a freshly built tree into the
// sandboxes' id range (as untar does for an export), adds the folders
// every sandbox mounts on, and moves it to rootfs.
func adoptRootfs(tmp, rootfs string) error {
	seen := map[uint64]bool{} // hard-linked inodes already shifted
	err := filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner", p)
		}
		if !info.IsDir() && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		if err := os.Lchown(p, shiftID(int(st.Uid)), shiftID(int(st.Gid))); err != nil {
			return err
		}
		// chown clears set-id bits: put them back.
		if mode := info.Mode(); mode&os.ModeSymlink == 0 && mode&(os.ModeSetuid|os.ModeSetgid) != 0 {
			return os.Chmod(p, mode.Perm()|mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("shift owners: %w", err)
	}
	for _, sub := range []string{"sandbox", "tmp", "proc", "dev", "sys"} {
		p := filepath.Join(tmp, sub)
		if err := os.Mkdir(p, 0o755); err == nil {
			_ = os.Lchown(p, shiftID(0), shiftID(0))
		} else if !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, rootfs); err != nil {
		if _, serr := os.Stat(rootfs); serr == nil {
			_ = os.RemoveAll(tmp)
			return nil
		}
		return err
	}
	return nil
}
