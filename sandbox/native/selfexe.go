//go:build linux

package native

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// selfExe is a sealed, in-memory copy of this binary that every sandbox
// init is executed from. Executing /proc/self/exe directly would let a
// process that reaches the init's /proc/<pid>/exe write to the engine's
// binary on disk (CVE-2019-5736, runc); a memfd sealed against writes,
// growth and shrinking cannot be changed by anyone, and the file on disk
// is never executed again after start-up.
var selfExe struct {
	once sync.Once
	path string // /proc/self/fd/N, valid in this process and its children
	err  error
}

// highFD keeps the copy above the descriptors that exec.Cmd renumbers in
// the child (stdio and ExtraFiles), which would otherwise overwrite it.
const highFD = 100

func sealedSelf() (string, error) {
	selfExe.once.Do(func() {
		selfExe.path, selfExe.err = copySelf()
	})
	return selfExe.path, selfExe.err
}

func copySelf() (string, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", fmt.Errorf("open own binary: %w", err)
	}
	defer src.Close()
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("isol8-init", flags|unix.MFD_EXEC)
	if err == unix.EINVAL { // kernels before 6.3 lack MFD_EXEC and allow exec anyway
		fd, err = unix.MemfdCreate("isol8-init", flags)
	}
	if err != nil {
		return "", fmt.Errorf("memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "isol8-init")
	defer mem.Close()
	if _, err := io.Copy(mem, src); err != nil {
		return "", fmt.Errorf("copy own binary: %w", err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return "", fmt.Errorf("seal copy of own binary: %w", err)
	}
	high, err := unix.FcntlInt(mem.Fd(), unix.F_DUPFD_CLOEXEC, highFD)
	if err != nil {
		return "", fmt.Errorf("dup sealed binary: %w", err)
	}
	return fmt.Sprintf("/proc/self/fd/%d", high), nil
}
