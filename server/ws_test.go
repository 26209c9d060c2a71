package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/isol8/isol8"
)

// wsClient is a test's end of /execute/ws.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
}

func (h *harness) dialWS(key string) *wsClient {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	h.t.Cleanup(cancel)
	hdr := http.Header{}
	if key != "" {
		hdr.Set("Authorization", "Bearer "+key)
	}
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.ts.URL, "http")+"/execute/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		h.t.Fatalf("dial: %v (status %d)", err, status)
	}
	h.t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{t: h.t, conn: conn, ctx: ctx}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	data, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		data = string(b)
	}
	if err := c.conn.Write(c.ctx, websocket.MessageText, []byte(data)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next reads one event; a closed connection returns its close status.
func (c *wsClient) next() (isol8.StreamEvent, websocket.StatusCode) {
	c.t.Helper()
	typ, data, err := c.conn.Read(c.ctx)
	if err != nil {
		if s := websocket.CloseStatus(err); s != -1 {
			return isol8.StreamEvent{}, s
		}
		c.t.Fatalf("read: %v", err)
	}
	var ev isol8.StreamEvent
	if typ != websocket.MessageText || json.Unmarshal(data, &ev) != nil {
		c.t.Fatalf("bad event %q", data)
	}
	return ev, -1
}

// until reads events up to and including the first of type typ.
func (c *wsClient) until(typ isol8.EventType) []isol8.StreamEvent {
	c.t.Helper()
	var evs []isol8.StreamEvent
	for {
		ev, closed := c.next()
		if closed != -1 {
			c.t.Fatalf("closed (%v) before a %s event; got %+v", closed, typ, evs)
		}
		evs = append(evs, ev)
		if ev.Type == typ {
			return evs
		}
	}
}

func (c *wsClient) expectClose(want websocket.StatusCode) {
	c.t.Helper()
	for {
		ev, closed := c.next()
		if closed == want {
			return
		}
		if closed != -1 {
			c.t.Fatalf("closed with %v, want %v", closed, want)
		}
		c.t.Logf("event before close: %+v", ev)
	}
}

// wsExecute is an "execute" message.
func wsExecute(runtime, code string, extra map[string]any) map[string]any {
	m := execBody(runtime, code, extra)
	m["type"] = "execute"
	return m
}

func TestWSAuthOnUpgrade(t *testing.T) {
	h := newHarness(t, nil)
	for key, want := range map[string]int{"": 401, "wrong": 403} {
		hdr := http.Header{}
		if key != "" {
			hdr.Set("Authorization", "Bearer "+key)
		}
		_, resp, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(h.ts.URL, "http")+"/execute/ws", &websocket.DialOptions{HTTPHeader: hdr})
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Errorf("key %q: err %v, status %v, want %d", key, err, resp, want)
		}
	}
}

func TestWSProtocolWithFakeEngine(t *testing.T) {
	h := newHarness(t, nil)

	// stdin messages reach the program; close 1000 after exit.
	c := h.dialWS(testMasterKey)
	c.send(`{"type":"nonsense"}`)
	if ev, _ := c.next(); ev.Type != isol8.EventError || !strings.Contains(ev.Data, "unknown message type") {
		t.Fatalf("unknown type: %+v", ev)
	}
	c.send(map[string]any{"type": "stdin", "data": "early"})
	if ev, _ := c.next(); ev.Type != isol8.EventError {
		t.Fatalf("stdin before a run: %+v", ev)
	}
	c.send(wsExecute("python", "stdin-line", nil))
	c.send(map[string]any{"type": "stdin", "data": "hello\n"})
	evs := c.until(isol8.EventExit)
	if evs[0].Data != "hello\n" || evs[len(evs)-1].Data != "0" {
		t.Fatalf("events %+v", evs)
	}
	c.expectClose(websocket.StatusNormalClosure)

	// Signals reach the program.
	c = h.dialWS(testMasterKey)
	c.send(wsExecute("python", "sleep", nil))
	c.send(map[string]any{"type": "signal", "signal": "SIGHUP"})
	if ev, _ := c.next(); ev.Type != isol8.EventError {
		t.Fatalf("unknown signal: %+v", ev)
	}
	c.send(map[string]any{"type": "signal", "signal": "SIGINT"})
	evs = c.until(isol8.EventExit)
	if evs[0].Data != "got SIGINT\n" || evs[len(evs)-1].Data != "130" {
		t.Fatalf("events %+v", evs)
	}
	c.expectClose(websocket.StatusNormalClosure)

	// Bad JSON: an error event and 1003, also in the middle of a run.
	c = h.dialWS(testMasterKey)
	c.send(`{"type":`)
	if ev, _ := c.next(); ev.Type != isol8.EventError {
		t.Fatalf("bad JSON: %+v", ev)
	}
	c.expectClose(websocket.StatusUnsupportedData)
	c = h.dialWS(testMasterKey)
	c.send(wsExecute("python", "sleep", nil))
	c.send(`not json`)
	c.expectClose(websocket.StatusUnsupportedData)

	// A refused run: an error event and 1000.
	c = h.dialWS(testMasterKey)
	c.send(wsExecute("python", "1", map[string]any{"options": map[string]any{"network": "host"}}))
	if ev, _ := c.next(); ev.Type != isol8.EventError || !strings.HasPrefix(ev.Data, "options.network: ") {
		t.Fatalf("refused run: %+v", ev)
	}
	c.expectClose(websocket.StatusNormalClosure)

	// request.stdin is the whole input.
	c = h.dialWS(testMasterKey)
	c.send(wsExecute("python", "stdin-line", map[string]any{"stdin": "given\n"}))
	if evs := c.until(isol8.EventExit); evs[0].Data != "given\n" {
		t.Fatalf("events %+v", evs)
	}
}

func TestWSClientGoneCancelsRun(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dialWS(testMasterKey)
	c.send(wsExecute("python", "sleep", map[string]any{"sessionId": "ws"}))
	deadline := time.Now().Add(5 * time.Second)
	for len(h.srv.sessions.list("master")) == 0 || !h.srv.sessions.list("master")[0].IsActive {
		if time.Now().After(deadline) {
			t.Fatal("the run did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.conn.CloseNow()
	for h.srv.sessions.list("master")[0].IsActive {
		if time.Now().After(deadline) {
			t.Fatal("the run outlived its client")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
