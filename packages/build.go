package packages

import (
	"fmt"
	"strings"
)

// BuildDir is where a build step's files are copied in an image being
// built; the step removes it when done.
const BuildDir = "/isol8-build"

// NodeModules is where npm and bun packages baked into an image live;
// /node_modules links to it, so that imports from any file under /sandbox
// (ES modules and CommonJS alike) find them after /sandbox/node_modules.
const NodeModules = "/opt/isol8/node/node_modules"

// Bake is what a build step installs into an image, as root, at build
// time: Debian packages, the runtime's own packages, then setup scripts.
type Bake struct {
	Runtime    string
	System     []Spec   // Debian packages
	Packages   []Spec   // the runtime's own ecosystem (pip, npm)
	Setup      []string // bash scripts, run in order from /
	Registries Registries
}

// Empty reports whether the step has nothing to do.
func (b Bake) Empty() bool { return len(b.System) == 0 && len(b.Packages) == 0 && len(b.Setup) == 0 }

// Files returns the build step's files, relative to BuildDir. install.sh
// (run with bash) is fixed text; package names are in lists it reads into
// arrays and passes to the installers after "--", never into a shell
// string; the installer's own options are in installer.txt, one argument
// a line.
func (b Bake) Files() (map[string][]byte, error) {
	files := map[string][]byte{"install.sh": []byte(bakeScript)}
	system := b.System
	own := b.Packages
	if eco, err := For(b.Runtime); err != nil {
		return nil, err
	} else if eco == Debian {
		system, own = append(append([]Spec{}, system...), own...), nil
	}
	if len(system) > 0 {
		files["system.txt"] = lines(system)
	}
	if len(own) > 0 {
		installer, err := bakeInstaller(b.Runtime, b.Registries)
		if err != nil {
			return nil, err
		}
		for _, s := range own {
			if s.Path {
				return nil, fmt.Errorf("%q: paths cannot be baked into an image", s.Raw)
			}
		}
		files["packages.txt"] = lines(own)
		files["installer.txt"] = []byte(strings.Join(installer, "\n") + "\n")
		if b.Runtime == "node" || b.Runtime == "bun" {
			files["link-node-modules"] = []byte{}
		}
	}
	for i, s := range b.Setup {
		if strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("setup[%d]: empty script", i)
		}
		files[fmt.Sprintf("setup-%03d.sh", i+1)] = []byte(s)
	}
	return files, nil
}

// bakeInstaller is the argv (before "--" and the names) that installs a
// runtime's packages system-wide at build time.
func bakeInstaller(runtime string, reg Registries) ([]string, error) {
	switch runtime {
	case "python":
		if reg.PipIndex == "" {
			return nil, fmt.Errorf("%w for pip", ErrNoRegistry)
		}
		argv := []string{"python3", "-m", "pip", "install", "--break-system-packages", "--no-cache-dir",
			"--disable-pip-version-check", "--no-input", "--root-user-action=ignore", "--progress-bar", "off"}
		return append(argv, pipIndexArgs(reg.PipIndex)...), nil
	case "node":
		if reg.NPM == "" {
			return nil, fmt.Errorf("%w for npm", ErrNoRegistry)
		}
		return []string{"npm", "install", "--prefix", strings.TrimSuffix(NodeModules, "/node_modules"),
			"--no-audit", "--no-fund", "--no-update-notifier", "--loglevel", "warn", "--registry", reg.NPM + "/"}, nil
	case "bun":
		if reg.NPM == "" {
			return nil, fmt.Errorf("%w for bun", ErrNoRegistry)
		}
		return []string{"bun", "add", "--cwd", strings.TrimSuffix(NodeModules, "/node_modules"),
			"--registry", reg.NPM + "/", "--no-progress"}, nil
	}
	return nil, fmt.Errorf("runtime %q: baking its packages into an image is not supported (install them at run time, or bake system packages)", runtime)
}

func lines(specs []Spec) []byte {
	var b strings.Builder
	for _, s := range specs {
		b.WriteString(s.Raw)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// bakeScript runs a build step as root in the image being built.
const bakeScript = `set -euo pipefail
shopt -s nullglob
d=` + BuildDir + `
if [ -s "$d/system.txt" ]; then
  mapfile -t pkgs < "$d/system.txt"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -- "${pkgs[@]}"
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi
if [ -s "$d/packages.txt" ]; then
  mapfile -t pkgs < "$d/packages.txt"
  mapfile -t installer < "$d/installer.txt"
  if [ -e "$d/link-node-modules" ]; then
    mkdir -p ` + NodeModules + `
    ln -sfn ` + NodeModules + ` /node_modules
  fi
  export HOME=/root
  "${installer[@]}" -- "${pkgs[@]}"
  rm -rf /root/.npm /root/.cache /root/.bun
fi
for s in "$d"/setup-*.sh; do
  (cd / && bash "$s")
done
rm -rf "$d"
`
