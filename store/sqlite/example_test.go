package sqlite_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/isol8/isol8/store"
	_ "github.com/isol8/isol8/store/sqlite" // registers the "sqlite" driver
)

// Keys are stored by the SHA-256 of their secret, and found by it.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keys")
	defer os.RemoveAll(dir)
	s, err := store.Open(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	secret := "isol8_0123abcd"
	hash := sha256.Sum256([]byte(secret))
	exp := time.Now().Add(time.Hour)
	if err := s.Create(ctx, store.Key{ID: "k1", Name: "ci", KeyPrefix: secret[:10], TenantID: "acme", ExpiresAt: &exp}, hash[:]); err != nil {
		log.Fatal(err)
	}
	k, err := s.Lookup(ctx, hash[:], time.Now())
	fmt.Println(k.ID, k.TenantID, err)
	s.Revoke(ctx, "k1", time.Now())
	_, err = s.Lookup(ctx, hash[:], time.Now())
	fmt.Println(err)
	// Output:
	// k1 acme <nil>
	// key not found
}
