package client_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/client"
)

// A remote engine is used like the local one. (Not run: it needs a server.)
func Example() {
	ctx := context.Background()
	eng, err := client.New(client.Options{Host: "http://localhost:3000", APIKey: os.Getenv("ISOL8_API_KEY")},
		isol8.Options{Network: isol8.NetworkNone})
	if err != nil {
		log.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer eng.Stop(ctx)
	res, err := eng.ExecuteStream(ctx, &isol8.Request{Runtime: isol8.Python, Code: "print(6 * 7)"},
		func(ev isol8.StreamEvent) {
			if ev.Type == isol8.EventStdout {
				fmt.Print(ev.Data)
			}
		})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit code", res.ExitCode)
}

// A session keeps its sandbox, and its files, between runs.
func ExampleRemote_PutFile() {
	ctx := context.Background()
	eng, err := client.New(client.Options{Host: "http://localhost:3000", APIKey: os.Getenv("ISOL8_API_KEY"), SessionID: "analysis"},
		isol8.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Stop(ctx) // deletes the session (set KeepSession to keep it)
	if _, err := eng.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: "print('warm')"}); err != nil {
		log.Fatal(err)
	}
	if err := eng.PutFile(ctx, "/sandbox/data.csv", []byte("a,b\n1,2\n")); err != nil {
		log.Fatal(err)
	}
	res, err := eng.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: "print(open('data.csv').read())"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
}
