package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Bridge forwards every connection accepted on l (in a sandbox, a TCP
// listener on 127.0.0.1:PORT, the address in HTTP_PROXY) to the proxy's
// Unix socket at unixPath (bind-mounted into the sandbox), byte for byte,
// until ctx ends. When it returns, l and every bridged connection are
// closed.
// It returns nil when ctx ends, else the error that stopped Accept.
//
// The bridge is a convenience for programs that only speak TCP to a
// proxy, not a security boundary: it runs as the sandbox user, and code in
// the sandbox may as well talk to the socket itself. Everything is
// enforced by the Proxy on the other side of the socket.
func Bridge(ctx context.Context, l net.Listener, unixPath string) error {
	var (
		mu     sync.Mutex
		conns  = make(map[net.Conn]struct{})
		wg     sync.WaitGroup
		closed bool
	)
	track := func(cs ...net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return false
		}
		for _, c := range cs {
			conns[c] = struct{}{}
		}
		return true
	}
	untrack := func(cs ...net.Conn) {
		mu.Lock()
		for _, c := range cs {
			delete(conns, c)
		}
		mu.Unlock()
		for _, c := range cs {
			c.Close()
		}
	}
	var once sync.Once
	shutdown := func() {
		once.Do(func() {
			mu.Lock()
			closed = true
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
			l.Close()
		})
	}
	stop := context.AfterFunc(ctx, shutdown)
	defer stop()

	var d net.Dialer
	var err error
	for {
		var c net.Conn
		c, err = l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
			} else if isTemporary(err) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := d.DialContext(ctx, "unix", unixPath)
			if err != nil {
				c.Close()
				return
			}
			if !track(c, u) {
				c.Close()
				u.Close()
				return
			}
			defer untrack(c, u)
			bridgeCopy(c, u)
		}()
	}
	shutdown()
	wg.Wait()
	return err
}

// bridgeCopy copies both ways, passing each EOF on as a half-close, until
// both directions are done or one fails.
func bridgeCopy(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			a.Close()
			b.Close()
			return
		}
		closeWrite(dst)
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// isTemporary reports an Accept error worth retrying, such as EMFILE.
func isTemporary(err error) bool {
	var ne interface{ Temporary() bool }
	return !errors.Is(err, net.ErrClosed) && errors.As(err, &ne) && ne.Temporary()
}
