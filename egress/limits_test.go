package egress

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// openTunnel CONNECTs to allowed.test:pt and returns the established tunnel.
func openTunnel(t *testing.T, addr string, pt uint16) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n", pt, pt)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("CONNECT answer %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the empty line
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Time{})
	return c, br
}

// echo writes msg into the tunnel and reads it back.
func echo(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q: got %q, %v", msg, buf, err)
	}
}

// waitClosed fails unless c is closed by the other side within d.
func waitClosed(t *testing.T, br *bufio.Reader, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	if err == nil {
		t.Fatal("read data, want the tunnel closed")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("tunnel still open after %v", d)
	}
}

func echoPolicy() Policy {
	return Policy{Allow: []string{`allowed\.test`}, AllowPrivate: loopback1, Resolver: standIns("allowed.test")}
}

func TestTunnelEndsWithContext(t *testing.T) {
	pt, stop := echoServer(t)
	defer stop()
	m, _ := Compile(echoPolicy())
	logs := &LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := New(ctx, Config{Matcher: m, Ports: []uint16{pt}, OnLog: logs.Add})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- p.Serve(l) }()

	c, br := openTunnel(t, l.Addr().String(), pt)
	echo(t, c, br, "ping")
	cancel() // the sandbox ends
	waitClosed(t, br, c, 5*time.Second)
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after the context ended", err)
	}
	p.Close() // waits for the tunnel's log
	if got, _ := logs.Logs(); len(got) != 1 || got[0].Method != "CONNECT" || got[0].Action != ActionAllow {
		t.Errorf("logs = %+v", got)
	}
}

func TestTunnelIdleTimeout(t *testing.T) {
	pt, stop := echoServer(t)
	defer stop()
	h := startProxy(t, echoPolicy(), Config{IdleTimeout: 300 * time.Millisecond}, pt)
	c, br := openTunnel(t, h.addr, pt)
	// Traffic keeps the tunnel alive past the idle timeout.
	for range 4 {
		echo(t, c, br, "x")
		time.Sleep(150 * time.Millisecond)
	}
	waitClosed(t, br, c, 3*time.Second)
}

func TestHalfClose(t *testing.T) {
	pt, stop := echoServer(t)
	defer stop()
	h := startProxy(t, echoPolicy(), Config{}, pt)
	c, br := openTunnel(t, h.addr, pt)
	io.WriteString(c, "last words")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(br)
	if err != nil || string(got) != "last words" {
		t.Errorf("after half-close read %q, %v", got, err)
	}
}

func TestHeaderLimit(t *testing.T) {
	h := startProxy(t, echoPolicy(), Config{MaxHeaderBytes: 1 << 10}, 80)
	big := strings.Repeat("a", 16<<10)
	resp, _, c, _ := h.raw(t, "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nX-Big: "+big+"\r\n\r\n")
	c.Close()
	if resp.StatusCode != 431 {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

func TestReadHeaderTimeout(t *testing.T) {
	h := startProxy(t, echoPolicy(), Config{ReadHeaderTimeout: 200 * time.Millisecond}, 80)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET http://allowed.test/ HTTP/1.1\r\n") // and never finish
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("connection held for %v", d)
	}
}

func TestMaxConns(t *testing.T) {
	pt, stop := echoServer(t)
	defer stop()
	h := startProxy(t, echoPolicy(), Config{MaxConns: 1}, pt)
	first, br := openTunnel(t, h.addr, pt)
	echo(t, first, br, "hi")

	second, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	fmt.Fprintf(second, "CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\n", pt)
	sbr := bufio.NewReader(second)
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := sbr.ReadByte(); err == nil {
		t.Fatal("second connection served while the first holds the only slot")
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := sbr.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("second connection after the first closed: %q, %v", line, err)
	}
}

func TestServeAfterClose(t *testing.T) {
	h := startProxy(t, echoPolicy(), Config{}, 80)
	h.p.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := h.p.Serve(l); err != nil {
		t.Errorf("Serve after Close = %v", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("listener still open after Serve returned")
	}
}
