package docker_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// probe is run in the sandbox: it connects to the listener the engine
// made, reads its greeting, tries to take the listener's address, and
// lists the interfaces.
const probe = `
import os, socket, sys
def connect():
    try:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
        return "read:" + s.recv(100).decode().strip()
    except OSError as e:
        return "err:" + type(e).__name__
def bind(host):
    s = socket.socket()
    try:
        s.bind((host, 3128)); s.listen()
        return "bound"
    except OSError as e:
        return "err:" + type(e).__name__
print("connect", connect())
if sys.argv[1] == "open":
    print("bind-lo", bind("127.0.0.1"))
    print("bind-any", bind("0.0.0.0"))
print("ifaces", ",".join(sorted(os.listdir("/sys/class/net"))))
`

// ListenLoopback puts a listener of the engine inside a filtered
// sandbox: the sandbox reaches it on its loopback, cannot take its port,
// has no interface but lo, and the host's own loopback does not lead to it.
func TestListenLoopback(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := b.Create(ctx, sandbox.Spec{Image: testImage(t), Network: sandbox.NetworkFiltered,
		MemoryBytes: 256 << 20, Pids: 64, ReadonlyRootFS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Destroy(context.Background())
	ll, ok := sb.(sandbox.LoopbackListener)
	if !ok {
		t.Fatal("the docker sandbox is not a sandbox.LoopbackListener")
	}
	if _, err := ll.ListenLoopback(ctx, "0.0.0.0:3128"); err == nil {
		t.Fatal("ListenLoopback accepted a non-loopback address")
	}
	l, err := ll.ListenLoopback(ctx, "127.0.0.1:3128")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Write([]byte("hello from the engine\n"))
			c.Close()
		}
	}()

	// The host's own 127.0.0.1:3128 is another socket, or none.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:3128", time.Second); err == nil {
		c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Fatalf("a connection from the host's loopback reached the sandbox's listener (%d)", n)
	}

	if err := sb.WriteFiles(ctx, []sandbox.File{{Path: "/sandbox/probe.py", Data: []byte(probe)}}); err != nil {
		t.Fatal(err)
	}
	run := func(arg string) string {
		var out, errb bytes.Buffer
		st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"python3", "/sandbox/probe.py", arg}, Stdout: &out, Stderr: &errb})
		if err != nil || st.Code != 0 {
			t.Fatalf("probe: %v %+v\n%s%s", err, st, out.String(), errb.String())
		}
		return out.String()
	}
	got := run("open")
	for _, want := range []string{
		"connect read:hello from the engine",
		"bind-lo err:OSError", // EADDRINUSE: the engine holds the port
		"bind-any err:OSError",
		"ifaces lo\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("sandbox output lacks %q:\n%s", want, got)
		}
	}
	if accepted.Load() != 1 {
		t.Errorf("accepted %d connections, want 1", accepted.Load())
	}

	// Closed, the listener is gone from the sandbox too.
	l.Close()
	<-served
	if got := run("closed"); !strings.Contains(got, "connect err:ConnectionRefusedError") {
		t.Errorf("after Close, the sandbox still reaches something:\n%s", got)
	}

	if err := sb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ll.ListenLoopback(ctx, "127.0.0.1:3128"); err == nil {
		t.Fatal("ListenLoopback succeeded on a destroyed sandbox")
	}
}
