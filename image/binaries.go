package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/isol8/isol8/packages"
)

// npmBinary is a runtime's executable, taken from a package the runtime's
// makers publish on the npm registry for Linux x64.
type npmBinary struct {
	Package string   // npm package, "@oven/bun-linux-x64"
	Version string   // pinned: a published version never changes
	Member  string   // path of the executable in the package's tarball
	File    string   // name in the build context
	Dest    string   // path in the image
	Links   []string // other names for it in the image
}

// id names the binary in content hashes.
func (b *npmBinary) id() string { return b.Package + "@" + b.Version + ":" + b.Member }

// The pinned runtime binaries. Bun's plain x64 build needs AVX2; the
// "-baseline" package is the one for older CPUs (hostLacksAVX2).
var runtimeBinaries = map[string]*npmBinary{
	"bun": {Package: "@oven/bun-linux-x64", Version: "1.4.5", Member: "package/bin/bun",
		File: "bun", Dest: "/usr/local/bin/bun", Links: []string{"/usr/local/bin/bunx"}},
	"deno": {Package: "@deno/linux-x64-glibc", Version: "2.9.6", Member: "package/deno",
		File: "deno", Dest: "/usr/local/bin/deno"},
}

func init() {
	if hostLacksAVX2() {
		b := *runtimeBinaries["bun"]
		b.Package += "-baseline"
		runtimeBinaries["bun"] = &b
	}
}

// hostLacksAVX2 reports whether this machine's CPU is known to lack AVX2.
func hostLacksAVX2() bool {
	data, err := os.ReadFile("/proc/cpuinfo")
	return err == nil && bytes.Contains(data, []byte("flags")) && !bytes.Contains(data, []byte(" avx2"))
}

// Bounds on fetching a binary.
const (
	maxMetadata    = 8 << 20
	maxTarball     = 512 << 20
	binaryDeadline = 10 * time.Minute
)

// fetchBinary downloads b's tarball from the npm registry, checks it
// against the registry's sha512 integrity and returns the executable.
func fetchBinary(ctx context.Context, registry string, b *npmBinary, p func(Progress), rt string) ([]byte, error) {
	if registry == "" {
		var err error
		if registry, err = packages.NPMRegistry(""); err != nil {
			return nil, fmt.Errorf("%s binary: %w", rt, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, binaryDeadline)
	defer cancel()
	metaURL := registry + "/" + url.PathEscape(b.Package) + "/" + url.PathEscape(b.Version)
	var meta struct {
		Dist struct {
			Tarball   string `json:"tarball"`
			Integrity string `json:"integrity"`
		} `json:"dist"`
	}
	data, err := httpGet(ctx, metaURL, maxMetadata)
	if err != nil {
		return nil, fmt.Errorf("%s binary: registry metadata of %s@%s: %w", rt, b.Package, b.Version, err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("%s binary: registry metadata of %s@%s: %w", rt, b.Package, b.Version, err)
	}
	want, ok := strings.CutPrefix(meta.Dist.Integrity, "sha512-")
	if !ok || meta.Dist.Tarball == "" {
		return nil, fmt.Errorf("%s binary: %s@%s has no sha512 integrity or tarball in the registry", rt, b.Package, b.Version)
	}
	if u, err := url.Parse(meta.Dist.Tarball); err != nil || u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("%s binary: tarball URL %q is not http(s)", rt, meta.Dist.Tarball)
	}
	p(Progress{Runtime: rt, Stage: StageBuild, Message: fmt.Sprintf("fetching %s@%s from the npm registry", b.Package, b.Version)})
	tgz, err := httpGet(ctx, meta.Dist.Tarball, maxTarball)
	if err != nil {
		return nil, fmt.Errorf("%s binary: %w", rt, err)
	}
	got := sha512.Sum512(tgz)
	if base64.StdEncoding.EncodeToString(got[:]) != want {
		return nil, fmt.Errorf("%s binary: %s does not match the registry's sha512 integrity", rt, meta.Dist.Tarball)
	}
	exe, err := tarMember(tgz, b.Member)
	if err != nil {
		return nil, fmt.Errorf("%s binary: %s@%s: %w", rt, b.Package, b.Version, err)
	}
	p(Progress{Runtime: rt, Stage: StageBuild, Message: fmt.Sprintf("%s@%s verified (sha512), %d MB", b.Package, b.Version, len(exe)>>20)})
	return exe, nil
}

// httpGet fetches a URL, refusing bodies over max bytes. It uses the
// machine's proxy settings, as npm itself would.
func httpGet(ctx context.Context, u string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("GET %s: larger than %d MB", u, max>>20)
	}
	return data, nil
}

// tarMember returns one regular file of a gzipped tarball.
func tarMember(tgz []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("no %s in the tarball", name)
		}
		if err != nil {
			return nil, err
		}
		if h.Name == name && h.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, maxTarball))
		}
	}
}
