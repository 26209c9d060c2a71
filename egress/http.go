package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"time"
)

// forward is what a plain-HTTP request carries in its context from the
// policy check to the transport's dial: the checked target, and a place
// for the upstream error.
type forward struct {
	p      *Proxy
	target Target
	port   uint16
	err    error
}

type forwardKey struct{}

// serveHTTP forwards a plain-HTTP request (absolute-form URI) whose host
// passes the policy. Hop-by-hop headers and Proxy-Authorization are
// dropped, the response (a redirect too) is passed back as it is.
func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lg := Log{Timestamp: start, Method: r.Method, Path: logPath(r.URL.Path)}
	refuse := func(code int, body string, why string) {
		lg.Action, lg.Reason, lg.DurationMs = ActionBlock, why, sinceMs(start)
		w.Header().Set("Connection", "close")
		http.Error(w, body, code)
		p.log(lg)
	}
	if !r.URL.IsAbs() || r.URL.Host == "" {
		lg.Host = logHost(r.Host)
		refuse(http.StatusBadRequest, "egress proxy: send an absolute http:// URL, or CONNECT", "not a proxy request (origin-form URI)")
		return
	}
	lg.Host = logHost(r.URL.Hostname())
	if r.URL.Scheme != "http" {
		refuse(http.StatusBadRequest, "egress proxy: only http:// is forwarded; use CONNECT for https", "scheme "+quoteHost(r.URL.Scheme)+" is not forwarded")
		return
	}
	port := uint16(80)
	if s := r.URL.Port(); s != "" {
		var err error
		if port, err = parsePort(s); err != nil {
			refuse(http.StatusBadRequest, "egress proxy: bad port", err.Error())
			return
		}
	}
	t, err := p.check(r.Context(), r.URL.Hostname(), port)
	if err != nil {
		if !errors.Is(err, ErrBlocked) {
			// The policy allowed the host; its lookup failed.
			lg.Host = t.Host
			lg.Action, lg.Reason, lg.DurationMs = ActionAllow, reason(err), sinceMs(start)
			http.Error(w, "egress proxy: upstream lookup failed", http.StatusBadGateway)
			p.log(lg)
			return
		}
		refuse(status(err), blockBody(err), reason(err))
		return
	}
	lg.Host = t.Host
	f := &forward{p: p, target: t, port: port}
	defer func() {
		// ReverseProxy aborts a response that fails half-way with a
		// panic (http.ErrAbortHandler); the request is logged anyway.
		v := recover()
		lg.Action, lg.DurationMs = ActionAllow, sinceMs(start)
		switch {
		case f.err != nil:
			lg.Reason = "upstream: " + f.err.Error()
		case v != nil:
			lg.Reason = "response aborted"
		}
		p.log(lg)
		if v != nil {
			panic(v)
		}
	}()
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, f)))
}

// rewrite points the outgoing request at the checked host. The Host
// header is the URL's, whatever the sandbox sent (RFC 9112 §3.2.2), so a
// request allowed for one host cannot be routed to another by the header.
// ReverseProxy has already removed hop-by-hop headers (Proxy-Authorization
// among them) and any X-Forwarded-* sent by the sandbox.
func rewrite(pr *httputil.ProxyRequest) {
	f := pr.In.Context().Value(forwardKey{}).(*forward)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = hostPort(f.target.Host, f.port)
	pr.Out.Host = pr.Out.URL.Host
	if f.port == 80 {
		pr.Out.Host = f.target.Host
		if a, err := netip.ParseAddr(f.target.Host); err == nil && a.Is6() {
			pr.Out.Host = "[" + f.target.Host + "]"
		}
	}
	pr.Out.Header.Del("Proxy-Authorization")
	pr.Out.Header.Del("Proxy-Connection")
}

// upstreamError answers 502 when the upstream cannot be reached or fails,
// and keeps the error for the log.
func upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if f, ok := r.Context().Value(forwardKey{}).(*forward); ok {
		f.err = err
	}
	http.Error(w, "egress proxy: upstream error", http.StatusBadGateway)
}

// transportDial is the forwarding transport's dialer: it connects to the
// addresses checked for this request and refuses a dial with none, so the
// transport can never resolve a name by itself.
func (p *Proxy) transportDial(ctx context.Context, _, _ string) (net.Conn, error) {
	f, ok := ctx.Value(forwardKey{}).(*forward)
	if !ok || f.p != p {
		return nil, errors.New("egress: dial without a checked target")
	}
	return p.dial(ctx, f.target, f.port)
}
