package server

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/client"
)

// The project's Go client against this server and the real engine: the
// two sides of the contract agree.
func TestDockerGoClient(t *testing.T) {
	d := newDockerHarness(t, nil)
	ctx := context.Background()
	key := d.newKey("client", "acme")
	remote, err := client.New(client.Options{Host: d.ts.URL, APIKey: key, SessionID: "client-session"}, isol8.Options{TimeoutMs: 20000})
	if err != nil {
		t.Fatal(err)
	}
	// The seed's remote pipeline puts its input first: that creates the
	// named session, and the first run sees the file.
	if err := remote.PutFile(ctx, "/sandbox/first.txt", []byte("put first")); err != nil {
		t.Fatalf("PutFile before the first run: %v", err)
	}
	res, err := remote.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: "print(open('/sandbox/first.txt').read()); open('/sandbox/out.txt','w').write('made'); print('hi')"})
	if err != nil || res.Stdout != "put first\nhi\n" || res.ExitCode != 0 {
		t.Fatalf("Execute: %+v, %v", res, err)
	}
	if err := remote.PutFile(ctx, "/sandbox/in.txt", []byte("from the client")); err != nil {
		t.Fatal(err)
	}
	if data, err := remote.GetFile(ctx, "/sandbox/out.txt"); err != nil || string(data) != "made" {
		t.Fatalf("GetFile: %q, %v", data, err)
	}
	var events []isol8.StreamEvent
	res, err = remote.ExecuteStream(ctx, &isol8.Request{Runtime: isol8.Python,
		Code:        "import sys; print(open('/sandbox/in.txt').read(), sys.stdin.read().upper())",
		StdinReader: strings.NewReader("piped")}, func(ev isol8.StreamEvent) { events = append(events, ev) })
	if err != nil || res.Stdout != "from the client PIPED\n" || events[len(events)-1].Type != isol8.EventExit {
		t.Fatalf("ExecuteStream: %+v, %v, events %+v", res, err, events)
	}
	if err := remote.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(d.srv.sessions.list("t:acme")); n != 0 {
		t.Fatalf("%d sessions after Stop", n)
	}

	denied, _ := client.New(client.Options{Host: d.ts.URL, APIKey: key}, isol8.Options{Network: isol8.NetworkHost})
	if _, err := denied.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: "1"}); !errors.Is(err, isol8.ErrPermission) || !strings.Contains(err.Error(), "options.network") {
		t.Fatalf("host network through the client: %v", err)
	}
}
