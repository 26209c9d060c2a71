//go:build linux

package nsinit

import (
	"fmt"
	"runtime"
	"unsafe"

	"syscall"
)

// setupHost finishes the namespaces that are not file systems: hostname,
// loopback, and the process-wide defaults every sandbox process inherits.
func setupHost(c *Config) error {
	if err := syscall.Sethostname([]byte(c.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if c.NewNet {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bring lo up: %w", err)
		}
	}
	syscall.Umask(0o022)
	// A core dump would land in the sandbox's tmpfs (or be piped to a host
	// helper, depending on core_pattern): neither is wanted.
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		return fmt.Errorf("setrlimit core: %w", err)
	}
	return nil
}

// loopbackUp sets IFF_UP on lo, the only interface of a fresh network
// namespace, so that programs can talk to themselves on 127.0.0.1 and ::1.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr ifreqFlags
	copy(ifr.name[:], "lo")
	if err := ioctl(fd, syscall.SIOCGIFFLAGS, unsafe.Pointer(&ifr)); err != nil {
		return err
	}
	ifr.flags |= syscall.IFF_UP
	return ioctl(fd, syscall.SIOCSIFFLAGS, unsafe.Pointer(&ifr))
}

// Capabilities the spawner thread keeps: exactly what it needs to drop
// to the sandbox user in the child it forks. The child loses them with
// setuid, and gets nothing back at exec (empty bounding, inheritable and
// ambient sets, no_new_privs).
const spawnerCaps = 1<<capSetuid | 1<<capSetgid

// restrictThread turns the calling OS thread into the spawner: it joins
// the sandbox's job cgroups (cgroup v1 "tasks" files, this thread only),
// enters a cgroup namespace of its own, sets no_new_privs, drops every capability but spawnerCaps from all sets,
// and installs the seccomp filter. Everything it forks inherits all of
// that, while the init's other threads keep the power to manage them.
// The caller must have locked the goroutine to its thread for good.
func restrictThread(taskFDs []int, filter []byte) error {
	for _, fd := range taskFDs {
		_, err := syscall.Write(fd, []byte("0"))
		syscall.Close(fd)
		if err != nil {
			return fmt.Errorf("join job cgroup: %w", err)
		}
	}
	// A cgroup namespace rooted at the job's cgroup, for this thread and
	// what it forks: the sandbox sees its cgroup as "/".
	if _, _, e := syscall.RawSyscall(syscall.SYS_UNSHARE, cloneNewCgroup, 0, 0); e != 0 {
		return fmt.Errorf("unshare cgroup namespace: %w", e)
	}
	if err := prctl(prSetNoNewPrivs, 1); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	for c := uintptr(0); c <= 63; c++ {
		if err := prctl(syscall.PR_CAPBSET_DROP, c); err == syscall.EINVAL {
			break // past the kernel's last capability
		} else if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prCapAmbient, prCapAmbientClearAll, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("clear ambient capabilities: %w", e)
	}
	if err := capset(spawnerCaps, spawnerCaps); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return loadFilter(filter)
}

// loadFilter installs a BPF program on the calling thread only (no TSYNC).
func loadFilter(raw []byte) error {
	const insn = int(unsafe.Sizeof(syscall.SockFilter{}))
	if len(raw) == 0 || len(raw)%insn != 0 || len(raw)/insn > 0xffff {
		return fmt.Errorf("seccomp filter of %d bytes is malformed", len(raw))
	}
	if sysSeccomp < 0 {
		return fmt.Errorf("seccomp: system call number unknown on this architecture")
	}
	prog := make([]syscall.SockFilter, len(raw)/insn)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), len(raw)), raw)
	fprog := syscall.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := syscall.RawSyscall(uintptr(sysSeccomp), seccompSetModeFilter, 0, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("install seccomp filter: %w", errno)
	}
	return nil
}
