package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// LoopbackListener is implemented by a Sandbox that can open a TCP listener
// on the sandbox's own loopback interface and hand it to the engine. It is
// how NetworkFiltered reaches the egress proxy: the sandbox keeps no
// network interface but loopback, and the engine serves the proxy, from
// its own process and network, on a socket that lives in the sandbox's
// network namespace. Nothing of the proxy runs inside the sandbox, user
// code gets no capability, and since the listener exists before any user
// code runs, that code can neither kill it nor bind its address first.
//
// The engine finds it with a type assertion, as io.WriterTo is found:
//
//	ll, ok := sb.(sandbox.LoopbackListener)
//
// A backend that cannot do it (a remote engine, a missing privilege)
// returns an error; the engine then refuses the filtered run rather than
// fall back to a looser network.
type LoopbackListener interface {
	// ListenLoopback listens on addr, a TCP address on a loopback IP
	// ("127.0.0.1:3128"), inside the sandbox. Closing the listener frees
	// the address; the sandbox must be running.
	ListenLoopback(ctx context.Context, addr string) (net.Listener, error)
}

// CheckLoopbackAddr checks that addr is an IPv4 or IPv6 loopback address
// with a port, as ListenLoopback takes it.
func CheckLoopbackAddr(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %v", addr, err)
	}
	if !ap.Addr().IsLoopback() || ap.Port() == 0 {
		return fmt.Errorf("listen address %q: not a loopback address with a port", addr)
	}
	return nil
}

// ListenInNetNS listens on the TCP address addr inside the network
// namespace that nsFD refers to (an open /proc/PID/ns/net, or a pidfd on
// Linux 5.8 and later). It is the mechanism behind ListenLoopback for
// backends whose engine may enter the sandbox's namespace (root, or
// CAP_SYS_ADMIN over it).
//
// The socket is created by a goroutine locked to its OS thread, which
// enters the namespace with setns(2), listens, and returns to the
// engine's namespace. A socket belongs to the namespace it was created in
// for life, so it keeps accepting there from any thread. Should the
// return fail, the thread is never unlocked, and the Go runtime ends it
// with its goroutine rather than reuse a thread in the wrong namespace.
// The listener holds the namespace alive until it is closed.
func ListenInNetNS(nsFD int, addr string) (net.Listener, error) {
	if err := CheckLoopbackAddr(addr); err != nil {
		return nil, err
	}
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		l, restored, err := listenInNetNS(nsFD, addr)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

// listenInNetNS does the work of ListenInNetNS on a locked thread. It
// reports whether the thread is back in its own namespace.
func listenInNetNS(nsFD int, addr string) (l net.Listener, restored bool, err error) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, true, fmt.Errorf("listen in sandbox: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
		if errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w (entering a sandbox's network namespace needs root or CAP_SYS_ADMIN)", err)
		}
		return nil, true, fmt.Errorf("listen in sandbox: setns: %w", err)
	}
	network := "tcp4"
	if ap, _ := netip.ParseAddrPort(addr); ap.Addr().Is6() {
		network = "tcp6"
	}
	l, err = net.Listen(network, addr)
	if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
		if l != nil {
			l.Close()
		}
		return nil, false, fmt.Errorf("listen in sandbox: returning to the engine's network namespace: %w", rerr)
	}
	if err != nil {
		return nil, true, fmt.Errorf("listen in sandbox: %w", err)
	}
	return l, true, nil
}
