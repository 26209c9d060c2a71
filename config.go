package isol8

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/isol8/isol8/image"
)

// Config is isol8.config.json (contract section 7). One loader (LoadConfig)
// serves the CLI, the library and the server.
type Config struct {
	MaxConcurrent  int                 `json:"maxConcurrent"`
	Queue          QueueConfig         `json:"queue"`
	Defaults       Options             `json:"defaults"`
	Maxima         Maxima              `json:"maxima"`
	Network        NetworkFilter       `json:"network"`
	Cleanup        CleanupConfig       `json:"cleanup"`
	PoolStrategy   string              `json:"poolStrategy"`
	PoolSize       PoolSize            `json:"poolSize"`
	Security       SecurityOptions     `json:"security"`
	RemoteCode     RemoteCodeConfig    `json:"remoteCode"`
	Audit          AuditConfig         `json:"audit"`
	Auth           AuthConfig          `json:"auth"`
	PrebuiltImages []PrebuiltImage     `json:"prebuiltImages"`
	Dependencies   map[string][]string `json:"dependencies"`
	Images         ImagesConfig        `json:"images"`
	Packages       PackagesConfig      `json:"packages"`

	// Sources maps each dotted key to where its value came from:
	// "default", the config file's path, "env:NAME" or "flag".
	Sources map[string]string `json:"-"`
	// Path is the config file that was read ("" when none).
	Path string `json:"-"`
}

// Maxima are the largest limits any request or option may reach; larger
// values are clamped (by the library) or refused (by the server).
type Maxima struct {
	TimeoutMs     int64   `json:"timeoutMs"`
	MemoryLimit   string  `json:"memoryLimit"`
	CPULimit      float64 `json:"cpuLimit"`
	PidsLimit     int64   `json:"pidsLimit"`
	SandboxSize   string  `json:"sandboxSize"`
	TmpSize       string  `json:"tmpSize"`
	MaxOutputSize int64   `json:"maxOutputSize"`
}

// QueueConfig bounds the runs waiting for one of maxConcurrent slots;
// past either bound a run is refused (HTTP 429 with Retry-After).
type QueueConfig struct {
	Size      int   `json:"size"`
	TimeoutMs int64 `json:"timeoutMs"`
}

// CleanupConfig controls pruning of idle sessions.
type CleanupConfig struct {
	AutoPrune         bool  `json:"autoPrune"`
	MaxContainerAgeMs int64 `json:"maxContainerAgeMs"`
}

// RemoteCodeConfig is the policy for codeUrl.
type RemoteCodeConfig struct {
	Enabled        bool     `json:"enabled"`
	AllowedSchemes []string `json:"allowedSchemes"`
	AllowedHosts   []string `json:"allowedHosts"`
	BlockedHosts   []string `json:"blockedHosts"`
	MaxCodeSize    int64    `json:"maxCodeSize"`
	FetchTimeoutMs int64    `json:"fetchTimeoutMs"`
	RequireHash    bool     `json:"requireHash"`
}

// AuditConfig controls the audit log.
type AuditConfig struct {
	Enabled       bool   `json:"enabled"`
	Destination   string `json:"destination"`
	LogDir        string `json:"logDir"`
	RetentionDays int    `json:"retentionDays"`
	IncludeCode   bool   `json:"includeCode"`
	IncludeOutput bool   `json:"includeOutput"`
}

// AuthConfig controls the server's API key store.
type AuthConfig struct {
	Enabled          bool   `json:"enabled"`
	ConnectionString string `json:"connectionString"`
	DefaultTTLMs     int64  `json:"defaultTtlMs"`
}

// PrebuiltImage is a custom image that isol8 setup bakes.
type PrebuiltImage struct {
	Tag             string   `json:"tag"`
	Runtime         string   `json:"runtime"`
	InstallPackages []string `json:"installPackages"`
	SetupScript     string   `json:"setupScript"`
}

// ImagesConfig says where runtime images come from. Empty mirror and suite
// are read from the machine's apt sources.
type ImagesConfig struct {
	BaseImage string `json:"baseImage"`
	Mirror    string `json:"mirror"`
	Suite     string `json:"suite"`
}

