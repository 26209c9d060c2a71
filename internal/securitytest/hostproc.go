package securitytest

import (
	"os"
	"slices"
	"strconv"
	"strings"
)

// hostArgv returns the host's processes whose argv contains s.
func hostArgv(s string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if strings.TrimLeft(e.Name(), "0123456789") != "" {
			continue
		}
		if argv, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(argv), s) {
			found = append(found, "argv of pid "+e.Name())
		}
	}
	return found
}

// hostProcs returns the host's processes whose argv or environment contain
// marker. It sees sandboxed processes only when the test shares the host's
// pid namespace (see hostVisible).
func hostProcs(marker string) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := strconv.Itoa(os.Getpid())
	var found []string
	for _, e := range ents {
		pid := e.Name()
		if pid == self || strings.TrimLeft(pid, "0123456789") != "" {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			data, err := os.ReadFile("/proc/" + pid + "/" + f)
			if err == nil && strings.Contains(string(data), marker) {
				argv, _ := os.ReadFile("/proc/" + pid + "/cmdline")
				found = append(found, pid+":"+strings.ReplaceAll(strings.TrimRight(string(argv), "\x00"), "\x00", " "))
				break
			}
		}
	}
	slices.Sort(found)
	return found
}
