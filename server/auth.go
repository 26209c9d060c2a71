package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/store"
)

// The Authorization rule, the one place it is decided:
//
//   - no Authorization header at all: 401 {"error":"Missing Authorization header"};
//   - anything else that is not exactly one header of the form
//     "<scheme> <token>", with the scheme "Bearer" in any case, one space,
//     and a non-empty token without spaces, is 403 {"error":"Invalid API key"}:
//     an empty value, a duplicated header, another scheme, extra spaces;
//   - a well-formed token that is neither the master key nor a live key of
//     the store is 403 {"error":"Invalid API key"} as well.
//
// A request that fails here is answered without reading its body, and the
// connection is closed so the server does not drain it either.

// maxTokenLen bounds what is hashed and compared.
const maxTokenLen = 512

// apiKeyRE is the shape of a store key: "isol8_" and 64 hex digits.
var apiKeyRE = regexp.MustCompile(`^isol8_[0-9a-f]{64}$`)

var errAuthUnavailable = newError(isol8.ErrUnavailable, "Authentication is temporarily unavailable")

// principal is who made a request.
type principal struct {
	// tenant namespaces sessions: "master", "t:<tenantId>" or "k:<keyId>"
	// for a key without a tenant, so no two can collide.
	tenant string
	// tenantID is the key's tenant as stored ("" for none).
	tenantID string
	// keyID is the key's id ("master" for the master key); never the key.
	keyID  string
	master bool
}

// principalFrom returns the request's principal (zero before auth).
func principalFrom(ctx context.Context) *principal {
	if p, ok := ctx.Value(principalKey).(*principal); ok {
		return p
	}
	return &principal{}
}

// bearerToken applies the header rule above.
func bearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	if len(vals) == 0 {
		return "", errMissingAuth
	}
	if len(vals) > 1 {
		return "", errInvalidKey
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > maxTokenLen ||
		strings.ContainsAny(token, " \t") {
		return "", errInvalidKey
	}
	return token, nil
}

// authenticate finds the principal of a request. The master key is
// compared in constant time (as SHA-256 digests, so its length does not
// leak either); store keys are looked up by the SHA-256 of the key.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	token, err := bearerToken(r.Header)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(token))
	if s.masterHash != nil && subtle.ConstantTimeCompare(sum[:], s.masterHash) == 1 {
		return &principal{tenant: "master", keyID: "master", master: true}, nil
	}
	if s.cfg.Store == nil || !apiKeyRE.MatchString(token) {
		return nil, errInvalidKey
	}
	k, err := s.cfg.Store.Lookup(r.Context(), sum[:], time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidKey
	}
	if err != nil {
		return nil, fmt.Errorf("%w: key lookup: %w", errAuthUnavailable, err)
	}
	p := &principal{tenant: "k:" + k.ID, tenantID: k.TenantID, keyID: k.ID}
	if k.TenantID != "" {
		p.tenant = "t:" + k.TenantID
	}
	return p, nil
}

// access is who may call a route.
type access int

const (
	public access = iota // no key (GET /health)
	anyKey               // any valid key
	master               // the master key only
)

// guard authenticates a request for a route of the given access before
// the route's handler sees it.
func (s *Server) guard(level access, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if level == public {
			h(w, r)
			return
		}
		p, err := s.authenticate(r)
		if err == nil && level == master && !p.master {
			err = errMasterRequired
		}
		if err != nil {
			if r.ContentLength != 0 {
				w.Header().Set("Connection", "close")
			}
			writeError(w, r, s.log, err)
			return
		}
		*principalFrom(r.Context()) = *p
		h(w, r)
	})
}
