package server

import (
	"net/http"
	"slices"
	"strings"
)

// route is one entry of the API. The table below is the only place routes
// are declared: the mux is built from it, and a test checks it against the
// OpenAPI document both ways.
type route struct {
	method  string
	path    string // a net/http pattern path, such as /session/{id}
	access  access
	handler func(*Server) http.HandlerFunc
}

var routeTable = []route{
	{"GET", "/health", public, func(s *Server) http.HandlerFunc { return s.handleHealth }},
	{"GET", "/openapi.json", anyKey, func(s *Server) http.HandlerFunc { return s.handleOpenAPI }},
	{"GET", "/metrics", anyKey, func(s *Server) http.HandlerFunc { return s.metrics.handler.ServeHTTP }},
	{"POST", "/execute", anyKey, func(s *Server) http.HandlerFunc { return s.handleExecute }},
	{"POST", "/execute/stream", anyKey, func(s *Server) http.HandlerFunc { return s.handleExecuteSSE }},
	{"GET", "/execute/ws", anyKey, func(s *Server) http.HandlerFunc { return s.handleExecuteWS }},
	{"POST", "/file", anyKey, func(s *Server) http.HandlerFunc { return s.handlePutFile }},
	{"GET", "/file", anyKey, func(s *Server) http.HandlerFunc { return s.handleGetFile }},
	{"GET", "/sessions", anyKey, func(s *Server) http.HandlerFunc { return s.handleListSessions }},
	{"DELETE", "/session/{id}", anyKey, func(s *Server) http.HandlerFunc { return s.handleDeleteSession }},
	{"POST", "/cleanup", master, func(s *Server) http.HandlerFunc { return s.handleCleanup }},
	{"POST", "/auth/keys", master, func(s *Server) http.HandlerFunc { return s.handleCreateKey }},
	{"GET", "/auth/keys", master, func(s *Server) http.HandlerFunc { return s.handleListKeys }},
	{"DELETE", "/auth/keys/{id}", master, func(s *Server) http.HandlerFunc { return s.handleDeleteKey }},
	{"POST", "/auth/login", master, func(s *Server) http.HandlerFunc { return s.handleLogin }},
}

// routes builds the mux. A path called with a method it does not serve is
// 405 with Allow, and an unknown path 404, both as JSON and both only
// after authentication, so an anonymous caller learns nothing of the API.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	methods := map[string][]string{}
	for _, rt := range routeTable {
		mux.Handle(rt.method+" "+rt.path, s.guard(rt.access, rt.handler(s)))
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	for path, allowed := range methods {
		if slices.Contains(allowed, "GET") {
			allowed = append(allowed, "HEAD")
		}
		allow := strings.Join(allowed, ", ")
		mux.Handle(path, s.guard(anyKey, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "Method not allowed"})
		}))
	}
	mux.Handle("/", s.guard(anyKey, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.log, errNotFound)
	}))
	return mux
}
