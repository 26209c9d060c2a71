// Package packages knows the package ecosystems isol8 installs from: pip
// for python, npm for node, bun and deno, and Debian for bash and for the
// system packages baked into any image.
//
// It checks package names (Parse), finds the registries the machine is
// configured for (NPMRegistry, PipIndexURL) and makes the installers'
// command lines (RuntimeCommand for an install inside a sandbox at run
// time, BuildScript for one baked into an image). A name is never pasted
// into a shell string: it is checked against a strict per-ecosystem
// syntax (no options, no URLs, no paths unless allowed) and then passed as
// one argv element after "--".
package packages
