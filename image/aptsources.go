package image

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// AptSource is one repository entry from the machine's apt configuration:
// a line of a one-line sources.list, or one URI of a deb822 stanza.
type AptSource struct {
	Types      []string // "deb", "deb-src"
	URI        string
	Suites     []string
	Components []string
	File       string // where it was read, for messages
}

// Archive is a distribution archive that debootstrap can install from and
// apt inside the images uses.
type Archive struct {
	Distro     string   // "debian" or "ubuntu"
	Mirror     string   // the archive's URI
	Suite      string   // "bookworm"
	Components []string // "main" (and "universe" on Ubuntu, for nodejs)
}

// ParseSourcesList parses apt's one-line format
// ("deb [signed-by=…] URI SUITE COMPONENT…").
func ParseSourcesList(r io.Reader, file string) ([]AptSource, error) {
	var out []AptSource
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		// Options in brackets may hold spaces ("[ arch=amd64 ]"): drop them.
		if i := strings.Index(line, "["); i >= 0 {
			j := strings.Index(line[i:], "]")
			if j < 0 {
				return nil, fmt.Errorf("%s:%d: unclosed [ in options", file, n)
			}
			line = line[:i] + " " + line[i+j+1:]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want TYPE URI SUITE [COMPONENT…], got %q", file, n, sc.Text())
		}
		out = append(out, AptSource{Types: f[:1], URI: f[1], Suites: f[2:3], Components: f[3:], File: file})
	}
	return out, sc.Err()
}

// ParseDeb822 parses apt's deb822 format (*.sources): stanzas of
// "Field: value" lines separated by blank lines. Stanzas with "Enabled: no"
// are left out.
func ParseDeb822(r io.Reader, file string) ([]AptSource, error) {
	var out []AptSource
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 && !strings.EqualFold(fields["enabled"], "no") {
			for _, uri := range strings.Fields(fields["uris"]) {
				out = append(out, AptSource{
					Types:      strings.Fields(fields["types"]),
					URI:        uri,
					Suites:     strings.Fields(fields["suites"]),
					Components: strings.Fields(fields["components"]),
					File:       file,
				})
			}
		}
		fields, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("%s:%d: continuation line outside a field", file, n)
			}
			fields[last] += " " + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("%s:%d: want Field: value, got %q", file, n, line)
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out, sc.Err()
}

// ReadAptSources reads every source of the apt configuration under root
// ("/" for the machine): etc/apt/sources.list, sources.list.d/*.list and
// sources.list.d/*.sources. Files that do not exist are skipped.
func ReadAptSources(root string) ([]AptSource, error) {
	dir := filepath.Join(root, "etc/apt/sources.list.d")
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		sort.Strings(m)
		files = append(files, m...)
	}
	var all []AptSource
	for _, name := range files {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		parse := ParseSourcesList
		if strings.HasSuffix(name, ".sources") {
			parse = ParseDeb822
		}
		srcs, err := parse(f, name)
		f.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, srcs...)
	}
	return all, nil
}

// PickArchive chooses the main distribution archive among sources: a "deb"
// entry whose URI path has a "debian" (else "ubuntu") segment, whose suite is
// a release debootstrap knows (knownSuite) rather than a -security,
// -updates, -backports or -proposed pocket, and which carries "main".
// Third-party repositories fail one of these tests.
func PickArchive(srcs []AptSource, knownSuite func(string) bool) (Archive, error) {
	for _, distro := range []string{"debian", "ubuntu"} {
		for _, s := range srcs {
			if !slices.Contains(s.Types, "deb") || !slices.Contains(s.Components, "main") || !hasPathSegment(s.URI, distro) {
				continue
			}
			for _, suite := range s.Suites {
				if strings.ContainsAny(suite, "-/") || !knownSuite(suite) {
					continue
				}
				a := Archive{Distro: distro, Mirror: strings.TrimRight(s.URI, "/"), Suite: suite, Components: []string{"main"}}
				if distro == "ubuntu" {
					a.Components = append(a.Components, "universe")
				}
				return a, nil
			}
		}
	}
	return Archive{}, errors.New("no Debian or Ubuntu archive found in the apt sources; set images.mirror and images.suite")
}

// hasPathSegment reports whether the URI's path has the segment seg.
func hasPathSegment(uri, seg string) bool {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return slices.Contains(strings.Split(u.Path, "/"), seg)
}

// knownSuites are releases accepted when debootstrap's scripts are not
// installed (a pulled base image needs no debootstrap).
var knownSuites = []string{
	"buster", "bullseye", "bookworm", "trixie", "forky", "sid",
	"oldstable", "stable", "testing", "unstable",
	"focal", "jammy", "noble", "oracular", "plucky",
}

// releaseSuite reports whether suite is a release rather than a pocket or a
// third-party name: debootstrap has a script for it, or it is well known.
func releaseSuite(suite string) bool {
	if suite == "" || strings.ContainsAny(suite, "/.") {
		return false
	}
	if _, err := os.Stat(filepath.Join("/usr/share/debootstrap/scripts", suite)); err == nil {
		return true
	}
	return slices.Contains(knownSuites, suite)
}
