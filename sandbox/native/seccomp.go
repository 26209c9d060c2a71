//go:build linux

package native

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	bpfseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/isol8/isol8/sandbox/seccomp"
)

// filters caches compiled programs by the hash of their profile, and the
// strict profile's on its own: each is compiled once per process, not
// once per sandbox.
var filters struct {
	sync.Mutex
	m map[[32]byte][]byte

	strictOnce sync.Once
	strict     []byte
	strictErr  error
}

// filterFor returns the BPF program, as raw struct sock_filter bytes, for
// a Docker-format profile; an empty profile means isol8's strict one.
func filterFor(profile []byte) ([]byte, error) {
	if len(profile) == 0 {
		filters.strictOnce.Do(func() {
			js, err := seccomp.JSON()
			if err != nil {
				filters.strictErr = fmt.Errorf("strict seccomp profile: %w", err)
				return
			}
			filters.strict, filters.strictErr = compileProfile(js)
		})
		return filters.strict, filters.strictErr
	}
	key := sha256.Sum256(profile)
	filters.Lock()
	defer filters.Unlock()
	if raw, ok := filters.m[key]; ok {
		return raw, nil
	}
	raw, err := compileProfile(profile)
	if err != nil {
		return nil, err
	}
	if filters.m == nil {
		filters.m = map[[32]byte][]byte{}
	}
	filters.m[key] = raw
	return raw, nil
}

// compileProfile turns a Docker seccomp profile into a BPF program with the
// semantics runc gives it under Docker: rules resolved for this
// architecture, this kernel and a process holding no capability; the
// default action and each rule's errno as written. Rules are tried in
// order and the first match decides (Docker's default profile never lists
// one system call under two actions, so order does not change its meaning).
//
// Two things are stricter than Docker: only the native system call ABI is
// allowed (32-bit x86 calls get the default action, x32 ENOSYS), and a
// profile that does not refuse by default is rejected, since a Spec may
// tighten the sandbox but never switch seccomp off.
func compileProfile(profile []byte) ([]byte, error) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}
	lp, err := mobyseccomp.LoadProfile(string(profile), rs)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if lp == nil {
		return nil, errors.New("seccomp profile: empty profile would disable seccomp")
	}
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	def, err := defaultAction(lp)
	if err != nil {
		return nil, err
	}
	policy := bpfseccomp.Policy{DefaultAction: def}
	for i, rule := range lp.Syscalls {
		g, err := group(rule, info)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: rule %d %v: %w", i, rule.Names, err)
		}
		if len(g.Names)+len(g.NamesWithCondtions) > 0 {
			policy.Syscalls = append(policy.Syscalls, g)
		}
	}
	if len(policy.Syscalls) == 0 {
		return nil, errors.New("seccomp profile: no rule applies to this architecture")
	}
	insts, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	if len(raw) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: program of %d instructions exceeds the kernel's %d", len(raw), unix.BPF_MAXINSNS)
	}
	out := make([]byte, 0, 8*len(raw))
	for _, r := range raw {
		out = binary.NativeEndian.AppendUint16(out, r.Op)
		out = append(out, r.Jt, r.Jf)
		out = binary.NativeEndian.AppendUint32(out, r.K)
	}
	return out, nil
}

func defaultAction(lp *specs.LinuxSeccomp) (bpfseccomp.Action, error) {
	switch lp.DefaultAction {
	case specs.ActErrno:
		if lp.DefaultErrnoRet != nil && *lp.DefaultErrnoRet != uint(unix.EPERM) {
			return 0, fmt.Errorf("seccomp profile: default errno %d is not supported (only EPERM)", *lp.DefaultErrnoRet)
		}
		return bpfseccomp.ActionErrno, nil // the assembler returns EPERM
	case specs.ActKill, specs.ActKillThread:
		return bpfseccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return bpfseccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return bpfseccomp.ActionTrap, nil
	}
	return 0, fmt.Errorf("seccomp profile: default action %q does not refuse: a sandbox needs an allowlist", lp.DefaultAction)
}

