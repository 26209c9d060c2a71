package cli

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/isol8/isol8"
	"github.com/spf13/cobra"
)

// Where --github and --gist fetch from: the raw-file hosts of those
// services (named here as products, not as registries).
const (
	githubRaw = "https://raw.githubusercontent.com"
	gistRaw   = "https://gist.githubusercontent.com"
	gistPage  = "https://gist.github.com"
)

func init() {
	runFlagHooks = append(runFlagHooks, func(cmd *cobra.Command) {
		f := cmd.Flags()
		f.String("url", "", "run the code at `URL` (fetched under the config's remoteCode policy, which is off by default)")
		f.String("github", "", "run a file of a GitHub repository, `OWNER/REPO/PATH[@REF]` (REF defaults to HEAD)")
		f.String("gist", "", "run a gist, `[USER/]ID[/FILE]`")
		f.String("hash", "", "the sha256 (`HEX`) the fetched code must have (codeHash)")
		f.Bool("allow-insecure-url", false, "allow an http:// URL, where the remoteCode policy allows http")
	})
	codeSources = append(codeSources, codeSource{given: remoteGiven, fill: remoteFill})
	requestHooks = append(requestHooks, func(cmd *cobra.Command, o *runOptions, req *isol8.Request) error {
		if remoteGiven(cmd) {
			return nil
		}
		for _, name := range []string{"hash", "allow-insecure-url"} {
			if cmd.Flags().Changed(name) {
				return usageErrorf("--%s goes with --url, --github or --gist", name)
			}
		}
		return nil
	})
}

func remoteGiven(cmd *cobra.Command) bool {
	n := 0
	for _, name := range []string{"url", "github", "gist"} {
		if cmd.Flags().Changed(name) {
			n++
		}
	}
	return n > 0
}

// remoteFill sets codeUrl (and codeHash) from the remote-code flags and,
// without --runtime, the runtime from the URL's extension. The engine
// fetches the code under the remoteCode policy.
func remoteFill(cmd *cobra.Command, req *isol8.Request) error {
	f := cmd.Flags()
	var given []string
	var u string
	var err error
	if v, _ := f.GetString("url"); f.Changed("url") {
		given, u = append(given, "--url"), v
	}
	if v, _ := f.GetString("github"); f.Changed("github") {
		given = append(given, "--github")
		if u, err = githubURL(v); err != nil {
			return usageErrorf("--github %q: %v", v, err)
		}
	}
	if v, _ := f.GetString("gist"); f.Changed("gist") {
		given = append(given, "--gist")
		if u, err = gistURL(v); err != nil {
			return usageErrorf("--gist %q: %v", v, err)
		}
	}
	if len(given) > 1 {
		return usageErrorf("give one of %s", strings.Join(given, ", "))
	}
	parsed, err := url.Parse(u)
	if err != nil || !parsed.IsAbs() || parsed.Host == "" {
		return usageErrorf("%s %q: not an absolute URL", given[0], u)
	}
	req.CodeURL = u
	req.CodeHash, _ = f.GetString("hash")
	req.AllowInsecureCodeURL, _ = f.GetBool("allow-insecure-url")
	if req.Runtime == "" {
		if rt, err := runtimeOfFile(path.Base(parsed.Path)); err == nil {
			req.Runtime = rt
		}
	}
	return nil
}

var (
	ghName = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,99})$`)
	ghRef  = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,200}$`)
	gistID = regexp.MustCompile(`^[0-9a-fA-F]{5,64}$`)
)

// githubURL maps OWNER/REPO/PATH[@REF] to the file's raw URL.
func githubURL(spec string) (string, error) {
	spec, ref, hasRef := strings.Cut(spec, "@")
	if !hasRef {
		ref = "HEAD"
	}
	parts := strings.SplitN(spec, "/", 3)
	if len(parts) < 3 || parts[2] == "" {
		return "", fmt.Errorf("expected OWNER/REPO/PATH[@REF]")
	}
	if !ghName.MatchString(parts[0]) || !ghName.MatchString(parts[1]) {
		return "", fmt.Errorf("%q/%q is not a repository name", parts[0], parts[1])
	}
	if !ghRef.MatchString(ref) || strings.Contains(ref, "..") {
		return "", fmt.Errorf("%q is not a branch, tag or commit", ref)
	}
	file := path.Clean("/" + parts[2])
	if file != "/"+parts[2] || strings.Contains(file, "..") {
		return "", fmt.Errorf("%q is not a clean file path", parts[2])
	}
	return githubRaw + "/" + parts[0] + "/" + parts[1] + "/" + ref + escapePath(file), nil
}

// gistURL maps [USER/]ID[/FILE] to the gist's raw URL (without USER, the
// gist page's raw link, which redirects; the redirect is checked too).
func gistURL(spec string) (string, error) {
	parts := strings.Split(spec, "/")
	var user, id, file string
	switch {
	case len(parts) == 1:
		id = parts[0]
	case len(parts) == 2 && gistID.MatchString(parts[0]):
		id, file = parts[0], parts[1]
	case len(parts) == 2:
		user, id = parts[0], parts[1]
	case len(parts) == 3:
		user, id, file = parts[0], parts[1], parts[2]
	default:
		return "", fmt.Errorf("expected [USER/]ID[/FILE]")
	}
	if !gistID.MatchString(id) || user != "" && !ghName.MatchString(user) || file != "" && !ghName.MatchString(file) {
		return "", fmt.Errorf("expected [USER/]ID[/FILE] with a hexadecimal ID")
	}
	u := gistPage + "/" + id + "/raw"
	if user != "" {
		u = gistRaw + "/" + user + "/" + id + "/raw"
	}
	if file != "" {
		u += "/" + url.PathEscape(file)
	}
	return u, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}
