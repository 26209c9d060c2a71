// Package storetest is the test suite every store.Store implementation
// passes. An implementation's test calls Run with a function that opens a
// fresh, empty store (and cleans it up with t.Cleanup).
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8/store"
)

// Run runs the suite. open is called once per subtest and must return an
// empty store of its own.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndLookup", testCreateAndLookup},
		{"LookupUnknown", testLookupUnknown},
		{"Expiry", testExpiry},
		{"Revocation", testRevocation},
		{"RevokeUnknown", testRevokeUnknown},
		{"ListByTenant", testListByTenant},
		{"ListEmpty", testListEmpty},
		{"Duplicates", testDuplicates},
		{"InvalidKeys", testInvalidKeys},
		{"ConcurrentCreates", testConcurrentCreates},
		{"LastUsed", testLastUsed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.fn(t, s)
		})
	}
}

// base is the suite's clock; stores keep microseconds, so it has none finer.
var base = time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)

func hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

func newKey(id, tenant string, created time.Time, ttl time.Duration) store.Key {
	k := store.Key{ID: id, Name: "name-" + id, KeyPrefix: "isol8_" + id, TenantID: tenant, CreatedAt: created}
	if ttl > 0 {
		exp := created.Add(ttl)
		k.ExpiresAt = &exp
	}
	return k
}

func mustCreate(t *testing.T, s store.Store, k store.Key) {
	t.Helper()
	if err := s.Create(context.Background(), k, hash("secret-"+k.ID)); err != nil {
		t.Fatalf("Create(%q): %v", k.ID, err)
	}
}

// sameKey compares the fields a store must keep exactly (LastUsed aside).
func sameKey(t *testing.T, got, want store.Key) {
	t.Helper()
	eqTime := func(a, b *time.Time) bool { return a == nil && b == nil || a != nil && b != nil && a.Equal(*b) }
	if got.ID != want.ID || got.Name != want.Name || got.KeyPrefix != want.KeyPrefix || got.TenantID != want.TenantID ||
		!got.CreatedAt.Equal(want.CreatedAt) || !eqTime(got.ExpiresAt, want.ExpiresAt) || !eqTime(got.RevokedAt, want.RevokedAt) {
		t.Fatalf("key = %s\nwant  %s", show(got), show(want))
	}
}

func show(k store.Key) string {
	tm := func(t *time.Time) string {
		if t == nil {
			return "nil"
		}
		return t.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("{id=%q name=%q prefix=%q tenant=%q created=%s expires=%s revoked=%s}",
		k.ID, k.Name, k.KeyPrefix, k.TenantID, k.CreatedAt.Format(time.RFC3339Nano), tm(k.ExpiresAt), tm(k.RevokedAt))
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: err = %v, want store.ErrNotFound", what, err)
	}
}

func testCreateAndLookup(t *testing.T, s store.Store) {
	ctx := context.Background()
	forever := newKey("k-forever", "acme", base, 0)
	expiring := newKey("k-expiring", "", base, time.Hour)
	mustCreate(t, s, forever)
	mustCreate(t, s, expiring)

	got, err := s.Lookup(ctx, hash("secret-k-forever"), base.Add(100*365*24*time.Hour))
	if err != nil {
		t.Fatalf("Lookup of a key without expiry, a century later: %v", err)
	}
	sameKey(t, got, forever)
	got, err = s.Lookup(ctx, hash("secret-k-expiring"), base)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	sameKey(t, got, expiring)
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt is in %v, want UTC", got.CreatedAt.Location())
	}
}

func testLookupUnknown(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.Lookup(ctx, hash("nothing"), base)
	wantNotFound(t, "Lookup in an empty store", err)
	mustCreate(t, s, newKey("k1", "", base, 0))
	_, err = s.Lookup(ctx, hash("secret-k2"), base)
	wantNotFound(t, "Lookup of another hash", err)
	_, err = s.Lookup(ctx, hash("secret-k1")[:16], base)
	wantNotFound(t, "Lookup of a prefix of the hash", err)
}

func testExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := newKey("k-ttl", "t1", base, time.Minute)
	mustCreate(t, s, k)
	h := hash("secret-k-ttl")
	if _, err := s.Lookup(ctx, h, base.Add(time.Minute-time.Millisecond)); err != nil {
		t.Fatalf("Lookup just before expiry: %v", err)
	}
	_, err := s.Lookup(ctx, h, base.Add(time.Minute))
	wantNotFound(t, "Lookup at the expiry time", err)
	_, err = s.Lookup(ctx, h, base.Add(time.Hour))
	wantNotFound(t, "Lookup after expiry", err)
	// An expired key is still listed, with its expiry.
	keys, err := s.List(ctx, "t1")
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %d keys, %v; want the expired key", len(keys), err)
	}
	sameKey(t, keys[0], k)
}

func testRevocation(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newKey("k-rev", "", base, 0))
	mustCreate(t, s, newKey("k-other", "", base, 0))
	h := hash("secret-k-rev")
	if _, err := s.Lookup(ctx, h, base); err != nil {
		t.Fatalf("Lookup before revocation: %v", err)
	}
	at := base.Add(time.Second)
	if err := s.Revoke(ctx, "k-rev", at); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	_, err := s.Lookup(ctx, h, base.Add(2*time.Second))
	wantNotFound(t, "Lookup after revocation", err)
	_, err = s.Lookup(ctx, h, base) // revocation is not a time window
	wantNotFound(t, "Lookup after revocation, at an earlier clock", err)
	if _, err := s.Lookup(ctx, hash("secret-k-other"), base); err != nil {
		t.Fatalf("Lookup of another key after revocation: %v", err)
	}
	// Revoking again succeeds and keeps the first time.
	if err := s.Revoke(ctx, "k-rev", at.Add(time.Hour)); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	keys, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, k := range keys {
		switch {
		case k.ID == "k-rev" && (k.RevokedAt == nil || !k.RevokedAt.Equal(at)):
			t.Errorf("revoked key's RevokedAt = %v, want %v", k.RevokedAt, at)
		case k.ID == "k-other" && k.RevokedAt != nil:
			t.Errorf("other key's RevokedAt = %v, want nil", k.RevokedAt)
		}
	}
}

