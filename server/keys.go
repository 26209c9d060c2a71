package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/isol8/isol8"
	"github.com/isol8/isol8/store"
)

const (
	// loginTTL is the default life of a key minted by /auth/login, and
	// maxLoginTTL the longest allowed.
	loginTTL    = time.Hour
	maxLoginTTL = 24 * time.Hour
	// maxKeyTTL is the longest life of a key made by /auth/keys.
	maxKeyTTL    = 100 * 365 * 24 * time.Hour
	maxNameLen   = 128
	keyPrefixLen = len("isol8_") + 8
)

type keyBody struct {
	Name     string `json:"name"`
	TenantID string `json:"tenantId"`
	TTLMs    *int64 `json:"ttlMs"`
}

// ttl validates a requested TTL; def applies when none was given, and 0
// means the key never expires.
func (b *keyBody) ttl(def, max time.Duration) (time.Duration, error) {
	if b.TTLMs == nil {
		return def, nil
	}
	if *b.TTLMs <= 0 {
		return 0, &isol8.FieldError{Field: "ttlMs", Reason: "must be a positive number of milliseconds"}
	}
	if *b.TTLMs > max.Milliseconds() {
		return 0, &isol8.FieldError{Field: "ttlMs", Reason: fmt.Sprintf("must be at most %d", max.Milliseconds())}
	}
	return time.Duration(*b.TTLMs) * time.Millisecond, nil
}

func (b *keyBody) check() error {
	if len(b.Name) > maxNameLen {
		return &isol8.FieldError{Field: "name", Reason: fmt.Sprintf("longer than %d bytes", maxNameLen)}
	}
	if b.TenantID != "" && !idRE.MatchString(b.TenantID) {
		return &isol8.FieldError{Field: "tenantId", Reason: "must be 1 to 128 letters, digits or ._:-"}
	}
	return nil
}

// mintKey makes a key, stores its hash and returns the record and the
// secret (shown once).
func (s *Server) mintKey(r *http.Request, name, tenant string, ttl time.Duration) (store.Key, string, error) {
	buf := make([]byte, 32)
	rand.Read(buf)
	secret := "isol8_" + hex.EncodeToString(buf)
	sum := sha256.Sum256([]byte(secret))
	now := time.Now().UTC()
	k := store.Key{ID: uuid.NewString(), Name: name, KeyPrefix: secret[:keyPrefixLen], TenantID: tenant, CreatedAt: now}
	if ttl > 0 {
		exp := now.Add(ttl)
		k.ExpiresAt = &exp
	}
	if err := s.cfg.Store.Create(r.Context(), k, sum[:]); err != nil {
		return store.Key{}, "", fmt.Errorf("storing a new key: %w", err)
	}
	return k, secret, nil
}

// keyStore is the first step of every /auth handler.
func (s *Server) keyStore(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Store == nil {
		writeError(w, r, s.log, errAuthDisabled)
		return false
	}
	return true
}

// POST /auth/keys
func (s *Server) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	if !s.keyStore(w, r) {
		return
	}
	var b keyBody
	if err := s.decodeBody(w, r, &b, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if b.Name == "" {
		writeError(w, r, s.log, &isol8.FieldError{Field: "name", Reason: "required"})
		return
	}
	ttl, err := b.ttl(time.Duration(s.icfg.Auth.DefaultTTLMs)*time.Millisecond, maxKeyTTL)
	if err == nil {
		err = b.check()
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	k, secret, err := s.mintKey(r, b.Name, b.TenantID, ttl)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": k.ID, "key": secret, "name": k.Name, "keyPrefix": k.KeyPrefix, "tenantId": k.TenantID, "expiresAt": k.ExpiresAt,
	})
}

// GET /auth/keys?tenantId=
func (s *Server) handleListKeys(w http.ResponseWriter, r *http.Request) {
	if !s.keyStore(w, r) {
		return
	}
	keys, err := s.cfg.Store.List(r.Context(), r.URL.Query().Get("tenantId"))
	if err != nil {
		writeError(w, r, s.log, fmt.Errorf("listing keys: %w", err))
		return
	}
	if keys == nil {
		keys = []store.Key{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// DELETE /auth/keys/{id}
func (s *Server) handleDeleteKey(w http.ResponseWriter, r *http.Request) {
	if !s.keyStore(w, r) {
		return
	}
	id := r.PathValue("id")
	err := s.cfg.Store.Revoke(r.Context(), id, time.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		err = errKeyNotFound
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "id": id})
}

// POST /auth/login mints a short-lived key for a tenant.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !s.keyStore(w, r) {
		return
	}
	var b keyBody
	if err := s.decodeBody(w, r, &b, true); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if b.Name == "" {
		b.Name = "login"
	}
	ttl, err := b.ttl(loginTTL, maxLoginTTL)
	if err == nil {
		err = b.check()
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	k, secret, err := s.mintKey(r, b.Name, b.TenantID, ttl)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": secret, "expiresAt": k.ExpiresAt, "keyId": k.ID})
}
