// Command remote-session is the seed's remote pipeline: a worker that uses
// a named session on an isol8 server through the Go client, so several
// workers (or several steps of one) share the sandbox's files.
//
//	ISOL8_API_KEY=secret isol8 serve -p 3000 &
//	ISOL8_HOST=http://localhost:3000 ISOL8_API_KEY=secret go run ./examples/remote-session
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/client"
)

func main() {
	ctx := context.Background()
	host := os.Getenv("ISOL8_HOST")
	if host == "" {
		host = "http://localhost:3000"
	}
	remote, err := client.New(client.Options{
		Host:      host,
		APIKey:    os.Getenv("ISOL8_API_KEY"),
		SessionID: "data-job-123",
	}, isol8.Options{Network: isol8.NetworkNone, TimeoutMs: 120000})
	if err != nil {
		log.Fatal(err)
	}
	if err := remote.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer remote.Stop(ctx) // deletes the named session, as upstream's stop() does

	if err := remote.PutFile(ctx, "/sandbox/input.json", []byte(`[{"x":1},{"x":2},{"x":3}]`)); err != nil {
		log.Fatal(err)
	}
	for _, code := range []string{
		"print('step 1')",
		"import json; d=json.load(open('/sandbox/input.json')); json.dump({'n': len(d)}, open('/sandbox/out.json','w')); print('step 2')",
	} {
		res, err := remote.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: code})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(res.Stdout)
	}
	out, err := remote.GetFile(ctx, "/sandbox/out.json")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(out))
}
