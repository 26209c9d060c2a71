package packages

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrNoRegistry is wrapped by errors saying no registry is configured.
var ErrNoRegistry = errors.New("no package registry configured")

// discoverTimeout bounds asking a local tool (npm, pip) for its settings.
const discoverTimeout = 10 * time.Second

// NPMRegistry returns the npm registry to install from: override (config
// packages.npmRegistry) when set, else the environment's
// npm_config_registry, else what `npm config get registry` says on this
// machine. The answer is cached for the process.
func NPMRegistry(override string) (string, error) {
	if override != "" {
		return CheckURL("packages.npmRegistry", override)
	}
	npmOnce.Do(func() { npmURL, npmErr = discoverNPM() })
	return npmURL, npmErr
}

// PipIndexURL returns the Python package index (PEP 503 "simple" URL) to
// install from: override (config packages.pipIndexUrl) when set, else
// PIP_INDEX_URL, else index-url in pip's config files, else the default
// built into this machine's pip. The answer is cached for the process.
func PipIndexURL(override string) (string, error) {
	if override != "" {
		return CheckURL("packages.pipIndexUrl", override)
	}
	pipOnce.Do(func() { pipURL, pipErr = discoverPip() })
	return pipURL, pipErr
}

var (
	npmOnce, pipOnce sync.Once
	npmURL, pipURL   string
	npmErr, pipErr   error
)

func discoverNPM() (string, error) {
	for _, k := range []string{"npm_config_registry", "NPM_CONFIG_REGISTRY"} {
		if v := os.Getenv(k); v != "" {
			return CheckURL(k, v)
		}
	}
	out, err := command("npm", "config", "get", "registry")
	if err != nil || out == "" || out == "undefined" {
		return "", fmt.Errorf("%w: set packages.npmRegistry (npm config get registry: %v)", ErrNoRegistry, orEmpty(err))
	}
	return CheckURL("npm config registry", out)
}

func discoverPip() (string, error) {
	if v := os.Getenv("PIP_INDEX_URL"); v != "" {
		return CheckURL("PIP_INDEX_URL", v)
	}
	for _, f := range pipConfigFiles() {
		if v := iniValue(f, []string{"install", "global"}, "index-url"); v != "" {
			return CheckURL(f+" index-url", v)
		}
	}
	// pip's own default, read from the installed pip rather than written
	// here.
	for _, py := range []string{"python3", "python"} {
		out, err := command(py, "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)")
		if err == nil && out != "" {
			return CheckURL("pip's default index", out)
		}
	}
	return "", fmt.Errorf("%w: set packages.pipIndexUrl or PIP_INDEX_URL", ErrNoRegistry)
}

// pipConfigFiles are pip's config files, highest priority first: the
// first one with index-url wins, as in pip.
func pipConfigFiles() []string {
	var files []string
	if f := os.Getenv("PIP_CONFIG_FILE"); f != "" {
		files = append(files, f)
	}
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".config", "pip", "pip.conf"), filepath.Join(home, ".pip", "pip.conf"))
	}
	return append(files, "/etc/xdg/pip/pip.conf", "/etc/pip.conf")
}

// iniValue reads key from the first of sections that has it in an ini
// file ("" when the file, the sections or the key are missing).
func iniValue(file string, sections []string, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	values := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			section = strings.TrimSpace(line[1 : len(line)-1])
		default:
			k, v, ok := strings.Cut(line, "=")
			if ok && strings.TrimSpace(k) == key {
				if _, seen := values[section]; !seen {
					values[section] = strings.TrimSpace(v)
				}
			}
		}
	}
	for _, s := range sections {
		if v := values[s]; v != "" {
			return v
		}
	}
	return ""
}

// command runs a local tool briefly and returns its trimmed output.
func command(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), discoverTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

func orEmpty(err error) any {
	if err == nil {
		return "empty answer"
	}
	return err
}

// CheckURL checks that a registry URL is http or https with a host and
// no credentials, spaces or fragment, and returns it without a trailing
// slash. what names the setting in errors ("" for none).
func CheckURL(what, s string) (string, error) {
	u, err := url.Parse(s)
	var why string
	switch {
	case err != nil:
		why = fmt.Sprintf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		why = fmt.Sprintf("%q must be an http or https URL", s)
	case u.Host == "" || u.Hostname() == "":
		why = fmt.Sprintf("%q has no host", s)
	case u.User != nil:
		why = "credentials in the URL are not supported"
	case u.Fragment != "" || u.RawQuery != "" || strings.ContainsAny(s, " \t\r\n"):
		why = fmt.Sprintf("%q must not have a query, a fragment or spaces", s)
	default:
		return strings.TrimRight(s, "/"), nil
	}
	if what != "" {
		why = what + ": " + why
	}
	return "", errors.New(why)
}

// Host returns the host name of a registry URL (lower case, no port).
func Host(registry string) string {
	u, err := url.Parse(registry)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
