// Command matplotlib-chart is the seed's chart pattern: matplotlib draws a
// chart into /sandbox/chart.png, which comes back through outputPaths and
// is written to ./chart.png here after its PNG signature is checked.
//
// The request asks for matplotlib with installPackages; as in
// examples/pandas-groupby, an image with it baked in serves the run
// without any network:
//
//	isol8 build --base python --tag isol8-data --system python3-pandas --system python3-matplotlib
package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"

	"github.com/isol8/isol8"
)

const chart = `
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.plot([1,2,3],[2,4,8])
plt.savefig("/sandbox/chart.png", dpi=150)
print("chart ready")
`

// pngSignature starts every PNG file.
var pngSignature = []byte("\x89PNG\r\n\x1a\n")

func main() {
	ctx := context.Background()
	engine, err := isol8.New(isol8.EngineConfig{Options: isol8.Options{Network: isol8.NetworkNone, TimeoutMs: 60000}})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Stop(ctx)
	res, err := engine.Execute(ctx, &isol8.Request{
		Runtime:         isol8.Python,
		Code:            chart,
		InstallPackages: []string{"matplotlib"},
		OutputPaths:     []string{"/sandbox/chart.png"},
	})
	if err != nil {
		log.Fatalf("%v\n(build an image with matplotlib first: isol8 build --base python --tag isol8-data --system python3-pandas --system python3-matplotlib)", err)
	}
	if res.ExitCode != 0 {
		fmt.Fprint(os.Stderr, res.Stderr)
		os.Exit(res.ExitCode)
	}
	png := res.Files["/sandbox/chart.png"]
	if !bytes.HasPrefix(png, pngSignature) {
		log.Fatalf("/sandbox/chart.png is not a PNG (%d bytes)", len(png))
	}
	if err := os.WriteFile("chart.png", png, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
	fmt.Printf("wrote chart.png (%d bytes, PNG)\n", len(png))
}
