package agent_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/isol8/isol8/agent"
	"github.com/isol8/isol8/sandbox"
)

// An agent in a sandbox made by any backend runs jobs until the sandbox
// is destroyed, and resets it between them.
func Example() {
	ctx := context.Background()
	var sb sandbox.Sandbox // from Backend.Create
	if sb == nil {
		return
	}
	conn, err := agent.Start(ctx, sb, agent.Python)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	out, err := conn.Run(ctx, agent.Job{
		Mode:     agent.ModeCode,
		CodeFile: "/sandbox/main.py",
		Files:    []agent.File{{Path: "/sandbox/main.py", Data: []byte("print(6 * 7)")}},
		Env:      []string{"HOME=/sandbox"},
		Dir:      "/sandbox",
	}, os.Stdout, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit", out.ExitCode)
	if err := conn.Reset(ctx); err != nil {
		log.Fatal(err) // destroy the sandbox instead of reusing it
	}
}
