package seccomp

import (
	"encoding/json"
	"slices"
	"testing"

	moby "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// The calls the brief (and security.md) name explicitly; Refused may hold more.
var mustRefuse = []string{
	"unshare", "setns", "io_uring_setup", "io_uring_enter", "io_uring_register",
	"bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
	"ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
	"fsopen", "fsmount", "fsconfig", "move_mount", "open_tree", "fspick",
	"pivot_root", "init_module", "finit_module", "delete_module", "kexec_load",
	"kexec_file_load", "name_to_handle_at", "open_by_handle_at", "lookup_dcookie",
	"quotactl", "acct", "swapon", "swapoff", "reboot", "syslog",
}

func names(r *moby.Syscall) []string {
	if r.Name != "" {
		return append([]string{r.Name}, r.Names...)
	}
	return r.Names
}

func TestRefusedListComplete(t *testing.T) {
	for _, n := range mustRefuse {
		if !slices.Contains(Refused, n) {
			t.Errorf("Refused lacks %s", n)
		}
	}
}

func TestRefusedAbsentFromAllowRules(t *testing.T) {
	for i, r := range Profile().Syscalls {
		if !permits(r.Action) {
			continue
		}
		for _, n := range names(r) {
			if slices.Contains(Refused, n) {
				t.Errorf("rule %d (%s) allows refused syscall %s", i, r.Action, n)
			}
		}
	}
}

func TestNoCapabilityConditions(t *testing.T) {
	for i, r := range Profile().Syscalls {
		if r.Includes != nil && len(r.Includes.Caps) > 0 {
			t.Errorf("rule %d %v is conditional on caps %v", i, names(r), r.Includes.Caps)
		}
		if r.Excludes != nil && len(r.Excludes.Caps) > 0 {
			t.Errorf("rule %d %v is lifted by caps %v", i, names(r), r.Excludes.Caps)
		}
	}
}

// clone must stay allowed (every fork needs it) but only without namespace
// flags; clone3 must fail with ENOSYS so that libc falls back to clone.
func TestCloneRules(t *testing.T) {
	p := Profile()
	var cloneRules, clone3 int
	for _, r := range p.Syscalls {
		for _, n := range names(r) {
			switch n {
			case "clone":
				if !permits(r.Action) {
					continue
				}
				cloneRules++
				if len(r.Args) != 1 || r.Args[0].Op != specs.OpMaskedEqual ||
					r.Args[0].Value != NamespaceFlags || r.Args[0].ValueTwo != 0 {
					t.Errorf("clone allowed without the namespace-flag mask: %+v", r.Args)
				}
			case "clone3":
				clone3++
				if r.Action != specs.ActErrno || r.ErrnoRet == nil || *r.ErrnoRet != 38 {
					t.Errorf("clone3 rule: %s errno %v, want ENOSYS", r.Action, r.ErrnoRet)
				}
				if r.Excludes != nil || r.Includes != nil {
					t.Errorf("clone3 rule is conditional: %+v %+v", r.Includes, r.Excludes)
				}
			}
		}
	}
	if cloneRules == 0 {
		t.Error("clone is not allowed at all")
	}
	if clone3 != 1 {
		t.Errorf("clone3 appears in %d rules, want 1", clone3)
	}
}

func TestEverydayCallsAllowed(t *testing.T) {
	allowed := map[string]bool{}
	for _, r := range Profile().Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && r.Includes == nil {
			for _, n := range names(r) {
				allowed[n] = true
			}
		}
	}
	for _, n := range []string{"read", "write", "openat", "execve", "exit_group", "mmap", "futex", "wait4", "pipe2", "kill", "setsid", "prctl", "seccomp"} {
		if !allowed[n] {
			t.Errorf("%s is not allowed", n)
		}
	}
}

func TestProfileIsFresh(t *testing.T) {
	a := Profile()
	a.Syscalls[0].Names = append(a.Syscalls[0].Names, "bpf")
	b := Profile()
	if slices.Contains(b.Syscalls[0].Names, "bpf") {
		t.Fatal("Profile shares state between calls")
	}
}

func TestJSON(t *testing.T) {
	data, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	// The shape Docker 20.10 reads: defaultAction, archMap, syscalls with names.
	var doc struct {
		DefaultAction string `json:"defaultAction"`
		ArchMap       []struct {
			Architecture string `json:"architecture"`
		} `json:"archMap"`
		Syscalls []struct {
			Names  []string `json:"names"`
			Action string   `json:"action"`
		} `json:"syscalls"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.DefaultAction != string(specs.ActErrno) {
		t.Errorf("defaultAction %q", doc.DefaultAction)
	}
	if len(doc.ArchMap) == 0 || len(doc.Syscalls) == 0 {
		t.Fatalf("archMap %d entries, syscalls %d rules", len(doc.ArchMap), len(doc.Syscalls))
	}
	var back moby.Seccomp
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for _, r := range back.Syscalls {
		if r.Action == specs.ActAllow {
			for _, n := range names(r) {
				if slices.Contains(Refused, n) {
					t.Errorf("JSON allows %s", n)
				}
			}
		}
	}
}
