package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/isol8/isol8/store"
	"github.com/isol8/isol8/store/postgres"
	"github.com/isol8/isol8/store/storetest"
)

// These tests run against a real PostgreSQL: $ISOL8_TEST_PG, else the one
// scripts/start-postgres.sh starts. They fail when neither works; set
// ISOL8_SKIP_PG=1 to skip them.

var (
	pgOnce sync.Once
	pgConn string
	pgErr  string
)

func testDB(t *testing.T) string {
	t.Helper()
	if os.Getenv("ISOL8_SKIP_PG") == "1" {
		t.Skip("ISOL8_SKIP_PG=1")
	}
	pgOnce.Do(func() {
		if pgConn = os.Getenv("ISOL8_TEST_PG"); pgConn != "" {
			return
		}
		script, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "start-postgres.sh"))
		var stderr bytes.Buffer
		cmd := exec.Command(script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			pgErr = "ISOL8_TEST_PG is not set and " + script + " failed: " + err.Error() + "\n" + stderr.String() +
				"\n(set ISOL8_TEST_PG to a PostgreSQL URL, or ISOL8_SKIP_PG=1 to skip)"
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		pgConn = lines[len(lines)-1]
	})
	if pgConn == "" {
		t.Fatal(pgErr)
	}
	return pgConn
}

// schemaConn makes a schema of the test's own, dropped at its end, and
// returns a connection string whose search_path is that schema.
func schemaConn(t *testing.T) string {
	t.Helper()
	base := testDB(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to the test database: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "isol8_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
		admin.Close(ctx)
	})
	return withSearchPath(t, base, schema)
}

func withSearchPath(t *testing.T, conn, schema string) string {
	if !strings.Contains(conn, "://") {
		return conn + " search_path=" + schema
	}
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("ISOL8_TEST_PG is not a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t *testing.T, conn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*postgres.Store); !ok {
		t.Fatalf("store.Open(postgres URL) = %T, want *postgres.Store", s)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, schemaConn(t)) })
}

// Servers starting at once must not trip over each other's schema creation.
func TestConcurrentOpen(t *testing.T) {
	conn := schemaConn(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), conn)
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
}

// Two stores on one schema see each other's keys (replicas of a server).
func TestShared(t *testing.T) {
	conn := schemaConn(t)
	a, b := open(t, conn), open(t, conn)
	ctx := context.Background()
	if err := a.Create(ctx, store.Key{ID: "k1", Name: "n"}, []byte("h1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(ctx, "k1", testNow()); err != nil {
		t.Fatalf("Revoke through the other store: %v", err)
	}
	if _, err := a.Lookup(ctx, []byte("h1"), testNow()); err == nil {
		t.Fatal("a key revoked through one store still authenticates through the other")
	}
}

func TestBadConnString(t *testing.T) {
	if os.Getenv("ISOL8_SKIP_PG") == "1" {
		t.Skip("ISOL8_SKIP_PG=1")
	}
	_, err := postgres.Open(context.Background(), "postgres://u:sekrit@127.0.0.1:1/x?connect_timeout=2&sslmode=disable")
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("the error shows the password: %v", err)
	}
	_, err = postgres.Open(context.Background(), "postgres://u:sekrit@[bad")
	if err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("Open of a malformed URL: %v", err)
	}
}

func testNow() time.Time { return time.Now() }
