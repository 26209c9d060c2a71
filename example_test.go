package isol8_test

import (
	"context"
	"fmt"
	"log"

	"github.com/isol8/isol8"
)

// The seed's stdin transform: JSON in through stdin, JSON out on stdout.
func Example() {
	ctx := context.Background()
	engine, err := isol8.New(isol8.EngineConfig{Options: isol8.Options{Network: isol8.NetworkNone}})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Stop(ctx)
	res, err := engine.Execute(ctx, &isol8.Request{
		Runtime: isol8.Python,
		Code:    "import json,sys; d=json.load(sys.stdin); print(len(d))",
		Stdin:   `[{"x":1},{"x":2}]`,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout, res.ExitCode)
	// Output:
	// 2
	// 0
}

// Files go in through Request.Files and come back through OutputPaths.
func ExampleLocalEngine_Execute_files() {
	ctx := context.Background()
	engine, err := isol8.New(isol8.EngineConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Stop(ctx)
	res, err := engine.Execute(ctx, &isol8.Request{
		Runtime:     isol8.Bash,
		Code:        "sort /sandbox/in/names.txt > /sandbox/out.txt",
		Files:       map[string][]byte{"/sandbox/in/names.txt": []byte("carol\nalice\nbob\n")},
		OutputPaths: []string{"/sandbox/out.txt"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(res.Files["/sandbox/out.txt"]))
	// Output:
	// alice
	// bob
	// carol
}

// A persistent engine keeps its sandbox (and its files) between runs.
func ExampleLocalEngine_PutFile() {
	ctx := context.Background()
	engine, err := isol8.New(isol8.EngineConfig{Options: isol8.Options{Mode: isol8.Persistent}})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Stop(ctx)
	if err := engine.PutFile(ctx, "/sandbox/raw.json", []byte(`[{"value":1},{"value":null},{"value":3}]`)); err != nil {
		log.Fatal(err)
	}
	for _, code := range []string{
		`import json; raw=json.load(open("/sandbox/raw.json")); json.dump([r for r in raw if r["value"] is not None], open("/sandbox/clean.json","w"))`,
		`import json; json.dump({"count": len(json.load(open("/sandbox/clean.json")))}, open("/sandbox/report.json","w"))`,
	} {
		if _, err := engine.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: code}); err != nil {
			log.Fatal(err)
		}
	}
	report, err := engine.GetFile(ctx, "/sandbox/report.json")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(report))
	// Output: {"count": 2}
}
