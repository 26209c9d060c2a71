package server_test

import (
	"context"
	"log"
	"net"
	"os/signal"
	"syscall"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/sandbox"
	"github.com/isol8/isol8/server"

	_ "github.com/isol8/isol8/sandbox/docker"
)

// Serve the API on port 3000 until SIGINT or SIGTERM, as isol8 serve does.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := isol8.LoadConfig()
	if err != nil {
		log.Fatal(err)
	}
	const owner = "serve-3000" // finds what a killed earlier run left
	backend, err := isol8.OpenBackend(ctx, cfg.Defaults.Backend, sandbox.Config{Owner: owner})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	srv, err := server.New(server.Config{Config: cfg, MasterKey: "change-me", Backend: backend, Owner: owner})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", ":3000")
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Serve(ctx, ln); err != nil {
		log.Fatal(err)
	}
}
