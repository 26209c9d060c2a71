// Command stdin-transform is the seed's first pattern: a JSON payload in
// through stdin, a row-wise transform in Python, JSON back on stdout.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/isol8/isol8"
)

const transform = `
import json, sys
data = json.load(sys.stdin)
result = [
    {**row, "total": row["price"] * row["quantity"]}
    for row in data
]
json.dump(result, sys.stdout)
`

func main() {
	ctx := context.Background()
	engine, err := isol8.New(isol8.EngineConfig{Options: isol8.Options{
		Mode: isol8.Ephemeral, Network: isol8.NetworkNone,
		TimeoutMs: 60000, MemoryLimit: "1g", SandboxSize: "512m",
	}})
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer engine.Stop(ctx)

	input, _ := json.Marshal([]map[string]any{
		{"item": "Widget", "price": 9.99, "quantity": 100},
		{"item": "Gadget", "price": 24.99, "quantity": 50},
	})
	res, err := engine.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: transform, Stdin: string(input)})
	if err != nil {
		log.Fatal(err)
	}
	if res.ExitCode != 0 {
		fmt.Fprint(os.Stderr, res.Stderr)
		os.Exit(res.ExitCode)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &rows); err != nil {
		log.Fatalf("transform printed something that is not JSON: %v", err)
	}
	for _, r := range rows {
		fmt.Printf("%-8v total=%.2f\n", r["item"], r["total"])
	}
}
