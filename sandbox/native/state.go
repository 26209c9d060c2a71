//go:build linux

package native

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// record is a sandbox's state file: enough for a restarted engine to find
// the sandbox by its labels and remove it by its cgroup. It holds no pid:
// after a restart a pid may name anything, while the cgroup still holds
// exactly the sandbox's processes.
type record struct {
	ID      string            `json:"id"`
	Labels  map[string]string `json:"labels"`
	Created time.Time         `json:"created"`
	Cgroups []string          `json:"cgroups"`
	// Rootfs is the root filesystem tree the sandbox mounts, which
	// RemoveRootfs must keep while the record exists.
	Rootfs string `json:"rootfs"`
}

// validID is the shape of the IDs Create makes; Remove refuses anything
// else, so an ID can never name a path outside the state folder.
var validID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// records keeps one JSON file per sandbox under dir.
type records struct {
	dir string
}

func (r records) path(id string) string { return filepath.Join(r.dir, id+".json") }

// gonePath is where a destroyed sandbox's record waits for its cleanup to
// finish: List does not show it, and whoever finds it (a restarted engine
// at Open, or Remove) finishes the cleanup, which is idempotent.
func (r records) gonePath(id string) string { return filepath.Join(r.dir, id+".gone") }

// markGone hides a record from List, atomically.
func (r records) markGone(id string) error {
	err := os.Rename(r.path(id), r.gonePath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// save writes a new record, once, before the sandbox has any resource. A
// List that reads it half-written skips it, which is right: the sandbox
// does not exist yet.
func (r records) save(rec *record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(r.path(rec.ID), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save sandbox state: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(r.path(rec.ID))
		return fmt.Errorf("save sandbox state: %w", err)
	}
	return nil
}

func (r records) load(id string) (*record, error) {
	return r.loadFile(r.path(id), id)
}

func (r records) loadFile(path, id string) (*record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("sandbox state %s: %w", id, err)
	}
	return &rec, nil
}

// remove deletes a record, live or gone.
func (r records) remove(id string) error {
	var errs []error
	for _, p := range []string{r.path(id), r.gonePath(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// gone lists the records of destroyed sandboxes whose cleanup did not
// finish.
func (r records) gone() []*record {
	ents, _ := os.ReadDir(r.dir)
	var out []*record
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".gone")
		if !ok || !validID.MatchString(id) {
			continue
		}
		if rec, err := r.loadFile(r.gonePath(id), id); err == nil {
			out = append(out, rec)
		}
	}
	return out
}

// all lists every record; unreadable ones (being written) are skipped.
func (r records) all() ([]*record, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID.MatchString(id) {
			continue
		}
		if rec, err := r.load(id); err == nil {
			out = append(out, rec)
		}
	}
	return out, nil
}