// DefaultConfig returns the built-in configuration.
func DefaultConfig() *Config {
	return &Config{
		MaxConcurrent: 10,
		Queue:         QueueConfig{Size: 100, TimeoutMs: 60000},
		Defaults: Options{
			Mode: Ephemeral, Network: NetworkNone, TimeoutMs: 30000,
			MemoryLimit: "512m", CPULimit: 1, PidsLimit: 64,
			SandboxSize: "512m", TmpSize: "256m", MaxOutputSize: 1 << 20,
			ReadonlyRootFs: ptr(true), LogNetwork: ptr(false),
			Security: &SecurityOptions{Seccomp: "strict"}, Backend: "docker",
		},
		Maxima: Maxima{
			TimeoutMs: 3_600_000, MemoryLimit: "16g", CPULimit: 64, PidsLimit: 32768,
			SandboxSize: "16g", TmpSize: "16g", MaxOutputSize: 256 << 20,
		},
		Network:      NetworkFilter{Whitelist: []string{}, Blacklist: []string{}},
		Cleanup:      CleanupConfig{AutoPrune: true, MaxContainerAgeMs: 3_600_000},
		PoolStrategy: "fast",
		PoolSize:     PoolSize{Clean: 1, Dirty: 1},
		Security:     SecurityOptions{Seccomp: "strict"},
		RemoteCode: RemoteCodeConfig{AllowedSchemes: []string{"https"}, AllowedHosts: []string{},
			BlockedHosts: []string{}, MaxCodeSize: 10 << 20, FetchTimeoutMs: 30000},
		Audit:        AuditConfig{Destination: "file", LogDir: "./.isol8_audit", RetentionDays: 90},
		Auth:         AuthConfig{DefaultTTLMs: 86_400_000},
		Dependencies: map[string][]string{},
		Images:       ImagesConfig{BaseImage: "debian:bookworm-slim"},
	}
}

func ptr[T any](v T) *T { return &v }

// ConfigPaths are the files LoadConfig looks for, in order: $ISOL8_CONFIG,
// ./isol8.config.json, ~/.isol8/config.json.
func ConfigPaths() []string {
	var paths []string
	if p := os.Getenv("ISOL8_CONFIG"); p != "" {
		return []string{p}
	}
	paths = append(paths, "isol8.config.json")
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".isol8", "config.json"))
	}
	return paths
}

// LoadConfig reads the first config file of ConfigPaths (none is fine),
// merges it over the defaults, applies environment overrides and validates
// the result. Unknown keys and bad values are reported by their key.
func LoadConfig() (*Config, error) { return LoadConfigFrom("") }

// LoadConfigFrom is LoadConfig with an explicit file (a --config flag);
// "" searches ConfigPaths. An explicit file must exist.
func LoadConfigFrom(path string) (*Config, error) {
	cfg := DefaultConfig()
	cfg.Sources = map[string]string{}
	paths, explicit := ConfigPaths(), os.Getenv("ISOL8_CONFIG") != ""
	if path != "" {
		paths, explicit = []string{path}, true
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) && !explicit {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", p, err)
		}
		if err := cfg.merge(data, p); err != nil {
			return nil, err
		}
		cfg.Path = p
		break
	}
	if err := cfg.applyEnv(); err != nil {
		return nil, err
	}
	return cfg, cfg.Validate()
}

// ParseConfig merges a config document over the defaults, as LoadConfig
// does for a file, and validates it.
func ParseConfig(data []byte, source string) (*Config, error) {
	cfg := DefaultConfig()
	cfg.Sources = map[string]string{}
	if err := cfg.merge(data, source); err != nil {
		return nil, err
	}
	return cfg, cfg.Validate()
}

func (c *Config) merge(data []byte, source string) error {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("config %s: not valid JSON: %w", source, err)
	}
	if err := checkKeys(raw, reflect.TypeOf(*c), "", source, c.Sources); err != nil {
		return err
	}
	if err := json.Unmarshal(data, c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("config %s: %s: expected %s, got %s", source, te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("config %s: %w", source, err)
	}
	return nil
}

