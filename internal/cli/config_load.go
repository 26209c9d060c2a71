package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/isol8/isol8"
	"github.com/spf13/cobra"
)

// loadConfig reads the config the one way every command does
// (isol8.LoadConfig); a bad file is the user's to fix, so it is a usage
// error naming the file and the key.
func loadConfig() (*isol8.Config, error) {
	cfg, err := isol8.LoadConfig()
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return cfg, nil
}

// configFlag ties a command-line flag to the config key it overrides, so
// flags sit above the environment and the file and "isol8 config" can say
// a value came from a flag.
type configFlag struct {
	flag, key string
	// normalize checks a flag's value and returns the config value for it.
	normalize func(v string) (string, error)
}

// applyConfigFlags sets the config keys of the flags given on the command
// line (in the order of flags) and names the flag of any bad value.
func applyConfigFlags(cmd *cobra.Command, cfg *isol8.Config, flags []configFlag) error {
	for _, f := range flags {
		fl := cmd.Flags().Lookup(f.flag)
		if fl == nil || !fl.Changed {
			continue
		}
		raw := fl.Value.String()
		v := raw
		if f.normalize != nil {
			var err error
			if v, err = f.normalize(raw); err != nil {
				return usageErrorf("--%s %q: %v", f.flag, raw, err)
			}
		}
		if err := cfg.Set(f.key, v, "flag"); err != nil {
			return usageErrorf("--%s %q: %v", f.flag, raw, err)
		}
		if err := cfg.Validate(); err != nil {
			return usageErrorf("--%s %q: %v", f.flag, raw, err)
		}
	}
	return nil
}

// Value checks shared by the flags.

func positiveInt(v string) (string, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return "", fmt.Errorf("must be a whole number above 0")
	}
	return fmt.Sprint(n), nil
}

func positiveFloat(v string) (string, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return "", fmt.Errorf("must be a number above 0 (such as 0.5 or 2)")
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}

// size checks a size such as "512m"; limits below 1m are refused.
func size(v string) (string, error) {
	n, err := isol8.ParseSize(v)
	if err != nil {
		return "", err
	}
	if n < 1<<20 {
		return "", fmt.Errorf("below the minimum of 1m")
	}
	return v, nil
}

// byteCount accepts a number of bytes or a size ("64k") and returns bytes.
func byteCount(v string) (string, error) {
	n, err := isol8.ParseSize(v)
	if err != nil {
		return "", err
	}
	if n <= 0 {
		return "", fmt.Errorf("must be above 0")
	}
	return fmt.Sprint(n), nil
}

func oneOf(values ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		for _, ok := range values {
			if v == ok {
				return v, nil
			}
		}
		return "", fmt.Errorf("must be one of %v", values)
	}
}
