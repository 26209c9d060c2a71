//go:build linux

package nsinit

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"syscall"
)

// Paths under /proc and /sys that Docker hides (masked) or makes read-only,
// for the same reasons: they leak the host or let root in a user namespace
// poke the kernel. The sandbox user could not write most of them anyway;
// the masks are a second wall.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
	// devices bind-mounted from the host's /dev: harmless character
	// devices every runtime expects.
	devices  = []string{"null", "zero", "full", "random", "urandom", "tty"}
	devLinks = [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
		{"pts/ptmx", "ptmx"},
	}
)

const (
	tmpfsFlags = syscall.MS_NOSUID | syscall.MS_NODEV
	procFlags  = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC
)

// setupRoot builds the sandbox's file system in the init's private mount
// namespace and pivots into it. Nothing here is visible on the host: the
// mounts die with the namespace, so the host's mount table never changes.
func setupRoot(c *Config) error {
	// Nothing may propagate back to the host's mounts.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := c.Rootfs
	if err := mount(root, root, "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	if !c.Readonly {
		if err := overlayRoot(root, c.SandboxSize); err != nil {
			return err
		}
	}
	if err := mount("tmpfs", root+"/sandbox", "tmpfs", tmpfsFlags,
		fmt.Sprintf("size=%d,uid=%d,gid=%d,mode=0755", c.SandboxSize, c.UID, c.GID)); err != nil {
		return err
	}
	if err := mount("tmpfs", root+"/tmp", "tmpfs", tmpfsFlags,
		fmt.Sprintf("size=%d,mode=1777", c.TmpSize)); err != nil {
		return err
	}
	if err := setupDev(root, c.ShmSize); err != nil {
		return err
	}
	if err := mount("proc", root+"/proc", "proc", procFlags, ""); err != nil {
		return err
	}
	// sysfs needs a network namespace of our own; with the host's
	// network the sandbox simply gets an empty /sys.
	if c.NewNet {
		if err := mount("sysfs", root+"/sys", "sysfs", procFlags|syscall.MS_RDONLY, ""); err != nil {
			return err
		}
	}
	for _, p := range maskedPaths {
		if err := mask(root + p); err != nil {
			return err
		}
	}
	for _, p := range readonlyPaths {
		if err := readonly(root + p); err != nil {
			return err
		}
	}
	if c.Readonly {
		if err := remountReadonly(root, syscall.MS_NOSUID|syscall.MS_NODEV); err != nil {
			return err
		}
	}
	return pivot(root)
}

// overlayRoot stacks a writable overlay on the image, for a trusted config
// that asked for a writable root: the cached image is shared by every
// sandbox and must never change. The upper layer is a tmpfs of size bytes.
func overlayRoot(root string, size int64) error {
	// /tmp of the image is a convenient, always-present place for the
	// scratch tmpfs; the overlay hides it, and /tmp gets its own tmpfs later.
	scratch := root + "/tmp"
	if err := mount("tmpfs", scratch, "tmpfs", tmpfsFlags, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return err
	}
	for _, d := range []string{"/u", "/w"} {
		if err := os.Mkdir(scratch+d, 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/u,workdir=%s/w,userxattr", root, scratch, scratch)
	return mount("overlay", root, "overlay", tmpfsFlags, opts)
}

// setupDev gives the sandbox a small /dev of its own: a read-only tmpfs
// holding bind mounts of the harmless host devices, a private devpts and a
// size-limited /dev/shm.
func setupDev(root string, shmSize int64) error {
	dev := root + "/dev"
	if err := mount("tmpfs", dev, "tmpfs", syscall.MS_NOSUID|syscall.MS_NOEXEC, "size=64k,mode=0755"); err != nil {
		return err
	}
	for _, d := range devices {
		p := dev + "/" + d
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			return err
		}
		f.Close()
		if err := mount("/dev/"+d, p, "", syscall.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, l := range devLinks {
		if err := os.Symlink(l[0], dev+"/"+l[1]); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(dev+"/"+d, 0o755); err != nil {
			return err
		}
	}
	// gid 5 is Debian's tty group, as in every container runtime.
	if err := mount("devpts", dev+"/pts", "devpts", syscall.MS_NOSUID|syscall.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return err
	}
	if err := mount("tmpfs", dev+"/shm", "tmpfs", procFlags,
		"mode=1777,size="+strconv.FormatInt(shmSize, 10)); err != nil {
		return err
	}
	// The sandbox's own IPC namespace's message queues, as Docker mounts
	// them: without it they exist all the same (mq_open needs no mount)
	// but could not be listed, and so not be removed between jobs.
	if err := mount("mqueue", dev+"/mqueue", "mqueue", procFlags, ""); err != nil {
		return err
	}
	return remountReadonly(dev, syscall.MS_NOSUID|syscall.MS_NOEXEC)
}

// mask hides a path: /dev/null over a file, an empty read-only tmpfs over
// a folder. A path this kernel lacks needs no mask.
func mask(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return mount("tmpfs", p, "tmpfs", syscall.MS_RDONLY|procFlags, "size=0")
	}
	return mount("/dev/null", p, "", syscall.MS_BIND, "")
}

// readonly makes a path read-only by bind-mounting it on itself.
func readonly(p string) error {
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := mount(p, p, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return err
	}
	return remountReadonly(p, procFlags)
}

// remountReadonly makes the mount at p read-only with extra flags. A
// remount in a user namespace must repeat the flags the kernel locked on
// the original mount (atime, noexec, …), so they are carried over.
func remountReadonly(p string, extra uintptr) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", p, err)
	}
	flags := uintptr(syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY) | extra
	for _, f := range [][2]uintptr{
		{stNosuid, syscall.MS_NOSUID}, {stNodev, syscall.MS_NODEV},
		{stNoexec, syscall.MS_NOEXEC}, {stNoatime, syscall.MS_NOATIME},
		{stNodiratime, syscall.MS_NODIRATIME}, {stRelatime, syscall.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f[0] != 0 {
			flags |= f[1]
		}
	}
	return mount("", p, "", flags, "")
}

// pivot makes root the root of the mount namespace and detaches the old
// one, so the host's file system is no longer reachable at all.
func pivot(root string) error {
	if err := syscall.Chdir(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on the new one; unmounting
	// "." then removes it without needing a put_old folder in the image.
	if err := syscall.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	if err := syscall.Unmount(".", syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return syscall.Chdir("/")
}

func mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := syscall.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", src, dst, fstype, err)
	}
	return nil
}