// checkKeys walks a decoded JSON object against the struct it will fill and
// reports the first unknown key by its dotted name; it records the source
// of every key it sees.
func checkKeys(obj map[string]any, t reflect.Type, prefix, source string, sources map[string]string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ft, ok := fields[k]
		if !ok {
			return fmt.Errorf("config %s: %s%s: unknown key", source, prefix, k)
		}
		sources[prefix+k] = source
		sub, isObj := obj[k].(map[string]any)
		st := ft
		for st.Kind() == reflect.Pointer {
			st = st.Elem()
		}
		if isObj && st.Kind() == reflect.Struct {
			if err := checkKeys(sub, st, prefix+k+".", source, sources); err != nil {
				return err
			}
		}
	}
	return nil
}

// envOverrides are the environment variables that override config keys,
// read in this one place.
var envOverrides = []struct{ env, key string }{
	{"ISOL8_BACKEND", "defaults.backend"},
	{"ISOL8_MAX_CONCURRENT", "maxConcurrent"},
	{"ISOL8_TIMEOUT_MS", "defaults.timeoutMs"},
	{"ISOL8_MEMORY_LIMIT", "defaults.memoryLimit"},
	{"ISOL8_NETWORK", "defaults.network"},
	{"ISOL8_AUTH_DB", "auth.connectionString"},
	{"ISOL8_DEBIAN_MIRROR", "images.mirror"},
}

func (c *Config) applyEnv() error {
	for _, o := range envOverrides {
		v, ok := os.LookupEnv(o.env)
		if !ok || v == "" {
			continue
		}
		if err := c.Set(o.key, v, "env:"+o.env); err != nil {
			return err
		}
	}
	return nil
}

// Set assigns a string value to a dotted key (as a flag or the environment
// would) and records its source.
func (c *Config) Set(key, value, source string) error {
	var doc any = value
	if n, err := strconv.ParseFloat(value, 64); err == nil {
		doc = n
	}
	if value == "true" || value == "false" {
		doc = value == "true"
	}
	// Build {"a":{"b":value}} and merge it like a file.
	parts := strings.Split(key, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		doc = map[string]any{parts[i]: doc}
	}
	data, _ := json.Marshal(doc)
	err := c.merge(data, source)
	if err != nil && !strings.Contains(err.Error(), "expected string") {
		return err
	}
	if err != nil { // a number-looking value for a string key
		data, _ = json.Marshal(nest(parts, value))
		return c.merge(data, source)
	}
	return nil
}

func nest(parts []string, v any) any {
	for i := len(parts) - 1; i >= 0; i-- {
		v = map[string]any{parts[i]: v}
	}
	return v
}

// Source says where a dotted key's value came from.
func (c *Config) Source(key string) string {
	if s, ok := c.Sources[key]; ok {
		return s
	}
	return "default"
}

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	if c.MaxConcurrent < 1 {
		return fmt.Errorf("maxConcurrent: must be at least 1, got %d", c.MaxConcurrent)
	}
	// The packages policy and every dependencies.<runtime> name, checked
	// here so a bad one is reported at load, by its key.
	var scratch image.Options
	if err := c.ApplyDependencies(&scratch); err != nil {
		return err
	}
	if c.Queue.Size < 0 || c.Queue.TimeoutMs < 0 {
		return fmt.Errorf("queue: size and timeoutMs must not be negative")
	}
	if err := validateOptions(&c.Defaults, "defaults."); err != nil {
		return err
	}
	m := c.Maxima
	if m.TimeoutMs <= 0 || m.CPULimit <= 0 || m.PidsLimit <= 0 || m.MaxOutputSize <= 0 {
		return fmt.Errorf("maxima: timeoutMs, cpuLimit, pidsLimit and maxOutputSize must be positive")
	}
	for k, v := range map[string]string{"maxima.memoryLimit": m.MemoryLimit, "maxima.sandboxSize": m.SandboxSize, "maxima.tmpSize": m.TmpSize} {
		if _, err := ParseSize(v); err != nil {
			return fmt.Errorf("%s: %v", k, err)
		}
	}
	switch c.PoolStrategy {
	case "fast", "secure":
	default:
		return fmt.Errorf("poolStrategy: must be \"fast\" or \"secure\", got %q", c.PoolStrategy)
	}
	if c.PoolSize.Clean < 0 || c.PoolSize.Dirty < 0 {
		return fmt.Errorf("poolSize: counts must not be negative")
	}
	if c.Cleanup.MaxContainerAgeMs < 0 {
		return fmt.Errorf("cleanup.maxContainerAgeMs: must not be negative")
	}
	switch c.Audit.Destination {
	case "file", "stdout":
	default:
		return fmt.Errorf("audit.destination: must be \"file\" or \"stdout\", got %q", c.Audit.Destination)
	}
	if c.Audit.RetentionDays < 0 {
		return fmt.Errorf("audit.retentionDays: must not be negative")
	}
	if c.RemoteCode.MaxCodeSize < 0 || c.RemoteCode.FetchTimeoutMs < 0 {
		return fmt.Errorf("remoteCode: maxCodeSize and fetchTimeoutMs must not be negative")
	}
	if c.Auth.DefaultTTLMs < 0 {
		return fmt.Errorf("auth.defaultTtlMs: must not be negative")
	}
	for rt := range c.Dependencies {
		switch rt {
		case "python", "node", "bun", "deno", "bash":
		default:
			return fmt.Errorf("dependencies.%s: unknown runtime", rt)
		}
	}
	for i, p := range c.PrebuiltImages {
		if p.Tag == "" {
			return fmt.Errorf("prebuiltImages[%d].tag: required", i)
		}
		if p.Runtime == "" {
			return fmt.Errorf("prebuiltImages[%d].runtime: required", i)
		}
	}
	if s := c.Security.Seccomp; s != "" && s != "strict" && s != "custom" {
		return fmt.Errorf("security.seccomp: must be \"strict\" or \"custom\", got %q", s)
	}
	if c.Security.Seccomp == "custom" && c.Security.CustomProfilePath == "" {
		return fmt.Errorf("security.customProfilePath: required when security.seccomp is \"custom\"")
	}
	return nil
}

