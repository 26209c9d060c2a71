package isol8

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize parses a size such as "512m", "1g", "64KiB"-less forms like
// "64k" or "100" (bytes). Units are 1024-based, an optional trailing "b" is
// allowed, case is ignored.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	t = strings.TrimSuffix(t, "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v != v {
		return 0, fmt.Errorf("%q is not a size (use e.g. 512m, 1g, or a number of bytes)", s)
	}
	f := v * float64(mult)
	if f > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(f), nil
}

// FormatSize renders bytes in the shortest exact unit ("512m").
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}