func testRevokeUnknown(t *testing.T, s store.Store) {
	ctx := context.Background()
	wantNotFound(t, "Revoke in an empty store", s.Revoke(ctx, "nope", base))
	mustCreate(t, s, newKey("k1", "", base, 0))
	wantNotFound(t, "Revoke of another id", s.Revoke(ctx, "k2", base))
	wantNotFound(t, "Revoke of an empty id", s.Revoke(ctx, "", base))
}

func testListByTenant(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Created out of order; listed newest first.
	mustCreate(t, s, newKey("a-old", "a", base, 0))
	mustCreate(t, s, newKey("b-1", "b", base.Add(time.Second), time.Hour))
	mustCreate(t, s, newKey("a-new", "a", base.Add(2*time.Second), 0))
	mustCreate(t, s, newKey("none", "", base.Add(3*time.Second), 0))
	mustCreate(t, s, newKey("a-mid", "a", base.Add(time.Millisecond), 0))

	ids := func(tenant string) []string {
		t.Helper()
		keys, err := s.List(ctx, tenant)
		if err != nil {
			t.Fatalf("List(%q): %v", tenant, err)
		}
		out := []string{}
		for _, k := range keys {
			out = append(out, k.ID)
		}
		return out
	}
	for _, tc := range []struct {
		tenant string
		want   []string
	}{
		{"a", []string{"a-new", "a-mid", "a-old"}},
		{"b", []string{"b-1"}},
		{"", []string{"none", "a-new", "b-1", "a-mid", "a-old"}},
		{"c", []string{}},
	} {
		if got := ids(tc.tenant); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("List(%q) = %v, want %v", tc.tenant, got, tc.want)
		}
	}
}

func testListEmpty(t *testing.T, s store.Store) {
	keys, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if keys == nil || len(keys) != 0 {
		t.Fatalf("List of an empty store = %#v, want an empty, non-nil slice (JSON [])", keys)
	}
}

func testDuplicates(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newKey("k1", "", base, 0))
	if err := s.Create(ctx, newKey("k1", "", base, 0), hash("another secret")); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create with a taken id: err = %v, want store.ErrExists", err)
	}
	if err := s.Create(ctx, newKey("k2", "", base, 0), hash("secret-k1")); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create with a taken hash: err = %v, want store.ErrExists", err)
	}
	keys, err := s.List(ctx, "")
	if err != nil || len(keys) != 1 {
		t.Fatalf("after refused duplicates, List = %d keys, %v; want 1", len(keys), err)
	}
}

func testInvalidKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Create(ctx, newKey("", "", base, 0), hash("x")); err == nil {
		t.Error("Create of a key without an id succeeded")
	}
	if err := s.Create(ctx, newKey("k1", "", base, 0), nil); err == nil {
		t.Error("Create of a key without a hash succeeded")
	}
	// A zero CreatedAt is filled in.
	k := newKey("k2", "", time.Time{}, 0)
	mustCreate(t, s, k)
	got, err := s.Lookup(ctx, hash("secret-k2"), time.Now())
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if got.CreatedAt.IsZero() || time.Since(got.CreatedAt) > time.Minute {
		t.Errorf("CreatedAt = %v, want about now", got.CreatedAt)
	}
}

func testConcurrentCreates(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := newKey(fmt.Sprintf("c-%02d", i), "conc", base.Add(time.Duration(i)*time.Millisecond), 0)
			if err := s.Create(ctx, k, hash("secret-"+k.ID)); err != nil {
				errs <- fmt.Errorf("Create(%q): %w", k.ID, err)
				return
			}
			if _, err := s.Lookup(ctx, hash("secret-"+k.ID), base); err != nil {
				errs <- fmt.Errorf("Lookup(%q): %w", k.ID, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	keys, err := s.List(ctx, "conc")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(keys) != n {
		t.Fatalf("List = %d keys, want %d", len(keys), n)
	}
	for i, k := range keys {
		if want := fmt.Sprintf("c-%02d", n-1-i); k.ID != want {
			t.Fatalf("List[%d] = %q, want %q (newest first)", i, k.ID, want)
		}
	}
}

func testLastUsed(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newKey("k1", "", base, 0))
	h := hash("secret-k1")
	got, err := s.Lookup(ctx, h, base.Add(time.Second))
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if got.LastUsed == nil || !got.LastUsed.Equal(base.Add(time.Second)) {
		t.Fatalf("LastUsed after the first Lookup = %v, want %v", got.LastUsed, base.Add(time.Second))
	}
	keys, err := s.List(ctx, "")
	if err != nil || len(keys) != 1 || keys[0].LastUsed == nil {
		t.Fatalf("List after Lookup = %v, %v; want LastUsed set", keys, err)
	}
	// Within the minute the stored time may stay as it was; later it moves.
	later := base.Add(time.Hour)
	if got, err = s.Lookup(ctx, h, later); err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if got.LastUsed == nil || !got.LastUsed.Equal(later) {
		t.Fatalf("LastUsed an hour later = %v, want %v", got.LastUsed, later)
	}
}
