//go:build linux

package nsinit

const sysSeccomp = 277
