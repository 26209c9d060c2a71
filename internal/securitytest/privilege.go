package securitytest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/isol8/isol8"
)

func privilegeCases() []Case {
	return []Case{
		{
			Name: "privilege/proc-status-python", Runtime: isol8.Python,
			Tweak: func(r *isol8.Request) { r.SetupScript = "cat /proc/self/status > /tmp/setup-status\n" },
			Code:  "print(open('/proc/self/status').read())\nprint('=====setup=====')\nprint(open('/tmp/setup-status').read())\n",
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if !mustRun(t, res, err) {
					return
				}
				code, setup, _ := strings.Cut(res.Stdout, "=====setup=====")
				checkStatus(t, "python program", code)
				checkStatus(t, "setup script", setup)
			},
		},
		statusCase("node", isol8.Node, "", "import fs from 'node:fs';\nconsole.log(fs.readFileSync('/proc/self/status', 'utf8'));\n"),
		statusCase("bash", isol8.Bash, "", "while IFS= read -r l; do echo \"$l\"; done < /proc/self/status\n"),
		statusCase("cmd", isol8.Python, "cat /proc/self/status", ""),
		{Name: "privilege/write-system-files", Runtime: isol8.Python, Code: pyPrelude + writeSystemFiles, Check: checkAllRefused},
		{Name: "privilege/syscalls", Runtime: isol8.Python, Code: pyPrelude + syscallAttack, Check: checkSyscalls},
		{
			Name: "privilege/unshare-mount-commands", Runtime: isol8.Bash,
			Code: `mkdir -p /sandbox/m
for c in "unshare -U true" "unshare -r true" "unshare -n true" "unshare -m true" "mount -t tmpfs none /sandbox/m" "umount /sandbox"; do
  out=$($c 2>&1); rc=$?
  echo "[$c] rc=$rc ${out//$'\n'/ }"
done
`,
			Check: func(t *testing.T, res *isol8.Result, err error) {
				if !mustRun(t, res, err) {
					return
				}
				lines := regexp.MustCompile(`(?m)^\[([^\]]+)\] rc=(\d+)`).FindAllStringSubmatch(res.Stdout, -1)
				if len(lines) != 6 {
					t.Errorf("expected 6 command outcomes, got %d", len(lines))
				}
				for _, m := range lines {
					switch m[2] {
					case "0":
						t.Errorf("%q succeeded inside the sandbox", m[1])
					case "127":
						t.Errorf("%q is missing from the image, so it could not be tried", m[1])
					}
				}
			},
		},
		{Name: "privilege/setuid-binary", Runtime: isol8.Python, Code: pyPrelude + setuidAttack, Check: checkSetuid},
		{Name: "privilege/raw-packet-sockets", Runtime: isol8.Python, Code: pyPrelude + rawSockets, Check: checkAllRefused},
		{Name: "privilege/proc-sys-dev", Runtime: isol8.Python, Code: pyPrelude + procSysDev, Check: checkAllRefused},
		{Name: "privilege/workdir-validation", Attack: workdirValidation},
	}
}

func statusCase(name string, rt isol8.Runtime, cmd, code string) Case {
	return Case{Name: "privilege/proc-status-" + name, Runtime: rt, Cmd: cmd, Code: code,
		Check: func(t *testing.T, res *isol8.Result, err error) {
			if mustRun(t, res, err) {
				checkStatus(t, name, res.Stdout)
			}
		}}
}

