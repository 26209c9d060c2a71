package image

import (
	"reflect"
	"testing"
)

func TestDebootstrapPhases(t *testing.T) {
	for line, perPackage := range map[string]bool{
		"I: Retrieving libc6 2.36-9+deb12u14":    true,
		"I: Validating adduser 3.134":            true,
		"I: Extracting libc6...":                 true,
		"I: Retrieving InRelease ":               false,
		"I: Unpacking required packages...":      false,
		"I: Configuring the base system...":      false,
		"I: Base system installed successfully.": false,
		"I: Checking Release signature":          false,
	} {
		if got := phase.MatchString(line); got != perPackage {
			t.Errorf("%q: per-package = %v, want %v", line, got, perPackage)
		}
	}
}

func TestLineSplitter(t *testing.T) {
	var lines []string
	l := &lineSplitter{each: func(s string) { lines = append(lines, s) }}
	for _, chunk := range []string{"Step 1/2 : FROM x\n", " ---> abc\n\nStep 2", "/2 : RUN y\r\n", "tail"} {
		l.write(chunk)
	}
	l.flush()
	want := []string{"Step 1/2 : FROM x", " ---> abc", "Step 2/2 : RUN y", "tail"}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("lines = %q, want %q", lines, want)
	}
}

func TestMountsUnder(t *testing.T) {
	// Nothing is mounted under a fresh folder; the machine's own mounts
	// (/proc is one) are never listed.
	m, err := mountsUnder(t.TempDir())
	if err != nil || len(m) != 0 {
		t.Errorf("mountsUnder = %q, %v", m, err)
	}
	if m, _ := mountsUnder(""); len(m) == 0 {
		t.Error("mountsUnder(\"\") found no mount at all")
	}
}
