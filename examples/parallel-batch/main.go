// Command parallel-batch is the seed's parallel batch: many datasets at
// once, each in its own sandbox. The engine's maxConcurrent bounds how many
// sandboxes run together; the rest wait their turn in its queue.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/isol8/isol8"
)

func main() {
	ctx := context.Background()
	engine, err := isol8.New(isol8.EngineConfig{Options: isol8.Options{MaxConcurrent: 4}})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Stop(ctx)

	datasets := make([][]map[string]int, 12)
	for i := range datasets {
		for j := 0; j <= i; j++ {
			datasets[i] = append(datasets[i], map[string]int{"x": j})
		}
	}
	counts := make([]string, len(datasets))
	g, ctx := errgroup.WithContext(ctx)
	for i, ds := range datasets {
		g.Go(func() error {
			stdin, _ := json.Marshal(ds)
			res, err := engine.Execute(ctx, &isol8.Request{
				Runtime: isol8.Python,
				Code:    "import json,sys; d=json.load(sys.stdin); print(len(d))",
				Stdin:   string(stdin),
			})
			if err != nil {
				return fmt.Errorf("dataset %d: %w", i, err)
			}
			if res.ExitCode != 0 {
				return fmt.Errorf("dataset %d: exit %d: %s", i, res.ExitCode, res.Stderr)
			}
			counts[i] = strings.TrimSpace(res.Stdout)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("rows per dataset:", strings.Join(counts, " "))
}
