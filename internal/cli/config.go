package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"text/tabwriter"

	"github.com/isol8/isol8"
	"github.com/spf13/cobra"
)

func init() { register(newConfigCmd) }

func newConfigCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the resolved configuration and where each value came from",
		Long: `Show the configuration isol8 runs with: the built-in defaults, overridden
by the config file, overridden by the environment (and, for a single run,
by flags). The file is $ISOL8_CONFIG if set, else ./isol8.config.json, else
~/.isol8/config.json; unknown keys and bad values are reported by name.

Environment overrides: ISOL8_BACKEND (defaults.backend), ISOL8_TIMEOUT_MS
(defaults.timeoutMs), ISOL8_MEMORY_LIMIT (defaults.memoryLimit),
ISOL8_NETWORK (defaults.network), ISOL8_MAX_CONCURRENT (maxConcurrent),
ISOL8_AUTH_DB (auth.connectionString), ISOL8_DEBIAN_MIRROR (images.mirror).

The table lists every key with its value and source: "default", the config
file's path, or "env:NAME". --json prints the whole resolved config as
JSON, every key present, in the config file's own camelCase names, so it
can be saved as a starting isol8.config.json. Secret values and the
password of auth.connectionString are shown as ***.`,
		Example: `  isol8 config
  isol8 config --json > isol8.config.json
  ISOL8_MEMORY_LIMIT=1g isol8 config | grep memoryLimit`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			entries, tree := flatten(reflect.ValueOf(*cfg), "")
			out := cmd.OutOrStdout()
			if asJSON {
				data, err := json.Marshal(tree)
				if err != nil {
					return err
				}
				var buf bytes.Buffer
				_ = json.Indent(&buf, data, "", "  ")
				buf.WriteByte('\n')
				_, err = buf.WriteTo(out)
				return err
			}
			if cfg.Path != "" {
				fmt.Fprintf(out, "config file: %s\n\n", cfg.Path)
			} else {
				fmt.Fprintf(out, "config file: none (looked for %s)\n\n", strings.Join(isol8.ConfigPaths(), ", "))
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", e.key, display(e.value), cfg.Source(e.key))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the resolved config as JSON")
	return cmd
}

// entry is one leaf key of the config.
type entry struct {
	key   string
	value any
}

// object is a JSON object that keeps its keys in struct order.
type object []member

type member struct {
	key   string
	value any
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// flatten walks a config struct by its JSON names. It returns every leaf
// with its dotted key and the same values as an ordered JSON tree. Unlike
// encoding/json it keeps empty fields, so every key shows; an unset
// pointer field is null, so the output read back as a config file means
// the same.
func flatten(v reflect.Value, prefix string) ([]entry, object) {
	var entries []entry
	var tree object
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		key := prefix + name
		fv := v.Field(i)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				// Unset: it defers to another key (or the built-in value).
				entries = append(entries, entry{key, nil})
				tree = append(tree, member{name, nil})
				continue
			}
			fv = fv.Elem()
		}
		if fv.Kind() == reflect.Struct {
			sub, subTree := flatten(fv, key+".")
			entries = append(entries, sub...)
			tree = append(tree, member{name, subTree})
			continue
		}
		val := mask(key, leaf(fv))
		entries = append(entries, entry{key, val})
		tree = append(tree, member{name, val})
	}
	return entries, tree
}

// leaf returns a value for display, with nil lists and maps as empty ones.
func leaf(v reflect.Value) any {
	switch {
	case v.Kind() == reflect.Slice && v.IsNil():
		return []any{}
	case v.Kind() == reflect.Map && v.IsNil():
		return map[string]any{}
	}
	return v.Interface()
}

// mask hides secret values and the password of a connection string.
func mask(key string, v any) any {
	switch key {
	case "defaults.secrets":
		m, _ := v.(map[string]string)
		masked := make(map[string]string, len(m))
		for k := range m {
			masked[k] = "***"
		}
		return masked
	case "auth.connectionString":
		s, _ := v.(string)
		if u, err := url.Parse(s); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "***")
				return strings.Replace(u.String(), "%2A%2A%2A", "***", 1)
			}
		}
	}
	return v
}

// display renders a value on one line: strings bare, the rest as JSON.
func display(v any) string {
	if v == nil {
		return "(unset)"
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		s := rv.String()
		if s == "" {
			return `""`
		}
		return s
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}
