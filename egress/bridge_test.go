package egress

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// shortDir is a temporary directory with a path short enough for a Unix
// socket (about 100 bytes at most).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "egr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestBridgeForwardsToUnixSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "s")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Bridge(ctx, tl, sock) }()

	c, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "through the bridge")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "through the bridge" {
		t.Fatalf("got %q, %v", got, err)
	}

	// A connection still open when the context ends is closed.
	open, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	io.WriteString(open, "x")
	buf := make([]byte, 1)
	open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(open, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Bridge = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Bridge did not return after its context ended")
	}
	if _, err := open.Read(buf); err == nil {
		t.Error("bridged connection still open after Bridge returned")
	}
}

// TestBridgeEndToEnd runs the whole filtered path: a client that knows
// only HTTP_PROXY=http://127.0.0.1:PORT, the bridge, the Unix socket, the
// proxy, the upstream.
func TestBridgeEndToEnd(t *testing.T) {
	srv, _ := upstream(t)
	pt := port(t, srv)
	m, err := Compile(Policy{Allow: []string{`allowed\.test`}, AllowPrivate: loopback1, Resolver: standIns("allowed.test")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(t.Context(), Config{Matcher: m, Ports: []uint16{pt}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sock := filepath.Join(shortDir(t), "egress.sock")
	ul, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ul)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go Bridge(t.Context(), tl, sock)

	proxyURL := &url.URL{Scheme: "http", Host: tl.Addr().String()}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://allowed.test:%d/via-bridge", pt))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != fmt.Sprintf("hello from allowed.test:%d/via-bridge", pt) {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	resp, err = client.Get(fmt.Sprintf("http://denied.test:%d/", pt))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("denied host through the bridge: %d", resp.StatusCode)
	}
}

func TestListenUnix(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "egress.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %v", fi.Mode())
	}
	// A stale socket (left by a crash: the listener forgets to unlink)
	// is replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := ListenUnix(sock)
	if err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	}
	l2.Close()

	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep me"), 0o600)
	if _, err := ListenUnix(file); err == nil {
		t.Error("ListenUnix over a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("regular file was touched")
	}
}