// group converts one rule. Names this architecture lacks are skipped, as
// libseccomp does.
func group(rule specs.LinuxSyscall, info *arch.Info) (bpfseccomp.SyscallGroup, error) {
	act, err := action(rule)
	if err != nil {
		return bpfseccomp.SyscallGroup{}, err
	}
	g := bpfseccomp.SyscallGroup{Action: act}
	var names []string
	for _, n := range rule.Names {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	if len(rule.Args) == 0 {
		g.Names = names
		return g, nil
	}
	conds, err := conditions(rule.Args)
	if err != nil {
		return g, err
	}
	for _, n := range names {
		for _, c := range conds {
			g.NamesWithCondtions = append(g.NamesWithCondtions, bpfseccomp.NameWithConditions{Name: n, Conditions: c})
		}
	}
	return g, nil
}

func action(rule specs.LinuxSyscall) (bpfseccomp.Action, error) {
	errno := uint32(unix.EPERM)
	if rule.ErrnoRet != nil {
		errno = uint32(*rule.ErrnoRet)
	}
	switch rule.Action {
	case specs.ActAllow:
		return bpfseccomp.ActionAllow, nil
	case specs.ActErrno:
		return bpfseccomp.Action(uint32(bpfseccomp.ActionErrno) | errno&0xffff), nil
	case specs.ActTrace:
		return bpfseccomp.Action(uint32(bpfseccomp.ActionTrace) | errno&0xffff), nil
	case specs.ActLog:
		return bpfseccomp.ActionLog, nil
	case specs.ActKill, specs.ActKillThread:
		return bpfseccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return bpfseccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return bpfseccomp.ActionTrap, nil
	}
	return 0, fmt.Errorf("action %q is not supported", rule.Action)
}

// conditions converts a rule's argument checks into alternatives (each an
// AND of checks). Like runc, a rule that checks one argument more than
// once means "any of these", so each check becomes its own alternative.
func conditions(args []specs.LinuxSeccompArg) ([]bpfseccomp.ArgumentConditions, error) {
	all := make(bpfseccomp.ArgumentConditions, 0, len(args))
	seen := map[uint]bool{}
	repeated := false
	for _, a := range args {
		c, err := condition(a)
		if err != nil {
			return nil, err
		}
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
		all = append(all, c)
	}
	if !repeated {
		return []bpfseccomp.ArgumentConditions{all}, nil
	}
	alts := make([]bpfseccomp.ArgumentConditions, len(all))
	for i, c := range all {
		alts[i] = bpfseccomp.ArgumentConditions{c}
	}
	return alts, nil
}

func condition(a specs.LinuxSeccompArg) (bpfseccomp.Condition, error) {
	if a.Index > 5 {
		return bpfseccomp.Condition{}, fmt.Errorf("argument index %d", a.Index)
	}
	c := bpfseccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
	switch a.Op {
	case specs.OpEqualTo:
		c.Operation = bpfseccomp.Equal
	case specs.OpNotEqual:
		c.Operation = bpfseccomp.NotEqual
	case specs.OpLessThan:
		c.Operation = bpfseccomp.LessThan
	case specs.OpLessEqual:
		c.Operation = bpfseccomp.LessOrEqual
	case specs.OpGreaterThan:
		c.Operation = bpfseccomp.GreaterThan
	case specs.OpGreaterEqual:
		c.Operation = bpfseccomp.GreaterOrEqual
	case specs.OpMaskedEqual:
		// (arg & mask) == value: expressible when value is 0 (no bit of
		// the mask set) or the mask is one bit that must be set.
		switch {
		case a.ValueTwo == 0:
			c.Operation = bpfseccomp.BitsNotSet
		case a.ValueTwo == a.Value && bits.OnesCount64(a.Value) == 1:
			c.Operation = bpfseccomp.BitsSet
		default:
			return c, fmt.Errorf("masked comparison (arg & %#x) == %#x is not supported", a.Value, a.ValueTwo)
		}
	default:
		return c, fmt.Errorf("operator %q is not supported", a.Op)
	}
	return c, nil
}
