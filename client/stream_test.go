package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/isol8/isol8"
)

// recorder is a sink that keeps the events.
type recorder struct {
	mu     sync.Mutex
	events []isol8.StreamEvent
}

func (r *recorder) sink(ev isol8.StreamEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) types() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, ev := range r.events {
		s = append(s, string(ev.Type))
	}
	return strings.Join(s, ",")
}

func testStream(t *testing.T, noWS bool) {
	f := newFake(t)
	f.noWS = noWS
	r := f.client(Options{SessionID: "s1"}, isol8.Options{Network: isol8.NetworkNone})
	var rec recorder
	res, err := r.ExecuteStream(context.Background(), &isol8.Request{Runtime: isol8.Python, Code: "print(1)"}, rec.sink)
	if err != nil {
		t.Fatal(err)
	}
	want := []isol8.StreamEvent{
		{Type: "stdout", Data: "out:print(1)", Phase: "code"},
		{Type: "stderr", Data: "err", Phase: "code"},
		{Type: "exit", Data: "3"},
	}
	if !reflect.DeepEqual(rec.events, want) {
		t.Errorf("events = %+v\nwant     %+v", rec.events, want)
	}
	if res.Stdout != "out:print(1)" || res.Stderr != "err" || res.ExitCode != 3 || res.Runtime != isol8.Python || res.Timestamp == "" {
		t.Errorf("result = %+v", res)
	}
	if noWS {
		if got := f.body("POST /execute/stream"); got["sessionId"] != "s1" || got["options"] == nil {
			t.Errorf("SSE body = %v", got)
		}
		if h := f.headers["POST /execute/stream"]; h.Get("Accept") != "text/event-stream" || h.Get("Authorization") != "Bearer "+fakeKey {
			t.Errorf("SSE headers = %v", h)
		}
		// The fallback sticks: the next stream goes straight to SSE.
		if _, err := r.ExecuteStream(context.Background(), &isol8.Request{Runtime: isol8.Python, Code: "2"}, nil); err != nil {
			t.Fatal(err)
		}
		if f.wsHit.Load() != 1 || f.sse.Load() != 2 {
			t.Errorf("upgrade attempts = %d, SSE streams = %d; want 1 and 2", f.wsHit.Load(), f.sse.Load())
		}
		return
	}
	if f.sse.Load() != 0 {
		t.Errorf("SSE was used though the WebSocket worked")
	}
	first := f.bodies["WS execute"]
	for _, part := range []string{`"type":"execute"`, `"request":{"runtime":"python","code":"print(1)"}`, `"options":{"network":"none"}`, `"sessionId":"s1"`} {
		if !strings.Contains(string(first), part) {
			t.Errorf("execute message %s lacks %s", first, part)
		}
	}
	// No stdin: the program's stdin is closed at once, as the local engine's.
	if got := string(f.bodies["WS stdin"]); got != `{"type":"stdin","eof":true}` {
		t.Errorf("stdin messages = %s, want one eof", got)
	}
}

func TestStreamWebSocket(t *testing.T)   { testStream(t, false) }
func TestStreamSSEFallback(t *testing.T) { testStream(t, true) }

