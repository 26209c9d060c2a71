// Package sqlite is the embedded API key store: one SQLite file, pure Go
// (modernc.org/sqlite), no server to run. It is the default store; it
// registers itself as the "sqlite" driver of store.Open.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/isol8/isol8/store"
)

func init() {
	store.Register("sqlite", func(ctx context.Context, conn string) (store.Store, error) {
		return Open(ctx, conn)
	})
}

// touchEvery is how stale a key's LastUsed may get: Lookup writes it at
// most this often, so authentication stays a read.
const touchEvery = time.Minute

const schema = `
CREATE TABLE IF NOT EXISTS isol8_api_keys (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	key_prefix   TEXT NOT NULL,
	tenant_id    TEXT NOT NULL DEFAULT '',
	key_hash     BLOB NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL, -- Unix microseconds, as PostgreSQL keeps them
	expires_at   INTEGER,
	revoked_at   INTEGER,
	last_used_at INTEGER
);
CREATE INDEX IF NOT EXISTS isol8_api_keys_tenant ON isol8_api_keys (tenant_id, created_at);
`

const columns = `id, name, key_prefix, tenant_id, created_at, expires_at, revoked_at, last_used_at`

// Store is an API key store in a SQLite file. It is safe for concurrent
// use, also by several processes sharing the file.
type Store struct {
	db   *sql.DB
	path string
}

var _ store.Store = (*Store)(nil)

// DefaultPath is where the store lives when no path is given:
// ~/.isol8/keys.db.
func DefaultPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("key store: finding the home directory for the default keys.db: %w", err)
	}
	return filepath.Join(home, ".isol8", "keys.db"), nil
}

// Path turns a connection string into a file path: "sqlite:PATH",
// "sqlite://PATH" or a bare PATH; "~/" is the home directory; "" is
// DefaultPath; ":memory:" is a private in-memory database.
func Path(conn string) (string, error) {
	p := strings.TrimSpace(conn)
	for _, prefix := range []string{"sqlite://", "sqlite:"} {
		if len(p) >= len(prefix) && strings.EqualFold(p[:len(prefix)], prefix) {
			p = p[len(prefix):]
			break
		}
	}
	switch {
	case p == "":
		return DefaultPath()
	case p == ":memory:":
		return p, nil
	case p == "~" || strings.HasPrefix(p, "~/"):
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("key store: expanding %q: %w", p, err)
		}
		p = filepath.Join(home, p[1:])
	}
	if strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("key store: sqlite path %q: must not contain ? or #", p)
	}
	return filepath.Clean(p), nil
}

// Open opens (creating it when missing) the store named by conn (see
// Path). A new file and its folder are private to the user (0600, 0700).
func Open(ctx context.Context, conn string) (*Store, error) {
	path, err := Path(conn)
	if err != nil {
		return nil, err
	}
	dsn := ":memory:"
	if path != ":memory:" {
		if err := create(path); err != nil {
			return nil, err
		}
		// WAL lets lookups run while a key is written; the busy timeout
		// makes concurrent writers (other processes too) wait their turn.
		dsn = path + "?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("key store %s: %w", path, err)
	}
	if path == ":memory:" {
		db.SetMaxOpenConns(1) // every connection would be a database of its own
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("key store %s: creating the schema: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// create makes the database file (and its folder) private before SQLite
// opens it; SQLite gives its -wal and -shm files the same mode.
func create(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	return f.Close()
}

// Create stores a new key; ErrExists when its id or hash is taken.
func (s *Store) Create(ctx context.Context, k store.Key, hash []byte) error {
	if err := checkNew(k, hash); err != nil {
		return err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO isol8_api_keys (`+columns+`, key_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.KeyPrefix, k.TenantID, k.CreatedAt.UnixMicro(),
		micros(k.ExpiresAt), micros(k.RevokedAt), micros(k.LastUsed), hash)
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE) {
		return fmt.Errorf("key %q: %w", k.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("key store: creating key %q: %w", k.ID, err)
	}
	return nil
}

// Lookup returns the live key with this hash and notes its use.
func (s *Store) Lookup(ctx context.Context, hash []byte, now time.Time) (store.Key, error) {
	row := s.db.QueryRowContext(ctx,
		`SELECT `+columns+` FROM isol8_api_keys
		 WHERE key_hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
		hash, now.UnixMicro())
	k, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Key{}, store.ErrNotFound
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("key store: lookup: %w", err)
	}
	if k.LastUsed == nil || now.Sub(*k.LastUsed) >= touchEvery {
		// Best effort: a key that cannot be marked used still authenticates.
		if _, err := s.db.ExecContext(ctx, `UPDATE isol8_api_keys SET last_used_at = ? WHERE id = ?`, now.UnixMicro(), k.ID); err == nil {
			t := time.UnixMicro(now.UnixMicro()).UTC()
			k.LastUsed = &t
		}
	}
	return k, nil
}

// List returns a tenant's keys ("" = all), newest first, revoked and
// expired ones included.
func (s *Store) List(ctx context.Context, tenantID string) ([]store.Key, error) {
	q := `SELECT ` + columns + ` FROM isol8_api_keys`
	var args []any
	if tenantID != "" {
		q += ` WHERE tenant_id = ?`
		args = append(args, tenantID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at DESC, id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("key store: list: %w", err)
	}
	defer rows.Close()
	keys := []store.Key{}
	for rows.Next() {
		k, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("key store: list: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("key store: list: %w", err)
	}
	return keys, nil
}

// Revoke marks a key revoked at now; revoking it again keeps the first
// time. ErrNotFound when there is no such key.
func (s *Store) Revoke(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE isol8_api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, now.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("key store: revoking key %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("key store: revoking key %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// String names the store's file (never a secret).
func (s *Store) String() string { return "sqlite:" + s.path }

type scanner interface{ Scan(dest ...any) error }

func scan(r scanner) (store.Key, error) {
	var (
		k                          store.Key
		created                    int64
		expires, revoked, lastUsed sql.NullInt64
	)
	if err := r.Scan(&k.ID, &k.Name, &k.KeyPrefix, &k.TenantID, &created, &expires, &revoked, &lastUsed); err != nil {
		return store.Key{}, err
	}
	k.CreatedAt = time.UnixMicro(created).UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsed = fromMicros(expires), fromMicros(revoked), fromMicros(lastUsed)
	return k, nil
}

func micros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

// checkNew refuses a key that could never be used or found.
func checkNew(k store.Key, hash []byte) error {
	switch {
	case k.ID == "":
		return errors.New("key store: a key needs an id")
	case len(hash) == 0:
		return fmt.Errorf("key %q: a key needs the hash of its secret", k.ID)
	}
	return nil
}
