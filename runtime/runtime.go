// Package runtime holds the adapters for the languages isol8 runs: the image
// each uses, the file its inline code is written to, and the command that
// runs it. Adding a runtime means adding one Adapter here.
package runtime

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Adapter describes one runtime.
type Adapter struct {
	// Name is the runtime's name in requests ("python").
	Name string
	// Image is the default image's repository:tag.
	Image string
	// Extension is the default extension of the code file (".py").
	Extension string
	// Extensions are all file extensions that select this runtime.
	Extensions []string
	// Run returns the argv that runs the code file at file.
	Run func(file string) []string
	// Env is added to the environment of every process of the runtime
	// (its image sets the same, for backends that honour image ENV).
	Env []string
}

// CodeFile is where inline code is written, without extension.
const CodeFile = "/sandbox/main"

// The contract maps .ts to bun and .mts to deno; both also run JavaScript
// when a request sets fileExtension.
var adapters = map[string]*Adapter{
	"python": {Name: "python", Image: "isol8:python", Extension: ".py", Extensions: []string{".py"},
		Run: func(f string) []string { return []string{"python3", "-u", f} }},
	"node": {Name: "node", Image: "isol8:node", Extension: ".mjs", Extensions: []string{".js", ".mjs", ".cjs"},
		Run: func(f string) []string { return []string{"node", f} }},
	"bun": {Name: "bun", Image: "isol8:bun", Extension: ".ts", Extensions: []string{".ts"},
		Run: func(f string) []string { return []string{"bun", "run", f} },
		Env: []string{"DO_NOT_TRACK=1", "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"}},
	// The sandbox is deno's boundary, so its own permission checks are
	// all granted (-A) rather than prompted for.
	"deno": {Name: "deno", Image: "isol8:deno", Extension: ".mts", Extensions: []string{".mts"},
		Run: func(f string) []string { return []string{"deno", "run", "-A", "--no-prompt", f} },
		Env: []string{"DENO_NO_UPDATE_CHECK=1", "DENO_NO_PROMPT=1", "DENO_TLS_CA_STORE=system"}},
	"bash": {Name: "bash", Image: "isol8:bash", Extension: ".sh", Extensions: []string{".sh"},
		Run: func(f string) []string { return []string{"bash", f} }},
}

// Get returns the adapter for a runtime name.
func Get(name string) (*Adapter, error) {
	a, ok := adapters[name]
	if !ok {
		return nil, fmt.Errorf("unknown runtime %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return a, nil
}

// Names lists the known runtimes.
func Names() []string {
	names := make([]string, 0, len(adapters))
	for n := range adapters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FromFile picks the runtime for a file name by its extension.
func FromFile(name string) (*Adapter, error) {
	ext := strings.ToLower(path.Ext(name))
	for _, n := range Names() {
		for _, e := range adapters[n].Extensions {
			if e == ext {
				return adapters[n], nil
			}
		}
	}
	return nil, fmt.Errorf("cannot tell the runtime of %q from its extension; pass --runtime", name)
}

// ShellArgv is the argv that runs a request's cmd.
func ShellArgv(cmd string) []string { return []string{"bash", "-c", cmd} }