func TestStreamStdinOverWebSocket(t *testing.T) {
	f := newFake(t)
	r := f.client(Options{}, isol8.Options{})
	// One byte per read, so every multi-byte character is cut between
	// reads; then more than a chunk, cut inside a character.
	small := "héllo wörld ✓ 😀\n"
	large := "x" + strings.Repeat("é", 40000)
	input := small + large
	var rec recorder
	res, err := r.ExecuteStream(context.Background(), &isol8.Request{
		Runtime: isol8.Python, Code: "echo", Stdin: "ignored: StdinReader wins",
		StdinReader: io.MultiReader(iotest.OneByteReader(strings.NewReader(small)), strings.NewReader(large)),
	}, rec.sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != input {
		t.Fatalf("echoed %d bytes, want %d (%q...)", len(res.Stdout), len(input), res.Stdout[:min(40, len(res.Stdout))])
	}
	if !strings.Contains(string(f.bodies["WS execute"]), `"code":"echo"}`) {
		t.Errorf("execute message %s should carry no stdin", f.bodies["WS execute"])
	}
	if !strings.HasSuffix(string(f.bodies["WS stdin"]), `{"type":"stdin","eof":true}`) {
		t.Error("the end of stdin was not sent")
	}
}

func TestStreamStdinString(t *testing.T) {
	for _, noWS := range []bool{false, true} {
		f := newFake(t)
		f.noWS = noWS
		r := f.client(Options{}, isol8.Options{})
		res, err := r.ExecuteStream(context.Background(), &isol8.Request{Runtime: isol8.Python, Code: "echo", Stdin: "abc"}, nil)
		if err != nil || res.Stdout != "abc" {
			t.Errorf("noWS=%v: %+v, %v", noWS, res, err)
		}
		if len(f.bodies["WS stdin"]) != 0 {
			t.Errorf("noWS=%v: stdin messages sent with request.stdin set: %s", noWS, f.bodies["WS stdin"])
		}
	}
}

func TestStreamStdinReaderOverSSE(t *testing.T) {
	f := newFake(t)
	f.noWS = true
	r := f.client(Options{}, isol8.Options{})
	res, err := r.ExecuteStream(context.Background(), &isol8.Request{Runtime: isol8.Python, Code: "echo", StdinReader: strings.NewReader("all of it")}, nil)
	if err != nil || res.Stdout != "all of it" {
		t.Fatalf("%+v, %v", res, err)
	}
}

func TestStreamSignals(t *testing.T) {
	f := newFake(t)
	r := f.client(Options{}, isol8.Options{})
	sigs := make(chan string, 1)
	go func() { time.Sleep(50 * time.Millisecond); sigs <- "SIGINT" }()
	res, err := r.ExecuteStream(context.Background(), &isol8.Request{Runtime: isol8.Python, Code: "signal", Signals: sigs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 130 || res.Stderr != "got SIGINT" {
		t.Errorf("result = %+v", res)
	}
	if got := string(f.bodies["WS signal"]); got != `{"type":"signal","signal":"SIGINT"}` {
		t.Errorf("signal message = %s", got)
	}
}

func TestStreamSignalOverSSE(t *testing.T) {
	f := newFake(t)
	f.noWS = true
	r := f.client(Options{}, isol8.Options{})
	sigs := make(chan string, 1)
	go func() { time.Sleep(50 * time.Millisecond); sigs <- "SIGTERM" }()
	var rec recorder
	_, err := r.ExecuteStream(context.Background(), &isol8.Request{Runtime: isol8.Python, Code: "signal", Signals: sigs}, rec.sink)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "SIGTERM") {
		t.Fatalf("err = %v, want a cancellation naming SIGTERM", err)
	}
	if rec.types() != "error" {
		t.Errorf("events = %s, want one error", rec.types())
	}
}

func TestStreamErrorEvent(t *testing.T) {
	for _, noWS := range []bool{false, true} {
		f := newFake(t)
		f.noWS = noWS
		var rec recorder
		_, err := f.client(Options{}, isol8.Options{}).ExecuteStream(context.Background(), &isol8.Request{Runtime: "python", Code: "fail"}, rec.sink)
		var e *Error
		if !errors.As(err, &e) || e.Status != 0 || err.Error() != "Internal server error" {
			t.Errorf("noWS=%v: err = %v (%T), want the error event's *Error", noWS, err, err)
		}
		if rec.types() != "stdout,error" {
			t.Errorf("noWS=%v: events = %s, want stdout,error (the server's error once)", noWS, rec.types())
		}
	}
}

func TestStreamCut(t *testing.T) {
	for _, noWS := range []bool{false, true} {
		f := newFake(t)
		f.noWS = noWS
		var rec recorder
		_, err := f.client(Options{}, isol8.Options{}).ExecuteStream(context.Background(), &isol8.Request{Runtime: "python", Code: "cut"}, rec.sink)
		if !errors.Is(err, isol8.ErrUnavailable) {
			t.Errorf("noWS=%v: err = %v, want ErrUnavailable", noWS, err)
		}
		if rec.types() != "stdout,error" {
			t.Errorf("noWS=%v: events = %s, want stdout then an error made by the client", noWS, rec.types())
		}
	}
}

func TestStreamRefusedBeforeStart(t *testing.T) {
	f := newFake(t)
	// A wrong key is refused at the upgrade; SSE is not tried.
	_, err := f.client(Options{APIKey: "wrong"}, isol8.Options{}).ExecuteStream(context.Background(), &isol8.Request{Runtime: "python", Code: "1"}, nil)
	if !errors.Is(err, isol8.ErrPermission) || err.Error() != "Invalid API key" {
		t.Errorf("wrong key: err = %v", err)
	}
	if f.sse.Load() != 0 {
		t.Error("an auth failure fell back to SSE")
	}
	// Over SSE, a request refused before the run is a plain JSON error.
	f.noWS = true
	_, err = f.client(Options{}, isol8.Options{}).ExecuteStream(context.Background(), &isol8.Request{Runtime: "python", Code: "bad"}, nil)
	if !errors.Is(err, isol8.ErrInvalidArgument) || !strings.Contains(err.Error(), "path escapes") {
		t.Errorf("bad request over SSE: err = %v", err)
	}
}

func TestStreamNotAnEventStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/execute/ws" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>a proxy's page</html>")
	}))
	defer srv.Close()
	r, _ := New(Options{Host: srv.URL, APIKey: "k"}, isol8.Options{})
	if _, err := r.ExecuteStream(context.Background(), &isol8.Request{Runtime: "python", Code: "1"}, nil); !errors.Is(err, isol8.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestStreamCancel(t *testing.T) {
	for _, noWS := range []bool{false, true} {
		f := newFake(t)
		f.noWS = noWS
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		// "signal" waits for a signal that never comes.
		_, err := f.client(Options{}, isol8.Options{}).ExecuteStream(ctx, &isol8.Request{Runtime: "python", Code: "signal"}, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, isol8.ErrUnavailable) {
			t.Errorf("noWS=%v: err = %v, want the context's error", noWS, err)
		}
	}
}

func TestSSEReader(t *testing.T) {
	in := ": comment\n\n" +
		"data: {\"a\":1}\n\n" +
		"event: ignored\r\nid: 7\r\ndata:no-space\r\n\r\n" +
		"data: line1\ndata: line2\n\n" +
		"data\n\n" + // a field without a colon: empty data
		"data: cut off at the end"
	rd := newSSEReader(strings.NewReader(in), 1<<10)
	var got []string
	for {
		data, err := rd.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(data))
	}
	want := []string{`{"a":1}`, "no-space", "line1\nline2", ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	long := newSSEReader(strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n"), 50)
	if _, err := long.next(); err == nil || err == io.EOF {
		t.Errorf("an event over the limit: err = %v", err)
	}
}

func TestSplitUTF8(t *testing.T) {
	for _, tc := range []struct{ in, whole, rest string }{
		{"abc", "abc", ""},
		{"a\xc3", "a", "\xc3"},
		{"a\xc3\xa9", "a\xc3\xa9", ""},
		{"\xf0\x9f\x98", "", "\xf0\x9f\x98"},
		{"x\xff", "x\xff", ""}, // invalid, not cut
		{"", "", ""},
	} {
		w, r := splitUTF8([]byte(tc.in))
		if string(w) != tc.whole || string(r) != tc.rest {
			t.Errorf("splitUTF8(%q) = %q, %q; want %q, %q", tc.in, w, r, tc.whole, tc.rest)
		}
	}
}
