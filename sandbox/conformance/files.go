package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

func testWriteFiles(t *testing.T, sb sandbox.Sandbox) {
	binary := make([]byte, 0, 3*256)
	for i := range 3 * 256 {
		binary = append(binary, byte(i))
	}
	files := []sandbox.File{
		{Path: "/sandbox/wf/a/b/c/deep.txt", Data: []byte("deep\n")},
		{Path: "/sandbox/wf/bin.dat", Data: binary},
		{Path: "/sandbox/wf/run.sh", Data: []byte("#!/bin/bash\necho ran\n"), Mode: 0o755},
		{Path: "/sandbox/wf/empty", Data: nil},
		{Path: "/sandbox/wf/$(touch /tmp/pwned).py", Data: []byte("x")},
		{Path: "/tmp/wf/t.txt", Data: []byte("in tmp")},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sb.WriteFiles(ctx, files); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	out := py(t, sb, `import hashlib, os, sys
for p in sys.argv[1:]:
    st = os.lstat(p)
    kind = "dir" if os.path.isdir(p) else "file"
    digest = hashlib.sha256(open(p, "rb").read()).hexdigest() if kind == "file" else "-"
    print(p + "\t", st.st_uid, st.st_gid, oct(st.st_mode & 0o7777), kind, digest)
print("pwned", os.path.exists("/tmp/pwned"))`,
		"/sandbox/wf", "/sandbox/wf/a", "/sandbox/wf/a/b", "/sandbox/wf/a/b/c",
		files[0].Path, files[1].Path, files[2].Path, files[3].Path, files[4].Path, files[5].Path)
	got := fields(out)
	for _, d := range []string{"/sandbox/wf", "/sandbox/wf/a", "/sandbox/wf/a/b", "/sandbox/wf/a/b/c"} {
		if f := strings.Fields(got[d]); len(f) < 4 || f[0] != "1000" || f[1] != "1000" || f[3] != "dir" {
			t.Errorf("parent %s: %q, want a folder owned by 1000:1000", d, got[d])
		}
	}
	for _, f := range files {
		mode := "0o644"
		if f.Mode != 0 {
			mode = "0o755"
		}
		sum := sha256.Sum256(f.Data)
		want := strings.Join([]string{"1000", "1000", mode, "file", hex.EncodeToString(sum[:])}, " ")
		if got[f.Path] != want {
			t.Errorf("%s: %q, want %q", f.Path, got[f.Path], want)
		}
	}
	if got["pwned"] != "False" {
		t.Error("a file name was run through a shell")
	}
	if r := run(t, sb, sandbox.ExecSpec{Argv: []string{"/sandbox/wf/run.sh"}}); r.stdout != "ran\n" {
		t.Errorf("mode 0755 script: exit %d, %q %q", r.status.Code, r.stdout, r.stderr)
	}
	data, err := sb.ReadFile(ctx, "/sandbox/wf/bin.dat", 1<<20)
	if err != nil || !bytes.Equal(data, binary) {
		t.Errorf("ReadFile of the binary file: %v, %d bytes", err, len(data))
	}
	if data, err := sb.ReadFile(ctx, "/tmp/wf/t.txt", 100); string(data) != "in tmp" {
		t.Errorf("ReadFile in /tmp: %q, %v", data, err)
	}
	// Writing again replaces the content.
	if err := sb.WriteFiles(ctx, []sandbox.File{{Path: "/sandbox/wf/empty", Data: []byte("now full")}}); err != nil {
		t.Fatal(err)
	}
	if data, err := sb.ReadFile(ctx, "/sandbox/wf/empty", 100); string(data) != "now full" {
		t.Errorf("rewritten file: %q, %v", data, err)
	}
}

// testWriteFilesLinks plants links in the sandbox and writes through their
// names: nothing may land where they point.
func testWriteFilesLinks(t *testing.T, sb sandbox.Sandbox) {
	sh(t, sb, `set -e
mkdir -p /tmp/wl-target /sandbox/wl
echo original > /tmp/wl-target/file
ln -s /tmp/wl-target /sandbox/wl/dirlink
ln -s /tmp/wl-target/file /sandbox/wl/filelink
ln -s /etc /sandbox/wl/etclink`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []string{"/sandbox/wl/dirlink/new", "/sandbox/wl/filelink", "/sandbox/wl/etclink/passwd", "/sandbox/wl/etclink/isol8"} {
		err := sb.WriteFiles(ctx, []sandbox.File{{Path: p, Data: []byte("planted\n")}})
		t.Logf("WriteFiles %s: %v", p, err)
	}
	r := sh(t, sb, `cat /tmp/wl-target/file; ls /tmp/wl-target; grep -c planted /etc/passwd; ls /etc/isol8 2>&1`)
	if strings.Contains(r.stdout, "planted") || strings.Contains(r.stdout, "new") ||
		!strings.HasPrefix(r.stdout, "original\nfile\n0\n") {
		t.Errorf("a write followed a planted link:\n%s", r.stdout)
	}
}

func testReadFile(t *testing.T, sb sandbox.Sandbox) {
	sh(t, sb, `set -e
mkdir -p /sandbox/rf/dir
printf 'hello' > /sandbox/rf/regular
head -c 2048 /dev/zero > /sandbox/rf/big
ln -s /etc/passwd /sandbox/rf/passwd-link
ln -s /etc /sandbox/rf/etc-link
ln -s /dev/zero /sandbox/rf/zero-link
ln -s regular /sandbox/rf/relative-link
mkfifo /sandbox/rf/fifo
python3 -c 'import os; f = open("/sandbox/rf/sparse", "wb"); f.truncate(1 << 40)'`)
	passwd := "root:x:0:0"
	cases := []struct {
		path    string
		max     int64
		want    string
		wantErr error // nil: success; errAny: any error
	}{
		{"/sandbox/rf/regular", 100, "hello", nil},
		{"/sandbox/rf/regular", 5, "hello", nil},
		{"/sandbox/rf/regular", 4, "", sandbox.ErrTooLarge},
		{"/sandbox/rf/big", 1024, "", sandbox.ErrTooLarge},
		{"/sandbox/rf/sparse", 1 << 20, "", sandbox.ErrTooLarge},
		{"/sandbox/rf/missing", 100, "", sandbox.ErrNotFound},
		{"/sandbox/rf/nodir/missing", 100, "", sandbox.ErrNotFound},
		{"/sandbox/rf/dir", 100, "", sandbox.ErrNotRegular},
		{"/sandbox/rf/fifo", 100, "", sandbox.ErrNotRegular},
		{"/sandbox/rf/passwd-link", 1 << 20, "", sandbox.ErrNotRegular},
		{"/sandbox/rf/relative-link", 100, "", sandbox.ErrNotRegular},
		{"/sandbox/rf/zero-link", 1 << 20, "", sandbox.ErrNotRegular},
		{"/sandbox/rf/etc-link/passwd", 1 << 20, "", errAny},
		{"/sandbox/rf/etc-link/hostname", 1 << 20, "", errAny},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			data, err := sb.ReadFile(ctx, c.path, c.max)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("ReadFile took %v", d)
			}
			if strings.Contains(string(data), passwd) || int64(len(data)) > c.max {
				t.Fatalf("ReadFile returned %d bytes it must not: %.40q", len(data), data)
			}
			switch {
			case c.wantErr == nil:
				if err != nil || string(data) != c.want {
					t.Errorf("got %q, %v; want %q", data, err, c.want)
				}
			case c.wantErr == errAny:
				if err == nil {
					t.Errorf("got %q and no error", data)
				}
			case !errors.Is(err, c.wantErr):
				t.Errorf("err %v, want %v", err, c.wantErr)
			}
		})
	}
}

// errAny accepts any error.
var errAny = errors.New("any error")
