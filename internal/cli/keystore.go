package cli

import (
	"github.com/isol8/isol8/store"

	// The key store drivers register themselves with store.Open.
	_ "github.com/isol8/isol8/store/postgres"
	_ "github.com/isol8/isol8/store/sqlite"
)

// isol8 serve --auth-db opens its key store with store.Open: a SQLite path
// (or sqlite:PATH) or a postgres:// URL.
func init() { openKeyStore = store.Open }
