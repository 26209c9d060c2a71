package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/isol8/isol8"
)

// Exit codes of isol8 itself. "isol8 run" otherwise exits with the
// program's own code.
const (
	exitOK          = 0
	exitError       = 1   // isol8 or its backend failed
	exitUsage       = 2   // bad command line, flag value or config
	exitInterrupted = 130 // stopped by SIGINT or SIGTERM
	exitBrokenPipe  = 141 // the output's reader went away (128+SIGPIPE)
)

// usageError is a mistake on the command line; it exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitStatus ends a command with a code and no message of its own (the
// program's exit code, or a refusal already explained on stderr).
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// report prints err (if any) to stderr and returns the exit code for it.
func report(ctx context.Context, stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var st *exitStatus
	if errors.As(err, &st) {
		return st.code
	}
	code := exitCodeOf(err)
	if code == exitInterrupted && ctx.Err() != nil {
		fmt.Fprintln(stderr, "isol8: interrupted; the sandbox was removed")
		return code
	}
	fmt.Fprintln(stderr, "isol8: "+message(err))
	return code
}

// exitCodeOf maps an error to isol8's exit codes.
func exitCodeOf(err error) int {
	var ue *usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, isol8.ErrInvalidArgument), errors.Is(err, isol8.ErrPermission):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	// Cobra's own argument errors ("unknown command", "accepts 1 arg(s)").
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "accepts ", "requires at least", "invalid argument"} {
		if strings.HasPrefix(msg, p) {
			return exitUsage
		}
	}
	return exitError
}

// classWords are the error-class prefixes the library wraps messages in
// ("unavailable: ", "invalid argument: "); they say nothing to a user.
var classWords = regexp.MustCompile(`(^|: )(sandbox backend unavailable|unavailable|invalid argument|permission denied): `)

// message is err's text without the class words.
func message(err error) string {
	msg := err.Error()
	for {
		next := classWords.ReplaceAllString(msg, "$1")
		if next == msg {
			return msg
		}
		msg = next
	}
}
