package image

import (
	"reflect"
	"strings"
	"testing"
)

// known stands in for debootstrap's scripts, so the test does not depend on
// the machine.
func known(suite string) bool { return suite == "bookworm" || suite == "trixie" || suite == "jammy" }

func TestReadAptSourcesOneLine(t *testing.T) {
	srcs, err := ReadAptSources("testdata/oneline")
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 6 {
		t.Fatalf("got %d sources, want 6: %+v", len(srcs), srcs)
	}
	got := srcs[2]
	want := AptSource{Types: []string{"deb"}, URI: "http://mirror.example/debian/", Suites: []string{"bookworm"},
		Components: []string{"main", "contrib", "non-free-firmware"}, File: "testdata/oneline/etc/apt/sources.list"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bracketed options line:\n got %+v\nwant %+v", got, want)
	}
	if srcs[4].URI != "https://vendor.example/linux/debian" || srcs[4].Suites[0] != "bookworm" {
		t.Errorf("options with spaces: %+v", srcs[4])
	}
	a, err := PickArchive(srcs, known)
	if err != nil {
		t.Fatal(err)
	}
	wantA := Archive{Distro: "debian", Mirror: "http://mirror.example/debian", Suite: "bookworm", Components: []string{"main"}}
	if !reflect.DeepEqual(a, wantA) {
		t.Errorf("PickArchive = %+v, want %+v", a, wantA)
	}
}

func TestReadAptSourcesDeb822(t *testing.T) {
	srcs, err := ReadAptSources("testdata/deb822")
	if err != nil {
		t.Fatal(err)
	}
	// backports, two URIs of the main stanza, security, vendor; the
	// disabled stanza and the *.disabled file are left out.
	var uris []string
	for _, s := range srcs {
		uris = append(uris, s.URI)
	}
	wantURIs := []string{
		"http://backports.mirror.example/debian", "http://mirror.example/debian", "http://second.mirror.example/debian",
		"http://mirror.example/debian-security", "https://vendor.example/node_20.x",
	}
	if !reflect.DeepEqual(uris, wantURIs) {
		t.Fatalf("URIs = %q, want %q", uris, wantURIs)
	}
	if got := srcs[1]; !reflect.DeepEqual(got.Types, []string{"deb", "deb-src"}) ||
		!reflect.DeepEqual(got.Suites, []string{"bookworm", "bookworm-updates"}) ||
		!reflect.DeepEqual(got.Components, []string{"main", "non-free-firmware"}) {
		t.Errorf("main stanza = %+v", got)
	}
	a, err := PickArchive(srcs, known)
	if err != nil {
		t.Fatal(err)
	}
	if a.Mirror != "http://mirror.example/debian" || a.Suite != "bookworm" || a.Distro != "debian" {
		t.Errorf("PickArchive = %+v", a)
	}
}

func TestPickArchiveUbuntu(t *testing.T) {
	srcs, err := ReadAptSources("testdata/ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	a, err := PickArchive(srcs, known)
	if err != nil {
		t.Fatal(err)
	}
	want := Archive{Distro: "ubuntu", Mirror: "http://archive.mirror.example/ubuntu", Suite: "jammy", Components: []string{"main", "universe"}}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("PickArchive = %+v, want %+v", a, want)
	}
}

func TestPickArchiveNone(t *testing.T) {
	srcs := []AptSource{
		{Types: []string{"deb"}, URI: "https://vendor.example/node_20.x", Suites: []string{"nodistro"}, Components: []string{"main"}},
		{Types: []string{"deb"}, URI: "http://mirror.example/debian-security", Suites: []string{"bookworm-security"}, Components: []string{"main"}},
		{Types: []string{"deb"}, URI: "http://mirror.example/debian", Suites: []string{"bookworm/updates"}, Components: []string{"main"}},
		{Types: []string{"deb-src"}, URI: "http://mirror.example/debian", Suites: []string{"bookworm"}, Components: []string{"main"}},
		{Types: []string{"deb"}, URI: "http://mirror.example/debian", Suites: []string{"bookworm"}, Components: []string{"contrib"}},
	}
	if a, err := PickArchive(srcs, known); err == nil || !strings.Contains(err.Error(), "images.mirror") {
		t.Errorf("PickArchive = %+v, %v; want an error naming images.mirror", a, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		deb822     bool
	}{
		{"short line", "deb http://mirror.example/debian\n", false},
		{"unclosed options", "deb [arch=amd64 http://mirror.example/debian bookworm main\n", false},
		{"no colon", "Types deb\n", true},
		{"stray continuation", " http://mirror.example/debian\n", true},
	} {
		parse := ParseSourcesList
		if tc.deb822 {
			parse = ParseDeb822
		}
		if _, err := parse(strings.NewReader(tc.text), "x"); err == nil || !strings.HasPrefix(err.Error(), "x:1: ") {
			t.Errorf("%s: err = %v, want one starting with x:1:", tc.name, err)
		}
	}
}

func TestArchiveOverrides(t *testing.T) {
	for _, tc := range []struct {
		opts    Options
		want    Archive
		wantErr string
	}{
		{Options{}, Archive{Distro: "debian", Mirror: "http://mirror.example/debian", Suite: "bookworm", Components: []string{"main"}}, ""},
		{Options{Suite: "trixie"}, Archive{Distro: "debian", Mirror: "http://mirror.example/debian", Suite: "trixie", Components: []string{"main"}}, ""},
		{Options{Mirror: "https://other.example/ubuntu/", Suite: "jammy"}, Archive{Distro: "ubuntu", Mirror: "https://other.example/ubuntu", Suite: "jammy", Components: []string{"main", "universe"}}, ""},
		{Options{Mirror: "ftp://other.example/debian"}, Archive{}, "images.mirror"},
		{Options{Mirror: "http://other.example/debian\ndeb http://evil.example/ x main"}, Archive{}, "images.mirror"},
		{Options{Suite: "bookworm main\ndeb"}, Archive{}, "images.suite"},
	} {
		got, err := archiveFrom("testdata/oneline", tc.opts)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: err = %v, want one naming %s", tc.opts, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%+v: got %+v, %v; want %+v", tc.opts, got, err, tc.want)
		}
	}
	if _, err := archiveFrom("testdata/nothing-here", Options{}); err == nil || !strings.Contains(err.Error(), "images.mirror") {
		t.Errorf("no apt sources: err = %v", err)
	}
}
