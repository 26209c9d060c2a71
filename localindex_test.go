package isol8

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"testing"
)

// localIndex is a PEP 503 "simple" Python package index on 127.0.0.1,
// serving one pure-Python wheel built from testdata/localindex: the
// public index cannot be reached from the test machines.
type localIndex struct {
	srv   *httptest.Server
	Name  string // the project's name, "isol8-hello"
	Wheel string // its wheel's file name
}

// URL is the index's simple URL with host instead of 127.0.0.1 (a name
// the test's proxy resolves to loopback), so that only the proxy can
// reach it.
func (ix *localIndex) URL(host string) string {
	return strings.Replace(ix.srv.URL, "127.0.0.1", host, 1) + "/simple"
}

func startLocalIndex(t *testing.T) *localIndex {
	t.Helper()
	const name, version, module = "isol8-hello", "1.0", "isol8_hello"
	whl, err := buildWheel(os.DirFS("testdata/localindex"), module, name, version)
	if err != nil {
		t.Fatal(err)
	}
	file := fmt.Sprintf("%s-%s-py3-none-any.whl", module, version)
	sum := sha256.Sum256(whl)
	mux := http.NewServeMux()
	mux.HandleFunc("/simple/", func(w http.ResponseWriter, r *http.Request) {
		switch strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/") {
		case "":
			fmt.Fprintf(w, "<!DOCTYPE html><html><body><a href=\"%s/\">%s</a></body></html>\n", name, name)
		case name:
			fmt.Fprintf(w, "<!DOCTYPE html><html><body><a href=\"/files/%s#sha256=%s\">%s</a></body></html>\n", file, hex.EncodeToString(sum[:]), file)
		default:
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("/files/"+file, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(whl)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &localIndex{srv: srv, Name: name, Wheel: file}
}

// buildWheel writes a wheel (a zip with the module and a dist-info folder
// holding METADATA, WHEEL and RECORD) of module's files in src.
func buildWheel(src fs.FS, module, name, version string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	add := func(p string, data []byte) error {
		w, err := zw.Create(p)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(data))
		return nil
	}
	err := fs.WalkDir(src, module, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".py" {
			return err
		}
		data, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		return add(p, data)
	})
	if err != nil {
		return nil, err
	}
	info := fmt.Sprintf("%s-%s.dist-info/", module, version)
	if err := add(info+"METADATA", []byte(fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: isol8 test package\n", name, version))); err != nil {
		return nil, err
	}
	if err := add(info+"WHEEL", []byte("Wheel-Version: 1.0\nGenerator: isol8-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")); err != nil {
		return nil, err
	}
	w, err := zw.Create(info + "RECORD")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "%s%sRECORD,,\n", record.String(), info)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
