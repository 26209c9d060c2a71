// Package pool keeps warm sandboxes, keyed by everything that shapes one,
// so that a run can start in a sandbox made ahead of time.
//
// The pool knows nothing of sandboxes themselves: an Item is anything that
// can be reset and destroyed, and the engine supplies a Factory per key.
// Every item, idle, being made or reset, or lent to a run, holds one slot
// of the engine's concurrency limit (Config.TryAcquire and Release), so a
// pool never makes the process exceed its maximum number of sandboxes; a
// run that takes an item inherits its slot and gives it back through Put.
//
// Strategies: with Secure an item serves one run and is destroyed, and a
// replacement is made in the background; with Fast a returned item is
// reset in the background and serves again (destroyed instead when the
// run says it must not be reused or the reset fails).
package pool
