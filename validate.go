package isol8

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Limits on request shapes, so a hostile request costs little.
const (
	maxPathLen      = 1024
	maxPathElemLen  = 255
	maxFiles        = 1000
	maxOutputPaths  = 100
	maxEnvEntries   = 256
	maxEnvValueLen  = 128 << 10
	maxPackages     = 100
	maxCodeBytes    = 10 << 20
	maxMetadataKeys = 64
)

var (
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	extRE     = regexp.MustCompile(`^\.[A-Za-z0-9]{1,10}$`)
)

func validEnvName(s string) bool { return len(s) <= 256 && envNameRE.MatchString(s) }

// SandboxPath checks that p is an absolute path inside /sandbox, clean,
// without "..", NUL or control bytes, and within length limits. field names
// the input in the error, e.g. `files["/etc/x"]`.
func SandboxPath(field, p string) error {
	switch {
	case p == "":
		return invalid(field, "path is empty")
	case len(p) > maxPathLen:
		return invalid(field, "path is longer than %d bytes", maxPathLen)
	case !utf8.ValidString(p):
		return invalid(field, "path is not valid UTF-8")
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalid(field, "path contains NUL or control characters")
	case !strings.HasPrefix(p, "/"):
		return invalid(field, "path must be absolute")
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return invalid(field, "path escapes /sandbox")
		}
		if len(el) > maxPathElemLen {
			return invalid(field, "a path element is longer than %d bytes", maxPathElemLen)
		}
	}
	if path.Clean(p) != p {
		return invalid(field, "path is not clean (use %q)", path.Clean(p))
	}
	if !strings.HasPrefix(p, "/sandbox/") {
		return invalid(field, "path must be inside /sandbox")
	}
	return nil
}

// Validate checks a request on its own (no policy) and names the bad field.
func (r *Request) Validate() error {
	if r == nil {
		return invalid("request", "missing")
	}
	if r.Runtime == "" {
		return invalid("runtime", "required (one of python, node, bun, deno, bash)")
	}
	switch r.Runtime {
	case Python, Node, Bun, Deno, Bash:
	default:
		return invalid("runtime", "unknown runtime %q (one of python, node, bun, deno, bash)", r.Runtime)
	}
	n := 0
	for _, s := range []string{r.Code, r.Cmd, r.CodeURL} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return invalid("code", "exactly one of code, cmd and codeUrl is required")
	}
	if len(r.Code) > maxCodeBytes || len(r.Cmd) > maxCodeBytes {
		return invalid("code", "longer than %d bytes", maxCodeBytes)
	}
	if r.TimeoutMs < 0 {
		return invalid("timeoutMs", "must not be negative")
	}
	if len(r.Files) > maxFiles {
		return invalid("files", "more than %d entries", maxFiles)
	}
	for p := range r.Files {
		if err := SandboxPath(fmt.Sprintf("files[%q]", p), p); err != nil {
			return err
		}
	}
	if len(r.OutputPaths) > maxOutputPaths {
		return invalid("outputPaths", "more than %d entries", maxOutputPaths)
	}
	for i, p := range r.OutputPaths {
		if err := SandboxPath(fmt.Sprintf("outputPaths[%d]", i), p); err != nil {
			return err
		}
	}
	if len(r.Env) > maxEnvEntries {
		return invalid("env", "more than %d entries", maxEnvEntries)
	}
	for k, v := range r.Env {
		if !validEnvName(k) {
			return invalid(fmt.Sprintf("env[%q]", k), "not a valid environment variable name")
		}
		if strings.ContainsRune(v, 0) || len(v) > maxEnvValueLen {
			return invalid(fmt.Sprintf("env[%q]", k), "value contains NUL or is longer than %d bytes", maxEnvValueLen)
		}
	}
	if r.Workdir != "" && r.Workdir != "/sandbox" {
		if err := SandboxPath("workdir", r.Workdir); err != nil {
			return err
		}
	}
	if r.FileExtension != "" && !extRE.MatchString(r.FileExtension) {
		return invalid("fileExtension", "must look like \".cjs\" (a dot and 1-10 letters or digits)")
	}
	if len(r.InstallPackages) > maxPackages {
		return invalid("installPackages", "more than %d packages", maxPackages)
	}
	if len(r.Metadata) > maxMetadataKeys {
		return invalid("metadata", "more than %d entries", maxMetadataKeys)
	}
	if r.CodeHash != "" && !regexp.MustCompile(`^[0-9a-fA-F]{64}$`).MatchString(r.CodeHash) {
		return invalid("codeHash", "must be a sha256 hex digest")
	}
	return nil
}
