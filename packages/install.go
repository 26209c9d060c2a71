package packages

import (
	"fmt"
	goruntime "runtime"
	"strings"
)

// Places inside a sandbox that run-time installs use. Everything lives
// under /sandbox, the sandbox's own writable tmpfs, so a package installed
// for one run is gone with its sandbox and never seen by another tenant.
const (
	// SandboxHome is HOME in a sandbox: pip --user installs under
	// SandboxHome/.local, which Python puts on sys.path by itself, and npm
	// and bun install into SandboxHome/node_modules, where imports of
	// /sandbox/main.* look first.
	SandboxHome = "/sandbox"
	// DebianRoot is where Debian packages are unpacked (dpkg -x) for bash.
	DebianRoot = "/sandbox/.isol8/sys"
	// aptState holds apt's lists and downloaded archives while installing.
	aptState = "/sandbox/.isol8/apt"
)

// Registries are the resolved registries installers use.
type Registries struct {
	NPM      string // npm registry URL (node, bun, deno)
	PipIndex string // PEP 503 simple index URL (python)
}

// Command is one installer process: run Argv with Env added to the
// sandbox's environment (which carries the proxy settings).
type Command struct {
	Argv []string
	Env  []string
}

// RuntimeCommand returns the command that installs specs for runtime
// inside a sandbox, as the sandbox user, into /sandbox. Every spec is one
// argv element after "--"; nothing passes through a shell string (the
// Debian installer is a fixed script that reads the names from "$@").
func RuntimeCommand(runtime string, specs []Spec, reg Registries) (Command, error) {
	if len(specs) == 0 {
		return Command{}, fmt.Errorf("no packages to install")
	}
	args := make([]string, 0, len(specs))
	for _, s := range specs {
		args = append(args, s.Raw)
	}
	switch runtime {
	case "python":
		if reg.PipIndex == "" {
			return Command{}, fmt.Errorf("%w for pip", ErrNoRegistry)
		}
		argv := []string{"python3", "-m", "pip", "install", "--user", "--break-system-packages",
			"--no-cache-dir", "--disable-pip-version-check", "--no-input", "--no-warn-script-location",
			"--progress-bar", "off"}
		argv = append(argv, pipIndexArgs(reg.PipIndex)...)
		return Command{Argv: append(append(argv, "--"), args...)}, nil
	case "node":
		if reg.NPM == "" {
			return Command{}, fmt.Errorf("%w for npm", ErrNoRegistry)
		}
		argv := []string{"npm", "install", "--prefix", SandboxHome, "--no-audit", "--no-fund",
			"--no-update-notifier", "--no-save", "--no-package-lock", "--loglevel", "warn",
			"--registry", reg.NPM + "/", "--"}
		return Command{Argv: append(argv, args...)}, nil
	case "bun":
		if reg.NPM == "" {
			return Command{}, fmt.Errorf("%w for bun", ErrNoRegistry)
		}
		argv := []string{"bun", "add", "--cwd", SandboxHome, "--registry", reg.NPM + "/", "--no-progress", "--"}
		return Command{Argv: append(argv, args...)}, nil
	case "deno":
		if reg.NPM == "" {
			return Command{}, fmt.Errorf("%w for deno", ErrNoRegistry)
		}
		// deno's parser takes no "--" here; every argument starts with
		// "npm:", so none can be an option.
		argv := []string{"deno", "add"}
		for _, s := range specs {
			if s.Path {
				return Command{}, fmt.Errorf("%q: deno installs packages from the registry only", s.Raw)
			}
			argv = append(argv, "npm:"+s.Raw)
		}
		return Command{Argv: argv, Env: []string{"NPM_CONFIG_REGISTRY=" + reg.NPM + "/"}}, nil
	case "bash":
		argv := append([]string{"bash", "-c", debianRuntimeScript, "isol8-install", "--"}, args...)
		return Command{Argv: argv}, nil
	}
	return Command{}, fmt.Errorf("runtime %q: no installer", runtime)
}

// pipIndexArgs are pip's index options; an http index (a company mirror
// on a trusted network, or a test's local index) also needs
// --trusted-host, which the operator chose by configuring it.
func pipIndexArgs(index string) []string {
	args := []string{"--index-url", index + "/"}
	if strings.HasPrefix(index, "http://") {
		args = append(args, "--trusted-host", Host(index))
	}
	return args
}

// debianRuntimeScript downloads Debian packages and their missing
// dependencies with apt as the sandbox user (apt's lists and archives go
// under /sandbox; the sandbox user cannot lock /var/lib/dpkg, so locking
// is off, which is safe because nothing else uses this apt state), then
// unpacks them under DebianRoot. Packages are "$@"; nothing is run as
// root and no maintainer script runs.
var debianRuntimeScript = `set -euo pipefail
shopt -s nullglob
a=` + aptState + `
mkdir -p "$a/lists/partial" "$a/cache/archives/partial" ` + DebianRoot + `
o=(-o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache" -o Debug::NoLocking=1 -o Acquire::Retries=2 -q)
apt-get "${o[@]}" update >/dev/null
apt-get "${o[@]}" -y --no-install-recommends --download-only install "$@"
debs=("$a"/cache/archives/*.deb)
for f in "${debs[@]}"; do dpkg-deb -x "$f" ` + DebianRoot + `; done
echo "unpacked ${#debs[@]} package(s) into ` + DebianRoot + `"
rm -rf "$a"
`

// Env returns env (KEY=VALUE entries) adjusted so that the runtime finds
// what RuntimeCommand installed: for bash, PATH and LD_LIBRARY_PATH lead
// into DebianRoot. The other runtimes find their packages without help.
func Env(runtime string, env []string) []string {
	if runtime != "bash" {
		return env
	}
	triplet := multiarch()
	bins := []string{DebianRoot + "/usr/local/bin", DebianRoot + "/usr/bin", DebianRoot + "/bin"}
	libs := []string{DebianRoot + "/usr/lib/" + triplet, DebianRoot + "/lib/" + triplet, DebianRoot + "/usr/lib"}
	out := make([]string, 0, len(env)+2)
	path, ldPath := "/usr/local/bin:/usr/bin:/bin", ""
	for _, kv := range env {
		switch {
		case strings.HasPrefix(kv, "PATH="):
			path = strings.TrimPrefix(kv, "PATH=")
		case strings.HasPrefix(kv, "LD_LIBRARY_PATH="):
			ldPath = strings.TrimPrefix(kv, "LD_LIBRARY_PATH=")
		default:
			out = append(out, kv)
		}
	}
	out = append(out, "PATH="+strings.Join(bins, ":")+":"+path)
	ld := strings.Join(libs, ":")
	if ldPath != "" {
		ld += ":" + ldPath
	}
	return append(out, "LD_LIBRARY_PATH="+ld)
}

// multiarch is Debian's library directory name for this machine.
func multiarch() string {
	switch goruntime.GOARCH {
	case "arm64":
		return "aarch64-linux-gnu"
	case "386":
		return "i386-linux-gnu"
	}
	return "x86_64-linux-gnu"
}
