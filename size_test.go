package isol8

import "testing"

func TestParseSize(t *testing.T) {
	good := map[string]int64{"512m": 512 << 20, "1g": 1 << 30, "1G": 1 << 30, "64kb": 64 << 10, "100": 100, "1.5g": 3 << 29, "2MB": 2 << 20}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-1m", "1x", "1e30g", "NaN"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
	if s := FormatSize(512 << 20); s != "512m" {
		t.Errorf("FormatSize = %q", s)
	}
}
