//go:build linux

package nsinit

import (
	"syscall"
	"unsafe"
)

// Constants and calls the syscall package lacks. They are spelled out here
// rather than taken from golang.org/x/sys/unix because importing that
// package would delay this one's init (see the package doc): it sorts
// after most third-party packages.
const (
	prSetNoNewPrivs      = 38
	prCapAmbient         = 47
	prCapAmbientClearAll = 4
	capV3                = 0x20080522
	capSetgid            = 6
	capSetuid            = 7
	seccompSetModeFilter = 1
	sysPidfdSendSignal   = 424 // the same on every architecture
	cloneNewCgroup       = 0x02000000

	stNosuid     = 0x2
	stNodev      = 0x4
	stNoexec     = 0x8
	stNoatime    = 0x400
	stNodiratime = 0x800
	stRelatime   = 0x1000
)

func prctl(op, arg uintptr) error {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, op, arg, 0, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

type capHeader struct {
	version uint32
	pid     int32
}

type capData struct {
	effective, permitted, inheritable uint32
}

// capset sets the calling thread's capabilities (the low 32 are enough:
// spawnerCaps holds only CAP_SETUID and CAP_SETGID).
func capset(effective, permitted uint32) error {
	hdr := capHeader{version: capV3}
	data := [2]capData{{effective: effective, permitted: permitted}}
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return e
	}
	return nil
}

// ifreqFlags is struct ifreq with the flags member of its union.
type ifreqFlags struct {
	name  [16]byte
	flags uint16
	_     [22]byte
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// setName sets the calling thread's name (comm), which threads started
// later inherit.
func setName(name string) {
	b := append([]byte(name), 0)
	_, _, _ = syscall.RawSyscall6(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0, 0)
}
