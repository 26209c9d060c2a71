package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/isol8/isol8/store"
	"github.com/isol8/isol8/store/sqlite"
	"github.com/isol8/isol8/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSuiteInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "keys.db")
	s, err := store.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.Create(ctx, store.Key{ID: "k1", Name: "n", CreatedAt: now}, []byte("hash")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; want it private to the user", name, perm)
		}
	}
	s, err = store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := s.Lookup(ctx, []byte("hash"), now)
	if err != nil || k.ID != "k1" {
		t.Fatalf("Lookup after reopening = %+v, %v", k, err)
	}
}

func TestPath(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory")
	}
	for _, tc := range []struct{ conn, want string }{
		{"", filepath.Join(home, ".isol8", "keys.db")},
		{"sqlite:", filepath.Join(home, ".isol8", "keys.db")},
		{"/var/lib/isol8/keys.db", "/var/lib/isol8/keys.db"},
		{"sqlite:/tmp/k.db", "/tmp/k.db"},
		{"SQLITE:///tmp/k.db", "/tmp/k.db"},
		{"sqlite:relative/k.db", "relative/k.db"},
		{"~/keys.db", filepath.Join(home, "keys.db")},
		{":memory:", ":memory:"},
	} {
		got, err := sqlite.Path(tc.conn)
		if err != nil || got != tc.want {
			t.Errorf("Path(%q) = %q, %v; want %q", tc.conn, got, err, tc.want)
		}
	}
	if _, err := sqlite.Path("/tmp/a?b.db"); err == nil {
		t.Error("Path with ? succeeded")
	}
}

func TestDriver(t *testing.T) {
	for conn, want := range map[string]string{
		"":                           "sqlite",
		"keys.db":                    "sqlite",
		"sqlite:/x.db":               "sqlite",
		"postgres://u@h/db":          "postgres",
		"PostgreSQL://u@h/db":        "postgres",
		" postgresql://u:p@h:5432/d": "postgres",
	} {
		if got := store.Driver(conn); got != want {
			t.Errorf("Driver(%q) = %q, want %q", conn, got, want)
		}
	}
}
