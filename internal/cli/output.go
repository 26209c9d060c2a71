package cli

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/isol8/isol8"
)

// outSpec is one --out PATH[:LOCAL]: a file read back from the sandbox
// after the run and written to a local path.
type outSpec struct {
	path  string // absolute, inside /sandbox
	local string // "" means the base name of path in the current directory
}

// parseOuts parses the --out flags. PATH may be relative to /sandbox and
// may not contain ":"; LOCAL may be a directory (existing, or ending in /).
func parseOuts(list []string) ([]outSpec, error) {
	var outs []outSpec
	seen := map[string]bool{}
	for _, s := range list {
		p, local, _ := strings.Cut(s, ":")
		if p == "" {
			return nil, usageErrorf("--out %q: expected PATH_IN_SANDBOX[:LOCAL_PATH]", s)
		}
		abs, err := sandboxPath("--out", p)
		if err != nil {
			return nil, err
		}
		if abs == "/sandbox" {
			return nil, usageErrorf("--out %q: name a file, not /sandbox itself", s)
		}
		if seen[abs] {
			return nil, usageErrorf("--out %q: %s is already asked for", s, abs)
		}
		seen[abs] = true
		outs = append(outs, outSpec{path: abs, local: local})
	}
	return outs, nil
}

// destination is where an output file is written locally.
func (o outSpec) destination() string {
	base := path.Base(o.path)
	switch {
	case o.local == "":
		return base
	case strings.HasSuffix(o.local, "/") || strings.HasSuffix(o.local, string(filepath.Separator)):
		return filepath.Join(o.local, base)
	}
	if fi, err := os.Stat(o.local); err == nil && fi.IsDir() {
		return filepath.Join(o.local, base)
	}
	return o.local
}

// writeOutputs writes the --out files the run returned and returns the
// sandbox paths that were missing.
func writeOutputs(outs []outSpec, res *isol8.Result) (missing []string, err error) {
	for _, o := range outs {
		data, ok := res.Files[o.path]
		if !ok {
			missing = append(missing, o.path)
			continue
		}
		dst := o.destination()
		if dir := filepath.Dir(dst); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return missing, fmt.Errorf("--out %s: %w", o.path, err)
			}
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return missing, fmt.Errorf("--out %s: writing %s: %w", o.path, dst, unwrapPath(err))
		}
	}
	return missing, nil
}
