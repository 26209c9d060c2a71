package egress

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// serveConnect opens a tunnel for "CONNECT host:port" when the policy
// allows it. The tunnel carries bytes only (HTTPS stays encrypted) and is
// logged when it closes.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lg := Log{Timestamp: start, Method: http.MethodConnect}
	refuse := func(code int, body, why string) {
		lg.Action, lg.Reason, lg.DurationMs = ActionBlock, why, sinceMs(start)
		w.Header().Set("Connection", "close")
		http.Error(w, body, code)
		p.log(lg)
	}
	authority := r.URL.Host
	host, port, err := splitHostPort(authority)
	if err != nil {
		lg.Host = logHost(authority)
		refuse(http.StatusBadRequest, "egress proxy: CONNECT needs host:port", err.Error())
		return
	}
	lg.Host = logHost(host)
	t, err := p.check(r.Context(), host, port)
	if err == nil {
		lg.Host = t.Host
	}
	var upstream net.Conn
	if err == nil {
		upstream, err = p.dial(r.Context(), t, port)
	}
	if err != nil {
		if errors.Is(err, ErrBlocked) {
			refuse(status(err), blockBody(err), reason(err))
			return
		}
		lg.Action, lg.Reason, lg.DurationMs = ActionAllow, reason(err), sinceMs(start)
		w.Header().Set("Connection", "close")
		http.Error(w, "egress proxy: upstream unreachable", http.StatusBadGateway)
		p.log(lg)
		return
	}

	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		lg.Action, lg.Reason, lg.DurationMs = ActionAllow, "hijack: "+err.Error(), sinceMs(start)
		http.Error(w, "egress proxy: cannot tunnel", http.StatusInternalServerError)
		p.log(lg)
		return
	}
	if !p.track(client, upstream) {
		lg.Action, lg.Reason, lg.DurationMs = ActionAllow, "proxy closed", sinceMs(start)
		p.log(lg)
		return
	}
	defer p.untrack(client, upstream)
	client.SetDeadline(time.Time{}) // the server's header deadline no longer applies
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		lg.Action, lg.Reason, lg.DurationMs = ActionAllow, "client gone", sinceMs(start)
		p.log(lg)
		return
	}
	// brw.Reader may already hold bytes the client sent after the CONNECT
	// header (an eager TLS ClientHello); it reads through to client.
	splice(client, brw.Reader, upstream, p.cfg.IdleTimeout)
	lg.Action, lg.DurationMs = ActionAllow, sinceMs(start)
	p.log(lg)
}

// track registers a tunnel's connections so that Close can end them; it
// closes them and returns false when the proxy is already closing.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.tunnels[c] = struct{}{}
	}
	return true
}

// untrack forgets and closes a tunnel's connections.
func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	for _, c := range conns {
		delete(p.tunnels, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// splice copies both ways between the sandbox (client, read through
// clientR) and the upstream until both directions end. An EOF is passed on
// as a half-close; an error or idle traffic (nothing either way for idle)
// ends both.
func splice(client net.Conn, clientR io.Reader, upstream net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var once sync.Once
	abort := func() {
		once.Do(func() {
			client.Close()
			upstream.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if pipe(upstream, clientR, client, &last, idle) != nil {
			abort()
			return
		}
		closeWrite(upstream)
	}()
	go func() {
		defer wg.Done()
		if pipe(client, upstream, upstream, &last, idle) != nil {
			abort()
			return
		}
		closeWrite(client)
	}()
	wg.Wait()
}

// pipe copies src to dst until EOF (nil) or an error. srcConn is the
// connection under src, whose read deadline implements the idle timeout:
// a read that times out while the other direction was recently active
// simply waits again.
func pipe(dst io.Writer, src io.Reader, srcConn net.Conn, last *atomic.Int64, idle time.Duration) error {
	buf := make([]byte, 32<<10)
	for {
		srcConn.SetReadDeadline(time.Now().Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case isTimeout(err) && time.Since(time.Unix(0, last.Load())) < idle:
		default:
			return err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