// checkStatus: unprivileged uid and gid, no capability at all,
// no_new_privs, a seccomp filter.
func checkStatus(t *testing.T, who, status string) {
	t.Helper()
	f := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			f[k] = strings.TrimSpace(v)
		}
	}
	if len(f) < 10 {
		t.Errorf("%s: no /proc/self/status in the output: %q", who, clip(status, 300))
		return
	}
	for _, k := range []string{"Uid", "Gid"} {
		ids := strings.Fields(f[k])
		if len(ids) != 4 || slices.Contains(ids, "0") {
			t.Errorf("%s: %s is %q; want four non-zero ids", who, k, f[k])
		}
	}
	if slices.Contains(strings.Fields(f["Groups"]), "0") {
		t.Errorf("%s: supplementary groups %q include root", who, f["Groups"])
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if strings.Trim(f[k], "0") != "" {
			t.Errorf("%s: %s is %q; want no capability", who, k, f[k])
		}
	}
	if f["NoNewPrivs"] != "1" {
		t.Errorf("%s: NoNewPrivs is %q, want 1", who, f["NoNewPrivs"])
	}
	if f["Seccomp"] != "2" {
		t.Errorf("%s: Seccomp is %q, want 2 (filter)", who, f["Seccomp"])
	}
}

// checkAllRefused: the attack reports {what: outcome}; every outcome must
// be a refusal (an errno name, not OPENED/CREATED/WROTE/OK…).
func checkAllRefused(t *testing.T, res *isol8.Result, err error) {
	if !mustRun(t, res, err) {
		return
	}
	var r map[string]string
	if !reportOf(t, res, &r) {
		return
	}
	if len(r) == 0 {
		t.Errorf("the attack tried nothing")
	}
	for _, k := range sortedKeys(r) {
		if !refused(r[k]) {
			t.Errorf("%s: %s", k, r[k])
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

const writeSystemFiles = `out = {}
def wopen(p, follow=False):
    flags = os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK
    if not follow:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(p, flags)
    except OSError as e:
        return en(e)
    os.close(fd)
    return "OPENED"
def op(name, f):
    try:
        f()
        out[name] = "OK"
    except OSError as e:
        out[name] = en(e)
interp = os.path.realpath(sys.executable)
for p in ["/proc/self/exe", "/proc/1/exe", "/proc/self/root/etc/passwd"]:
    out["write " + p] = wopen(p, follow=True)
for p in [interp, "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hosts", "/etc/hostname",
          "/etc/resolv.conf", "/bin/sh", "/bin/bash", "/usr/bin/env"]:
    out["write " + p] = wopen(p, follow=True)
n = 0
for top in ["/etc", "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/lib/python3", os.path.dirname(interp)]:
    for root, dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p):
                continue
            n += 1
            r = wopen(p)
            if not (r in ("EROFS", "EACCES", "ETXTBSY", "EPERM")):
                out["write " + p] = r
op("rename /etc/passwd", lambda: os.rename("/etc/passwd", "/etc/passwd.isol8"))
op("chmod /etc/passwd", lambda: os.chmod("/etc/passwd", 0o666))
op("chown /etc/passwd", lambda: os.chown("/etc/passwd", 1000, 1000))
op("utime /etc/passwd", lambda: os.utime("/etc/passwd"))
op("truncate /etc/passwd", lambda: os.truncate("/etc/passwd", 0))
op("symlink in /etc", lambda: os.symlink("/sandbox", "/etc/isol8-link"))
op("mkdir in /etc", lambda: os.mkdir("/etc/isol8-dir"))
op("unlink /etc/passwd", lambda: os.unlink("/etc/passwd"))
op("unlink interpreter", lambda: os.unlink(interp))
if n < 50:
    out["files tried"] = "NOT TRIED: only %d files found" % n
report(out)
`

// syscallAttack calls each refused system call directly (x86_64 numbers)
// and reports its return value and errno.
const syscallAttack = `import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def arg(a):
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    return ctypes.c_long(a)
NEWNS, NEWUTS, NEWIPC, NEWUSER = 0x20000, 0x4000000, 0x8000000, 0x10000000
NEWPID, NEWNET, NEWCGROUP, SIGCHLD = 0x20000000, 0x40000000, 0x02000000, 17
os.makedirs("/sandbox/mnt", exist_ok=True)
userns = os.open("/proc/self/ns/user", os.O_RDONLY)
netns = os.open("/proc/self/ns/net", os.O_RDONLY)
cargs = (ctypes.c_uint64 * 11)(NEWUSER, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0)
cargs2 = (ctypes.c_uint64 * 11)(NEWNS | NEWPID | NEWNET, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0)
calls = [
    ("mount", 165, b"none", b"/sandbox/mnt", b"tmpfs", 0, 0),
    ("umount2", 166, b"/sandbox", 0),
    ("unshare(NEWUSER)", 272, NEWUSER),
    ("unshare(NEWNS)", 272, NEWNS),
    ("unshare(NEWNET)", 272, NEWNET),
    ("unshare(NEWPID)", 272, NEWPID),
    ("unshare(NEWUTS)", 272, NEWUTS),
    ("unshare(NEWIPC)", 272, NEWIPC),
    ("unshare(NEWCGROUP)", 272, NEWCGROUP),
    ("clone(NEWUSER)", 56, NEWUSER | SIGCHLD, 0, 0, 0, 0),
    ("clone(NEWNS|NEWPID|NEWNET)", 56, NEWNS | NEWPID | NEWNET | SIGCHLD, 0, 0, 0, 0),
    ("clone3(NEWUSER)", 435, ctypes.addressof(cargs), 88),
    ("clone3(NEWNS|NEWPID|NEWNET)", 435, ctypes.addressof(cargs2), 88),
    ("setns(user)", 308, userns, NEWUSER),
    ("setns(net)", 308, netns, NEWNET),
    ("ptrace(TRACEME)", 101, 0, 0, 0, 0),
    ("ptrace(ATTACH parent)", 101, 16, os.getppid(), 0, 0),
    ("process_vm_readv", 310, os.getppid(), 0, 0, 0, 0, 0),
    ("process_vm_writev", 311, os.getppid(), 0, 0, 0, 0, 0),
    ("kcmp", 312, os.getpid(), os.getppid(), 0, 0, 0),
    ("pidfd_getfd", 438, -1, 0, 0),
    ("keyctl", 250, 0, -3, 0),
    ("add_key", 248, b"user", b"isol8", b"x", 1, -3),
    ("request_key", 249, b"user", b"isol8", 0, 0),
    ("bpf", 321, 0, 0, 0),
    ("perf_event_open", 298, 0, 0, -1, -1, 0),
    ("userfaultfd", 323, 0),
    ("io_uring_setup", 425, 1, 0),
    ("init_module", 175, 0, 0, b""),
    ("finit_module", 313, -1, b"", 0),
    ("delete_module", 176, b"isol8", 0),
    ("kexec_load", 246, 0, 0, 0, 0),
    ("kexec_file_load", 320, -1, -1, 0, b"", 0),
    ("pivot_root", 155, b"/sandbox", b"/sandbox/mnt"),
    ("chroot", 161, b"/sandbox"),
    ("name_to_handle_at", 303, -100, b"/etc/passwd", 0, 0, 0),
    ("open_by_handle_at", 304, -100, 0, 0),
    ("fsopen", 430, b"tmpfs", 0),
    ("open_tree", 428, -100, b"/sandbox", 0),
    ("move_mount", 429, -100, b"/sandbox", -100, b"/sandbox/mnt", 0),
    ("swapon", 167, b"/sandbox/mnt", 0),
    ("acct", 163, 0),
    ("syslog", 103, 3, 0, 0),
    ("reboot(CAD_OFF)", 169, 0xfee1dead, 672274793, 0, 0),
]
out = {}
for c in calls:
    name, nr, args = c[0], c[1], c[2:]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[arg(a) for a in args])
    e = ctypes.get_errno()
    if name.startswith("clone") and r == 0:
        os._exit(0)  # a child that should not exist
    if name.startswith("clone") and r > 0:
        os.waitpid(r, 0)
    out[name] = [r, _errno.errorcode.get(e, str(e)) if r < 0 else "OK"]
report(out)
`

func checkSyscalls(t *testing.T, res *isol8.Result, err error) {
	if !mustRun(t, res, err) {
		return
	}
	var r map[string][2]any
	if !reportOf(t, res, &r) {
		return
	}
	if len(r) < 40 {
		t.Errorf("only %d system calls were tried", len(r))
	}
	for _, name := range sortedKeys(r) {
		v := r[name]
		if e := fmt.Sprint(v[1]); e != "EPERM" && e != "ENOSYS" {
			t.Errorf("%s returned %v with %s; want EPERM or ENOSYS", name, v[0], e)
		}
	}
}

const setuidAttack = `import shutil, subprocess
out = {}
for d in ["/sandbox", "/tmp", "/dev/shm"]:
    p = d + "/suid-bash"
    r = {}
    try:
        shutil.copy("/bin/bash", p)
        os.chmod(p, 0o4755)
        r["mode"] = oct(os.stat(p).st_mode & 0o7777)
        x = subprocess.run([p, "-p", "-c", 'echo "$EUID"'], capture_output=True, text=True, timeout=10)
        r["euid"], r["rc"] = x.stdout.strip(), x.returncode
    except OSError as e:
        r["error"] = en(e)
    out[d] = r
mounts = {}
for line in open("/proc/self/mountinfo"):
    f = line.split()
    sep = f.index("-")
    mounts[f[4]] = f[5] + "," + ",".join(f[sep + 1:])
out["mounts"] = {k: mounts.get(k, "") for k in ["/", "/sandbox", "/tmp", "/dev/shm"]}
out["euid"] = os.geteuid()
report(out)
`

func checkSetuid(t *testing.T, res *isol8.Result, err error) {
	if !mustRun(t, res, err) {
		return
	}
	var r map[string]any
	if !reportOf(t, res, &r) {
		return
	}
	for _, d := range []string{"/sandbox", "/tmp", "/dev/shm"} {
		m, _ := r[d].(map[string]any)
		if euid := fmt.Sprint(m["euid"]); euid == "0" {
			t.Errorf("a setuid copy of bash in %s ran as root (%v)", d, m)
		} else if m["rc"] == float64(0) && euid != "1000" {
			t.Errorf("a setuid copy of bash in %s ran with euid %q (%v); want 1000", d, euid, m)
		}
		t.Logf("%s: %v", d, m)
	}
	mounts, _ := r["mounts"].(map[string]any)
	if opts := strings.Split(fmt.Sprint(mounts["/"]), ","); !slices.Contains(opts, "ro") {
		t.Errorf("the root is not mounted read-only: %v", mounts["/"])
	}
	for _, mp := range []string{"/sandbox", "/tmp", "/dev/shm"} {
		opts := strings.Split(fmt.Sprint(mounts[mp]), ",")
		if !slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") {
			t.Errorf("%s is not mounted nosuid,nodev: %v", mp, mounts[mp])
		}
	}
}

const rawSockets = `import socket
out = {}
for name, args in [
    ("AF_INET/SOCK_RAW/ICMP", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
    ("AF_INET/SOCK_RAW/RAW", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)),
    ("AF_INET/SOCK_RAW/TCP", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)),
    ("AF_INET6/SOCK_RAW/ICMPV6", (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)),
    ("AF_INET6/SOCK_RAW/RAW", (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)),
    ("AF_PACKET/SOCK_RAW", (socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))),
    ("AF_PACKET/SOCK_DGRAM", (socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))),
]:
    try:
        s = socket.socket(*args)
        s.close()
        out[name] = "OPENED"
    except OSError as e:
        out[name] = en(e)
report(out)
`

const procSysDev = `import stat
out = {}
def wopen(p):
    try:
        fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        return en(e)
    os.close(fd)
    return "OPENED"
def op(name, f):
    try:
        f()
        out[name] = "OK"
    except OSError as e:
        out[name] = en(e)
out["open /proc/sysrq-trigger for writing"] = wopen("/proc/sysrq-trigger")
try:
    fd = os.open("/proc/kcore", os.O_RDONLY)
    n = len(os.read(fd, 4096))
    os.close(fd)
    out["read /proc/kcore"] = "OK" if n else "EMPTY"
except OSError as e:
    out["read /proc/kcore"] = en(e)
for p in ["/proc/sys/kernel/hostname", "/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches",
          "/proc/sys/kernel/modprobe", "/proc/sys/net/ipv4/ip_forward", "/sys/kernel/uevent_helper",
          "/proc/sys/kernel/sysrq", "/sys/kernel/mm/transparent_hugepage/enabled"]:
    if os.path.exists(p):
        out["open " + p + " for writing"] = wopen(p)
def lower_oom():
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("-1000")
op("oom_score_adj = -1000", lower_oom)
n = 0
for root, dirs, files in os.walk("/sys/fs/cgroup"):
    if root.count("/") > 7:
        dirs[:] = []
    for f in files:
        n += 1
        r = wopen(os.path.join(root, f))
        if r not in ("EROFS", "EACCES", "EPERM"):
            out["open " + os.path.join(root, f) + " for writing"] = r
    if n > 5000:
        break
op("mkdir in /sys/fs/cgroup", lambda: os.mkdir("/sys/fs/cgroup/isol8-probe"))
for d in sorted(os.listdir("/sys/fs/cgroup")):
    p = os.path.join("/sys/fs/cgroup", d)
    if os.path.isdir(p) and not os.path.islink(p):
        op("mkdir in " + p, lambda p=p: os.mkdir(os.path.join(p, "isol8-probe")))
for d in ["/sandbox", "/tmp", "/dev/shm"]:
    op("mknod char 1:3 in " + d, lambda d=d: os.mknod(d + "/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3)))
    op("mknod block 8:0 in " + d, lambda d=d: os.mknod(d + "/sda", 0o666 | stat.S_IFBLK, os.makedev(8, 0)))
# The control plane's sockets must not be reachable from inside.
for root in ["/run", "/var/run", "/tmp", "/sandbox"]:
    for dirpath, dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                if stat.S_ISSOCK(os.lstat(p).st_mode) or f.endswith(".sock"):
                    out["socket " + p] = "OPENED"
            except OSError:
                pass
allowed = {"null", "zero", "full", "random", "urandom", "tty", "console", "ptmx", "pts/ptmx"}
for root, dirs, files in os.walk("/dev"):
    for f in files + dirs:
        p = os.path.join(root, f)
        rel = os.path.relpath(p, "/dev")
        try:
            m = os.lstat(p).st_mode
        except OSError:
            continue
        if stat.S_ISBLK(m):
            out["block device " + p] = "OPENED"
        elif stat.S_ISCHR(m) and rel not in allowed and not rel.startswith("pts/"):
            out["char device " + p] = "OPENED"
report(out)
`

func workdirValidation(t *testing.T, h *H) {
	e := h.Engine(isol8.Python, isol8.Options{})
	for _, wd := range []string{
		"/proc/self/fd/3", "/proc/self/cwd", "/proc/1/root", "/etc", "/", "/tmp", "sandbox",
		"/sandbox/../etc", "/sandbox/a/../../etc", "/sandboxx", "/sandbox/\x00x", "/sandbox/a\nb",
		"/sandbox/" + strings.Repeat("a", 300), "/sandbox/" + strings.Repeat("a/", 600),
	} {
		req := h.Request(isol8.Python, "print('ran')")
		req.Workdir = wd
		res, err := e.Execute(h.Ctx, req)
		if res != nil {
			t.Errorf("workdir %q: the program ran (%q)", wd, clip(res.Stdout, 100))
		}
		wantInvalid(t, err, "workdir")
	}
	if n := h.Creates(); n != 0 {
		t.Errorf("%d sandboxes were created for requests that validation should refuse", n)
	}
}
