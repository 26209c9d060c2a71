package egress

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener admits at most cap(sem) connections at once: Accept waits
// for a slot before it accepts, so extra clients queue in the kernel's
// backlog rather than in the proxy's memory.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done <-chan struct{}
	p    *Proxy
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &countingConn{Conn: c, p: l.p, release: func() { <-l.sem }}, nil
}

// countingConn is a sandbox-side connection. It counts bytes for the run's
// resource usage (read from the sandbox = out, written to it = in) and
// gives its slot back once, when closed.
type countingConn struct {
	net.Conn
	p       *Proxy
	release func()
	once    sync.Once
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.p.bytesOut.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.p.bytesIn.Add(int64(n))
	return n, err
}

func (c *countingConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection when the transport can (TCP and
// Unix sockets can), so that a tunnel passes an EOF on.
func (c *countingConn) CloseWrite() error {
	return closeWrite(c.Conn)
}

type closeWriter interface{ CloseWrite() error }

// closeWrite half-closes c when it can, and closes it when it cannot.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Stats are the bytes a proxy moved for its sandbox.
type Stats struct {
	BytesIn  int64 // sent to the sandbox (resourceUsage.networkBytesIn)
	BytesOut int64 // received from the sandbox (resourceUsage.networkBytesOut)
}

// byteCounters is embedded in Proxy.
type byteCounters struct {
	bytesIn, bytesOut atomic.Int64
}
