package server

import (
	_ "embed"
	"net/http"
)

// openAPI describes every route of routeTable (a test holds them equal).
//
//go:embed openapi.json
var openAPI []byte

// GET /openapi.json
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}
