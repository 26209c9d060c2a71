// Package native is the sandbox backend that needs no daemon: each
// sandbox is a process tree in fresh Linux namespaces (user, pid, mount,
// network, ipc, uts, cgroup) on a read-only image, in a cgroup of its
// own, with every capability dropped, no_new_privs and a seccomp filter
// compiled from isol8's strict profile. It registers itself as "native"
// with the sandbox package; docs/native.md explains each protection.
//
// The backend re-executes its own binary, from a sealed in-memory copy,
// as each sandbox's init (see the internal nsinit package), so any
// program that imports this package, test binaries included, can run
// sandboxes. It needs root on Linux with cgroup v1 or v2.
//
//	b, err := sandbox.Open(ctx, "native", sandbox.Config{Owner: "me"})
//	sb, err := b.Create(ctx, sandbox.Spec{Image: "isol8:python", ...})
//	st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"python3", "-c", "print(1)"}, Stdout: os.Stdout})
//	err = sb.Destroy(ctx)
package native
