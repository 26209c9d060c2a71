//go:build linux

package nsinit

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func init() {
	var run func() error
	var name string
	switch mode, _ := syscall.Getenv(EnvMarker); mode {
	case ModeInit:
		run, name = Main, "isol8-init"
	case ModeNursery:
		run, name = Nursery, "isol8-nursery"
	default:
		return
	}
	// A name to tell them apart in ps and top (the program is a memfd).
	setName(name)
	if err := run(); err != nil {
		// The host reads stderr only to explain a failed start.
		fmt.Fprintln(os.Stderr, "isol8-init:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Main builds the sandbox from the messages on the control socket, in
// two steps so that the engine can prepare the cgroup meanwhile: a Config
// (file system, hostname, network), then an OpJoin request whose fds are
// the cgroup files to join (see Config.TaskFDs). It then restricts the
// spawner thread, reports ready, and serves requests until the host
// closes the socket.
func Main() error {
	// The spawner's thread is made while the init waits for its work:
	// nothing in it depends on the sandbox yet.
	s := newServer()
	spawner := s.startSpawner()
	var cfg Config
	if _, err := Recv(ControlFD, &cfg); errors.Is(err, errClosed) {
		return nil // a spare the engine did not need
	} else if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	s.cfg = &cfg
	fail := func(err error) error {
		_ = Send(ControlFD, &Reply{Op: OpFailed, Err: err.Error()})
		return err
	}
	if err := setupRoot(&cfg); err != nil {
		return fail(err)
	}
	if err := setupHost(&cfg); err != nil {
		return fail(err)
	}
	var join Request
	fds, err := Recv(ControlFD, &join)
	if err != nil {
		return fmt.Errorf("read cgroups: %w", err)
	}
	if join.Op != OpJoin || len(fds) != cfg.TaskFDs+btoi(cfg.ProcsFD) {
		closeAll(fds)
		return fail(fmt.Errorf("%q came with %d fds, want %q with %d", join.Op, len(fds), OpJoin, cfg.TaskFDs+btoi(cfg.ProcsFD)))
	}
	if cfg.ProcsFD {
		// Join the sandbox's cgroup whole ("0" is the writer), so that a
		// cgroup-wide kill takes the init with the rest (cgroup v2).
		procs := fds[len(fds)-1]
		fds = fds[:len(fds)-1]
		_, err := syscall.Write(procs, []byte("0"))
		syscall.Close(procs)
		if err != nil {
			closeAll(fds)
			return fail(fmt.Errorf("join cgroup: %w", err))
		}
	}
	spawner <- fds
	if err := <-s.ready; err != nil {
		return fail(err)
	}
	if err := Send(ControlFD, &Reply{Op: OpReady}); err != nil {
		return err
	}
	return s.serve()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
