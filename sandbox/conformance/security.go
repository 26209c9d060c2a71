package conformance

import (
	"strings"
	"testing"

	"github.com/isol8/isol8/sandbox"
)

func testIdentity(t *testing.T, sb sandbox.Sandbox) {
	out := py(t, sb, `import os
print("uid", *sorted(set(os.getresuid())))
print("gid", *sorted(set(os.getresgid())))
print("groups", *os.getgroups())
for line in open("/proc/self/status"):
    k, v = line.split(":", 1)
    print(k, v.strip())
for p in ("/var/run/docker.sock", "/run/docker.sock"):
    print("exists:" + p, os.path.exists(p))`)
	got := fields(out)
	want := map[string]string{
		"uid":                         "1000",
		"gid":                         "1000",
		"CapInh":                      "0000000000000000",
		"CapPrm":                      "0000000000000000",
		"CapEff":                      "0000000000000000",
		"CapBnd":                      "0000000000000000",
		"CapAmb":                      "0000000000000000",
		"NoNewPrivs":                  "1",
		"Seccomp":                     "2",
		"exists:/var/run/docker.sock": "False",
		"exists:/run/docker.sock":     "False",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if g := got["groups"]; g != "" && g != "1000" {
		t.Errorf("supplementary groups %q", g)
	}
}

// syscallProbe tries every call the sandbox must refuse (x86-64 numbers)
// and prints "name errno". A call that succeeds prints errno 0.
const syscallProbe = `import ctypes, errno, os, platform, socket
if platform.machine() != "x86_64":
    print("arch", platform.machine()); raise SystemExit(0)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def probe(name, nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if r == 0 and name.startswith("clone"):
        os._exit(0)  # a child of a clone that should have failed
    print(name, 0 if r >= 0 else ctypes.get_errno())
buf = ctypes.create_string_buffer(256)
a = ctypes.addressof(buf)
SIGCHLD = 17
probe("unshare-user", 272, 0x10000000)
probe("unshare-mnt", 272, 0x00020000)
probe("unshare-net", 272, 0x40000000)
probe("setns", 308, 0, 0)
probe("clone-newuser", 56, 0x10000000 | SIGCHLD, 0, 0, 0, 0)
probe("clone-newns", 56, 0x00020000 | SIGCHLD, 0, 0, 0, 0)
probe("clone-newpid", 56, 0x20000000 | SIGCHLD, 0, 0, 0, 0)
probe("clone-newnet", 56, 0x40000000 | SIGCHLD, 0, 0, 0, 0)
probe("clone3", 435, a, 88)
probe("mount", 165, a, a, a, 0, 0)
probe("umount2", 166, a, 0)
probe("pivot_root", 155, a, a)
probe("chroot", 161, a)
probe("fsopen", 430, a, 0)
probe("fsmount", 432, 0, 0, 0)
probe("fsconfig", 431, 0, 0, 0, 0, 0)
probe("fspick", 433, 0, a, 0)
probe("move_mount", 429, 0, a, 0, a, 0)
probe("open_tree", 428, 0, a, 0)
probe("ptrace", 101, 0, 1, 0, 0)
probe("process_vm_readv", 310, 1, a, 1, a, 1, 0)
probe("process_vm_writev", 311, 1, a, 1, a, 1, 0)
probe("keyctl", 250, 0, 0, 0, 0, 0)
probe("add_key", 248, a, a, 0, 0, 0)
probe("request_key", 249, a, a, 0, 0)
probe("bpf", 321, 0, a, 0)
probe("perf_event_open", 298, a, 0, -1, -1, 0)
probe("userfaultfd", 323, 0)
probe("io_uring_setup", 425, 1, a)
probe("io_uring_enter", 426, 0, 0, 0, 0, 0, 0)
probe("io_uring_register", 427, 0, 0, 0, 0)
probe("init_module", 175, a, 0, a)
probe("finit_module", 313, 0, a, 0)
probe("delete_module", 176, a, 0)
probe("kexec_load", 246, 0, 0, 0, 0)
probe("kexec_file_load", 320, 0, 0, 0, a, 0)
probe("name_to_handle_at", 303, 0, a, a, a, 0)
probe("open_by_handle_at", 304, 0, a, 0)
probe("lookup_dcookie", 212, 0, a, 0)
probe("quotactl", 179, 0, a, 0, a)
probe("acct", 163, 0)
probe("swapon", 167, a, 0)
probe("swapoff", 168, a)
probe("reboot", 169, 0, 0, 0, 0)
probe("syslog", 103, 3, a, 16)
def attempt(name, fn):
    try:
        fn(); print(name, 0)
    except OSError as e:
        print(name, e.errno)
attempt("raw-socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet-socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
attempt("mknod", lambda: os.mknod("/tmp/isol8-null", 0o600 | 0o020000, os.makedev(1, 3)))
attempt("sysrq", lambda: open("/proc/sysrq-trigger", "w").write("h"))
attempt("cgroup-write", lambda: open("/sys/fs/cgroup/pids/pids.max", "w").write("max"))
attempt("proc-exe", lambda: open("/proc/self/exe", "ab"))
`

func testSyscalls(t *testing.T, sb sandbox.Sandbox) {
	got := fields(py(t, sb, syscallProbe))
	if arch, ok := got["arch"]; ok {
		t.Skipf("syscall numbers are only known for x86_64, not %s", arch)
	}
	names := []string{
		"unshare-user", "unshare-mnt", "unshare-net", "setns",
		"clone-newuser", "clone-newns", "clone-newpid", "clone-newnet", "clone3",
		"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig",
		"fspick", "move_mount", "open_tree", "ptrace", "process_vm_readv",
		"process_vm_writev", "keyctl", "add_key", "request_key", "bpf",
		"perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
		"io_uring_register", "init_module", "finit_module", "delete_module",
		"kexec_load", "kexec_file_load", "name_to_handle_at", "open_by_handle_at",
		"lookup_dcookie", "quotactl", "acct", "swapon", "swapoff", "reboot", "syslog",
	}
	for _, n := range names {
		// EPERM (1) from the filter, or ENOSYS (38) where libc must fall back.
		if e := got[n]; e != "1" && e != "38" {
			t.Errorf("%s: errno %q, want EPERM or ENOSYS", n, e)
		}
	}
	for _, n := range []string{"raw-socket", "packet-socket", "mknod", "sysrq", "cgroup-write", "proc-exe"} {
		if e := got[n]; e == "0" || e == "" {
			t.Errorf("%s succeeded (errno %q)", n, e)
		}
	}
}

func testReadonlyRoot(t *testing.T, sb sandbox.Sandbox) {
	got := fields(py(t, sb, `import os
def attempt(name, path):
    try:
        open(path, "w").close(); print(name, 0)
    except OSError as e:
        print(name, e.errno)
attempt("etc", "/etc/isol8-probe")
attempt("var-tmp", "/var/tmp/isol8-probe")
attempt("usr-bin", "/usr/bin/isol8-probe")`))
	for _, n := range []string{"etc", "var-tmp", "usr-bin"} {
		if got[n] == "0" || got[n] == "" {
			t.Errorf("writing the root filesystem (%s) succeeded", n)
		}
	}
	// EROFS, not just EACCES: /var/tmp is world-writable on a writable root.
	if got["var-tmp"] != "30" {
		t.Errorf("/var/tmp: errno %s, want EROFS (30)", got["var-tmp"])
	}
}

// mountinfo is the test's view of /proc/self/mountinfo: mount point to
// per-mount options and filesystem type.
const mountinfoProbe = `for line in open("/proc/self/mountinfo"):
    pre, post = line.split(" - ", 1)
    f = pre.split()
    print(f[4], f[5], post.split()[0])`

func testMounts(t *testing.T, sb sandbox.Sandbox) {
	mounts := map[string][2]string{}
	for _, line := range strings.Split(py(t, sb, mountinfoProbe), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			mounts[f[0]] = [2]string{f[1], f[2]} // the last mount at a point wins
		}
	}
	if opts := strings.Split(mounts["/"][0], ","); !contains(opts, "ro") {
		t.Errorf("/ mounted %q, want ro", mounts["/"][0])
	}
	for _, dir := range []string{sandbox.SandboxDir, sandbox.TmpDir} {
		m, ok := mounts[dir]
		if !ok {
			t.Errorf("%s is not a mount point", dir)
			continue
		}
		opts := strings.Split(m[0], ",")
		for _, o := range []string{"rw", "nosuid", "nodev"} {
			if !contains(opts, o) {
				t.Errorf("%s mounted %q, lacks %s", dir, m[0], o)
			}
		}
		if m[1] != "tmpfs" {
			t.Errorf("%s is %s, want tmpfs", dir, m[1])
		}
	}
}

func testNoNetwork(t *testing.T, sb sandbox.Sandbox) {
	got := fields(py(t, sb, `import socket
ifs = [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]]
print("interfaces", ",".join(sorted(ifs)))
for name, fam, addr in (("tcp4", socket.AF_INET, ("1.1.1.1", 80)), ("tcp6", socket.AF_INET6, ("2606:4700::1111", 80)), ("udp-dns", socket.AF_INET, ("8.8.8.8", 53))):
    try:
        s = socket.socket(fam, socket.SOCK_DGRAM if name == "udp-dns" else socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(addr)
        if name == "udp-dns":
            s.send(b"x"); s.recv(1)
        print(name, "connected")
    except OSError as e:
        print(name, "refused", e.errno)`))
	if got["interfaces"] != "lo" {
		t.Errorf("interfaces %q, want only lo", got["interfaces"])
	}
	for _, n := range []string{"tcp4", "tcp6", "udp-dns"} {
		if !strings.HasPrefix(got[n], "refused") {
			t.Errorf("%s: %s", n, got[n])
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
