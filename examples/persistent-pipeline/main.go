// Command persistent-pipeline is the seed's third pattern: one sandbox kept
// between steps. raw.json goes in with PutFile, a cleaning step writes
// clean.json, a report step writes report.json, and GetFile brings the
// report back.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/isol8/isol8"
)

const clean = `
import json
raw = json.load(open("/sandbox/raw.json"))
clean = [r for r in raw if r.get("value") is not None]
json.dump(clean, open("/sandbox/clean.json", "w"))
print(len(clean))
`

const report = `
import json
clean = json.load(open("/sandbox/clean.json"))
report = {"count": len(clean), "total": sum(r["value"] for r in clean)}
json.dump(report, open("/sandbox/report.json", "w"))
`

func main() {
	ctx := context.Background()
	session, err := isol8.New(isol8.EngineConfig{Options: isol8.Options{Mode: isol8.Persistent, TimeoutMs: 60000}})
	if err != nil {
		log.Fatal(err)
	}
	if err := session.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer session.Stop(ctx)

	raw, _ := json.Marshal([]map[string]any{{"value": 3}, {"value": nil}, {"value": 4}, {"other": 1}})
	if err := session.PutFile(ctx, "/sandbox/raw.json", raw); err != nil {
		log.Fatal(err)
	}
	for _, step := range []string{clean, report} {
		res, err := session.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: step})
		if err != nil {
			log.Fatal(err)
		}
		if res.ExitCode != 0 {
			log.Fatalf("step failed (exit %d): %s", res.ExitCode, res.Stderr)
		}
		fmt.Print(res.Stdout)
	}
	out, err := session.GetFile(ctx, "/sandbox/report.json")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(out))
}
