// Package image builds the images isol8 runs code in: isol8:python,
// isol8:node and isol8:bash.
//
// Each runtime image is built with the engine's builder from a Dockerfile
// made here, on a Debian base: the configured base image when the engine
// has it or can pull it, else a minimal root filesystem made by debootstrap
// from the machine's apt archive and imported as isol8-base:<hash>. Every
// image carries the labels dev.isol8.managed=true, dev.isol8.content-hash
// (a hash of everything that shaped it) and, for runtime images,
// dev.isol8.runtime. An image whose hash label matches is not rebuilt, so a
// second setup only reads labels; the debootstrapped base has its own hash,
// so changing a runtime's packages does not bootstrap again.
package image
