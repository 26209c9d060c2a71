// Package postgres is the API key store on PostgreSQL (pgx), for servers
// that run as several replicas or already keep their state there. It
// registers itself as the "postgres" driver of store.Open, which picks it
// for postgres:// and postgresql:// connection strings.
//
// The table (isol8_api_keys) is created in the first schema of the
// connection's search_path, so a search_path parameter in the connection
// string gives each deployment (or test) a schema of its own.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/isol8/isol8/store"
)

func init() {
	store.Register("postgres", func(ctx context.Context, conn string) (store.Store, error) {
		return Open(ctx, conn)
	})
}

// touchEvery is how stale a key's LastUsed may get: Lookup writes it at
// most this often, so authentication stays a read.
const touchEvery = time.Minute

// migrateLock is the advisory lock that serialises schema creation between
// servers starting at once (CREATE ... IF NOT EXISTS races otherwise).
const migrateLock = 0x15018_4b3e

const schema = `
CREATE TABLE IF NOT EXISTS isol8_api_keys (
	id           text PRIMARY KEY,
	name         text NOT NULL,
	key_prefix   text NOT NULL,
	tenant_id    text NOT NULL DEFAULT '',
	key_hash     bytea NOT NULL UNIQUE,
	created_at   timestamptz NOT NULL,
	expires_at   timestamptz,
	revoked_at   timestamptz,
	last_used_at timestamptz
);
CREATE INDEX IF NOT EXISTS isol8_api_keys_tenant ON isol8_api_keys (tenant_id, created_at DESC);
`

const columns = `id, name, key_prefix, tenant_id, created_at, expires_at, revoked_at, last_used_at`

// Store is an API key store in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by conn (a postgres:// URL or a
// key=value string, as libpq takes) and creates the table when missing.
func Open(ctx context.Context, conn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(conn)
	if err != nil {
		// pgx's parse errors can quote the string; keep the password out.
		return nil, errors.New("key store: postgres connection string is not valid")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("key store: postgres: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("key store: postgres: creating the schema: %w", err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
}

// Create stores a new key; ErrExists when its id or hash is taken.
func (s *Store) Create(ctx context.Context, k store.Key, hash []byte) error {
	if err := checkNew(k, hash); err != nil {
		return err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO isol8_api_keys (`+columns+`, key_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		k.ID, k.Name, k.KeyPrefix, k.TenantID, k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.LastUsed, hash)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return fmt.Errorf("key %q: %w", k.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("key store: creating key %q: %w", k.ID, err)
	}
	return nil
}

// Lookup returns the live key with this hash and notes its use.
func (s *Store) Lookup(ctx context.Context, hash []byte, now time.Time) (store.Key, error) {
	row := s.pool.QueryRow(ctx,
		`SELECT `+columns+` FROM isol8_api_keys
		 WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`,
		hash, now)
	k, err := scan(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Key{}, store.ErrNotFound
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("key store: lookup: %w", err)
	}
	if k.LastUsed == nil || now.Sub(*k.LastUsed) >= touchEvery {
		// Best effort: a key that cannot be marked used still authenticates.
		t := now.Truncate(time.Microsecond).UTC()
		if _, err := s.pool.Exec(ctx, `UPDATE isol8_api_keys SET last_used_at = $1 WHERE id = $2`, t, k.ID); err == nil {
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
		q += ` WHERE tenant_id = $1`
		args = append(args, tenantID)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY created_at DESC, id DESC`, args...)
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
	tag, err := s.pool.Exec(ctx,
		`UPDATE isol8_api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, now, id)
	if err != nil {
		return fmt.Errorf("key store: revoking key %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func scan(r pgx.Row) (store.Key, error) {
	var k store.Key
	if err := r.Scan(&k.ID, &k.Name, &k.KeyPrefix, &k.TenantID, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.LastUsed); err != nil {
		return store.Key{}, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	for _, t := range []*time.Time{k.ExpiresAt, k.RevokedAt, k.LastUsed} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return k, nil
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
