//go:build linux

package native

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/isol8/isol8/sandbox/seccomp"
)

// filterVM loads a compiled filter into x/net/bpf's interpreter.
func filterVM(t *testing.T, raw []byte) *bpf.VM {
	t.Helper()
	var insts []bpf.Instruction
	for i := 0; i+8 <= len(raw); i += 8 {
		r := bpf.RawInstruction{
			Op: binary.NativeEndian.Uint16(raw[i:]),
			Jt: raw[i+2], Jf: raw[i+3],
			K: binary.NativeEndian.Uint32(raw[i+4:]),
		}
		insts = append(insts, r.Disassemble())
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// verdict runs the filter on a system call as the kernel would present it
// (struct seccomp_data). The interpreter loads words big-endian, so each
// 32-bit word is stored big-endian at the offset a little-endian kernel
// gives it.
func verdict(t *testing.T, vm *bpf.VM, auditArch uint32, nr uint32, args ...uint64) uint32 {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the test lays out seccomp_data for little-endian machines")
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], auditArch)
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[16+8*i+4:], uint32(a>>32))
	}
	v, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// TestStrictFilter checks the compiled strict profile call by call: every
// refused call gets Docker's errno (EPERM, ENOSYS for clone3), clone only
// without namespace flags, other ABIs nothing, and every other call the
// action the profile gives it.
func TestStrictFilter(t *testing.T) {
	raw, err := filterFor(nil)
	if err != nil {
		t.Fatal(err)
	}
	vm := filterVM(t, raw)
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	native := uint32(info.ID)
	nr := func(name string) uint32 { return uint32(info.SyscallNames[name]) }

	for _, name := range seccomp.Refused {
		if _, ok := info.SyscallNames[name]; !ok {
			continue // not on this architecture
		}
		want := uint32(retEPERM)
		if name == "clone3" {
			want = retNOSYS
		}
		if got := verdict(t, vm, native, nr(name)); got != want {
			t.Errorf("%s: %#x, want %#x", name, got, want)
		}
	}
	for _, name := range []string{"read", "write", "openat", "close", "mmap", "execve", "exit_group", "futex", "socket", "getrandom", "wait4", "rt_sigaction"} {
		if got := verdict(t, vm, native, nr(name)); got != retAllow {
			t.Errorf("%s: %#x, want allow", name, got)
		}
	}
	const sigchld = 17
	if got := verdict(t, vm, native, nr("clone"), sigchld); got != retAllow {
		t.Errorf("fork-like clone: %#x, want allow", got)
	}
	for _, flag := range []uint64{unix.CLONE_NEWUSER, unix.CLONE_NEWNS, unix.CLONE_NEWPID, unix.CLONE_NEWNET, unix.CLONE_NEWIPC, unix.CLONE_NEWUTS, unix.CLONE_NEWCGROUP} {
		if got := verdict(t, vm, native, nr("clone"), flag|sigchld); got != retEPERM {
			t.Errorf("clone with %#x: %#x, want EPERM", flag, got)
		}
	}
	if info.ID == arch.X86_64.ID {
		if got := verdict(t, vm, uint32(arch.I386.ID), 1); got != retEPERM {
			t.Errorf("a 32-bit x86 call: %#x, want EPERM", got)
		}
		if got := verdict(t, vm, native, nr("read")|uint32(arch.X32.SeccompMask)); got != retNOSYS {
			t.Errorf("an x32 call: %#x, want ENOSYS", got)
		}
	}

	// Every call of the architecture, without arguments, against the
	// profile as Docker resolves it: the first unconditional rule naming
	// it, else the default.
	js, err := seccomp.JSON()
	if err != nil {
		t.Fatal(err)
	}
	lp, err := mobyseccomp.LoadProfile(string(js), &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for name, n := range info.SyscallNames {
		want, conditional := uint32(retEPERM), false
		for _, r := range lp.Syscalls {
			if !slices.Contains(r.Names, name) {
				continue
			}
			if len(r.Args) > 0 {
				conditional = true
				break
			}
			act, err := action(r)
			if err != nil {
				t.Fatal(err)
			}
			want = uint32(act)
			break
		}
		if conditional {
			continue
		}
		checked++
		if got := verdict(t, vm, native, uint32(n)); got != want {
			t.Errorf("%s: %#x, want %#x", name, got, want)
		}
	}
	t.Logf("%d instructions; %d calls checked against the profile", len(raw)/8, checked)
}

// TestProfileRejected: a Spec can tighten seccomp, never switch it off.
func TestProfileRejected(t *testing.T) {
	for _, p := range []string{
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}`,
		`{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`,
		`{}`,
		`not json`,
	} {
		if _, err := filterFor([]byte(p)); err == nil {
			t.Errorf("profile %s accepted", p)
		}
	}
	if _, err := filterFor([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}]}`)); err != nil {
		t.Errorf("a tight profile: %v", err)
	}
}

// refusedProbe calls every refused system call with zero arguments (the
// filter answers before the kernel looks at them) and prints its errno.
func refusedProbe(t *testing.T) string {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n")
	b.WriteString("for name, nr in (")
	for _, name := range seccomp.Refused {
		if n, ok := info.SyscallNames[name]; ok {
			fmt.Fprintf(&b, "(%q, %d), ", name, n)
		}
	}
	b.WriteString("):\n    ctypes.set_errno(0)\n    r = libc.syscall(ctypes.c_long(nr), 0, 0, 0, 0, 0, 0)\n    print(name, 0 if r >= 0 else ctypes.get_errno())\n")
	return b.String()
}

// TestRefusedLikeDocker runs the same probe in a native sandbox and, when
// a Docker engine with the test image is at hand, in a Docker container
// under the same profile: both must refuse every call with the same errno.
func TestRefusedLikeDocker(t *testing.T) {
	b := openBackend(t)
	image := testImage(t, b)
	probe := refusedProbe(t)
	native, errOut, code := execOut(t, create(t, b, testSpec(image)), "python3", "-c", probe)
	if code != 0 {
		t.Fatalf("probe: exit %d: %s", code, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(native), "\n") {
		name, errno, _ := strings.Cut(line, " ")
		if want := map[bool]string{true: "38", false: "1"}[name == "clone3"]; errno != want {
			t.Errorf("native: %s errno %s, want %s", name, errno, want)
		}
	}

	if strings.HasPrefix(image, "/") {
		t.Log("the image is a folder: no Docker comparison")
		return
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Log("no docker CLI: no Docker comparison")
		return
	}
	js, err := seccomp.JSON()
	if err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(t.TempDir(), "seccomp.json")
	if err := os.WriteFile(profile, js, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("docker", "run", "--rm", "--network", "none", "--user", "1000:1000",
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--security-opt", "seccomp="+profile,
		"--label", "dev.isol8.managed=true", image, "python3", "-c", probe).CombinedOutput()
	if err != nil {
		t.Logf("docker run failed, no comparison: %v: %s", err, out)
		return
	}
	if string(out) != native {
		t.Errorf("Docker and native differ:\ndocker:\n%s\nnative:\n%s", out, native)
	} else {
		t.Logf("Docker and native refuse the same %d calls with the same errno", strings.Count(native, "\n"))
	}
}
