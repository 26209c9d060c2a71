// Package securitytest is isol8's security suite: every case of
// spec/security.md that applies to the engine, written as a real attack
// (no mocks) and run against a real backend.
//
// The cases are data (Cases); Run executes them over one backend. A
// backend's test file is three lines:
//
//	func TestSecurity(t *testing.T) { securitytest.Run(t, "docker") }
//
// with the backend imported for its registration. Every case runs under a
// wall-time budget and an owner label of its own; when it ends, the
// baseline must hold: no sandbox of that owner is left, and a fresh job
// runs normally.
//
// Environment: ISOL8_TEST_IMAGE overrides the image of every case;
// ISOL8_SKIP_DOCKER=1 skips the docker backend (and only that opts out:
// an unreachable engine is a failure); ISOL8_SECURITY_PARALLEL sets how
// many cases run at once (default 3).
package securitytest
