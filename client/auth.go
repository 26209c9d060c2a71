package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/isol8/isol8/store"
)

// The /auth routes need the master key as the client's APIKey, and a
// server with a key store (isol8 serve --auth-db).

// KeyRequest asks for a new API key (POST /auth/keys) or a login token
// (POST /auth/login).
type KeyRequest struct {
	Name     string `json:"name,omitempty"`
	TenantID string `json:"tenantId,omitempty"`
	// TTLMs is the key's life in milliseconds; 0 means the server's default.
	TTLMs int64 `json:"ttlMs,omitempty"`
}

// NewKey is a key just made. Key is its secret, shown this once.
type NewKey struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Name      string     `json:"name"`
	KeyPrefix string     `json:"keyPrefix"`
	TenantID  string     `json:"tenantId"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// Token is the answer of POST /auth/login: a short-lived key.
type Token struct {
	Token     string     `json:"token"`
	ExpiresAt *time.Time `json:"expiresAt"`
	KeyID     string     `json:"keyId"`
}

// Login mints a short-lived key for a tenant (POST /auth/login).
func (r *Remote) Login(ctx context.Context, kr KeyRequest) (*Token, error) {
	var t Token
	if err := r.do(ctx, http.MethodPost, "/auth/login", nil, kr, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateKey makes an API key (POST /auth/keys).
func (r *Remote) CreateKey(ctx context.Context, kr KeyRequest) (*NewKey, error) {
	var k NewKey
	if err := r.do(ctx, http.MethodPost, "/auth/keys", nil, kr, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// ListKeys lists the keys of a tenant, or all of them for ""
// (GET /auth/keys), without their secrets.
func (r *Remote) ListKeys(ctx context.Context, tenantID string) ([]store.Key, error) {
	var q url.Values
	if tenantID != "" {
		q = url.Values{"tenantId": {tenantID}}
	}
	var out struct {
		Keys []store.Key `json:"keys"`
	}
	if err := r.do(ctx, http.MethodGet, "/auth/keys", q, nil, &out); err != nil {
		return nil, err
	}
	if out.Keys == nil {
		out.Keys = []store.Key{}
	}
	return out.Keys, nil
}

// RevokeKey revokes a key (DELETE /auth/keys/{id}); ErrNotFound when the
// server has no such key.
func (r *Remote) RevokeKey(ctx context.Context, id string) error {
	return r.do(ctx, http.MethodDelete, "/auth/keys/"+url.PathEscape(id), nil, nil, nil)
}