// validateOptions checks the values set in o; prefix names its place.
func validateOptions(o *Options, prefix string) error {
	switch o.Mode {
	case "", Ephemeral, Persistent:
	default:
		return invalid(prefix+"mode", "must be \"ephemeral\" or \"persistent\", got %q", o.Mode)
	}
	switch o.Network {
	case "", NetworkNone, NetworkFiltered, NetworkHost:
	default:
		return invalid(prefix+"network", "must be \"none\", \"filtered\" or \"host\", got %q", o.Network)
	}
	if o.TimeoutMs < 0 {
		return invalid(prefix+"timeoutMs", "must not be negative, got %d", o.TimeoutMs)
	}
	if o.CPULimit < 0 || o.CPULimit != o.CPULimit {
		return invalid(prefix+"cpuLimit", "must be a positive number of CPUs")
	}
	if o.PidsLimit < 0 {
		return invalid(prefix+"pidsLimit", "must be positive, got %d", o.PidsLimit)
	}
	if o.MaxOutputSize < 0 {
		return invalid(prefix+"maxOutputSize", "must be positive, got %d", o.MaxOutputSize)
	}
	for name, v := range map[string]string{"memoryLimit": o.MemoryLimit, "sandboxSize": o.SandboxSize, "tmpSize": o.TmpSize} {
		if v == "" {
			continue
		}
		n, err := ParseSize(v)
		if err != nil {
			return invalid(prefix+name, "%v", err)
		}
		if n < 1<<20 {
			return invalid(prefix+name, "%q is below the minimum of 1m", v)
		}
	}
	if s := o.Security; s != nil && s.Seccomp != "" && s.Seccomp != "strict" && s.Seccomp != "custom" {
		return invalid(prefix+"security.seccomp", "must be \"strict\" or \"custom\", got %q", s.Seccomp)
	}
	switch o.PoolStrategy {
	case "", "fast", "secure":
	default:
		return invalid(prefix+"poolStrategy", "must be \"fast\" or \"secure\", got %q", o.PoolStrategy)
	}
	switch o.Backend {
	case "", "docker", "native", "auto":
	default:
		return invalid(prefix+"backend", "must be \"docker\", \"native\" or \"auto\", got %q", o.Backend)
	}
	if o.MaxConcurrent < 0 {
		return invalid(prefix+"maxConcurrent", "must be positive, got %d", o.MaxConcurrent)
	}
	for k := range o.Secrets {
		if !validEnvName(k) {
			return invalid(prefix+"secrets", "%q is not a valid environment variable name", k)
		}
	}
	return nil
}
