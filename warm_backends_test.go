package isol8_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// warmBackends are the backends every warm-path test runs against, each
// as a subtest named after it (TestCrossTenant/native/fast).
var warmBackends = []string{"docker", "native"}

// eachBackend runs body once per backend, as parallel subtests.
func eachBackend(t *testing.T, body func(t *testing.T, backend string)) {
	t.Helper()
	for _, backend := range warmBackends {
		t.Run(backend, func(t *testing.T) {
			skipOptedOut(t, backend)
			t.Parallel()
			body(t, backend)
		})
	}
}

// optOut is the variable that, set to 1, skips the tests of backend
// (the same as pipeline_acceptance_test.go's).
func optOut(backend string) string { return "ISOL8_SKIP_" + strings.ToUpper(backend) }

// skipOptedOut skips the test when backend's opt-out variable is set.
func skipOptedOut(t testing.TB, backend string) {
	t.Helper()
	if skip := optOut(backend); os.Getenv(skip) == "1" {
		t.Skipf("%s=1: not testing against %s", skip, backend)
	}
}

// observeBackend opens backend to watch an engine's sandboxes from
// outside it. A backend that cannot run here fails the test: CI must not
// pass by skipping; only its opt-out variable skips it.
func observeBackend(t testing.TB, backend string) sandbox.Backend {
	t.Helper()
	skipOptedOut(t, backend)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := sandbox.Open(ctx, backend, sandbox.Config{Owner: "isol8-test-observer"})
	if err != nil {
		t.Fatalf("the %s backend cannot run here: %v\n(set %s=1 to skip these tests deliberately)", backend, err, optOut(backend))
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// countSandboxes is how many sandboxes carrying owner b lists.
func countSandboxes(t testing.TB, b sandbox.Backend, owner string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := b.List(ctx, map[string]string{sandbox.LabelOwner: owner})
	if err != nil {
		t.Errorf("list %s sandboxes: %v", b.Name(), err)
	}
	return len(list)
}
