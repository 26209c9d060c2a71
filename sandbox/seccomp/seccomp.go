// Package seccomp is isol8's strict seccomp profile: Docker's default
// allowlist as it applies to a process without any capability, minus the
// system calls that sandboxed code never needs and that widen the kernel's
// attack surface (namespaces, io_uring, bpf, keyrings, ptrace, mounts,
// modules, kexec, file handles and a few more; see Refused).
//
// The docker backend passes JSON to the engine; a backend that installs
// its own filter compiles Profile (or checks against Refused) instead.
package seccomp

import (
	"encoding/json"
	"slices"

	moby "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Refused lists the system calls the strict profile never allows, on any
// architecture, whatever capabilities a container might be given. The
// profile's default action refuses them with EPERM, except clone3, which
// fails with ENOSYS so that libc falls back to clone, whose namespace
// flags the profile can inspect (see NamespaceFlags).
var Refused = []string{
	// Namespaces: new ones, or joining another's.
	"unshare", "setns", "clone3",
	// Kernel interfaces with a long record of local privilege escalation.
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"bpf", "perf_event_open", "userfaultfd",
	// Keyrings are not namespaced.
	"keyctl", "add_key", "request_key",
	// Inspecting or writing other processes.
	"ptrace", "process_vm_readv", "process_vm_writev",
	"process_madvise", "pidfd_getfd", "kcmp",
	// Mounts.
	"mount", "umount", "umount2", "mount_setattr", "pivot_root", "chroot",
	"fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree",
	// Modules, kexec, the machine itself.
	"init_module", "finit_module", "delete_module",
	"kexec_load", "kexec_file_load", "reboot",
	"swapon", "swapoff", "acct", "syslog", "lookup_dcookie",
	"quotactl", "quotactl_fd",
	// File handles bypass path-based confinement.
	"name_to_handle_at", "open_by_handle_at",
	// socketcall hides socket's arguments behind a pointer, so the address
	// family filter cannot see them (32-bit x86 only; those programs lose
	// sockets).
	"socketcall",
}

// NamespaceFlags are the clone flags that create namespaces. clone is
// allowed only when none of them is set.
const NamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// Profile returns the strict profile, a fresh copy on every call.
//
// It starts from Docker's default profile and then: drops every rule that
// only applies when the container holds a capability (a sandbox holds
// none, and a profile that stays strict whatever the caps is easier to
// reason about); makes rules that were lifted for CAP_SYS_ADMIN apply
// always (clone without namespace flags, clone3 returning ENOSYS); and
// removes every Refused name from every rule that allows something.
func Profile() *moby.Seccomp {
	p := moby.DefaultProfile()
	refused := make(map[string]bool, len(Refused))
	for _, n := range Refused {
		refused[n] = true
	}
	rules := p.Syscalls[:0]
	for _, r := range p.Syscalls {
		if r.Includes != nil && len(r.Includes.Caps) > 0 {
			continue
		}
		if r.Excludes != nil && len(r.Excludes.Caps) > 0 {
			r.Excludes.Caps = nil
			if len(r.Excludes.Arches) == 0 && r.Excludes.MinKernel == nil {
				r.Excludes = nil
			}
		}
		if permits(r.Action) {
			r.Names = slices.DeleteFunc(r.Names, func(n string) bool { return refused[n] })
			if r.Name != "" && refused[r.Name] {
				r.Name = ""
			}
			if len(r.Names) == 0 && r.Name == "" {
				continue
			}
		}
		rules = append(rules, r)
	}
	p.Syscalls = rules
	return p
}

// JSON returns Profile in Docker's seccomp profile format, as accepted by
// `docker run --security-opt seccomp=...` (Docker 20.10 and later).
func JSON() ([]byte, error) {
	return json.Marshal(Profile())
}

// permits reports whether a rule's action lets the call through: anything
// but an errno, a trap or a kill.
func permits(a specs.LinuxSeccompAction) bool {
	switch a {
	case specs.ActErrno, specs.ActTrap, specs.ActKill, specs.ActKillProcess, specs.ActKillThread:
		return false
	}
	return true
}
