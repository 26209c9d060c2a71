package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// Every route the server registers is in openapi.json with the same
// method, and every operation of openapi.json is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	var registered, documented []string
	for _, rt := range routeTable {
		registered = append(registered, rt.method+" "+rt.path)
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(registered)
	slices.Sort(documented)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.json documents %s, which the server does not serve", d)
		}
	}
}

func TestOpenAPIIsServed(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do("GET", "/openapi.json", testMasterKey, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" || string(r.body) != string(openAPI) {
		t.Fatalf("GET /openapi.json: %d %q", r.status, r.header.Get("Content-Type"))
	}
}
