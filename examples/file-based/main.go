// Command file-based is the seed's second pattern: a CSV written into the
// sandbox through files, a summary CSV read back through outputPaths.
// (The seed uses pandas; this version uses Python's csv module so that it
// runs on the stock runtime image. examples/pandas-groupby uses pandas.)
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/isol8/isol8"
)

const summarize = `
import csv, collections
totals = collections.defaultdict(float)
with open("/sandbox/data.csv") as f:
    for row in csv.DictReader(f):
        totals[row["category"]] += float(row["revenue"])
with open("/sandbox/summary.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["category", "revenue"])
    for k in sorted(totals):
        w.writerow([k, totals[k]])
print("summary ready")
`

const data = "category,revenue\nbooks,10\ngames,25.5\nbooks,4.5\nmusic,7\n"

func main() {
	ctx := context.Background()
	engine, err := isol8.New(isol8.EngineConfig{Options: isol8.Options{Network: isol8.NetworkNone, TimeoutMs: 60000}})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Stop(ctx)
	res, err := engine.Execute(ctx, &isol8.Request{
		Runtime:     isol8.Python,
		Code:        summarize,
		Files:       map[string][]byte{"/sandbox/data.csv": []byte(data)},
		OutputPaths: []string{"/sandbox/summary.csv"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if res.ExitCode != 0 {
		fmt.Fprint(os.Stderr, res.Stderr)
		os.Exit(res.ExitCode)
	}
	fmt.Print(res.Stdout)
	fmt.Print(string(res.Files["/sandbox/summary.csv"]))
}
