package image

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Stage is the kind of step a Progress reports.
type Stage string

// The stages of a build, in the order they happen.
const (
	StagePull        Stage = "pull"        // trying to pull the base image
	StageBase        Stage = "base"        // which base is used
	StageDebootstrap Stage = "debootstrap" // a debootstrap phase ("I: Retrieving …")
	StageImport      Stage = "import"      // importing the root filesystem
	StageBuild       Stage = "build"       // a build step ("Step 3/7 : RUN …")
	StageOutput      Stage = "output"      // one line of a step's output (verbose)
	StageDone        Stage = "done"        // an image was built
	StageUpToDate    Stage = "up to date"  // an image needed no build
	StageWarning     Stage = "warning"     // something went wrong but the build goes on
	StageRemoved     Stage = "removed"     // Remove removed an image
)

// Progress is one step of a build, for a person to read.
type Progress struct {
	Runtime string // "python"; "" for the base image
	Stage   Stage
	Message string
}

// String formats p as one line: "[python] build: Step 3/7 : RUN …".
func (p Progress) String() string {
	who := p.Runtime
	if who == "" {
		who = "base"
	}
	return fmt.Sprintf("[%s] %s: %s", who, p.Stage, p.Message)
}

// LineWriter returns a progress sink printing one line per step to w;
// StageOutput lines (apt's and debootstrap's chatter) only when verbose.
// It is safe for concurrent use.
func LineWriter(w io.Writer, verbose bool) func(Progress) {
	var mu sync.Mutex
	return func(p Progress) {
		if p.Stage == StageOutput && !verbose {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, p.String())
	}
}

// progressFunc returns f, or a sink that discards everything.
func progressFunc(f func(Progress)) func(Progress) {
	if f == nil {
		return func(Progress) {}
	}
	return f
}

// tail keeps the last lines of a process's output, for error messages.
type tail struct {
	lines []string
	max   int
}

func (t *tail) add(line string) {
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *tail) String() string { return strings.Join(t.lines, "\n") }
