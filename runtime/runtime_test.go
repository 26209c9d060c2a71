package runtime

import (
	"strings"
	"testing"
)

func TestFromFile(t *testing.T) {
	for file, want := range map[string]string{
		"a.py": "python", "a.js": "node", "a.mjs": "node", "a.cjs": "node",
		"a.ts": "bun", "A.TS": "bun", "a.mts": "deno", "a.sh": "bash",
	} {
		a, err := FromFile(file)
		if err != nil || a.Name != want {
			t.Errorf("FromFile(%q) = %v, %v; want %s", file, a, err, want)
		}
	}
	if _, err := FromFile("a.rb"); err == nil {
		t.Error("FromFile(a.rb) accepted")
	}
}

func TestAdapters(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "bash,bun,deno,node,python" {
		t.Errorf("Names() = %s", got)
	}
	for _, name := range Names() {
		a, _ := Get(name)
		if a.Image != "isol8:"+name || a.Extension == "" || len(a.Run(CodeFile+a.Extension)) == 0 {
			t.Errorf("adapter %s = %+v", name, a)
		}
	}
	deno, _ := Get("deno")
	if argv := deno.Run("/sandbox/main.mts"); strings.Join(argv, " ") != "deno run -A --no-prompt /sandbox/main.mts" {
		t.Errorf("deno argv = %q", argv)
	}
	bun, _ := Get("bun")
	if argv := bun.Run("/sandbox/main.ts"); strings.Join(argv, " ") != "bun run /sandbox/main.ts" {
		t.Errorf("bun argv = %q", argv)
	}
}
