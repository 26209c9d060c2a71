package isol8

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestTighten(t *testing.T) {
	yes, no := true, false
	filtered := DefaultConfig()
	filtered.Defaults.Network = NetworkFiltered
	withAllow := DefaultConfig()
	withAllow.Defaults.Network = NetworkFiltered
	withAllow.Network.Whitelist = []string{`^example\.com$`}
	withDefaultFilter := DefaultConfig()
	withDefaultFilter.Defaults.Network = NetworkFiltered
	withDefaultFilter.Defaults.NetworkFilter = &NetworkFilter{Whitelist: []string{`^a\.com$`}, Blacklist: []string{`^evil$`}}
	prebuilt := DefaultConfig()
	prebuilt.PrebuiltImages = []PrebuiltImage{{Tag: "isol8:pandas", Runtime: "python"}}
	writable := DefaultConfig()
	writable.Defaults.ReadonlyRootFs = &no

	tests := []struct {
		name   string
		cfg    *Config
		client Options
		want   Options
		field  string // the field a refusal names
		class  error
	}{
		{name: "empty stays empty", client: Options{}, want: Options{}},
		{name: "lower limits are kept",
			client: Options{TimeoutMs: 1000, MemoryLimit: "256m", CPULimit: 0.5, PidsLimit: 16, SandboxSize: "64m", TmpSize: "32m", MaxOutputSize: 1024},
			want:   Options{TimeoutMs: 1000, MemoryLimit: "256m", CPULimit: 0.5, PidsLimit: 16, SandboxSize: "64m", TmpSize: "32m", MaxOutputSize: 1024}},
		{name: "limits above the maxima are clamped",
			client: Options{TimeoutMs: 1e15, MemoryLimit: "1000g", CPULimit: math.Inf(1), PidsLimit: 1 << 40, SandboxSize: "1t", TmpSize: "99g", MaxOutputSize: 1 << 50},
			want:   Options{TimeoutMs: 3_600_000, MemoryLimit: "16g", CPULimit: 64, PidsLimit: 32768, SandboxSize: "16g", TmpSize: "16g", MaxOutputSize: 256 << 20}},
		{name: "negative timeout", client: Options{TimeoutMs: -1}, field: "options.timeoutMs", class: ErrInvalidArgument},
		{name: "negative pids", client: Options{PidsLimit: -1}, field: "options.pidsLimit", class: ErrInvalidArgument},
		{name: "NaN cpu", client: Options{CPULimit: math.NaN()}, field: "options.cpuLimit", class: ErrInvalidArgument},
		{name: "bad size", client: Options{MemoryLimit: "lots"}, field: "options.memoryLimit", class: ErrInvalidArgument},
		{name: "bad network", client: Options{Network: "wide"}, field: "options.network", class: ErrInvalidArgument},
		{name: "host on a none server", client: Options{Network: NetworkHost}, field: "options.network", class: ErrPermission},
		{name: "filtered on a none server", client: Options{Network: NetworkFiltered}, field: "options.network", class: ErrPermission},
		{name: "none is always fine", cfg: filtered, client: Options{Network: NetworkNone}, want: Options{Network: NetworkNone}},
		{name: "filtered on a filtered server", cfg: filtered,
			client: Options{Network: NetworkFiltered, NetworkFilter: &NetworkFilter{Whitelist: []string{`^a\.com$`}, Blacklist: []string{`^b\.com$`}}},
			want:   Options{Network: NetworkFiltered, NetworkFilter: &NetworkFilter{Whitelist: []string{`^a\.com$`}, Blacklist: []string{`^b\.com$`}}}},
		{name: "host on a filtered server", cfg: filtered, client: Options{Network: NetworkHost}, field: "options.network", class: ErrPermission},
		{name: "bad pattern", cfg: filtered, client: Options{NetworkFilter: &NetworkFilter{Blacklist: []string{"ok", "("}}},
			field: "options.networkFilter.blacklist[1]", class: ErrInvalidArgument},
		{name: "deny list next to the config's", cfg: withAllow, client: Options{NetworkFilter: &NetworkFilter{Blacklist: []string{`^x$`}}},
			want: Options{NetworkFilter: &NetworkFilter{Blacklist: []string{`^x$`}}}},
		// The config's network lists stay apart (Resolve), so a request's
		// allow list can only narrow them.
		{name: "allow list next to the config's", cfg: withAllow, client: Options{NetworkFilter: &NetworkFilter{Whitelist: []string{`.*`}}},
			want: Options{NetworkFilter: &NetworkFilter{Whitelist: []string{`.*`}}}},
		{name: "deny list keeps the defaults' filter", cfg: withDefaultFilter, client: Options{NetworkFilter: &NetworkFilter{Blacklist: []string{`^x$`}}},
			want: Options{NetworkFilter: &NetworkFilter{Whitelist: []string{`^a\.com$`}, Blacklist: []string{`^evil$`, `^x$`}}}},
		{name: "allow list over the defaults' filter", cfg: withDefaultFilter, client: Options{NetworkFilter: &NetworkFilter{Whitelist: []string{`.*`}}},
			field: "options.networkFilter.whitelist", class: ErrPermission},
		{name: "writable root refused", client: Options{ReadonlyRootFs: &no}, field: "options.readonlyRootFs", class: ErrPermission},
		{name: "writable root on a writable server", cfg: writable, client: Options{ReadonlyRootFs: &no}, want: Options{ReadonlyRootFs: &no}},
		{name: "read-only root kept", client: Options{ReadonlyRootFs: &yes}, want: Options{ReadonlyRootFs: &yes}},
		{name: "runtime image", client: Options{Image: "isol8:python"}, want: Options{Image: "isol8:python"}},
		{name: "prebuilt image", cfg: prebuilt, client: Options{Image: "isol8:pandas"}, want: Options{Image: "isol8:pandas"}},
		{name: "other image", client: Options{Image: "alpine:latest"}, field: "options.image", class: ErrPermission},
		{name: "seccomp custom", client: Options{Security: &SecurityOptions{Seccomp: "custom", CustomProfilePath: "/x.json"}}, field: "options.security", class: ErrPermission},
		{name: "seccomp as the server", client: Options{Security: &SecurityOptions{Seccomp: "strict"}}, want: Options{}},
		{name: "backend switch", client: Options{Backend: "native"}, field: "options.backend", class: ErrPermission},
		{name: "same backend", client: Options{Backend: "docker"}, want: Options{}},
		{name: "server-wide settings ignored", client: Options{MaxConcurrent: 1000, PoolSize: &PoolSize{Clean: 99}, PoolStrategy: "fast"}, want: Options{}},
		{name: "secure pool kept", client: Options{PoolStrategy: "secure"}, want: Options{PoolStrategy: "secure"}},
		{name: "secrets and mode kept", client: Options{Mode: Persistent, Secrets: map[string]string{"TOKEN": "s3cret"}, LogNetwork: &yes},
			want: Options{Mode: Persistent, Secrets: map[string]string{"TOKEN": "s3cret"}, LogNetwork: &yes}},
		{name: "bad secret name", client: Options{Secrets: map[string]string{"A=B": "x"}}, field: "options.secrets", class: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == nil {
				cfg = DefaultConfig()
			}
			got, err := cfg.Tighten(tt.client)
			if tt.field != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, tt.class) {
					t.Fatalf("Tighten(%+v) = %v; want a %v error naming %s", tt.client, err, tt.class, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Tighten(%+v): %v", tt.client, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Tighten(%+v)\n got %+v\nwant %+v", tt.client, got, tt.want)
			}
		})
	}
}

// The tightened options, resolved the way the engine does, never exceed the
// server's maxima nor loosen its network.
func TestTightenResolvesWithinPolicy(t *testing.T) {
	cfg := DefaultConfig()
	got, err := cfg.Tighten(Options{TimeoutMs: 1e15, MemoryLimit: "1000g"})
	if err != nil {
		t.Fatal(err)
	}
	lim := cfg.Resolve(got, &Request{TimeoutMs: 1e15})
	if lim.Timeout.Milliseconds() != cfg.Maxima.TimeoutMs || lim.MemoryBytes != 16<<30 || lim.Network != NetworkNone || !lim.ReadonlyRootFS {
		t.Fatalf("resolved limits %+v escape the policy", lim)
	}
}
