package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	filePrefix = "audit-"
	fileSuffix = ".jsonl"
	dayLayout  = "2006-01-02"
)

// dailyFile appends to one file per UTC day in dir and deletes the files
// of days older than the retention (0 keeps them all). Callers serialize.
type dailyFile struct {
	dir       string
	retention int
	now       func() time.Time
	day       string
	f         *os.File
}

func openDaily(dir string, retentionDays int, now func() time.Time) (*dailyFile, error) {
	if dir == "" {
		return nil, fmt.Errorf("audit.logDir: required for the file destination")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit.logDir: %w", err)
	}
	d := &dailyFile{dir: dir, retention: retentionDays, now: now}
	if err := d.roll(now().UTC().Format(dayLayout)); err != nil {
		return nil, err
	}
	return d, nil
}

// FileName is the name of the audit file of the day of t (UTC).
func FileName(t time.Time) string { return filePrefix + t.UTC().Format(dayLayout) + fileSuffix }

func (d *dailyFile) write(t time.Time, line []byte) error {
	if day := t.UTC().Format(dayLayout); day != d.day {
		if err := d.roll(day); err != nil {
			return err
		}
	}
	if _, err := d.f.Write(line); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// roll switches to the file of day and prunes old files.
func (d *dailyFile) roll(day string) error {
	f, err := os.OpenFile(filepath.Join(d.dir, filePrefix+day+fileSuffix), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if d.f != nil {
		d.f.Close()
	}
	d.f, d.day = f, day
	return d.prune()
}

// prune deletes the audit files of days before today - retention.
func (d *dailyFile) prune() error {
	if d.retention <= 0 {
		return nil
	}
	cutoff := d.now().UTC().AddDate(0, 0, -d.retention).Format(dayLayout)
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		day, ok := strings.CutPrefix(name, filePrefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		day, ok = strings.CutSuffix(day, fileSuffix)
		if _, err := time.Parse(dayLayout, day); !ok || err != nil {
			continue
		}
		if day < cutoff {
			if err := os.Remove(filepath.Join(d.dir, name)); err != nil {
				return fmt.Errorf("audit: pruning: %w", err)
			}
		}
	}
	return nil
}

func (d *dailyFile) close() error {
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
