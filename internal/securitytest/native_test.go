package securitytest_test

import (
	"testing"

	"github.com/isol8/isol8/internal/securitytest"
	_ "github.com/isol8/isol8/sandbox/native"
)

func TestSecurityNative(t *testing.T) { securitytest.Run(t, "native") }
