// Package warmbench holds the native backend's warm-path benchmark, which
// runs through the whole engine (its pool and interpreter agents). It is
// apart from package native's tests so that those build and run without
// the engine.
package warmbench
