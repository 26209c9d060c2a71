package cli

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestConfigJSON(t *testing.T) {
	dir := isolate(t)
	writeFile(t, filepath.Join(dir, "isol8.config.json"), `{"defaults": {"timeoutMs": 1234}, "maxConcurrent": 3}`)
	t.Setenv("ISOL8_MEMORY_LIMIT", "1g")

	o := cli(t, "config", "--json")
	expectCode(t, o, 0)
	var doc struct {
		MaxConcurrent int
		Defaults      map[string]any
		RemoteCode    map[string]any `json:"remoteCode"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &doc); err != nil {
		t.Fatalf("config --json is not JSON: %v\n%s", err, o.stdout)
	}
	if doc.MaxConcurrent != 3 || doc.Defaults["timeoutMs"] != 1234.0 || doc.Defaults["memoryLimit"] != "1g" {
		t.Fatalf("wrong values: %+v", doc)
	}
	if _, ok := doc.Defaults["image"]; !ok {
		t.Error("an empty key (defaults.image) is missing from --json")
	}
	if _, ok := doc.RemoteCode["allowedHosts"]; !ok {
		t.Error("remoteCode.allowedHosts is missing from --json")
	}

	o = cli(t, "config")
	expectCode(t, o, 0)
	for _, re := range []string{
		`(?m)^defaults\.timeoutMs\s+1234\s+isol8\.config\.json$`,
		`(?m)^defaults\.memoryLimit\s+1g\s+env:ISOL8_MEMORY_LIMIT$`,
		`(?m)^defaults\.cpuLimit\s+1\s+default$`,
	} {
		if !regexp.MustCompile(re).MatchString(o.stdout) {
			t.Errorf("config output does not match %s:\n%s", re, o.stdout)
		}
	}
}

func TestConfigUnknownKey(t *testing.T) {
	dir := isolate(t)
	writeFile(t, filepath.Join(dir, "isol8.config.json"), `{"defaults": {"timeoutMz": 1234}}`)
	for _, args := range [][]string{{"config"}, {"run", "-e", "print(1)"}} {
		o := cli(t, args...)
		expectCode(t, o, 2)
		if !strings.Contains(o.stderr, "defaults.timeoutMz") || !strings.Contains(o.stderr, "unknown key") {
			t.Fatalf("stderr does not name the key:\n%s", o.stderr)
		}
	}
}

func TestConfigSecretsMasked(t *testing.T) {
	dir := isolate(t)
	writeFile(t, filepath.Join(dir, "isol8.config.json"),
		`{"defaults": {"secrets": {"TOKEN": "hunter2"}}, "auth": {"connectionString": "postgres://me:pw123@db/isol8"}}`)
	for _, args := range [][]string{{"config"}, {"config", "--json"}} {
		o := cli(t, args...)
		expectCode(t, o, 0)
		if strings.Contains(o.stdout, "hunter2") || strings.Contains(o.stdout, "pw123") || !strings.Contains(o.stdout, "***") {
			t.Fatalf("secrets not masked:\n%s", o.stdout)
		}
	}
}
