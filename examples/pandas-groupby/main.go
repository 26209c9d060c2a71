// Command pandas-groupby is the seed's second pattern as written there: a
// CSV written into the sandbox through files, grouped with pandas, and
// summary.csv read back through outputPaths.
//
// The request asks for pandas with installPackages. The run needs no
// network when an image has pandas baked in, for example one built with
//
//	isol8 build --base python --tag isol8-data --system python3-pandas --system python3-matplotlib
//
// (Debian's pandas), or with --install pandas from a reachable Python
// package index: isol8 matches the request's packages against its local
// images and runs in the one that has them, installing nothing.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/isol8/isol8"
)

const groupBy = `
import pandas as pd
df = pd.read_csv("/sandbox/data.csv")
out = df.groupby("category")["revenue"].sum().reset_index()
out.to_csv("/sandbox/summary.csv", index=False)
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
		Runtime:         isol8.Python,
		Code:            groupBy,
		InstallPackages: []string{"pandas"},
		Files:           map[string][]byte{"/sandbox/data.csv": []byte(data)},
		OutputPaths:     []string{"/sandbox/summary.csv"},
	})
	if err != nil {
		log.Fatalf("%v\n(build an image with pandas first: isol8 build --base python --tag isol8-data --system python3-pandas --system python3-matplotlib)", err)
	}
	if res.ExitCode != 0 {
		fmt.Fprint(os.Stderr, res.Stderr)
		os.Exit(res.ExitCode)
	}
	summary, ok := res.Files["/sandbox/summary.csv"]
	if !ok {
		log.Fatal("the run left no /sandbox/summary.csv")
	}
	fmt.Print(res.Stdout)
	fmt.Print(string(summary))
}
