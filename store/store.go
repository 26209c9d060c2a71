// Package store keeps the server's API keys. Keys are stored hashed
// (SHA-256 of the secret; the secret itself is shown once, at creation),
// with expiry and revocation. Two implementations share one test suite:
// embedded SQLite (pure Go, the default) and PostgreSQL.
package store

import (
	"context"
	"errors"
	"time"
)

// Key is an API key's record, without its secret.
type Key struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	KeyPrefix string     `json:"keyPrefix"` // first characters of the secret, for display
	TenantID  string     `json:"tenantId"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	LastUsed  *time.Time `json:"lastUsedAt,omitempty"`
}

// Store persists API keys.
type Store interface {
	// Create stores a new key whose secret hashes to hash.
	Create(ctx context.Context, k Key, hash []byte) error
	// Lookup returns the live (not expired, not revoked) key with this hash,
	// or ErrNotFound.
	Lookup(ctx context.Context, hash []byte, now time.Time) (Key, error)
	// List returns the keys of a tenant ("" = all), newest first.
	List(ctx context.Context, tenantID string) ([]Key, error)
	// Revoke marks a key revoked; ErrNotFound when there is no such key.
	Revoke(ctx context.Context, id string, now time.Time) error
	// Close releases the store.
	Close() error
}

// ErrNotFound is returned when a key does not exist or is not live.
var ErrNotFound = errors.New("key not found")
