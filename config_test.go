package isol8

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigUnknownKeyNamed(t *testing.T) {
	_, err := ParseConfig([]byte(`{"defaults":{"memoryLimt":"1g"}}`), "test.json")
	if err == nil || !strings.Contains(err.Error(), "defaults.memoryLimt: unknown key") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigBadValueNamed(t *testing.T) {
	for doc, want := range map[string]string{
		`{"defaults":{"memoryLimit":"lots"}}`: "defaults.memoryLimit",
		`{"defaults":{"network":"wide"}}`:     "defaults.network",
		`{"maxConcurrent":0}`:                 "maxConcurrent",
		`{"defaults":{"timeoutMs":"soon"}}`:   "defaults.timeoutMs",
		`{"poolStrategy":"eager"}`:            "poolStrategy",
		`{"audit":{"destination":"s3"}}`:      "audit.destination",
	} {
		_, err := ParseConfig([]byte(doc), "t.json")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to name %s", doc, err, want)
		}
	}
}

func TestConfigSourcesAndEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "isol8.config.json")
	os.WriteFile(p, []byte(`{"maxConcurrent":3,"defaults":{"memoryLimit":"1g"}}`), 0o644)
	t.Setenv("ISOL8_TIMEOUT_MS", "5000")
	cfg, err := LoadConfigFrom(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConcurrent != 3 || cfg.Source("maxConcurrent") != p {
		t.Errorf("maxConcurrent %d from %s", cfg.MaxConcurrent, cfg.Source("maxConcurrent"))
	}
	if cfg.Defaults.TimeoutMs != 5000 || cfg.Source("defaults.timeoutMs") != "env:ISOL8_TIMEOUT_MS" {
		t.Errorf("timeout %d from %s", cfg.Defaults.TimeoutMs, cfg.Source("defaults.timeoutMs"))
	}
	if cfg.Source("defaults.cpuLimit") != "default" {
		t.Errorf("cpuLimit source %s", cfg.Source("defaults.cpuLimit"))
	}
	if err := cfg.Set("defaults.memoryLimit", "2g", "flag"); err != nil || cfg.Defaults.MemoryLimit != "2g" {
		t.Errorf("Set: %v %q", err, cfg.Defaults.MemoryLimit)
	}
}

func TestResolveLayersAndClamps(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"defaults":{"memoryLimit":"1g","timeoutMs":10000},"maxima":{"timeoutMs":20000,"memoryLimit":"2g"}}`), "t")
	if err != nil {
		t.Fatal(err)
	}
	lim := cfg.Resolve(Options{MemoryLimit: "64g", PidsLimit: 10}, &Request{TimeoutMs: 99999})
	if lim.Timeout != 20*time.Second || lim.MemoryBytes != 2<<30 || lim.Pids != 10 || lim.CPUs != 1 {
		t.Fatalf("limits %+v", lim)
	}
	lim = cfg.Resolve(Options{}, &Request{})
	if lim.Timeout != 10*time.Second || lim.MemoryBytes != 1<<30 || !lim.ReadonlyRootFS || lim.Network != NetworkNone {
		t.Fatalf("defaults %+v", lim)
	}
}

func TestRequestValidateNamesField(t *testing.T) {
	cases := map[string]*Request{
		`files["/sandbox/../etc/x"]`: {Runtime: Python, Code: "1", Files: map[string][]byte{"/sandbox/../etc/x": nil}},
		`files["/etc/x"]`:            {Runtime: Python, Code: "1", Files: map[string][]byte{"/etc/x": nil}},
		`files[""]`:                  {Runtime: Python, Code: "1", Files: map[string][]byte{"": nil}},
		`files["/sandbox/a\x00b"]`:   {Runtime: Python, Code: "1", Files: map[string][]byte{"/sandbox/a\x00b": nil}},
		"workdir":                    {Runtime: Python, Code: "1", Workdir: "/proc/self/fd/3"},
		"outputPaths[0]":             {Runtime: Python, Code: "1", OutputPaths: []string{"relative"}},
		"runtime":                    {Runtime: "cobol", Code: "1"},
		"code":                       {Runtime: Python},
		`env["1BAD"]`:                {Runtime: Python, Code: "1", Env: map[string]string{"1BAD": "x"}},
	}
	for field, req := range cases {
		err := req.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), field+":") {
			t.Errorf("%s: err = %v", field, err)
		}
	}
	long := "/sandbox/" + strings.Repeat("a", 300)
	if err := (&Request{Runtime: Python, Code: "1", Files: map[string][]byte{long: nil}}).Validate(); err == nil {
		t.Error("over-long path element accepted")
	}
}

func TestConfigBadDependencyNamed(t *testing.T) {
	_, err := ParseConfig([]byte(`{"dependencies":{"python":["--index-url=http://evil.test"]}}`), "t.json")
	if err == nil || !strings.Contains(err.Error(), "dependencies.python") {
		t.Fatalf("err = %v, want it to name dependencies.python", err)
	}
}
